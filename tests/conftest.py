"""Session fixtures: the stack is brought up once with playbooks/run_server.yml, for real."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
# As every user.env says: artifacts go through the MLflow server, not presigned object-store links.
os.environ["MLFLOW_ENABLE_PROXY_MULTIPART_DOWNLOAD"] = "false"

from stackenv import ansible_playbook, load_stack  # noqa: E402


def orphan_volumes(stack) -> list:
    """The stack's Docker volumes on this machine."""
    listed = subprocess.run(["docker", "volume", "ls", "--quiet"], capture_output=True, text=True).stdout
    return [name for name in listed.split() if name.startswith(stack.settings["stack_name"] + "-")]


@pytest.fixture(scope="session")
def stack_run():
    """Output of the first run of run_server.yml in this session.

    A fresh checkout has no credentials/, so data an earlier checkout left in Docker volumes can no
    longer be opened (the play refuses it): the harness deletes that data first, and only then.
    """
    stack = load_stack()
    if not (stack.credentials / "database_root_password").is_file() and shutil.which("docker"):
        ansible_playbook("playbooks/run_server.yml", "--tags", "docker_engine")  # the engine may be stopped
        if orphan_volumes(stack):
            ansible_playbook("playbooks/teardown.yml", "-e", "teardown_remove_data=true")
    return ansible_playbook("playbooks/run_server.yml")


@pytest.fixture(scope="session")
def stack(request):
    """The running stack; brought up by run_server.yml unless STACK_REUSE=1 (development only)."""
    if os.environ.get("STACK_REUSE") != "1":
        request.getfixturevalue("stack_run")
    return load_stack()
