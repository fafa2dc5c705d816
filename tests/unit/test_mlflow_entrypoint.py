"""Pure functions of the MLflow server image's entry point (roles/mlflow_server/files/entrypoint.py)."""
import configparser
import importlib.util
import re
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

SPEC = importlib.util.spec_from_file_location(
    "mlflow_entrypoint", Path(__file__).parents[2] / "roles/mlflow_server/files/entrypoint.py")
entrypoint = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(entrypoint)

ENV = {
    "MLFLOW_DB_HOST": "mlops-database",
    "MLFLOW_DB_PASSWORD": "db-secret",
    "MLFLOW_AUTH_ADMIN_USERNAME": "stackadmin",
    "MLFLOW_AUTH_ADMIN_PASSWORD": "admin-secret-123",
    "MLFLOW_FLASK_SERVER_SECRET_KEY": "flask-secret",
    "MLFLOW_ARTIFACTS_DESTINATION": "s3://mlflow-artifacts/",
    "AWS_SECRET_ACCESS_KEY": "s3-secret",
}
SECRETS = ["db-secret", "admin-secret-123", "flask-secret", "s3-secret"]


def read_ini(text):
    """Read the ini the way MLflow does (configparser with its default interpolation)."""
    ini = configparser.ConfigParser()
    ini.read_string(text)
    return ini["mlflow"]


def test_settings_defaults():
    settings = entrypoint.Settings.from_env(ENV)
    assert (settings.db_port, settings.db_user, settings.db_name, settings.auth_db_name) == (3306, "mlflow", "mlflow", "mlflow_auth")
    assert settings.workers == 2
    assert settings.allowed_hosts == entrypoint.DEFAULT_ALLOWED_HOSTS


@pytest.mark.parametrize("missing", ["MLFLOW_DB_HOST", "MLFLOW_DB_PASSWORD", "MLFLOW_AUTH_ADMIN_PASSWORD",
                                     "MLFLOW_FLASK_SERVER_SECRET_KEY", "MLFLOW_ARTIFACTS_DESTINATION"])
def test_settings_name_what_is_missing(missing):
    with pytest.raises(entrypoint.ConfigError, match=missing):
        entrypoint.Settings.from_env({k: v for k, v in ENV.items() if k != missing})


@pytest.mark.parametrize("name,value", [("MLFLOW_DB_PORT", "x"), ("MLFLOW_WORKERS", "two"),
                                        ("MLFLOW_WORKER_THREADS", "8.5")])
def test_settings_reject_non_numbers(name, value):
    with pytest.raises(entrypoint.ConfigError, match="whole numbers"):
        entrypoint.Settings.from_env({**ENV, name: value})


@pytest.mark.parametrize("password", ["plain", "p@ss:w/rd?#", "100%sure", "sp ace&+="])
def test_database_uri_quotes_credentials(password):
    uri = entrypoint.database_uri("ml@flow", password, "mlops-database", "3306", "mlflow_auth")
    parts = urlsplit(uri)
    assert parts.scheme == "mysql+pymysql"
    assert (unquote(parts.username), unquote(parts.password)) == ("ml@flow", password)
    assert (parts.hostname, parts.port, parts.path) == ("mlops-database", 3306, "/mlflow_auth")


@pytest.mark.parametrize("password", ["Abcdefgh12345678", "100%sure-and-more", "%(interpolate)s-123456"])
def test_auth_config_round_trips_through_configparser(password):
    uri = entrypoint.database_uri("mlflow", password, "db", 3306, "mlflow_auth")
    ini = read_ini(entrypoint.auth_config(uri, "stackadmin", password))
    assert ini["default_permission"] == "NO_PERMISSIONS"
    assert ini["database_uri"] == uri
    assert ini["admin_username"] == "stackadmin"
    assert ini["admin_password"] == password
    assert ini["authorization_function"] == "mlflow.server.auth:authenticate_request_basic_auth"
    assert ini["auth_cache_ttl_seconds"] == "0"


