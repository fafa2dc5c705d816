"""Hybrid scenario: a student runs the pipeline on their own machine with demo/stacks/hybrid.sh and
their credentials file; the run lands on the central ZenML server under their name and stack, its
artifacts in their bucket, its MLflow run and model on the central MLflow, readable by them only."""
import uuid

import pytest
from botocore.exceptions import ClientError
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from mlflow.server import get_app_client

from demorun import PIPELINE, pipeline_run, run
from mlops_stack.stackenv import REPO, ansible_playbook, user_env, user_s3 as s3
from mlops_stack.stackenv import user_mlflow as mlflow_as
from zenml_client import zenml_as

SUFFIX = uuid.uuid4().hex[:6]
STUDENT, OTHER = f"demo-{SUFFIX}", f"demo-{SUFFIX}-b"


@pytest.fixture(scope="module")
def users(stack, tmp_path_factory):
    roster = tmp_path_factory.mktemp("roster") / "demo.csv"
    roster.write_text(f"username,role\n{STUDENT},developer\n{OTHER},developer\n")
    ansible_playbook("playbooks/manage_users.yml", "--tags", "add", "-e", f"roster={roster}")
    yield {name: user_env(name) for name in (STUDENT, OTHER)}
    ansible_playbook("playbooks/manage_users.yml", "--tags", "remove", "-e", f"roster={roster}", "-e", "confirm=yes")


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    return tmp_path_factory.mktemp("hybrid-home")


@pytest.fixture(scope="module")
def hybrid(demo_venv, users, home):
    done = pipeline_run(run(["demo/stacks/hybrid.sh", f"credentials/{STUDENT}.env", *PIPELINE], home))
    yield done
    # Removing a user keeps their MLflow experiments and models: the student deletes this test's.
    with pytest.MonkeyPatch.context() as monkeypatch:
        client = mlflow_as(users[STUDENT], monkeypatch)
        client.delete_registered_model(done.model)
        client.delete_experiment(client.get_experiment_by_name(done.experiment).experiment_id)


@pytest.fixture(scope="module")
def on_server(hybrid, users):
    """The pipeline run as the student's ZenML client sees it on the server."""
    env = users[STUDENT]
    return zenml_as(env["ZENML_STORE_URL"], STUDENT, env["ZENML_STORE_PASSWORD"], f"""
        run = Client().get_pipeline_run("{hybrid.zenml_id}")
        result = {{"status": run.status.value, "user": run.user.name, "stack": run.stack.name,
                  "steps": {{name: step.status.value for name, step in run.steps.items()}},
                  "uris": [a.uri for s in run.steps.values() for outs in s.outputs.values() for a in outs],
                  "mlflow_run_id": run.steps["train"].run_metadata.get("mlflow_run_id")}}
    """)


def test_the_run_is_on_the_server_as_the_student_on_their_stack(hybrid, on_server):
    assert hybrid.stack == STUDENT
    assert (on_server["status"], on_server["user"], on_server["stack"]) == ("completed", STUDENT, STUDENT)
    assert set(on_server["steps"].values()) == {"completed"} and len(on_server["steps"]) == 5
    assert on_server["mlflow_run_id"] == hybrid.mlflow_id


def test_the_artifacts_are_objects_in_the_students_bucket(on_server, users):
    uris = on_server["uris"]
    assert len(uris) == 9 and all(uri.startswith(f"s3://{STUDENT}/") for uri in uris), uris
    mine, theirs = s3(users[STUDENT]), s3(users[OTHER])
    for uri in uris:
        key = uri[len(f"s3://{STUDENT}/"):]
        assert mine.list_objects_v2(Bucket=STUDENT, Prefix=key)["KeyCount"] > 0, uri
        with pytest.raises(ClientError, match="AccessDenied"):
            theirs.list_objects_v2(Bucket=STUDENT, Prefix=key)


