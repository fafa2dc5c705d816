"""Entry point of the stack's MLflow server image.

Prepares the auth database, brings the tracking store to this MLflow's schema (`mlflow db upgrade`: an upgrade of
MLflow migrates it), writes the basic-auth configuration, then replaces itself with
`mlflow server --app-name mlops-auth` (basic-auth with the stack's rules, plugin/mlops_mlflow_auth.py).
Everything comes from the container's environment (in the image, with-secret-files first sets each secret from the
file its *_FILE variable names, so the container's configuration holds none):

  MLFLOW_DB_HOST, MLFLOW_DB_PASSWORD              required: the MySQL/MariaDB server and the
  MLFLOW_DB_PORT (3306), MLFLOW_DB_USER (mlflow)  account that owns both schemas below
  MLFLOW_DB_NAME (mlflow)                         schema of the tracking store
  MLFLOW_AUTH_DB_NAME (mlflow_auth)               schema of the auth store (users, permissions)
  MLFLOW_AUTH_ADMIN_USERNAME, MLFLOW_AUTH_ADMIN_PASSWORD
                                                  required: admin account created on the first start
  MLFLOW_FLASK_SERVER_SECRET_KEY                  required: signs the server's CSRF tokens
  MLFLOW_ARTIFACTS_DESTINATION                    required: e.g. s3://mlflow-artifacts/
  MLFLOW_S3_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY
                                                  the object store, passed on to MLflow unchanged
  MLFLOW_ALLOWED_HOSTS                            comma-separated Host headers (fnmatch patterns)
  MLFLOW_CORS_ALLOWED_ORIGINS                     comma-separated origins allowed to change things
  MLFLOW_WORKERS (2)                              server worker processes
  MLFLOW_WORKER_THREADS (8)                       requests a worker runs at once (more wait in its queue), and
                                                  the database connections each of its two stores may hold
  MLFLOW_AUTH_CACHE_SECONDS (3600)                how long a worker remembers a checked password (0: never)
  MLFLOW_LISTEN_PORT (5000)                       port the server listens on
  MLFLOW_APP_NAME (mlops-auth)                    the server app: mlops-auth, or basic-auth without the
                                                  stack's rules (bench/mlflow_rules.py compares the two)
  MLFLOW_PROMETHEUS_DIR (/tmp/mlflow-metrics)     where the workers keep their Prometheus metrics, served at
                                                  /metrics (emptied on every start; empty: no metrics)
  MLFLOW_AUTH_CONFIG_PATH (/home/mlflow/basic_auth.ini), MLFLOW_DB_WAIT_SECONDS (120)

No secret is put on the command line (which `ps` shows on the host): the tracking store URI reaches
MLflow through MLFLOW_BACKEND_STORE_URI, the auth store URI and the admin password through the
ini file (mode 0600).

`mlflow server` prepares the stores, then starts uvicorn as a child and waits for it: an idle parent that
holds all of MLflow (about 0.25 GB) and exits 0 whatever became of the server. Here MLflow's own code
builds the server's command and environment, and this process becomes that server (become_server):
uvicorn's small supervisor, which restarts a worker that dies, is the container's process, and its exit
status the container's.
"""
import os
import shutil
import sys
import time
from dataclasses import dataclass
from urllib.parse import quote

# MLflow's first auth migration (revision 8606fa83a998) names the foreign keys of two tables
# "fk_user_id". MySQL and MariaDB want constraint names unique per schema, so on them that
# migration fails half-way and the server never starts (upstream bug). These are the same tables
# with distinct constraint names; once they exist and the revision is stamped, MLflow applies its
# later auth migrations itself (none of them refers to the two foreign keys by name).
INITIAL_AUTH_REVISION = "8606fa83a998"
AUTH_VERSION_TABLE = "alembic_version_auth"
INITIAL_AUTH_TABLES = {
    "users": """
        CREATE TABLE IF NOT EXISTS users (
          id INTEGER NOT NULL AUTO_INCREMENT,
          username VARCHAR(255),
          password_hash VARCHAR(255),
          is_admin BOOL,
          PRIMARY KEY (id),
          UNIQUE (username))""",
    "experiment_permissions": """
        CREATE TABLE IF NOT EXISTS experiment_permissions (
          id INTEGER NOT NULL AUTO_INCREMENT,
          experiment_id VARCHAR(255) NOT NULL,
          user_id INTEGER NOT NULL,
          permission VARCHAR(255),
          PRIMARY KEY (id),
          CONSTRAINT fk_experiment_permissions_user_id FOREIGN KEY (user_id) REFERENCES users (id),
          CONSTRAINT unique_experiment_user UNIQUE (experiment_id, user_id))""",
    "registered_model_permissions": """
        CREATE TABLE IF NOT EXISTS registered_model_permissions (
          id INTEGER NOT NULL AUTO_INCREMENT,
          name VARCHAR(255) NOT NULL,
          user_id INTEGER NOT NULL,
          permission VARCHAR(255),
          PRIMARY KEY (id),
          CONSTRAINT fk_registered_model_permissions_user_id FOREIGN KEY (user_id) REFERENCES users (id),
          CONSTRAINT unique_name_user UNIQUE (name, user_id))""",
    AUTH_VERSION_TABLE: f"""
        CREATE TABLE IF NOT EXISTS {AUTH_VERSION_TABLE} (
          version_num VARCHAR(32) NOT NULL,
          CONSTRAINT {AUTH_VERSION_TABLE}_pkc PRIMARY KEY (version_num))""",
}