@pytest.mark.parametrize("username,password", [("", "x" * 12), ("admin", ""), ("admin", "two\nlines"), ("admin ", "x" * 12)])
def test_auth_config_rejects_bad_values(username, password):
    with pytest.raises(entrypoint.ConfigError):
        entrypoint.auth_config("mysql+pymysql://u:p@db:3306/a", username, password)


def test_server_command():
    command = entrypoint.server_command(entrypoint.Settings.from_env({
        **ENV, "MLFLOW_WORKERS": "3", "MLFLOW_ALLOWED_HOSTS": "localhost:*,mlops-mlflow:*",
        "MLFLOW_CORS_ALLOWED_ORIGINS": "http://10.0.0.5:5000"}))
    assert command[:4] == ["mlflow", "server", "--app-name", "mlops-auth"]

    def option(name):
        return command[command.index(name) + 1]

    assert (option("--host"), option("--port"), option("--workers")) == ("0.0.0.0", "5000", "3")
    assert option("--artifacts-destination") == "s3://mlflow-artifacts/"
    assert "--serve-artifacts" in command
    assert option("--allowed-hosts") == "localhost:*,mlops-mlflow:*"
    assert option("--cors-allowed-origins") == "http://10.0.0.5:5000"
    assert option("--expose-prometheus") == "/tmp/mlflow-metrics"


def test_server_command_without_metrics():
    settings = entrypoint.Settings.from_env({**ENV, "MLFLOW_PROMETHEUS_DIR": ""})
    assert "--expose-prometheus" not in entrypoint.server_command(settings)


def test_server_app_may_be_plain_basic_auth():
    settings = entrypoint.Settings.from_env({**ENV, "MLFLOW_APP_NAME": "basic-auth"})
    assert entrypoint.server_command(settings)[:4] == ["mlflow", "server", "--app-name", "basic-auth"]


def test_server_command_without_cors_origins():
    assert "--cors-allowed-origins" not in entrypoint.server_command(entrypoint.Settings.from_env(ENV))


def test_command_line_holds_no_secret():
    """The host's `ps` shows a container's command line to every local user."""
    command = " ".join(entrypoint.server_command(entrypoint.Settings.from_env(ENV)))
    assert not [secret for secret in SECRETS if secret in command]
    assert "--backend-store-uri" not in command


def test_server_environment():
    settings = entrypoint.Settings.from_env(ENV)
    env = entrypoint.server_environment(ENV, settings)
    assert env["MLFLOW_BACKEND_STORE_URI"] == "mysql+pymysql://mlflow:db-secret@mlops-database:3306/mlflow"
    assert env["MLFLOW_AUTH_CONFIG_PATH"] == settings.auth_config_path
    assert env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] == "false"
    # Kept for MLflow and boto3:
    assert env["MLFLOW_FLASK_SERVER_SECRET_KEY"] == "flask-secret" and env["AWS_SECRET_ACCESS_KEY"] == "s3-secret"
    # Consumed by the entry point: MLflow would prefer them over the ini file.
    assert not set(entrypoint.CONSUMED) & set(env)


@pytest.mark.parametrize("name", ["MLFLOW_WORKERS", "MLFLOW_WORKER_THREADS"])
def test_settings_need_a_worker_and_a_thread(name):
    with pytest.raises(entrypoint.ConfigError, match="at least 1"):
        entrypoint.Settings.from_env({**ENV, name: "0"})


def test_the_threads_and_the_roles_database_pools_reach_mlflow():
    env = {**ENV, "MLFLOW_WORKER_THREADS": "6", "MLFLOW_SQLALCHEMYSTORE_POOL_SIZE": "6",
           "MLFLOW_SQLALCHEMYSTORE_MAX_OVERFLOW": "3"}
    result = entrypoint.server_environment(env, entrypoint.Settings.from_env(env))
    assert (result["MLFLOW_WORKER_THREADS"], result["MLFLOW_SQLALCHEMYSTORE_POOL_SIZE"],
            result["MLFLOW_SQLALCHEMYSTORE_MAX_OVERFLOW"]) == ("6", "6", "3")


