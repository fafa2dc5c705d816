"""Session fixtures: the stack is brought up once with playbooks/run_server.yml, for real.

The bring-up (about half an hour on a fresh machine, mostly image builds) starts in the background as soon as the
tests are collected, and the files whose tests need no stack (unit, lint, the local demo) run first, meanwhile.

Every test is marked with its suite, the folder it is in (unit, integration, e2e, demo, ops, remote; lint for
test_lint.py), so `pytest tests -m unit` runs the fast part alone; `pytest tests` runs everything.
"""
import concurrent.futures
import os
import shutil
import subprocess
from pathlib import Path

import pytest

# As every user.env says: artifacts go through the MLflow server, not presigned object-store links.
os.environ["MLFLOW_ENABLE_PROXY_MULTIPART_DOWNLOAD"] = "false"

from mlops_stack.stackenv import REPO, ansible_playbook, load_stack  # noqa: E402

TESTS = Path(__file__).parent
# The suite of each folder of tests/ is its name; the files directly in tests/ are named here. Every
# suite is a marker registered in pyproject.toml.
SUITE_FOLDERS = ("unit", "integration", "e2e", "demo", "ops", "remote")
SUITE_FILES = {"test_lint.py": "lint"}


def suite(path: Path):
    """The suite of a test file under tests/, or None for one that is in none."""
    parts = path.relative_to(TESTS).parts
    if len(parts) > 1:
        return parts[0] if parts[0] in SUITE_FOLDERS else None
    return SUITE_FILES.get(parts[0])


@pytest.hookimpl(tryfirst=True)  # before -m deselects by marker
def pytest_collection_modifyitems(items):
    for item in items:
        if not item.path.is_relative_to(TESTS):
            continue
        name = suite(item.path)
        if name is None:
            raise pytest.UsageError(f"{item.nodeid} is in no suite: put it in a folder of SUITE_FOLDERS "
                                    "or name it in SUITE_FILES (tests/conftest.py)")
        item.add_marker(name)


# Suites whose tests may reach the stack without naming the fixture (request.getfixturevalue).
STACK_SUITES = ("integration", "e2e", "ops", "remote")


def needs_stack(item) -> bool:
    return "stack" in getattr(item, "fixturenames", ()) or any(item.get_closest_marker(name) for name in STACK_SUITES)


def stack_free_first(items):
    """The files none of whose tests needs the stack first, in their order; then the others, in theirs."""
    files = {}
    for item in items:
        files.setdefault(item.path, []).append(item)
    first = [path for path, tests in files.items() if not any(needs_stack(item) for item in tests)]
    items[:] = [item for path in first for item in files[path]] + \
               [item for path, tests in files.items() if path not in first for item in tests]


def bring_up():
    """The stack brought up by run_server.yml, once a session.

    A fresh checkout has no credentials/, so data an earlier checkout left in Docker volumes can no
    longer be opened (the play refuses it): the harness deletes that data first, and only then.

    The job image (PyTorch: about six minutes of build here, with downloads; only tests/remote needs it) is
    built beside the services, once the engine and the base images are there. The result holds every run's output.
    """
    if not (REPO / "credentials" / "database_root_password").is_file() and shutil.which("docker"):
        ansible_playbook("playbooks/run_server.yml", "--tags", "docker_engine")  # the engine may be stopped
        ansible_playbook("playbooks/teardown.yml", "-e", "teardown_remove_data=true")
    base = ansible_playbook("playbooks/run_server.yml", "--tags", "docker_engine,images")
    with concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="job-image") as beside:
        job_image = beside.submit(ansible_playbook, "playbooks/run_server.yml", "--tags", "job_image")
        services = ansible_playbook("playbooks/run_server.yml", "--skip-tags", "job_image")
        job = job_image.result()
    runs = (base, services, job)
    return subprocess.CompletedProcess(services.args, 0, "".join(run.stdout for run in runs),
                                       "".join(run.stderr for run in runs))


BRING_UP = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="bring-up")
_started = []  # the bring-up's future, once a selected test needs the stack


def pytest_collection_finish(session):
    """Once -m has deselected: order the tests, and start the bring-up if one of them needs the stack."""
    stack_free_first(session.items)
    if os.environ.get("STACK_REUSE") != "1" and any(needs_stack(item) for item in session.items):
        _started.append(BRING_UP.submit(bring_up))


@pytest.fixture(scope="session")
def stack_run():
    """Output of the first run of run_server.yml in this session (its failure fails each test that needs it)."""
    return (_started[0] if _started else BRING_UP.submit(bring_up)).result()


SESSION_ENV = dict(os.environ)


@pytest.fixture(scope="session")
def stack(request):
    """The running stack; brought up by run_server.yml unless STACK_REUSE=1 (development only)."""
    if os.environ.get("STACK_REUSE") != "1":
        request.getfixturevalue("stack_run")
    stack = load_stack()
    # Every client verifies the proxy's certificate, as a user's file makes them do.
    os.environ.update(stack.tls_env())
    return stack


@pytest.fixture(scope="session")
def demo_venv():
    """.venv-demo, the student's environment of the demo (helpers in demorun.py), made or brought up to date with
    `make demo-venv` (a no-op when it is)."""
    from demorun import DEMO_PYTHON
    # In the environment as the session found it: the stack fixture's CA settings would make pip verify the package
    # index against the stack's CA (a demo_venv first asked for after the stack fixture, as in the restore drill alone).
    subprocess.run(["make", "--silent", "demo-venv"], cwd=REPO, check=True, timeout=1800, env=SESSION_ENV)
    return DEMO_PYTHON
