"""The stack's MLflow rules (roles/mlflow_server/files/plugin/mlops_mlflow_auth.py), tried as a student who wants
another student's work, over plain HTTP: names belong to their owner, and a model version's source must be
something the caller may read. Every denial is the server's own 403 with its message; beside each, the owner
(or the rightful name) still works."""
import uuid

import pytest
import requests

from mlops_stack.stackenv import user_mlflow
from roster import STUDENT_A, STUDENT_B, TEACHER

NOT_YOURS = "is not a name of yours"
NOT_READABLE = "is not a run, model or artifact path you may read"


class Api:
    """MLflow's REST API as one user: post() and get() return the response, whatever its status."""

    def __init__(self, env):
        self.url, self.auth = env["MLFLOW_TRACKING_URI"], (env["MLFLOW_TRACKING_USERNAME"],
                                                           env["MLFLOW_TRACKING_PASSWORD"])

    def post(self, path, **body):
        return requests.post(f"{self.url}/api/2.0/mlflow/{path}", json=body, auth=self.auth, timeout=30)

    def get(self, path, **params):
        return requests.get(f"{self.url}/api/2.0/mlflow/{path}", params=params, auth=self.auth, timeout=30)


def refused(response, message):
    """The server's own denial: 403, PERMISSION_DENIED, and the rule's message."""
    assert response.status_code == 403, (response.status_code, response.text)
    assert response.json()["error_code"] == "PERMISSION_DENIED" and message in response.json()["message"]


def ok(response):
    assert response.status_code == 200, (response.status_code, response.text)
    return response.json()


@pytest.fixture(scope="module")
def victim(users, monkeypatch_module, tmp_path_factory):
    """Student A's experiment, run (with an artifact) and registered model."""
    client = user_mlflow(users[STUDENT_A], monkeypatch_module)
    name = f"{STUDENT_A}.victim-{uuid.uuid4().hex[:6]}"
    experiment = client.create_experiment(name)
    run = client.create_run(experiment)
    weights = tmp_path_factory.mktemp("victim") / "weights.txt"
    weights.write_text("secret weights")
    client.log_artifact(run.info.run_id, str(weights), "model")
    client.create_registered_model(name)
    return {"experiment": experiment, "run": run.info.run_id, "artifacts": run.info.artifact_uri, "model": name}


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        yield patch


@pytest.mark.parametrize("path, field", [("experiments/create", "name"), ("registered-models/create", "name")])
def test_a_student_creates_only_names_of_their_own(users, path, field):
    b = Api(users[STUDENT_B])
    for squatted in (f"{STUDENT_A}.mnist", "it-future.mnist", f"mnist-{STUDENT_B}", STUDENT_A, f"{STUDENT_B}x"):
        refused(b.post(path, **{field: squatted}), NOT_YOURS)
    ok(b.post(path, **{field: f"{STUDENT_B}.{uuid.uuid4().hex[:6]}"}))


def test_a_student_renames_only_to_names_of_their_own(users):
    b = Api(users[STUDENT_B])
    experiment = ok(b.post("experiments/create", name=f"{STUDENT_B}.{uuid.uuid4().hex[:6]}"))["experiment_id"]
    model = f"{STUDENT_B}.{uuid.uuid4().hex[:6]}"
    ok(b.post("registered-models/create", name=model))
    refused(b.post("experiments/update", experiment_id=experiment, new_name=f"{STUDENT_A}.mnist"), NOT_YOURS)
    # The protobuf JSON name of the field is read as MLflow reads it: no way around the rule.
    refused(b.post("experiments/update", experiment_id=experiment, newName=f"{STUDENT_A}.mnist"), NOT_YOURS)
    refused(b.post("registered-models/rename", name=model, new_name=f"{STUDENT_A}.mnist"), NOT_YOURS)
    ok(b.post("experiments/update", experiment_id=experiment, new_name=f"{STUDENT_B}.renamed-{experiment}"))
    ok(b.post("registered-models/rename", name=model, new_name=f"{model}.renamed"))


def test_a_teacher_also_creates_only_names_of_their_own(users):
    teacher = Api(users[TEACHER])
    refused(teacher.post("experiments/create", name=f"{STUDENT_A}.graded"), NOT_YOURS)
    ok(teacher.post("experiments/create", name=f"{TEACHER}.{uuid.uuid4().hex[:6]}"))


def test_the_server_chooses_an_experiments_artifact_location(users, stack, victim):
    b = Api(users[STUDENT_B])
    bucket = stack.settings["object_store_mlflow_bucket"]
    for location in (f"s3://{bucket}/{victim['experiment']}", f"mlflow-artifacts:/{victim['experiment']}"):
        refused(b.post("experiments/create", name=f"{STUDENT_B}.{uuid.uuid4().hex[:6]}", artifact_location=location),
                "the server chooses an experiment's artifact location")


def model_version_sources(stack, victim):
    """Every way to name student A's artifacts as a model version's source."""
    bucket, experiment, run = stack.settings["object_store_mlflow_bucket"], victim["experiment"], victim["run"]
    path = f"{experiment}/{run}/artifacts/model"
    return {
        "raw object-store URI": f"s3://{bucket}/{path}",
        "raw URI, doubled slashes": f"s3://{bucket}//{path}",
        "artifact proxy URI": f"mlflow-artifacts:/{path}",
        "artifact proxy URL": f"{stack.url('mlflow')}/api/2.0/mlflow-artifacts/artifacts/{path}",
        "percent-encoded": f"s3://{bucket}/{experiment}%2F{run}/artifacts/model",
        "runs: URI": f"runs:/{run}/model",
        "models: URI": f"models:/{victim['model']}/1",
        "another bucket": f"s3://{STUDENT_A}/model",
        "a local path": "/etc",
    }