# MySQL client errors worth waiting out while the database starts: can't connect, server gone
# away, lost connection, too many connections, server shutting down. Anything else (a wrong
# password, a missing grant) fails at once.
RETRY_CONNECT_ERRORS = {2003, 2006, 2013, 1040, 1053}

# The sign-in of the stack's app (plugin/mlops_mlflow_auth.py): basic-auth's, without its cache's delay.
MLFLOW_AUTH_FUNCTION = "mlops_mlflow_auth:authenticate"

DEFAULT_ALLOWED_HOSTS = "localhost,localhost:*,127.0.0.1,127.0.0.1:*"


class ConfigError(Exception):
    """A setting is missing or wrong; the message says which."""


@dataclass(frozen=True)
class Settings:
    db_host: str
    db_port: int
    db_user: str
    db_password: str
    db_name: str
    auth_db_name: str
    admin_username: str
    admin_password: str
    artifacts_destination: str
    allowed_hosts: str
    cors_allowed_origins: str
    workers: int
    threads: int
    auth_cache_seconds: int
    port: int
    app_name: str
    auth_config_path: str
    db_wait_seconds: int
    prometheus_dir: str

    @classmethod
    def from_env(cls, env) -> "Settings":
        required = ["MLFLOW_DB_HOST", "MLFLOW_DB_PASSWORD", "MLFLOW_AUTH_ADMIN_USERNAME",
                    "MLFLOW_AUTH_ADMIN_PASSWORD", "MLFLOW_FLASK_SERVER_SECRET_KEY",
                    "MLFLOW_ARTIFACTS_DESTINATION"]
        missing = [name for name in required if not env.get(name)]
        if missing:
            raise ConfigError(f"set {', '.join(missing)} in the container's environment")
        try:
            numbers = {key: int(env.get(name, default)) for key, name, default in [
                ("db_port", "MLFLOW_DB_PORT", 3306), ("workers", "MLFLOW_WORKERS", 2),
                ("threads", "MLFLOW_WORKER_THREADS", 8),
                ("auth_cache_seconds", "MLFLOW_AUTH_CACHE_SECONDS", 3600),
                ("port", "MLFLOW_LISTEN_PORT", 5000),
                ("db_wait_seconds", "MLFLOW_DB_WAIT_SECONDS", 120)]}
        except ValueError as error:
            raise ConfigError(f"MLFLOW_DB_PORT, MLFLOW_WORKERS, MLFLOW_WORKER_THREADS, MLFLOW_AUTH_CACHE_SECONDS, "
                              f"MLFLOW_LISTEN_PORT and MLFLOW_DB_WAIT_SECONDS must be whole numbers ({error})") from None
        if numbers["workers"] < 1 or numbers["threads"] < 1:
            raise ConfigError("MLFLOW_WORKERS and MLFLOW_WORKER_THREADS must be at least 1")
        return cls(
            db_host=env["MLFLOW_DB_HOST"],
            db_user=env.get("MLFLOW_DB_USER", "mlflow"),
            db_password=env["MLFLOW_DB_PASSWORD"],
            db_name=env.get("MLFLOW_DB_NAME", "mlflow"),
            auth_db_name=env.get("MLFLOW_AUTH_DB_NAME", "mlflow_auth"),
            admin_username=env["MLFLOW_AUTH_ADMIN_USERNAME"],
            admin_password=env["MLFLOW_AUTH_ADMIN_PASSWORD"],
            artifacts_destination=env["MLFLOW_ARTIFACTS_DESTINATION"],
            allowed_hosts=env.get("MLFLOW_ALLOWED_HOSTS") or DEFAULT_ALLOWED_HOSTS,
            cors_allowed_origins=env.get("MLFLOW_CORS_ALLOWED_ORIGINS", ""),
            auth_config_path=env.get("MLFLOW_AUTH_CONFIG_PATH", "/home/mlflow/basic_auth.ini"),
            app_name=env.get("MLFLOW_APP_NAME") or "mlops-auth",
            prometheus_dir=env.get("MLFLOW_PROMETHEUS_DIR", "/tmp/mlflow-metrics"),
            **numbers,
        )

    def database_uri(self, schema: str) -> str:
        return database_uri(self.db_user, self.db_password, self.db_host, self.db_port, schema)


