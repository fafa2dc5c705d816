"""The MLflow auth-database workaround (roles/mlflow_server/files/entrypoint.py) on a real MariaDB/MySQL.

Each test works in its own scratch schemas (it_mlflow_<random>), dropped afterwards, so it can run
against the stack's database while the stack is in use. Which database:

- by default the stack's (the `stack` fixture: brought up by run_server.yml, or reused with
  STACK_REUSE=1), as root with credentials/database_root_password at its address on the stack network;
- or any server given by MLFLOW_IT_DB_HOST, MLFLOW_IT_DB_PORT (3306), MLFLOW_IT_DB_USER (root) and
  MLFLOW_IT_DB_PASSWORD or MLFLOW_IT_DB_PASSWORD_FILE; the user needs CREATE and DROP on any schema:

    MLFLOW_IT_DB_HOST=127.0.0.1 MLFLOW_IT_DB_PORT=15306 MLFLOW_IT_DB_PASSWORD_FILE=/path/to/password \\
      .venv/bin/pytest tests/integration/test_mlflow_auth_db.py

The last test runs the entry point itself (so the real `mlflow server --app-name mlops-auth` of this
venv, with the stack's plugin on the Python path) against two empty schemas, logs in, records a run and
restarts it.
"""
import importlib.util
import os
import re
import signal
import time
import uuid
from pathlib import Path

import pymysql
import pytest
import requests
import sqlalchemy

from mlops_stack.mlflow_server import FILES, free_port, running_entrypoint, server_env

SPEC = importlib.util.spec_from_file_location("mlflow_entrypoint", FILES / "entrypoint.py")
entrypoint = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(entrypoint)

UPSTREAM_BUG = "fk_user_id|Duplicate|errno: 121|errno: 150"


@pytest.fixture(scope="module")
def db(request):
    """dict(host, port, user, password) of an account that may create and drop schemas."""
    if os.environ.get("MLFLOW_IT_DB_HOST"):
        password = os.environ.get("MLFLOW_IT_DB_PASSWORD")
        if password is None:
            password = Path(os.environ["MLFLOW_IT_DB_PASSWORD_FILE"]).read_text().strip()
        return {"host": os.environ["MLFLOW_IT_DB_HOST"], "port": int(os.environ.get("MLFLOW_IT_DB_PORT", 3306)),
                "user": os.environ.get("MLFLOW_IT_DB_USER", "root"), "password": password}
    stack = request.getfixturevalue("stack")
    return {"host": stack.db_host, "port": stack.db_port, "user": "root",
            "password": stack.secret("database_root_password")}


@pytest.fixture
def new_schema(db):
    """Factory of empty schemas; returns each one's SQLAlchemy URL. All are dropped afterwards."""
    conn = pymysql.connect(host=db["host"], port=db["port"], user=db["user"], password=db["password"], autocommit=True)
    created = []

    def make():
        name = f"it_mlflow_{uuid.uuid4().hex[:8]}"
        with conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
        created.append(name)
        return entrypoint.database_uri(db["user"], db["password"], db["host"], db["port"], name)

    yield make
    with conn.cursor() as cur:
        for name in created:
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
    conn.close()


def mlflow_auth_init(url):
    """What `mlflow server --app-name basic-auth` does to its auth database at start."""
    from mlflow.server.auth.sqlalchemy_store import SqlAlchemyStore

    store = SqlAlchemyStore()
    try:
        store.init_db(url)
    finally:
        if getattr(store, "engine", None) is not None:
            store.engine.dispose()


def inspect(url):
    """(tables, stamped revisions) of a schema."""
    engine = sqlalchemy.create_engine(url)
    try:
        with engine.connect() as conn:
            tables = set(sqlalchemy.inspect(conn).get_table_names())
            versions = []
            if entrypoint.AUTH_VERSION_TABLE in tables:
                versions = list(conn.execute(sqlalchemy.text(f"SELECT version_num FROM {entrypoint.AUTH_VERSION_TABLE}")).scalars())
        return tables, versions
    finally:
        engine.dispose()


def head_revision():
    from alembic.script import ScriptDirectory
    from mlflow.server.auth.db.utils import _get_alembic_config

    return ScriptDirectory.from_config(_get_alembic_config("sqlite://")).get_current_head()


def test_upstream_migration_fails_on_mariadb(new_schema):
    """The bug the workaround exists for. If this starts failing, upstream fixed it: drop the workaround."""
    url = new_schema()
    with pytest.raises(sqlalchemy.exc.OperationalError, match=UPSTREAM_BUG):
        mlflow_auth_init(url)


def test_workaround_then_mlflow_migrates_to_head(new_schema):
    url = new_schema()
    assert entrypoint.prepare_auth_database(url) is True
    assert inspect(url) == (set(entrypoint.INITIAL_AUTH_TABLES), [entrypoint.INITIAL_AUTH_REVISION])
    mlflow_auth_init(url)
    tables, versions = inspect(url)
    assert versions == [head_revision()] != [entrypoint.INITIAL_AUTH_REVISION]
    assert {"users", "experiment_permissions", "registered_model_permissions", "roles", "role_permissions"} <= tables
    # A restart: the workaround leaves the migrated schema alone, MLflow finds nothing to do.
    assert entrypoint.prepare_auth_database(url) is False
    mlflow_auth_init(url)
    assert inspect(url) == (tables, versions)


def test_workaround_twice_before_mlflow(new_schema):
    url = new_schema()
    assert entrypoint.prepare_auth_database(url) is True
    assert entrypoint.prepare_auth_database(url) is False
    assert inspect(url)[1] == [entrypoint.INITIAL_AUTH_REVISION]
    mlflow_auth_init(url)
    assert inspect(url)[1] == [head_revision()]


