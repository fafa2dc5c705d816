"""End to end: run_server.yml on this machine, then every service through its own client.

Each test stands alone (what tests share comes from fixtures); the file puts the services first, then
the restarts, then the re-runs of the play.
"""
import contextlib
import json
import pathlib
import stat
import subprocess
import uuid

import boto3
import pymysql
import pytest
import requests
from botocore.exceptions import ClientError

from mlops_stack.stackenv import REPO, ansible_playbook, recap, role_setting

RUN_ID = uuid.uuid4().hex[:8]


def db(stack, **kwargs):
    return pymysql.connect(host=stack.db_host, port=stack.db_port, user="root",
                           password=stack.secret("database_root_password"), **kwargs)


def s3(stack):
    return boto3.client(
        "s3", endpoint_url=stack.url("object_store"), region_name="us-east-1",
        aws_access_key_id=stack.services["object_store"]["admin"]["user"],
        aws_secret_access_key=stack.secret("object_store_root_password"))


def mlflow_auth(stack):
    return (stack.settings["stack_admin_username"],
            stack.secret("mlflow_server_admin_password"))


@contextlib.contextmanager
def mlflow_admin(stack):
    """An MLflow client signed in as the administrator inside the block only (MLflow reads the login
    from the environment, which is given back as it was afterwards)."""
    from mlflow import MlflowClient
    user, password = mlflow_auth(stack)
    with pytest.MonkeyPatch.context() as env:
        env.setenv("MLFLOW_TRACKING_USERNAME", user)
        env.setenv("MLFLOW_TRACKING_PASSWORD", password)
        yield MlflowClient(tracking_uri=stack.url("mlflow"))


def test_containers_follow_the_conventions(stack):
    for name in stack.containers():
        inspect = subprocess.run(["docker", "inspect", name, "--format",
                                  "{{.HostConfig.RestartPolicy.Name}} {{.HostConfig.Memory}} "
                                  "{{.HostConfig.NanoCpus}} {{.State.Health.Status}} "
                                  "{{range $k, $v := .NetworkSettings.Networks}}{{$k}}{{end}}"],
                                 capture_output=True, text=True, check=True).stdout.split()
        policy, memory, cpus, health, network = inspect
        assert policy in ("unless-stopped", "always"), name
        assert int(memory) > 0 and int(cpus) > 0, f"{name} has no resource limits"
        assert health == "healthy", name
        assert network == stack.settings["stack_network_name"], name


def test_containers_are_hardened(stack):
    """No service process runs as root, none gains privileges, each has a PIDs limit, no capability beyond
    what it needs (the database's entry point: what it takes to set up its folder and switch user), and a
    rotated log."""
    for name in stack.containers():
        host = json.loads(subprocess.run(["docker", "inspect", "--format", "{{json .HostConfig}}", name],
                                         capture_output=True, text=True, check=True).stdout)
        assert "no-new-privileges" in (host["SecurityOpt"] or []), name
        assert host["PidsLimit"] and host["PidsLimit"] > 0, name
        assert host["CapDrop"] == ["ALL"], name
        assert set(host["CapAdd"] or []) <= ({"CHOWN", "DAC_OVERRIDE", "FOWNER", "KILL", "SETGID", "SETUID"}
                                             if name == stack.container("database") else set()), name
        assert host["LogConfig"]["Type"] == "json-file" and host["LogConfig"]["Config"]["max-size"], name
        lines = subprocess.run(["docker", "top", name, "-o", "pid,uid"], capture_output=True, text=True,
                               check=True).stdout.splitlines()[1:]
        users = [line.split()[1] for line in lines]
        assert users and "0" not in users, f"{name} runs processes as root: {users}"


def root_secrets(stack) -> dict:
    """The root credentials the play generated (credentials/ less users' files, the CA and the registry)."""
    return {path.name: path.read_text().strip() for path in stack.credentials.iterdir()
            if path.is_file() and path.suffix not in (".env", ".crt", ".json") and path.name != ".gitkeep"}


def test_the_containers_configuration_holds_no_secret(stack):
    """Secrets reach the services as files mounted read-only at /run/secrets (mode 0400, owned by the user the
    container starts as), so `docker inspect` shows none of them; the other tests show the services use them."""
    secrets = root_secrets(stack)
    assert {"database_root_password", "object_store_root_password", "mlflow_server_db_password",
            "zenml_server_encryption_key"} <= set(secrets)
    with_files = set()
    for name, service in stack.services.items():
        if "limits" not in service:
            continue
        inspect = json.loads(subprocess.run(["docker", "inspect", service["container"]], capture_output=True, text=True,
                                            check=True).stdout)[0]
        shown = sorted(file for file, secret in secrets.items() if secret in json.dumps(inspect))
        assert not shown, f"docker inspect {service['container']} shows {shown}"
        mounts = [mount for mount in inspect["Mounts"] if mount["Destination"] == "/run/secrets"]
        if not mounts:
            continue
        assert [mount["RW"] for mount in mounts] == [False], service["container"]
        files = subprocess.run(["docker", "exec", service["container"], "sh", "-c", "stat -c '%a %u %n' /run/secrets/*"],
                               capture_output=True, text=True, check=True).stdout.splitlines()
        assert files and all(line.split()[:2] == ["400", str(service["uid"])] for line in files), (service["container"], files)
        with_files.add(name)
    assert with_files == {"database", "object_store", "zenml", "mlflow"}