def database_uri(user: str, password: str, host: str, port: int, schema: str) -> str:
    """SQLAlchemy URL of one schema; user and password quoted, so any character is safe."""
    return f"mysql+pymysql://{quote(user, safe='')}:{quote(password, safe='')}@{host}:{int(port)}/{schema}"


def auth_config(database_uri: str, admin_username: str, admin_password: str, cache_seconds: int = 0,
                authorization_function: str = "mlflow.server.auth:authenticate_request_basic_auth") -> str:
    """The basic-auth ini: users see only what they were granted; the admin account to bootstrap.

    Every request carries the password, and checking it costs a deliberately slow hash: with
    cache_seconds, a worker remembers a password it checked for that long (the stack's app checks it
    against the account's current hash on every request, MLFLOW_AUTH_FUNCTION).

    MLflow reads it with configparser's default interpolation, so '%' is written as '%%'.
    """
    values = {
        "default_permission": "NO_PERMISSIONS",
        "database_uri": database_uri,
        "admin_username": admin_username,
        "admin_password": admin_password,
        "authorization_function": authorization_function,
        "auth_cache_ttl_seconds": str(int(cache_seconds)),
    }
    for key, value in values.items():
        if not value or value != value.strip() or "\n" in value or "\r" in value:
            raise ConfigError(f"{key} for the auth configuration is empty, or has line breaks or surrounding blanks")
    return "[mlflow]\n" + "".join(f"{key} = {value.replace('%', '%%')}\n" for key, value in values.items())


def server_command(settings: Settings) -> list:
    """The `mlflow server` command line; it holds no secret."""
    command = [
        "mlflow", "server", "--app-name", settings.app_name,
        "--host", "0.0.0.0", "--port", str(settings.port),
        "--workers", str(settings.workers),
        "--serve-artifacts", "--artifacts-destination", settings.artifacts_destination,
        "--allowed-hosts", settings.allowed_hosts,
    ]
    if settings.cors_allowed_origins:
        command += ["--cors-allowed-origins", settings.cors_allowed_origins]
    if settings.prometheus_dir:
        command += ["--expose-prometheus", settings.prometheus_dir]
    return command


# Inputs of this script that MLflow must not see: it would prefer them over the ini file.
CONSUMED = ("MLFLOW_DB_PASSWORD", "MLFLOW_AUTH_ADMIN_USERNAME", "MLFLOW_AUTH_ADMIN_PASSWORD")


