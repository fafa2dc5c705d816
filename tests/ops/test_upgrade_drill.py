"""The upgrade drill: a stack on the previous minor releases of MLflow and ZenML (images built from this checkout's
Dockerfiles with the older pins of tests/previous.py), where two students work (a hybrid pipeline run with its MLflow
run, artifacts and registered model), is upgraded by `make up` with this checkout's pins. The play backs the stack up
first; MLflow's and ZenML's own migrations run (the MLflow entry point's `mlflow db upgrade`, ZenML's at its start
after copying its schema into another); each student finds their work with the credentials they had, under the
stack's rules.

It purges the stack the suite shares and leaves it on this checkout's versions, without the students.
"""
import json
import os
import shutil
import subprocess
import uuid
from pathlib import Path

import mlflow
import pytest
from mlflow.exceptions import MlflowException

from demorun import PIPELINE, evaluated_accuracy, pipeline_run, run
from mlops_stack.stackenv import REPO, ansible_playbook, docker
from mlops_stack.stackenv import user_mlflow as mlflow_as
from previous import PREVIOUS, previous_requirements, previous_version
from roster import course, root_sql
from zenml_client import zenml_as

TESTS = Path(__file__).parents[1]
SUFFIX = uuid.uuid4().hex[:6]
STUDENT, OTHER = f"up-{SUFFIX}", f"up-{SUFFIX}-b"
SERVICES = {"mlflow_server": "mlflow", "zenml_server": "zenml"}
# Each service runs the image here under its tag: the play builds and pulls nothing.
AS_THEY_ARE = json.dumps({"stack_image_build": False})


def container_log(container):
    done = subprocess.run(["docker", "logs", container], capture_output=True, text=True, check=True)
    return done.stdout + done.stderr


def build_previous(stack, role, tmp_path):
    """roles/<role>/files built with the previous release's pins, tagged with its version (the MLflow image with the
    app of tests/previous_mlflow_auth.py)."""
    context = tmp_path / role
    shutil.copytree(REPO / "roles" / role / "files", context, ignore=shutil.ignore_patterns("__pycache__"))
    (context / "requirements.txt").write_text(previous_requirements(role))
    if role == "mlflow_server":
        shutil.copy(TESTS / "previous_mlflow_auth.py", context / "plugin" / "mlops_mlflow_auth.py")
    image = f"{stack.image(SERVICES[role]).split(':')[0]}:{previous_version(role)}"
    docker("build", "--quiet", "--tag", image, "--build-arg", f"BASE_IMAGE={stack.settings['stack_base_image']}",
           str(context))
    return image


@pytest.fixture(scope="module")
def previous(stack, tmp_path_factory):
    """The stack purged and brought up again on the previous releases: {service: (previous image, pinned image)}."""
    images = {SERVICES[role]: (build_previous(stack, role, tmp_path_factory.mktemp("images")),
                               stack.image(SERVICES[role])) for role in PREVIOUS}
    ansible_playbook("playbooks/teardown.yml", "-e", "teardown_remove_data=true")
    ansible_playbook("playbooks/run_server.yml", "-e", AS_THEY_ARE,
                     *[arg for role in PREVIOUS for arg in ("-e", f"{role}_version={previous_version(role)}")])
    assert {service: stack.image(service) for service in images} == \
        {service: old for service, (old, _) in images.items()}
    yield images
    for old, _ in images.values():
        subprocess.run(["docker", "image", "rm", old], capture_output=True)


@pytest.fixture(scope="module")
def students(previous, demo_venv, tmp_path_factory):
    with course(tmp_path_factory.mktemp("roster") / "upgrade.csv", [STUDENT, OTHER]) as envs:
        yield envs


@pytest.fixture(scope="module")
def work(students, tmp_path_factory):
    """The student's hybrid pipeline run on the previous releases."""
    return pipeline_run(run(["demo/stacks/hybrid.sh", f"credentials/{STUDENT}.env", *PIPELINE],
                            tmp_path_factory.mktemp(f"home-{STUDENT}")))


@pytest.fixture(scope="module")
def upgraded(previous, work, stack, tmp_path_factory):
    """`make up` with this checkout's pins; the backup it takes first holds root's secrets: deleted after the module."""
    folder = tmp_path_factory.mktemp("backups")
    done = ansible_playbook("playbooks/run_server.yml", "-e", f"backup_dir={folder}")
    yield {"output": " ".join(done.stdout.split()), "backups": list(folder.iterdir()),
           "logs": {service: container_log(stack.services[service]["container"]) for service in previous}}
    shutil.rmtree(folder)