def test_with_secret_files_reads_run_secrets_only(stack, tmp_path):
    """The images' entry point wrapper sets NAME from the file NAME_FILE names in /run/secrets, drops NAME_FILE,
    leaves other *_FILE variables (SSL_CERT_FILE) alone, and stops with one line on a file it cannot read."""
    (tmp_path / "token").write_text("s3cret\n")
    image = stack.settings["stack_base_image"]
    run = ["docker", "run", "--rm", "-v", f"{tmp_path}:/run/secrets:ro", "--entrypoint", "with-secret-files"]
    shown = subprocess.run([*run, "-e", "TOKEN_FILE=/run/secrets/token", image, "sh", "-c",
                            'echo "$TOKEN|${TOKEN_FILE-unset}|$SSL_CERT_FILE"'],
                           capture_output=True, text=True, check=True).stdout
    assert shown == "s3cret|unset|/etc/ssl/certs/ca-certificates.crt\n"
    missing = subprocess.run([*run, "-e", "TOKEN_FILE=/run/secrets/gone", image, "true"], capture_output=True,
                             text=True)
    assert missing.returncode == 1
    assert missing.stderr.splitlines()[-1] == "with-secret-files: cannot read TOKEN_FILE (/run/secrets/gone)"


def test_credentials_are_private(stack):
    files = [p for p in stack.credentials.iterdir() if p.is_file() and p.name != ".gitkeep"]
    assert len(files) >= 8
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


def test_no_secret_in_the_play_output(stack, stack_run):
    output = stack_run.stdout + stack_run.stderr
    for path in stack.credentials.iterdir():
        if path.is_file() and path.suffix != ".env" and path.name != ".gitkeep":
            assert path.read_text().strip() not in output, f"{path.name} printed by the play"


def test_sql_through_pymysql(stack):
    with db(stack) as conn, conn.cursor() as cur:
        cur.execute("SHOW DATABASES")
        schemas = {row[0] for row in cur.fetchall()}
        assert {"stack_management", "zenml", "mlflow"} <= schemas
        cur.execute("SHOW COLUMNS FROM stack_management.users")
        assert [row[0] for row in cur.fetchall()] == ["username", "role", "created_at"]


def test_the_administrator_has_an_account_in_every_service(stack):
    """ZenML and MLflow admin rights are checked by the tests below, which log in as this account."""
    admin, password = stack.settings["stack_admin_username"], stack.secret("stack_admin_password")
    conn = pymysql.connect(host=stack.db_host, port=stack.db_port, user=admin, password=password)
    with conn, conn.cursor() as cur:
        cur.execute("SHOW GRANTS")
        assert "ALL PRIVILEGES ON *.*" in cur.fetchall()[0][0]
    client = boto3.client("s3", endpoint_url=stack.url("object_store"), region_name="us-east-1",
                          aws_access_key_id=admin, aws_secret_access_key=password)
    assert stack.settings["object_store_shared_buckets"][0] in [b["Name"] for b in client.list_buckets()["Buckets"]]


def test_database_refuses_a_wrong_password(stack):
    with pytest.raises(pymysql.err.OperationalError):
        pymysql.connect(host=stack.db_host, port=stack.db_port, user="root",
                        password="wrong-password")


def test_object_round_trip_through_boto3(stack):
    client = s3(stack)
    bucket = stack.settings["object_store_shared_buckets"][0]
    key = f"e2e/{RUN_ID}.txt"
    client.put_object(Bucket=bucket, Key=key, Body=b"hello stack")
    assert client.get_object(Bucket=bucket, Key=key)["Body"].read() == b"hello stack"
    client.delete_object(Bucket=bucket, Key=key)


