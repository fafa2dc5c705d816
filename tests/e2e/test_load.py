"""A course at once, at a modest size: 16 students for 45 s against the stack as deployed (mlops_stack/load.py;
bench/load.py measures the full size). No request fails, the kernel kills no process, no container restarts,
and every write a service acknowledged is read back, once."""
import pytest

from mlops_stack import load
from mlops_stack.stackenv import write_roster
from roster import manage

STUDENTS = [f"it-load{i:02d}" for i in range(1, 17)]


@pytest.fixture(scope="module")
def course(stack, tmp_path_factory):
    roster = write_roster(tmp_path_factory.mktemp("load") / "course.csv", STUDENTS)
    manage("--tags", "add", "-e", f"roster={roster}")
    yield STUDENTS
    manage("--tags", "remove", "-e", f"roster={roster}", "-e", "confirm=yes", check=False)


def test_a_course_at_once_loses_nothing(course):
    report = load.run(course, seconds=45)
    assert report["ready"] == len(course), report["errors"]
    writes = report["latency"]["mlflow log-metric"]
    assert writes["count"] >= 10 * len(course), report  # each student got through a good part of their loop
    assert report["errors"] == {}
    assert report["oom_kills"] == {}
    assert {name: figures["restarts"] for name, figures in report["containers"].items() if figures["restarts"]} == {}
    # Every kind of write was acknowledged, and read back:
    assert sorted(kind for kind, count in report["acknowledged"].items() if count) == sorted(load.WRITES)
    assert report["lost"] == {} and report["duplicated"] == 0
