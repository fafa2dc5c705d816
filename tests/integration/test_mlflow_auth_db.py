"""The MLflow auth-database workaround (roles/mlflow_server/files/stack_mlflow.py) on the stack's MariaDB."""
import importlib.util
import uuid
from pathlib import Path

import pymysql
import pytest
import sqlalchemy
from mlflow.server.auth.db.utils import migrate

from stackenv import REPO

SPEC = importlib.util.spec_from_file_location("stack_mlflow", REPO / "roles/mlflow_server/files/stack_mlflow.py")
stack_mlflow = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(stack_mlflow)


@pytest.fixture
def scratch_schema(stack):
    """An empty schema and its SQLAlchemy URL, dropped afterwards."""
    name = f"it_auth_{uuid.uuid4().hex[:8]}"
    password = stack.secret("database_root_password")
    conn = pymysql.connect(host=stack.host, port=stack.settings["database_port"], user="root", password=password)
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{name}`")
    yield f"mysql+pymysql://root:{password}@{stack.host}:{stack.settings['database_port']}/{name}"
    with conn.cursor() as cur:
        cur.execute(f"DROP DATABASE `{name}`")
    conn.close()


def tables(url):
    engine = sqlalchemy.create_engine(url)
    try:
        return set(sqlalchemy.inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_upstream_migration_fails_on_mariadb(scratch_schema):
    """The bug the workaround exists for: if this starts passing, upstream fixed it."""
    engine = sqlalchemy.create_engine(scratch_schema)
    with pytest.raises(sqlalchemy.exc.OperationalError, match="fk_user_id|Duplicate|errno: 121"):
        migrate(engine, "head")
    engine.dispose()


def test_workaround_then_mlflow_migrates_to_head(scratch_schema):
    assert stack_mlflow.prepare_auth_database(scratch_schema) is True
    engine = sqlalchemy.create_engine(scratch_schema)
    migrate(engine, "head")
    with engine.connect() as conn:
        version = conn.execute(sqlalchemy.text("SELECT version_num FROM alembic_version_auth")).scalar()
    engine.dispose()
    assert version != stack_mlflow.INITIAL_AUTH_REVISION
    assert {"users", "experiment_permissions", "roles", "role_permissions"} <= tables(scratch_schema)
    # A restart finds the schema in use and leaves it alone.
    assert stack_mlflow.prepare_auth_database(scratch_schema) is False


def test_workaround_ignores_other_databases(tmp_path):
    assert stack_mlflow.prepare_auth_database(f"sqlite:///{tmp_path}/auth.db") is False