def test_the_mlflow_artifacts_bucket_has_a_hard_quota(stack):
    """Every user's MLflow artifacts share one bucket: its quota (object_store_mlflow_bucket_quota) is the object
    store's to enforce. Lowered to 1 KiB, an 8 KiB object is refused (small enough to be sent whole before the
    answer); at the configured quota it is taken."""
    client, bucket, key = s3(stack), stack.settings["object_store_mlflow_bucket"], f"e2e-quota/{RUN_ID}"
    body = b"q" * 8192
    try:
        ansible_playbook("playbooks/run_server.yml", "--tags", "object_store", "-e", "object_store_mlflow_bucket_quota=1024")
        with pytest.raises(ClientError) as refused:
            client.put_object(Bucket=bucket, Key=key, Body=body)
        assert refused.value.response["Error"]["Code"] == "XMinioAdminBucketQuotaExceeded", refused.value.response
    finally:
        ansible_playbook("playbooks/run_server.yml", "--tags", "object_store")
    assert role_setting("object_store", "object_store_mlflow_bucket_quota") > len(body)
    client.put_object(Bucket=bucket, Key=key, Body=body)
    client.delete_object(Bucket=bucket, Key=key)


def test_object_store_refuses_unknown_keys(stack):
    client = boto3.client("s3", endpoint_url=stack.url("object_store"), region_name="us-east-1",
                          aws_access_key_id="nobody", aws_secret_access_key="not-a-secret-key")
    with pytest.raises(ClientError):
        client.list_buckets()


def test_mlflow_needs_credentials(stack):
    url = stack.url("mlflow")
    assert requests.get(f"{url}/api/2.0/mlflow/experiments/search?max_results=1", timeout=10).status_code == 401
    bad = requests.get(f"{url}/api/2.0/mlflow/experiments/search?max_results=1", timeout=10,
                       auth=(mlflow_auth(stack)[0], "wrong-password-123"))
    assert bad.status_code == 401


def test_mlflow_run_with_metric_and_artifact(stack, tmp_path, monkeypatch):
    from mlflow import MlflowClient
    user, password = mlflow_auth(stack)
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", user)
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", password)
    client = MlflowClient(tracking_uri=stack.url("mlflow"))
    experiment = client.create_experiment(f"e2e-{RUN_ID}")
    run = client.create_run(experiment)
    client.log_metric(run.info.run_id, "accuracy", 0.93)
    artifact = tmp_path / "note.txt"
    artifact.write_text("proxied through MLflow")
    client.log_artifact(run.info.run_id, str(artifact))
    client.set_terminated(run.info.run_id)

    assert client.get_run(run.info.run_id).data.metrics["accuracy"] == 0.93
    back = client.download_artifacts(run.info.run_id, "note.txt", str(tmp_path / "back"))
    assert open(back).read() == "proxied through MLflow"
    # The artifact really lives in the object store, under the MLflow bucket.
    keys = [o["Key"] for o in s3(stack).list_objects_v2(
        Bucket=stack.settings.get("object_store_mlflow_bucket", "mlflow-artifacts")).get("Contents", [])]
    assert any(key.endswith(f"{run.info.run_id}/artifacts/note.txt") for key in keys)


def zenml_admin(stack, code):
    from zenml_client import zenml_as
    return zenml_as(stack.url("zenml"),
                    stack.settings["stack_admin_username"],
                    stack.secret("zenml_server_admin_password"), code)


# The ZenML login, stack list and wrong-password checks against this stack live in
# tests/integration/test_zenml_server.py (same stack fixture); they are not repeated here.


# --- restart without data loss -----------------------------------------------------------------

@pytest.fixture(scope="module")
def written_records(stack, tmp_path_factory):
    """A run (MLflow), an object (S3) and a pipeline record (ZenML) written before any restart."""
    with mlflow_admin(stack) as client:
        run = client.create_run(client.create_experiment(f"restart-{RUN_ID}"))
        client.log_metric(run.info.run_id, "loss", 0.25)
    bucket = stack.settings["object_store_shared_buckets"][0]
    s3(stack).put_object(Bucket=bucket, Key=f"restart/{RUN_ID}", Body=b"kept")
    zenml_admin(stack, f"""
        from zenml import pipeline, step

        @step
        def answer() -> int:
            return 42

        @pipeline(enable_cache=False)
        def restart_probe_{RUN_ID}():
            answer()

        restart_probe_{RUN_ID}()
        result = True
    """)
    return run.info.run_id


def assert_records_survived(stack, run_id):
    with mlflow_admin(stack) as client:
        assert client.get_run(run_id).data.metrics["loss"] == 0.25
    bucket = stack.settings["object_store_shared_buckets"][0]
    assert s3(stack).get_object(Bucket=bucket, Key=f"restart/{RUN_ID}")["Body"].read() == b"kept"
    runs = zenml_admin(stack, f"""
        result = [r.status.value for r in Client().list_pipeline_runs(
            pipeline_name="restart_probe_{RUN_ID}")]
    """)
    assert runs == ["completed"]


