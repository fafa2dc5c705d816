"""The remote scenario: extras/gitlab-ci.yml executed for real by gitlab-ci-local with the Docker executor.

The job runs in the stack's job image, on the jobs' network (apart from the services, which it reaches through the
proxy over TLS, at the address the credentials file names), inside the CPU and memory limits that runners.yml
gives the CPU runner, with the CI/CD variables a student pastes from their credentials file (never root's) and
the CA certificate the stack's runners mount into every job. It must leave the run in MLflow under the student's name, the artifacts in the student's
bucket and the pipeline run on the ZenML server in the student's own stack.
"""
import importlib.util
import re
import shutil
import subprocess
import uuid

import pytest
import yaml
from mlflow.exceptions import MlflowException

from mlops_stack.stackenv import REPO, ansible_playbook, load_stack, recap, user_env, user_s3
from mlops_stack.stackenv import user_mlflow as mlflow_as
from roster import ZENML_TASK, course
from zenml_client import zenml_as

# Fresh names each session: MLflow keeps a removed user's experiment names.
SUFFIX = uuid.uuid4().hex[:6]
STUDENT, OTHER = f"ci-kim-{SUFFIX}", f"ci-lou-{SUFFIX}"
GIT = ["git", "-c", "user.name=Kim", "-c", "user.email=kim@example.org"]  # Kim commits to the student's project
GITLAB_CI_LOCAL = REPO / ".tools/node_modules/.bin/gitlab-ci-local"
SPEC = importlib.util.spec_from_file_location("gitlab_runner_filter", REPO / "ansible/plugins/filter/gitlab_runner.py")
gitlab_runner = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(gitlab_runner)


def cpu_runner_limits():
    """The [runners.docker] limits runners.yml gives the CPU runner, as config.toml would have them."""
    runners = yaml.safe_load((REPO / "runners.yml").read_text())["gitlab_runner_runners_config"]
    cpu = gitlab_runner.check_runner(next(r for r in runners if r["name"] == "cpu"))
    return gitlab_runner.docker_section(cpu)


@pytest.fixture(scope="module")
def job_image(stack):
    """The job image, built by run_server.yml (the job_image role; quick once built)."""
    ansible_playbook("playbooks/run_server.yml", "--tags", "job_image")
    return yaml.safe_load((REPO / "extras/gitlab-ci.yml").read_text())["variables"]["STACK_JOB_IMAGE"]


@pytest.fixture(scope="module")
def students(stack, tmp_path_factory):
    with course(tmp_path_factory.mktemp("roster") / "ci.csv", [STUDENT, OTHER]) as envs:
        yield envs


@pytest.fixture(scope="module")
def project(tmp_path_factory, students):
    """A student's GitLab project: the demo plus the template as .gitlab-ci.yml, committed, and the
    CI/CD variables from the student's credentials file."""
    root = tmp_path_factory.mktemp("project")
    shutil.copytree(REPO / "demo", root / "demo", ignore=shutil.ignore_patterns("__pycache__", ".venv*", "runs"))
    # This machine has no GPU: the student picks the CPU runner, as the template's comment says.
    template = (REPO / "extras/gitlab-ci.yml").read_text()
    assert "tags: [gpu]" in template
    (root / ".gitlab-ci.yml").write_text(template.replace("tags: [gpu]", "tags: [cpu]"))
    (root / ".gitlab-ci-local-variables.yml").write_text(yaml.safe_dump(ci_variables(STUDENT)))
    (root / ".gitignore").write_text(".gitlab-ci-local*\n")
    for command in (["init", "-q", "-b", "main"], ["remote", "add", "origin", "https://gitlab.example.org/kim/mnist.git"],
                    ["add", "-A"], ["commit", "-qm", "MNIST demo"]):
        subprocess.run([*GIT, *command], cwd=root, check=True)
    return root


def ci_variables(name):
    """The CI/CD variables the student adds: what demo/scripts/ci_variables.sh prints from their credentials file."""
    done = subprocess.run([str(REPO / "demo/scripts/ci_variables.sh"), str(REPO / "credentials" / f"{name}.env")],
                          capture_output=True, text=True, check=True)
    return dict(line.split("=", 1) for line in done.stdout.splitlines())


