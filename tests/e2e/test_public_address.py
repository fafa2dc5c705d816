"""The address users reach the stack at (stack_public_host): when the administrator changes it and runs
run_server.yml again, every user's file and ZenML stack follow, and the student works at the new address
with the credentials they had."""
import re

from mlops_stack.stackenv import REPO, ansible_playbook, load_stack, recap, user_env
from roster import STUDENT_A, manage
from zenml_client import zenml_as

ZENML_TASK = r"Point the users' ZenML components at the stack's addresses\] \*+\n{}:"
NEW_HOST = "127.0.0.1"  # another address of this machine: the proxy's certificate names it after the change

STACK_COMPONENTS = f"""
stack = Client().get_stack("{STUDENT_A}")
store = stack.components[next(kind for kind in stack.components if kind.value == "artifact_store")][0]
tracker = stack.components[next(kind for kind in stack.components if kind.value == "experiment_tracker")][0]
result = {{"user": Client().active_user.name, "store": store.configuration["client_kwargs"]["endpoint_url"],
          "tracker": tracker.configuration["tracking_uri"], "owner": stack.user.name}}
"""


def test_a_new_public_address_reaches_every_file_and_zenml_stack(stack, users):
    handout = REPO / "credentials" / f"{STUDENT_A}.env"
    before = handout.read_text()
    old_host = load_stack().settings["stack_public_host"]
    assert old_host != NEW_HOST
    try:
        moved = ansible_playbook("playbooks/run_server.yml", "-e", f"stack_public_host={NEW_HOST}")
        assert re.search(ZENML_TASK.format("changed"), moved.stdout), moved.stdout[-3000:]
        env = user_env(STUDENT_A)
        services = load_stack().services
        for name, service in (("ZENML_STORE_URL", "zenml"), ("MLFLOW_TRACKING_URI", "mlflow"),
                              ("AWS_ENDPOINT_URL", "object_store")):
            assert env[name] == f"https://{NEW_HOST}:{services[service]['ports'][0]['public']}", (name, env[name])
        assert env["ZENML_STORE_PASSWORD"] in before  # the same credentials, at the new address
        seen = zenml_as(env["ZENML_STORE_URL"], STUDENT_A, env["ZENML_STORE_PASSWORD"], STACK_COMPONENTS)
        assert seen == {"user": STUDENT_A, "owner": STUDENT_A, "store": env["AWS_ENDPOINT_URL"],
                        "tracker": env["MLFLOW_TRACKING_URI"]}
    finally:
        back = ansible_playbook("playbooks/run_server.yml")
    assert handout.read_text() == before
    assert recap(back.stdout)["failed"] == 0
    env = user_env(STUDENT_A)
    seen = zenml_as(env["ZENML_STORE_URL"], STUDENT_A, env["ZENML_STORE_PASSWORD"], STACK_COMPONENTS)
    assert seen["store"] == env["AWS_ENDPOINT_URL"] == f"https://{old_host}:{stack.services['object_store']['ports'][0]['public']}"


def test_refresh_writes_a_lost_file_again_and_a_rerun_changes_nothing(stack, users):
    handout = REPO / "credentials" / f"{STUDENT_A}.env"
    before = handout.read_text()
    handout.unlink()
    manage("--tags", "refresh")
    assert handout.read_text() == before and handout.stat().st_mode & 0o777 == 0o600
    again = manage("--tags", "refresh")
    assert recap(again.stdout)["changed"] == 0
    assert re.search(ZENML_TASK.format("skipping"), again.stdout), again.stdout[-3000:]
