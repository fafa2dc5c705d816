"""The users' files and ZenML stacks at the stack's address: `manage_users.yml --tags refresh` writes a lost file
again, and changes nothing when all are current. (A new stack_public_host, followed by every file and ZenML stack,
is tests/remote/test_gitlab_ci.py's: a CI job then trains at the new address.)"""
import re

from mlops_stack.stackenv import REPO, recap
from roster import STUDENT_A, ZENML_TASK, manage

def test_refresh_writes_a_lost_file_again_and_a_rerun_changes_nothing(stack, users):
    handout = REPO / "credentials" / f"{STUDENT_A}.env"
    before = handout.read_text()
    handout.unlink()
    manage("--tags", "refresh")
    assert handout.read_text() == before and handout.stat().st_mode & 0o777 == 0o600
    again = manage("--tags", "refresh")
    assert recap(again.stdout)["changed"] == 0
    assert re.search(ZENML_TASK.format("skipping"), again.stdout), again.stdout[-3000:]
