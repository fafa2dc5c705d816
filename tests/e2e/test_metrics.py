"""Metrics for a monitoring system: MLflow's /metrics and the object store's, through the proxy over TLS. Read with
the scrape configuration the play hands out (credentials/prometheus.yml) the way Prometheus reads it, and by nobody
else: students and teachers are refused by each service's own check, and the metrics account reads nothing but
metrics."""
import importlib.util

import boto3
import pytest
import requests
import yaml
from botocore.exceptions import ClientError
from prometheus_client.parser import text_string_to_metric_families

from mlops_stack.stackenv import REPO
from roster import STUDENT_A, TEACHER

SPEC = importlib.util.spec_from_file_location("stack_filter", REPO / "ansible/plugins/filter/stack.py")
stack_filter = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(stack_filter)

SEARCH = "/api/2.0/mlflow/experiments/search"
MINIO_METRICS = "/minio/v2/metrics/cluster"
MINIO_DENIED = "Access Denied. (Authentication failed, check your access credentials)"


def scrape_config(stack):
    return {job["job_name"]: job for job in yaml.safe_load((stack.credentials / "prometheus.yml").read_text())["scrape_configs"]}


def scrape(job, folder):
    """A job's target read as Prometheus reads it: its scheme and path, credentials and CA from the files the
    configuration names (relative to its folder; Prometheus trims their whitespace)."""
    (target,) = job["static_configs"][0]["targets"]
    auth, headers = None, {}
    if "basic_auth" in job:
        auth = (job["basic_auth"]["username"], (folder / job["basic_auth"]["password_file"]).read_text().strip())
    if "authorization" in job:
        headers["Authorization"] = "Bearer " + (folder / job["authorization"]["credentials_file"]).read_text().strip()
    return requests.get(f"{job['scheme']}://{target}{job['metrics_path']}", auth=auth, headers=headers,
                        verify=str(folder / job["tls_config"]["ca_file"]), timeout=60)


def samples(response):
    """The scrape's samples, parsed as Prometheus parses them: {(name, ((label, value), ...)): value}."""
    assert response.status_code == 200, response.text[:300]
    assert response.headers["Content-Type"].startswith("text/plain")
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(response.text) for sample in family.samples}


def test_prometheus_reads_each_services_metrics_through_the_proxy(stack, users):
    jobs = scrape_config(stack)
    name = stack.settings["stack_name"]
    mlflow, object_store = jobs[f"{name}-mlflow"], jobs[f"{name}-object-store"]
    assert mlflow["static_configs"][0]["targets"] == [stack.url("mlflow").split("://")[1]]
    assert object_store["static_configs"][0]["targets"] == [stack.url("object_store").split("://")[1]]
    # A student's requests are counted (every worker's, as each scrape may reach any worker).
    served = ("mlflow_http_request_total", (("method", "GET"), ("status", "200")))
    before = samples(scrape(mlflow, stack.credentials)).get(served, 0)
    student = users[STUDENT_A]
    for _ in range(3):
        assert requests.get(student["MLFLOW_TRACKING_URI"] + SEARCH, params={"max_results": 1}, timeout=60,
                            auth=(student["MLFLOW_TRACKING_USERNAME"], student["MLFLOW_TRACKING_PASSWORD"])).status_code == 200
    assert samples(scrape(mlflow, stack.credentials))[served] >= before + 3
    assert any(name.startswith("minio_cluster_") for name, _labels in samples(scrape(object_store, stack.credentials)))


def test_mlflow_metrics_are_for_administrators_and_the_metrics_account_only(stack, users):
    url = stack.url("mlflow")
    metrics_user, password = stack.settings["stack_metrics_user"], stack.secret("metrics_password")

    def get(path, auth):
        return requests.get(url + path, auth=auth, timeout=60)

    assert get("/metrics", None).status_code == 401
    assert get("/metrics", (metrics_user, "wrong-password")).status_code == 401
    for name in (STUDENT_A, TEACHER):  # basic-auth's own refusal of a route it has no rule for
        env = users[name]
        refused = get("/metrics", (env["MLFLOW_TRACKING_USERNAME"], env["MLFLOW_TRACKING_PASSWORD"]))
        assert (refused.status_code, refused.text) == (403, "Permission denied")
    admin = (stack.settings["mlflow_server_admin_username"], stack.secret("mlflow_server_admin_password"))
    assert get("/metrics", admin).status_code == 200
    assert get("/metrics", (metrics_user, password)).status_code == 200
    # The metrics account reads nothing else, whichever case its name is written in (the auth store finds it
    # either way), and creates nothing.
    for login in (metrics_user, metrics_user.upper()):
        refused = get(SEARCH + "?max_results=1", (login, password))
        assert (refused.status_code, refused.json()["message"]) == (403, "the metrics account reads /metrics only")
    created = requests.post(url + "/api/2.0/mlflow/experiments/create", json={"name": f"{metrics_user}.probe"},
                            auth=(metrics_user, password), timeout=60)
    assert (created.status_code, created.json()["message"]) == (403, "the metrics account reads /metrics only")


def test_object_store_metrics_need_the_metrics_account(stack, users):
    url = stack.url("object_store") + MINIO_METRICS
    metrics_user = stack.settings["stack_metrics_user"]

    def read(token):
        return requests.get(url, headers={"Authorization": f"Bearer {token}"} if token else {}, timeout=60)

    owner = read(stack.secret("object_store_metrics_token"))
    assert owner.status_code == 200 and "minio_" in owner.text
    # A token in the right format for another account (a student's, a teacher's own keys), or for the metrics
    # account but signed with another key: the object store's own refusal.
    forged = [stack_filter.stack_metrics_token(users[name]["AWS_SECRET_ACCESS_KEY"], users[name]["AWS_ACCESS_KEY_ID"])
              for name in (STUDENT_A, TEACHER)]
    forged.append(stack_filter.stack_metrics_token(users[STUDENT_A]["AWS_SECRET_ACCESS_KEY"], metrics_user))
    for token in [None] + forged:
        refused = read(token)
        assert refused.status_code == 403, refused.text[:300]
        assert refused.json()["Message"] == MINIO_DENIED
    # The metrics account's keys reach no bucket.
    s3 = boto3.client("s3", endpoint_url=stack.url("object_store"), region_name="us-east-1",
                      aws_access_key_id=metrics_user, aws_secret_access_key=stack.secret("metrics_password"))
    for call in (s3.list_buckets, lambda: s3.list_objects_v2(Bucket=users[STUDENT_A]["STACK_BUCKET"])):
        with pytest.raises(ClientError) as refused:
            call()
        assert refused.value.response["Error"]["Code"] == "AccessDenied"