def test_the_server_is_started_without_an_idle_parent_unless_jobs_run():
    assert not entrypoint.job_execution(ENV)
    assert entrypoint.job_execution({**ENV, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "True"})
    entrypoint.check_exec_cmd()  # the pinned MLflow still starts its server through _exec_cmd


def test_job_execution_can_be_enabled():
    env = {**ENV, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "true"}
    assert entrypoint.server_environment(env, entrypoint.Settings.from_env(env))["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] == "true"


def test_initial_tables_have_distinct_constraint_names():
    names = re.findall(r"CONSTRAINT (\w+)", " ".join(entrypoint.INITIAL_AUTH_TABLES.values()))
    assert len(names) == len(set(names)) == 5
    foreign_keys = [name for name in names if name.startswith("fk_")]
    assert len(foreign_keys) == 2 and "fk_user_id" not in foreign_keys


def upstream_initial_migration():
    """{table: [columns]} of MLflow's first auth migration, read from its source (needs mlflow)."""
    mlflow = pytest.importorskip("mlflow")
    versions = Path(mlflow.__file__).parent / "server/auth/db/migrations/versions"
    source = (versions / f"{entrypoint.INITIAL_AUTH_REVISION}_initial_migration.py").read_text()
    upgrade = source.split("def upgrade")[1].split("def downgrade")[0]
    return {table: re.findall(r'sa\.Column\("(\w+)"', body)
            for table, body in re.findall(r'op\.create_table\(\s*"(\w+)",(.*?)\n    \)', upgrade, re.DOTALL)}


def test_initial_tables_match_mlflows_first_migration():
    """Same tables and columns as upstream revision 8606fa83a998, so later migrations apply."""
    upstream = upstream_initial_migration()
    assert set(upstream) == {"users", "experiment_permissions", "registered_model_permissions"}
    assert set(entrypoint.INITIAL_AUTH_TABLES) == set(upstream) | {entrypoint.AUTH_VERSION_TABLE}
    for table, columns in upstream.items():
        ours = re.findall(r"^\s+(\w+) (?:INTEGER|VARCHAR|BOOL)", entrypoint.INITIAL_AUTH_TABLES[table], re.MULTILINE)
        assert ours == columns, table


def test_auth_config_caches_checked_passwords_when_asked():
    ini = read_ini(entrypoint.auth_config("mysql+pymysql://u:p@db:3306/a", "stackadmin", "x" * 12, 30))
    assert ini["auth_cache_ttl_seconds"] == "30"


def test_a_tracking_store_an_older_mlflow_left_is_upgraded(tmp_path):
    """MLflow's own migrations, on a store at the revision before this MLflow's (SQLite here; the upgrade drill,
    tests/ops/test_upgrade_drill.py, runs them on the stack's MariaDB): upgraded to the newest, then left alone."""
    pytest.importorskip("mlflow")
    import sqlalchemy
    from alembic import command
    from alembic.script import ScriptDirectory
    from mlflow.store.db.utils import _get_alembic_config
    from mlflow.store.tracking.dbmodels.initial_models import Base

    url = f"sqlite:///{tmp_path / 'mlflow.db'}"
    config = _get_alembic_config(url)
    script = ScriptDirectory.from_config(config)
    [head] = script.get_heads()
    older = script.get_revision(head).down_revision
    assert entrypoint.upgrade_tracking_store(f"sqlite:///{tmp_path / 'empty.db'}") == (None, head)
    engine = sqlalchemy.create_engine(url)
    Base.metadata.create_all(engine)  # MLflow's first tables, which its migrations start from
    engine.dispose()
    command.upgrade(config, older)
    assert entrypoint.upgrade_tracking_store(url) == (older, head)
    assert entrypoint.upgrade_tracking_store(url) == (head, head)
