import pytest

from mlops_stack.stackenv import recap

OUTPUT = """
PLAY RECAP *********************************************************************
localhost                  : ok=25   changed=0    unreachable=0    failed=0    skipped=11   rescued=0    ignored=0
"""


def test_recap_reads_counts():
    counts = recap(OUTPUT)
    assert counts["ok"] == 25 and counts["changed"] == 0 and counts["skipped"] == 11


def test_recap_sums_hosts():
    two = OUTPUT + "vm2 : ok=3 changed=2 unreachable=0 failed=1 skipped=0 rescued=0 ignored=0\n"
    assert recap(two)["changed"] == 2 and recap(two)["failed"] == 1


def test_recap_without_recap_is_an_error():
    with pytest.raises(ValueError):
        recap("ERROR! the playbook could not be found")