def test_the_mlflow_run_belongs_to_the_student(hybrid, users, monkeypatch):
    env = users[STUDENT]
    client = mlflow_as(env, monkeypatch)
    mlflow_run = client.get_run(hybrid.mlflow_id)
    assert mlflow_run.info.user_id == STUDENT and mlflow_run.info.run_name == hybrid.zenml_name
    assert client.get_experiment(mlflow_run.info.experiment_id).name == hybrid.experiment == f"{STUDENT}.mnist"
    assert round(mlflow_run.data.metrics["test_accuracy"], 4) == hybrid.accuracy
    assert mlflow_run.data.params["epochs"] == "2" and mlflow_run.data.params["device_used"] in ("cpu", "cuda")
    assert [m.step for m in client.get_metric_history(hybrid.mlflow_id, "train_loss")] == [0, 1]

    root = user_env("root")
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", root["MLFLOW_ADMIN_USER"])
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", root["MLFLOW_ADMIN_PASSWORD"])
    auth = get_app_client("basic-auth", tracking_uri=env["MLFLOW_TRACKING_URI"])
    assert auth.get_user_permission(STUDENT, "experiment", mlflow_run.info.experiment_id).permission == "MANAGE"
    assert auth.get_user_permission(OTHER, "experiment", mlflow_run.info.experiment_id).permission == "NO_PERMISSIONS"

    intruder = mlflow_as(users[OTHER], monkeypatch)
    with pytest.raises(MlflowException, match="PERMISSION_DENIED|403"):
        intruder.get_run(hybrid.mlflow_id)
    monkeypatch.delenv("MLFLOW_TRACKING_USERNAME")
    monkeypatch.delenv("MLFLOW_TRACKING_PASSWORD")
    with pytest.raises(MlflowException, match="401|UNAUTHENTICATED|credentials"):
        MlflowClient(tracking_uri=env["MLFLOW_TRACKING_URI"]).get_run(hybrid.mlflow_id)


def test_the_model_is_registered_for_the_student(hybrid, users, monkeypatch):
    assert hybrid.model == f"{STUDENT}.mnist"
    version = mlflow_as(users[STUDENT], monkeypatch).get_model_version(hybrid.model, str(hybrid.version))
    assert version.run_id == hybrid.mlflow_id and version.status == "READY"
    with pytest.raises(MlflowException, match="PERMISSION_DENIED|403"):
        mlflow_as(users[OTHER], monkeypatch).get_model_version(hybrid.model, str(hybrid.version))


def test_mlflow_tracking_prints_where_to_look_but_not_the_password(users, home):
    env = users[STUDENT]
    done = run(["demo/scripts/mlflow_tracking.sh", f"credentials/{STUDENT}.env"], home)
    assert done.stdout.splitlines() == [
        f"MLflow UI: {env['MLFLOW_TRACKING_URI']}", f"user name: {STUDENT}",
        f"password:  the line MLFLOW_TRACKING_PASSWORD in credentials/{STUDENT}.env"]
    assert env["MLFLOW_TRACKING_PASSWORD"] not in done.stdout + done.stderr


def test_hybrid_sh_without_a_command_prints_the_lines_to_eval(hybrid, home):
    done = run(["bash", "-c", f'eval "$(demo/stacks/hybrid.sh credentials/{STUDENT}.env)" && python -c "'
                'from zenml.client import Client; c = Client(); print(c.active_user.name, c.active_stack_model.name)"'],
               home)
    assert done.stdout.splitlines()[-1] == f"{STUDENT} {STUDENT}", done.stdout


def test_a_wrong_password_is_one_clear_line(demo_venv, users, tmp_path):
    credentials = tmp_path / "wrong.env"
    text = (REPO / "credentials" / f"{STUDENT}.env").read_text()
    credentials.write_text(text.replace(users[STUDENT]["ZENML_STORE_PASSWORD"], "not-the-password"))
    done = run(["demo/stacks/hybrid.sh", str(credentials), "true"], tmp_path, check=False)
    assert done.returncode == 1
    last = done.stderr.splitlines()[-1]
    assert last.startswith(f"hybrid.sh: cannot activate stack '{STUDENT}' on {users[STUDENT]['ZENML_STORE_URL']}"), \
        done.stderr[-2000:]
    assert last.endswith("Authentication error: invalid username or password"), last