def wait_healthy(stack, timeout=300):
    names = stack.containers()
    subprocess.run(["timeout", str(timeout), "sh", "-c",
                    "until [ \"$(docker inspect --format '{{.State.Health.Status}}' " + " ".join(names) +
                    " | sort -u)\" = healthy ]; do sleep 2; done"], check=True)


def test_restarting_every_container_loses_nothing(stack, written_records):
    names = stack.containers()
    subprocess.run(["docker", "restart", *names], check=True, capture_output=True)
    wait_healthy(stack)
    assert_records_survived(stack, written_records)


def test_the_engine_restarted_past_a_stale_pid_file_loses_nothing(stack, written_records):
    """An engine killed without cleanup leaves its pid file; once another process has that pid, a plain
    dockerd refuses to start ("pid file found")."""
    pidfile = pathlib.Path(role_setting("docker_engine", "docker_engine_pidfile"))
    subprocess.run(["start-stop-daemon", "--stop", "--retry", "30", "--pidfile", pidfile], check=True)
    with subprocess.Popen(["sleep", "600"]) as other:
        try:
            pidfile.write_text(str(other.pid))
            # The play starts the engine again; the restart policy brings every container back.
            ansible_playbook("playbooks/run_server.yml", "--tags", "docker_engine")
        finally:
            other.kill()
    assert pathlib.Path(f"/proc/{pidfile.read_text().strip()}/comm").read_text().strip() == "dockerd"
    wait_healthy(stack)
    assert_records_survived(stack, written_records)


def test_down_then_up_keeps_the_data(stack, written_records):
    ansible_playbook("playbooks/teardown.yml")
    running = subprocess.run(["docker", "ps", "--format", "{{.Names}}"], capture_output=True, text=True).stdout
    assert stack.container("database") not in running.split()
    ansible_playbook("playbooks/run_server.yml")
    assert_records_survived(stack, written_records)


def test_second_run_changes_nothing(stack):
    result = ansible_playbook("playbooks/run_server.yml")
    assert recap(result.stdout)["changed"] == 0, result.stdout[-4000:]


def test_check_mode_runs_clean(stack):
    result = ansible_playbook("playbooks/run_server.yml", "--check")
    assert recap(result.stdout)["changed"] == 0, result.stdout[-4000:]


def test_a_changed_build_context_rebuilds_its_image(stack):
    """Images are skipped by the fingerprint of their build context: a changed file must not be missed."""
    context = REPO / "roles/mlflow_server/files/requirements.txt"
    original = context.read_text()
    try:
        context.write_text(original + "# a changed build context\n")
        result = ansible_playbook("playbooks/run_server.yml", "--check", "--tags", "mlflow_server")
    finally:
        context.write_text(original)
    build = result.stdout.split("TASK [stack : Build mlops/mlflow:")[1].split("\n", 1)[1]
    assert build.lstrip().startswith("changed"), result.stdout[-4000:]
    unchanged = ansible_playbook("playbooks/run_server.yml", "--check", "--tags", "mlflow_server")
    assert recap(unchanged.stdout)["changed"] == 0, unchanged.stdout[-4000:]


def test_data_without_its_credentials_is_refused(stack):
    """A new checkout (or a lost credentials/) next to an earlier stack's data: say so, change nothing."""
    kept = stack.credentials / "database_root_password"
    aside = kept.with_name("database_root_password.aside")
    kept.rename(aside)
    try:
        result = ansible_playbook("playbooks/run_server.yml", check=False)
        assert result.returncode != 0
        assert f"Volume {stack.services['database']['volume']} holds an earlier stack's data" in result.stdout
        assert "make purge" in result.stdout
        assert not kept.exists(), "the play generated a new root password over existing data"
        assert recap(result.stdout)["changed"] == 0
    finally:
        aside.rename(kept)


@pytest.mark.parametrize("setting,message", [
    ("zenml_server_cpus=4096", "stack.yml: zenml_server has cpus 4096, more than the"),
    ("database_memory=lots", "stack.yml: database needs memory like 512m or 2g (is lots)"),
    ("mlflow_server_workers=4", "stack.yml: 4 MLflow workers with 4 threads each need about 1776 MiB, more than "
                                "mlflow_server_memory (1g)"),
    ("database_max_connections=60", "stack.yml: the services may open 67 database connections (mlflow 32, zenml 25, "
                                    "administration 10), which leaves -7 of database_max_connections (60)"),
])
def test_bad_limits_stop_the_play_before_any_change(stack, setting, message):
    result = ansible_playbook("playbooks/run_server.yml", "-e", setting, check=False)
    assert result.returncode != 0
    assert message in " ".join(result.stdout.split())
    assert recap(result.stdout)["changed"] == 0
