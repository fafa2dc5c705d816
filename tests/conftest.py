"""Session fixtures: the stack is brought up once with playbooks/run_server.yml, for real."""
import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
# As every user.env says: artifacts go through the MLflow server, not presigned object-store links.
os.environ["MLFLOW_ENABLE_PROXY_MULTIPART_DOWNLOAD"] = "false"

from stackenv import ansible_playbook, load_stack  # noqa: E402


@pytest.fixture(scope="session")
def stack_run():
    """Output of the first run of run_server.yml in this session."""
    return ansible_playbook("playbooks/run_server.yml")


@pytest.fixture(scope="session")
def stack(request):
    """The running stack; brought up by run_server.yml unless STACK_REUSE=1 (development only)."""
    if os.environ.get("STACK_REUSE") != "1":
        request.getfixturevalue("stack_run")
    return load_stack()
