"""Start the stack's MLflow server: prepare the auth database, write the auth config, exec mlflow.

Settings come from the environment (see roles/mlflow_server/tasks/main.yml):
MLFLOW_BACKEND_STORE_URI, MLFLOW_AUTH_DATABASE_URI, MLFLOW_AUTH_ADMIN_USERNAME,
MLFLOW_AUTH_ADMIN_PASSWORD, MLFLOW_FLASK_SERVER_SECRET_KEY, MLFLOW_ARTIFACTS_DESTINATION,
MLFLOW_ALLOWED_HOSTS, MLFLOW_WORKERS.
"""
import os
import sys

# MLflow's first auth migration names two foreign keys "fk_user_id"; MySQL and MariaDB need
# constraint names unique per schema, so that migration fails there (upstream bug). These are the
# same tables with distinct names; MLflow then runs its later auth migrations itself.
INITIAL_AUTH_REVISION = "8606fa83a998"
INITIAL_AUTH_TABLES = [
    """CREATE TABLE users (
         id INTEGER NOT NULL AUTO_INCREMENT PRIMARY KEY,
         username VARCHAR(255), password_hash VARCHAR(255), is_admin BOOL,
         UNIQUE (username))""",
    """CREATE TABLE experiment_permissions (
         id INTEGER NOT NULL AUTO_INCREMENT PRIMARY KEY,
         experiment_id VARCHAR(255) NOT NULL, user_id INTEGER NOT NULL, permission VARCHAR(255),
         CONSTRAINT fk_experiment_permissions_user_id FOREIGN KEY (user_id) REFERENCES users (id),
         CONSTRAINT unique_experiment_user UNIQUE (experiment_id, user_id))""",
    """CREATE TABLE registered_model_permissions (
         id INTEGER NOT NULL AUTO_INCREMENT PRIMARY KEY,
         name VARCHAR(255) NOT NULL, user_id INTEGER NOT NULL, permission VARCHAR(255),
         CONSTRAINT fk_registered_model_permissions_user_id FOREIGN KEY (user_id) REFERENCES users (id),
         CONSTRAINT unique_name_user UNIQUE (name, user_id))""",
    "CREATE TABLE alembic_version_auth (version_num VARCHAR(32) NOT NULL PRIMARY KEY)",
    f"INSERT INTO alembic_version_auth (version_num) VALUES ('{INITIAL_AUTH_REVISION}')",
]


def prepare_auth_database(url: str) -> bool:
    """Create the first auth migration's tables on an empty MySQL/MariaDB schema; True if it did."""
    if not url.startswith("mysql"):
        return False
    import sqlalchemy

    engine = sqlalchemy.create_engine(url)
    try:
        if sqlalchemy.inspect(engine).get_table_names():
            return False
        with engine.begin() as conn:
            for statement in INITIAL_AUTH_TABLES:
                conn.execute(sqlalchemy.text(statement))
        return True
    finally:
        engine.dispose()


def auth_config(database_uri: str, admin_username: str) -> str:
    """The basic-auth ini: nobody sees anything they were not granted."""
    return "\n".join([
        "[mlflow]",
        "default_permission = NO_PERMISSIONS",
        f"database_uri = {database_uri}",
        f"admin_username = {admin_username}",
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth",
        "",
    ])


def server_command(env: dict) -> list:
    return [
        "mlflow", "server", "--app-name", "basic-auth",
        "--host", "0.0.0.0", "--port", "5000",
        "--workers", env.get("MLFLOW_WORKERS", "2"),
        "--backend-store-uri", env["MLFLOW_BACKEND_STORE_URI"],
        "--serve-artifacts", "--artifacts-destination", env["MLFLOW_ARTIFACTS_DESTINATION"],
        "--allowed-hosts", env["MLFLOW_ALLOWED_HOSTS"],
    ]


def main() -> None:
    env = os.environ
    if prepare_auth_database(env["MLFLOW_AUTH_DATABASE_URI"]):
        print("stack_mlflow: created the initial auth tables (MySQL foreign-key names fixed)", flush=True)
    with open(env["MLFLOW_AUTH_CONFIG_PATH"], "w", encoding="utf-8") as ini:
        ini.write(auth_config(env["MLFLOW_AUTH_DATABASE_URI"], env["MLFLOW_AUTH_ADMIN_USERNAME"]))
    os.chmod(env["MLFLOW_AUTH_CONFIG_PATH"], 0o600)
    command = server_command(env)
    sys.stdout.flush()
    os.execvp(command[0], command)


if __name__ == "__main__":
    main()
