"""The course every e2e test module shares: two students and a teacher, added once per session."""
import pytest

from roster import STUDENT_A, STUDENT_B, TEACHER, manage, read_env, user_rows


@pytest.fixture(scope="session")
def users(stack, tmp_path_factory):
    roster = tmp_path_factory.mktemp("roster") / "course.csv"
    roster.write_text(f"username,role\n{STUDENT_A},developer\n{STUDENT_B},developer\n{TEACHER},teacher\n")
    # In two groups (each created, handed out and recorded before the next): the teacher is added alone, second.
    added = manage("--tags", "add", "-e", f"roster={roster}", "-e", "stack_users_group_size=2")
    assert f"(item={STUDENT_A}, {STUDENT_B})" in added.stdout and f"(item={TEACHER})" in added.stdout, added.stdout[-3000:]
    yield {name: read_env(name) for name in (STUDENT_A, STUDENT_B, TEACHER)}
    manage("--tags", "remove", "-e", f"roster={roster}", "-e", "confirm=yes", check=False)


@pytest.fixture
def own_user(stack):
    """Adds a developer for this test alone and returns their env; removes them afterwards if they
    are still there."""
    added = []

    def add(name):
        added.append(name)
        manage("--tags", "add", "-e", f"username={name}", "-e", "role=developer")
        return read_env(name)

    yield add
    left = {row[0] for row in user_rows(stack)}
    for name in added:
        if name in left:
            manage("--tags", "remove", "-e", f"username={name}", "-e", "confirm=yes", check=False)