def test_workaround_repairs_a_failed_unpatched_start(new_schema):
    """A server started once without the workaround leaves half the first migration behind."""
    url = new_schema()
    with pytest.raises(sqlalchemy.exc.OperationalError, match=UPSTREAM_BUG):
        mlflow_auth_init(url)
    tables, versions = inspect(url)
    assert versions == [] and "registered_model_permissions" not in tables
    assert entrypoint.prepare_auth_database(url) is True
    mlflow_auth_init(url)
    assert inspect(url)[1] == [head_revision()]


def test_workaround_leaves_foreign_schemas_alone(new_schema):
    url = new_schema()
    engine = sqlalchemy.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sqlalchemy.text("CREATE TABLE something_else (id INTEGER PRIMARY KEY)"))
    engine.dispose()
    assert entrypoint.prepare_auth_database(url) is False
    assert inspect(url) == ({"something_else"}, [])


def test_workaround_refuses_an_unexpected_half_state(new_schema):
    url = new_schema()
    engine = sqlalchemy.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sqlalchemy.text(entrypoint.INITIAL_AUTH_TABLES[entrypoint.AUTH_VERSION_TABLE]))
        conn.execute(sqlalchemy.text("CREATE TABLE roles (id INTEGER PRIMARY KEY)"))
    engine.dispose()
    with pytest.raises(RuntimeError, match="roles"):
        entrypoint.prepare_auth_database(url)


def test_workaround_ignores_other_databases(tmp_path):
    assert entrypoint.prepare_auth_database(f"sqlite:///{tmp_path}/auth.db") is False
    assert not (tmp_path / "auth.db").exists()


def test_entrypoint_starts_the_real_server_on_empty_schemas_and_restarts(db, new_schema, tmp_path):
    tracking, auth = new_schema(), new_schema()
    admin, password = "it-admin", uuid.uuid4().hex
    env = server_env(db, tracking.rsplit("/", 1)[1], auth.rsplit("/", 1)[1], tmp_path, admin, password)
    log = tmp_path / "server.log"
    port = free_port()
    for start in ("first start", "restart"):
        with running_entrypoint(env, port, log) as (url, _server):
            search = f"{url}/api/2.0/mlflow/experiments/search?max_results=10"
            assert requests.get(search, timeout=10).status_code == 401, start
            assert requests.get(search, auth=(admin, "wrong-password-1"), timeout=10).status_code == 401, start
            assert requests.get(search, auth=(admin, password), timeout=10).status_code == 200, start
            experiment = requests.post(f"{url}/api/2.0/mlflow/experiments/create", auth=(admin, password),
                                       json={"name": f"it-{start}"}, timeout=10)
            assert experiment.status_code == 200, experiment.text
            run = requests.post(f"{url}/api/2.0/mlflow/runs/create", auth=(admin, password), timeout=10,
                                json={"experiment_id": experiment.json()["experiment_id"]}).json()["run"]
            logged = requests.post(f"{url}/api/2.0/mlflow/runs/log-metric", auth=(admin, password), timeout=10,
                                   json={"run_id": run["info"]["run_id"], "key": "loss", "value": 0.5,
                                         "timestamp": 0, "step": 0})
            assert logged.status_code == 200, logged.text
        assert (tmp_path / "basic_auth.ini").stat().st_mode & 0o077 == 0
    assert inspect(auth)[1] == [head_revision()]
    server_log = log.read_text()
    assert server_log.count("created the first auth migration's tables") == 1  # first start only
    assert password not in server_log and db["password"] not in server_log


def command_line(pid):
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except FileNotFoundError:
        return ""  # it ended meanwhile


def workers(pid):
    """The worker processes of uvicorn's supervisor pid (started with multiprocessing's spawn)."""
    children = [child for task in Path(f"/proc/{pid}/task").iterdir() for child in (task / "children").read_text().split()]
    return [int(child) for child in children if "spawn_main" in command_line(child)]


def test_the_server_runs_without_an_idle_parent_and_replaces_a_killed_worker(db, new_schema, tmp_path):
    tracking, auth = new_schema(), new_schema()
    env = server_env(db, tracking.rsplit("/", 1)[1], auth.rsplit("/", 1)[1], tmp_path, "it-admin", uuid.uuid4().hex,
                     MLFLOW_WORKERS="2")
    with running_entrypoint(env, free_port(), tmp_path / "server.log") as (url, server):
        # The entry point's own process became uvicorn's supervisor: no `mlflow server` holding MLflow waits.
        assert "-m uvicorn" in command_line(server.pid) and "mlflow server" not in command_line(server.pid)
        rss_kib = int(re.search(r"VmRSS:\s+(\d+)", Path(f"/proc/{server.pid}/status").read_text())[1])
        assert rss_kib < 100 * 1024, f"the supervisor holds {rss_kib} KiB"
        deadline = time.monotonic() + 60
        while len(first := workers(server.pid)) != 2:  # the second may still be starting when the first answers
            assert time.monotonic() < deadline, f"not two workers within 60 s: {first}: {command_line(server.pid)}"
            time.sleep(1)
        os.kill(first[0], signal.SIGKILL)
        deadline = time.monotonic() + 60
        while len(now := workers(server.pid)) != 2 or first[0] in now:
            assert time.monotonic() < deadline, f"no worker replaced the killed one within 60 s: {now}"
            time.sleep(1)
        for _ in range(10):  # both workers answer, whichever takes the connection
            assert requests.get(f"{url}/health", timeout=30).status_code == 200
        server.send_signal(signal.SIGKILL)
        assert server.wait(timeout=30) == -signal.SIGKILL  # the server's own end is the container's exit status