def server_environment(env, settings: Settings) -> dict:
    """MLflow's environment: the tracking store, the ini file, the threads of each worker (the plugin bounds its
    requests with them) and no job runner unless asked for. The database pools are the role's
    (stack_database_pools), passed through."""
    result = {key: value for key, value in env.items() if key not in CONSUMED}
    result["MLFLOW_BACKEND_STORE_URI"] = settings.database_uri(settings.db_name)
    result["MLFLOW_AUTH_CONFIG_PATH"] = settings.auth_config_path
    result["MLFLOW_WORKER_THREADS"] = str(settings.threads)
    result.setdefault("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
    return result


def job_execution(env) -> bool:
    """Whether MLflow runs its job runner, which lives in the `mlflow server` process."""
    return env.get("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "").lower() in ("true", "1")


def become_server(command: list, env: dict) -> None:
    """Run `command` (mlflow server ...) in this process, which then replaces itself with the server MLflow
    would start as its child: MLflow's own checks, migrations, command and environment, without the parent."""
    import mlflow.server
    from mlflow.cli import cli

    def exec_server(server_command, *, extra_env=None, **_options):
        os.execvpe(server_command[0], server_command, {**os.environ, **(extra_env or {})})

    os.environ.clear()
    os.environ.update(env)
    mlflow.server._exec_cmd = exec_server  # check_exec_cmd runs at image build
    cli.main(args=command[1:], prog_name=command[0])


def check_exec_cmd() -> None:
    """Fail unless this MLflow starts its server through mlflow.server._exec_cmd (run at image build time)."""
    import inspect

    import mlflow.server
    if "_exec_cmd(" not in inspect.getsource(mlflow.server._run_server):
        raise SystemExit("entrypoint: this MLflow no longer starts its server with mlflow.server._exec_cmd")


def prepare_auth_database(url: str, wait_seconds: float = 0) -> bool:
    """Work around the upstream auth migration bug on MySQL/MariaDB; True if it changed the schema.

    Acts only on a schema MLflow has not initialised: one with no tables at all, or one an
    unpatched MLflow left half-migrated (alembic_version_auth empty, some initial tables created).
    It creates the initial tables that are missing and stamps revision 8606fa83a998; MLflow then
    migrates on to its head revision. A schema with a stamped revision, and a pre-Alembic auth
    schema (MLflow stamps those itself), are left alone, so running it again is harmless.
    Other databases (e.g. SQLite) have no such bug: nothing is done.
    """
    if not url.startswith("mysql"):
        return False
    import sqlalchemy

    engine = sqlalchemy.create_engine(url, pool_pre_ping=True)
    try:
        deadline = time.monotonic() + wait_seconds
        while True:
            try:
                conn = engine.connect()
                break
            except sqlalchemy.exc.OperationalError as error:
                code = error.orig.args[0] if error.orig is not None and error.orig.args else None
                if code not in RETRY_CONNECT_ERRORS or time.monotonic() >= deadline:
                    raise
                log(f"waiting for the database: {error.orig}")
                time.sleep(2)
        with conn:
            tables = set(sqlalchemy.inspect(conn).get_table_names())
            if AUTH_VERSION_TABLE in tables:
                stamped = conn.execute(sqlalchemy.text(f"SELECT COUNT(*) FROM {AUTH_VERSION_TABLE}")).scalar()
                if stamped:
                    return False
            elif tables:
                return False  # not ours, or a pre-Alembic auth schema MLflow stamps itself
            unknown = tables - set(INITIAL_AUTH_TABLES)
            if unknown:
                raise RuntimeError(
                    f"the auth schema has no Alembic revision but holds tables beyond the first "
                    f"migration ({', '.join(sorted(unknown))}); check it by hand")
            # MySQL commits each CREATE TABLE by itself; IF NOT EXISTS makes a rerun after an
            # interruption pick up where it stopped.
            for name, ddl in INITIAL_AUTH_TABLES.items():
                if name not in tables:
                    conn.execute(sqlalchemy.text(ddl))
            conn.execute(sqlalchemy.text(f"INSERT INTO {AUTH_VERSION_TABLE} (version_num) VALUES (:rev)"),
                         {"rev": INITIAL_AUTH_REVISION})
            conn.commit()
            return True
    finally:
        engine.dispose()


def upgrade_tracking_store(url: str) -> "tuple[str | None, str | None]":
    """MLflow's own `mlflow db upgrade`, in this process (the URL holds the password): the server refuses a tracking
    store an older MLflow left ("Detected out-of-date database schema"), and migrates only the auth store itself. At
    the newest revision it changes nothing; an empty schema gets MLflow's tables, as the server would make them. The
    store's revision before and after."""
    import sqlalchemy
    from alembic.runtime.migration import MigrationContext
    from mlflow.db import upgrade

    def revision():
        engine = sqlalchemy.create_engine(url)
        try:
            with engine.connect() as conn:
                return MigrationContext.configure(conn).get_current_revision()
        finally:
            engine.dispose()

    before = revision()
    upgrade.main(args=[url], prog_name="mlflow db upgrade", standalone_mode=False)
    return before, revision()


def write_private_file(path: str, text: str) -> None:
    """Write text to path, readable by this user only (also when the file exists)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)


def log(message: str) -> None:
    print(f"entrypoint: {message}", file=sys.stderr, flush=True)


def main() -> None:
    if sys.argv[1:] == ["--check"]:  # at image build time
        check_exec_cmd()
        return
    try:
        settings = Settings.from_env(os.environ)
        auth_uri = settings.database_uri(settings.auth_db_name)
        ini = auth_config(auth_uri, settings.admin_username, settings.admin_password, settings.auth_cache_seconds,
                          *([MLFLOW_AUTH_FUNCTION] if settings.app_name == "mlops-auth" else []))
    except ConfigError as error:
        log(str(error))
        sys.exit(2)
    if prepare_auth_database(auth_uri, wait_seconds=settings.db_wait_seconds):
        log(f"created the first auth migration's tables in {settings.auth_db_name} "
            f"(distinct foreign-key names) and stamped {INITIAL_AUTH_REVISION}")
    before, after = upgrade_tracking_store(settings.database_uri(settings.db_name))
    if before and before != after:
        log(f"upgraded the tracking store in {settings.db_name} from revision {before} to {after} (mlflow db upgrade)")
    write_private_file(settings.auth_config_path, ini)
    if settings.prometheus_dir:  # a restarted container's workers start their counts again
        shutil.rmtree(settings.prometheus_dir, ignore_errors=True)
    command = server_command(settings)
    log(" ".join(command))
    env = server_environment(os.environ, settings)
    if job_execution(env):
        os.execvpe(command[0], command, env)
    become_server(command, env)


if __name__ == "__main__":
    main()