def run_job(project, stack, image):
    """gitlab-ci-local runs the train job; every container it creates gets the CPU runner's limits, dropped
    capabilities and no-new-privileges."""
    limits = cpu_runner_limits()
    docker = project.parent / "docker-as-runner"
    fences = " ".join([f"--cap-drop {cap}" for cap in limits["cap_drop"]]
                      + [f"--security-opt {option}" for option in limits["security_opt"]])
    docker.write_text("#!/bin/bash\n# docker, with the CPU runner's limits and fences on every container\n"
                      'if [ "$1" = create ] || [ "$1" = run ]; then command=$1; shift\n'
                      f'  exec docker "$command" --cpus {limits["cpus"]} --memory {limits["memory"]} '
                      f'--memory-swap {limits["memory_swap"]} {fences} "$@"\nfi\nexec docker "$@"\n')
    docker.chmod(0o755)
    return subprocess.run(
        [str(GITLAB_CI_LOCAL), "--network", stack.settings["stack_jobs_network_name"], "--helper-image", image,
         # As the stack's runners do (gitlab_runner_runners' ca_file): the CA mounted, the variables naming it.
         "--volume", f"{stack.ca_file}:{gitlab_runner.JOB_CA_FILE}:ro",
         *[arg for name in gitlab_runner.JOB_CA_VARIABLES for arg in ("--variable", f"{name}={gitlab_runner.JOB_CA_FILE}")],
         "--pull-policy", "if-not-present", "--container-executable", str(docker), "train"],
        cwd=project, capture_output=True, text=True, timeout=1800)


@pytest.fixture(scope="module")
def job(project, stack, job_image):
    result = run_job(project, stack, job_image)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
    return result.stdout


def test_the_ci_variables_are_the_students_not_roots(stack, students):
    root = {stack.secret(name) for name in ("database_root_password", "object_store_root_password",
                                            "zenml_server_admin_password", "mlflow_server_admin_password")}
    assert not root & set(students[STUDENT].values())
    assert students[STUDENT]["ZENML_STORE_USERNAME"] == STUDENT


def test_the_job_ran_inside_the_cpu_runners_limits(job):
    limits = cpu_runner_limits()
    line = next(line for line in job.splitlines() if line.startswith("train > Job limits:"))
    quota = int(float(limits["cpus"]) * 100000)
    size = gitlab_runner.SIZE.match(limits["memory"])
    memory = int(size.group(1)) * gitlab_runner.UNITS[size.group(2)]
    assert f"CPU quota {quota}" in line, line
    assert f"memory {memory} bytes" in line, line


def reported(job, label):
    """What the demo printed after `label` (e.g. 'MLflow run: '), from the job's log."""
    line = next(line for line in job.splitlines() if line.startswith(f"train > {label}"))
    return line[len(f"train > {label}"):]


def test_the_run_is_in_mlflow_under_the_students_name(job, students, monkeypatch):
    run_id, experiment = reported(job, "MLflow run: ").split(" in experiment ")
    run = mlflow_as(students[STUDENT], monkeypatch).get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.data.metrics["test_accuracy"] > 0.5
    assert {"train_loss", "train_accuracy", "training_seconds"} <= set(run.data.metrics)
    assert run.data.params["device_used"] == "cpu"
    assert mlflow_as(students[STUDENT], monkeypatch).get_experiment(run.info.experiment_id).name == experiment
    with pytest.raises(MlflowException, match="PERMISSION_DENIED|403"):
        mlflow_as(students[OTHER], monkeypatch).get_run(run_id)


def test_the_model_is_registered_for_the_student_only(job, students, monkeypatch):
    name, version = reported(job, "registered model: ").split(" version ")
    model = mlflow_as(students[STUDENT], monkeypatch).get_model_version(name, version)
    assert model.status == "READY"
    with pytest.raises(MlflowException, match="PERMISSION_DENIED|403"):
        mlflow_as(students[OTHER], monkeypatch).get_model_version(name, version)


