"""Each integration target (tests/integration/targets/<name>) runs against the running stack."""
from pathlib import Path

import pytest

from mlops_stack.stackenv import ansible_playbook

TARGETS = sorted(p.name for p in (Path(__file__).parent / "targets").iterdir()
                 if (p / "tasks" / "main.yml").exists() and not (p / "runme.txt").exists())


@pytest.mark.parametrize("target", TARGETS)
def test_target(stack, target):
    result = ansible_playbook("tests/integration/run_target.yml", "-e", f"target={target}")
    assert "failed=0" in result.stdout
