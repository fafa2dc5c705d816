"""Session fixtures: the stack is brought up once with playbooks/run_server.yml, for real."""
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from stackenv import ansible_playbook, load_stack  # noqa: E402


@pytest.fixture(scope="session")
def stack_run():
    """Output of the first run of run_server.yml in this session."""
    return ansible_playbook("playbooks/run_server.yml")


@pytest.fixture(scope="session")
def stack(stack_run):
    return load_stack()