def test_the_artifacts_are_in_the_students_bucket(job, students):
    env = students[STUDENT]
    s3 = user_s3(env)
    keys = [item["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=env["STACK_BUCKET"])
            for item in page.get("Contents", [])]
    assert any("model" in key for key in keys), keys[:20]
    assert any("accuracy" in key for key in keys), keys[:20]


def test_the_pipeline_run_is_on_the_server_in_the_students_stack(job, students):
    env = students[STUDENT]
    run_id = reported(job, "ZenML run: ").split("(id ")[1].split(")")[0]
    run = zenml_as(env["ZENML_STORE_URL"], STUDENT, env["ZENML_STORE_PASSWORD"], f"""
        run = Client().get_pipeline_run("{run_id}")
        result = {{"status": run.status.value, "stack": run.stack.name, "steps": sorted(run.steps)}}
    """)
    assert run["status"] == "completed"
    assert run["stack"] == STUDENT
    assert {"load_data", "validate_data", "train", "evaluate", "register"} <= set(run["steps"])


@pytest.mark.parametrize("mistake,message", [
    ("ZENML_STORE_API_KEY not added", "CI/CD variable ZENML_STORE_API_KEY is missing: add it under Settings > CI/CD > "
                                      "Variables (demo/scripts/ci_variables.sh <you>.env prints them all)"),
    ("credentials file committed", f"Your credentials file is committed (./{STUDENT}.env): remove it from the "
                                   "repository and its history, and ask your teacher for new passwords"),
])
def test_a_ci_mistake_stops_the_job_with_what_to_do(project, stack, job_image, tmp_path, mistake, message):
    """Before any training: the job names the mistake in CI words (positive control: the job above)."""
    variant = tmp_path / "project"
    shutil.copytree(project, variant)
    if mistake == "credentials file committed":
        shutil.copy(REPO / "credentials" / f"{STUDENT}.env", variant / f"{STUDENT}.env")
        subprocess.run(["git", "add", f"{STUDENT}.env"], cwd=variant, check=True)  # `git add -A` does the same
        subprocess.run([*GIT, "commit", "-qm", "oops"], cwd=variant, check=True)
    else:
        variables = ci_variables(STUDENT)
        del variables["ZENML_STORE_API_KEY"]
        (variant / ".gitlab-ci-local-variables.yml").write_text(yaml.safe_dump(variables))
    result = run_job(variant, stack, job_image)
    assert result.returncode != 0
    assert message in result.stdout, result.stdout[-4000:]
    assert "Step load_data has started" not in result.stdout


def stack_components(env):
    """The URLs the student's ZenML stack components name, as their own client sees them."""
    return zenml_as(env["ZENML_STORE_URL"], STUDENT, env["ZENML_STORE_PASSWORD"], f"""
        stack = Client().get_stack("{STUDENT}")
        store = stack.components[next(kind for kind in stack.components if kind.value == "artifact_store")][0]
        tracker = stack.components[next(kind for kind in stack.components if kind.value == "experiment_tracker")][0]
        result = {{"user": Client().active_user.name, "store": store.configuration["client_kwargs"]["endpoint_url"],
                  "tracker": tracker.configuration["tracking_uri"], "owner": stack.user.name}}
    """)


def test_a_job_reaches_the_stack_at_a_new_public_address(project, stack, job_image, students, tmp_path, monkeypatch):
    """The administrator moves the stack to another address (here the jobs network's gateway, an address of this
    machine that job containers reach) and runs run_server.yml: every user's file and ZenML stack follow, with
    the credentials they had; the student pastes the new CI variables, and the job trains against the same
    account (with the tests' small configuration: the job above trained with the template's). Moved back, each file is
    as it was."""
    gateway = subprocess.run(["docker", "network", "inspect", "--format", "{{(index .IPAM.Config 0).Gateway}}",
                              stack.settings["stack_jobs_network_name"]],
                             capture_output=True, text=True, check=True).stdout.strip()
    old_host = stack.settings["stack_public_host"]
    assert gateway and gateway != old_host
    handout = REPO / "credentials" / f"{STUDENT}.env"
    before = handout.read_text()
    variant = tmp_path / "project"
    shutil.copytree(project, variant)
    shutil.copy(REPO / "tests/demo/fast.yaml", variant / "demo/config/fast.yaml")
    for command in (["add", "demo/config/fast.yaml"], ["commit", "-qm", "small config"]):
        subprocess.run([*GIT, *command], cwd=variant, check=True)
    try:
        moved = ansible_playbook("playbooks/run_server.yml", "-e", f"stack_public_host={gateway}")
        assert re.search(ZENML_TASK.format("changed"), moved.stdout), moved.stdout[-3000:]
        env, services = user_env(STUDENT), load_stack().services
        for name, service in (("ZENML_STORE_URL", "zenml"), ("MLFLOW_TRACKING_URI", "mlflow"),
                              ("AWS_ENDPOINT_URL", "object_store")):
            assert env[name] == f"https://{gateway}:{services[service]['ports'][0]['public']}", (name, env[name])
        assert env["ZENML_STORE_PASSWORD"] in before  # the same credentials, at the new address
        assert stack_components(env) == {"user": STUDENT, "owner": STUDENT, "store": env["AWS_ENDPOINT_URL"],
                                         "tracker": env["MLFLOW_TRACKING_URI"]}
        variables = ci_variables(STUDENT)
        assert variables["MLFLOW_TRACKING_URI"].startswith(f"https://{gateway}:"), variables["MLFLOW_TRACKING_URI"]
        (variant / ".gitlab-ci-local-variables.yml").write_text(yaml.safe_dump(
            {**variables, "DEMO_CONFIG": "demo/config/fast.yaml"}))
        result = run_job(variant, stack, job_image)
        assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
        run_id = reported(result.stdout, "MLflow run: ").split(" in experiment ")[0]
        run = mlflow_as(user_env(STUDENT), monkeypatch).get_run(run_id)
        assert run.info.status == "FINISHED" and run.data.metrics["test_accuracy"] > 0.5
        assert run.data.params["epochs"] == "2"  # the small configuration's
    finally:
        back = ansible_playbook("playbooks/run_server.yml")
    assert handout.read_text() == before
    assert recap(back.stdout)["failed"] == 0
    env = user_env(STUDENT)
    assert stack_components(env)["store"] == env["AWS_ENDPOINT_URL"] == \
        f"https://{old_host}:{stack.services['object_store']['ports'][0]['public']}"
