"""Each integration target (tests/integration/targets/<name>) runs against the running stack."""
from pathlib import Path

import pytest

from mlops_stack.stackenv import ansible_playbook

TARGETS = sorted(p.name for p in (Path(__file__).parent / "targets").iterdir()
                 if (p / "tasks" / "main.yml").exists() and not (p / "runme.txt").exists())


# On Mitogen (ansible.cfg), amazon.aws's s3_object, minio_user's client as a user, raises its refusal past
# fail_json (no message left to assert on): that target runs on Ansible's own strategy.
LINEAR = {"minio_user"}


@pytest.mark.parametrize("target", TARGETS)
def test_target(stack, target, monkeypatch):
    if target in LINEAR:
        monkeypatch.setenv("ANSIBLE_STRATEGY", "ansible.builtin.linear")
    result = ansible_playbook("tests/integration/run_target.yml", "-e", f"target={target}")
    assert "failed=0" in result.stdout