def test_a_model_version_source_must_be_readable_by_its_creator(users, stack, victim):
    a, b = Api(users[STUDENT_A]), Api(users[STUDENT_B])
    # A's own version first, so `models:/<A's model>/1` exists.
    ok(a.post("model-versions/create", name=victim["model"], source=f"runs:/{victim['run']}/model",
              run_id=victim["run"]))
    stolen = f"{STUDENT_B}.{uuid.uuid4().hex[:6]}"
    ok(b.post("registered-models/create", name=stolen))
    for how, source in model_version_sources(stack, victim).items():
        response = b.post("model-versions/create", name=stolen, source=source)
        assert response.status_code == 403, (how, response.status_code, response.text)
    sources = model_version_sources(stack, victim)
    refused(b.post("model-versions/create", name=stolen, source=sources["raw object-store URI"]), NOT_READABLE)
    assert ok(b.get("registered-models/get", name=stolen))["registered_model"].get("latest_versions") is None
    # The owner may name the same files, and downloads them through the version.
    for how in ("raw object-store URI", "artifact proxy URI", "runs: URI"):
        body = {"run_id": victim["run"]} if how != "raw object-store URI" else {}
        version = ok(a.post("model-versions/create", name=victim["model"], source=sources[how], **body))
        assert version["model_version"]["source"], how
    downloaded = requests.get(f"{a.url}/model-versions/get-artifact", auth=a.auth, timeout=30,
                              params={"name": victim["model"], "version": "2", "path": "weights.txt"})
    assert downloaded.status_code == 200 and downloaded.text == "secret weights", downloaded.text


def test_a_teacher_may_register_a_students_run(users, victim):
    teacher = Api(users[TEACHER])
    name = f"{TEACHER}.{uuid.uuid4().hex[:6]}"
    ok(teacher.post("registered-models/create", name=name))
    ok(teacher.post("model-versions/create", name=name, source=f"runs:/{victim['run']}/model", run_id=victim["run"]))


def endpoints_that_take_an_id(stack, victim, version):
    """(method, path, params) of MLflow endpoints that take an experiment id, run id, model name or artifact
    path, each pointed at student A's work."""
    experiment, run, model = victim["experiment"], victim["run"], victim["model"]
    artifacts = f"{stack.url('mlflow')}/api/2.0/mlflow-artifacts/artifacts/{experiment}/{run}/artifacts/model/weights.txt"
    return {
        "get experiment": ("GET", "experiments/get", {"experiment_id": experiment}),
        "get experiment by name": ("GET", "experiments/get-by-name", {"experiment_name": model}),
        "get run": ("GET", "runs/get", {"run_id": run}),
        "metric history": ("GET", "metrics/get-history", {"run_id": run, "metric_key": "loss"}),
        "list artifacts": ("GET", "artifacts/list", {"run_id": run, "path": "model"}),
        "set a tag": ("POST", "runs/set-tag", {"run_id": run, "key": "graded", "value": "no"}),
        "create a run in it": ("POST", "runs/create", {"experiment_id": experiment}),
        "get the model": ("GET", "registered-models/get", {"name": model}),
        "get a model version's files": ("GET", f"{stack.url('mlflow')}/model-versions/get-artifact",
                                        {"name": model, "version": version, "path": "weights.txt"}),
        "the artifact proxy": ("GET", artifacts, {}),
    }


def call(api, method, path, params):
    url = path if path.startswith("http") else f"{api.url}/api/2.0/mlflow/{path}"
    if method == "GET":
        return requests.get(url, params=params, auth=api.auth, timeout=30)
    return requests.post(url, json=params, auth=api.auth, timeout=30)


def test_another_student_is_refused_every_endpoint_that_takes_an_id(users, stack, victim):
    a, b = Api(users[STUDENT_A]), Api(users[STUDENT_B])
    # (MLflow 3.17 cannot serve get-artifact for a runs:/ source: its server answers 500.)
    version = ok(a.post("model-versions/create", name=victim["model"], run_id=victim["run"],
                        source=f"mlflow-artifacts:/{victim['experiment']}/{victim['run']}/artifacts/model"))
    for how, (method, path, params) in endpoints_that_take_an_id(stack, victim, version["model_version"]["version"]).items():
        owner, intruder = call(a, method, path, params), call(b, method, path, params)
        assert owner.status_code == 200, (how, owner.status_code, owner.text[:300])
        assert intruder.status_code == 403, (how, intruder.status_code, intruder.text[:300])


@pytest.mark.parametrize("path, body, key", [
    ("runs/search", lambda v: {"experiment_ids": [v["experiment"]]}, "runs"),
    ("experiments/search", lambda v: {"max_results": 1000}, "experiments"),
])
def test_searches_leave_out_another_students_work(users, victim, path, body, key):
    """Searches are filtered, not refused: the owner finds the work, another student gets nothing of it."""
    a, b = Api(users[STUDENT_A]), Api(users[STUDENT_B])
    assert victim["experiment"] in ok(a.post(path, **body(victim)))[key].__repr__()
    found = ok(b.post(path, **body(victim))).get(key, [])
    assert victim["run"] not in repr(found) and all(item.get("experiment_id") != victim["experiment"] for item in found
                                                    if isinstance(item, dict))
