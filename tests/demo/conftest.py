"""The demo's tests run its scripts and pipeline for real, in the student's environment (.venv-demo),
each scenario under a temporary MLOPS_DEMO_HOME (helpers in demorun.py)."""
import subprocess

import pytest

from demorun import DEMO_PYTHON
from mlops_stack.stackenv import REPO


@pytest.fixture(scope="session")
def demo_venv():
    """.venv-demo, made or brought up to date with `make demo-venv` (a no-op when it is)."""
    subprocess.run(["make", "--silent", "demo-venv"], cwd=REPO, check=True, timeout=1800)
    return DEMO_PYTHON