def test_the_upgrade_backs_the_previous_stack_up_first(upgraded, previous):
    said = upgraded["output"].split("Upgrade: ")[-1].split(": backing up first")[0]
    for service, (old, new) in previous.items():
        assert f"{service} {old} {new}" in said, upgraded["output"][-3000:]
    [backup] = upgraded["backups"]
    versions = json.loads((backup / "manifest.json").read_text())["info"]["versions"]
    assert {service: versions[service] for service in previous} == {service: old for service, (old, _) in previous.items()}


def test_mlflow_and_zenml_migrated_their_data(upgraded, previous, stack):
    from alembic.script import ScriptDirectory
    from mlflow.store.db.utils import _get_alembic_config
    [head] = ScriptDirectory.from_config(_get_alembic_config("")).get_heads()
    assert f"to {head} (mlflow db upgrade)" in upgraded["logs"]["mlflow"], upgraded["logs"]["mlflow"][-3000:]
    assert "Backing up the database before migration to `zenml_backup`." in upgraded["logs"]["zenml"], \
        upgraded["logs"]["zenml"][-3000:]
    assert "Database successfully backed up to `zenml_backup`." in upgraded["logs"]["zenml"]
    # ZenML's copy of its schema is dropped once the migration succeeded.
    with root_sql(stack) as connection, connection.cursor() as cursor:
        cursor.execute("SHOW DATABASES LIKE 'zenml%'")
        assert [name for (name,) in cursor.fetchall()] == ["zenml"]
    assert {service: stack.image(service) for service in previous} == \
        {service: new for service, (_, new) in previous.items()}


def test_the_student_finds_their_mlflow_run_and_model_under_the_stacks_rules(upgraded, students, work, monkeypatch,
                                                                              tmp_path):
    client = mlflow_as(students[STUDENT], monkeypatch)
    assert client.get_run(work.mlflow_id).data.metrics["test_accuracy"] == pytest.approx(work.accuracy, abs=1e-4)
    assert client.get_model_version(work.model, str(work.version)).status == "READY"
    files = mlflow.artifacts.download_artifacts(
        artifact_uri=client.get_model_version_download_uri(work.model, work.version), dst_path=str(tmp_path),
        tracking_uri=students[STUDENT]["MLFLOW_TRACKING_URI"])
    assert "MLmodel" in os.listdir(files), os.listdir(files)
    other = mlflow_as(students[OTHER], monkeypatch)
    with pytest.raises(MlflowException, match="PERMISSION_DENIED|403"):
        other.get_run(work.mlflow_id)
    # The stack's own rule (its app, absent on the previous release): names are their owner's.
    with pytest.raises(MlflowException, match=f"'{STUDENT}.taken' is not a name of yours: start it with '{OTHER}.'"):
        other.create_experiment(f"{STUDENT}.taken")


def test_the_student_finds_their_zenml_run_and_artifact(upgraded, students, work, tmp_path):
    env = students[STUDENT]
    seen = zenml_as(env["ZENML_STORE_URL"], STUDENT, env["ZENML_STORE_PASSWORD"], f"""
        run = Client().get_pipeline_run("{work.zenml_id}")
        result = {{"status": run.status.value, "user": run.user.name, "stack": run.stack.name}}
    """)
    assert seen == {"status": "completed", "user": STUDENT, "stack": STUDENT}
    accuracy = evaluated_accuracy(f"credentials/{STUDENT}.env", work.zenml_id, tmp_path)
    assert accuracy == pytest.approx(work.accuracy, abs=1e-4)


def test_the_ci_api_key_still_signs_in(upgraded, students, monkeypatch):
    env = students[STUDENT]
    monkeypatch.setenv("ZENML_STORE_API_KEY", env["ZENML_STORE_API_KEY"])
    assert zenml_as(env["ZENML_STORE_URL"], "", "", "result = Client().active_user.name") == f"{STUDENT}-ci"


def test_a_new_run_is_logged_after_the_upgrade(upgraded, students, work, monkeypatch):
    client = mlflow_as(students[STUDENT], monkeypatch)
    run_id = client.create_run(client.get_experiment_by_name(work.experiment).experiment_id).info.run_id
    client.log_metric(run_id, "after_upgrade", 1.0)
    assert client.get_run(run_id).data.metrics["after_upgrade"] == 1.0
