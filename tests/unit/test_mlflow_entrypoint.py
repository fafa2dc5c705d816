import configparser
import importlib.util
from pathlib import Path

SPEC = importlib.util.spec_from_file_location(
    "stack_mlflow", Path(__file__).parents[2] / "roles/mlflow_server/files/stack_mlflow.py")
stack_mlflow = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(stack_mlflow)


def test_auth_config_denies_by_default():
    ini = configparser.ConfigParser()
    ini.read_string(stack_mlflow.auth_config("mysql+pymysql://u:p@db:3306/mlflow_auth", "stackadmin"))
    assert ini["mlflow"]["default_permission"] == "NO_PERMISSIONS"
    assert ini["mlflow"]["admin_username"] == "stackadmin"
    assert ini["mlflow"]["database_uri"].endswith("/mlflow_auth")


def test_server_command():
    command = stack_mlflow.server_command({
        "MLFLOW_BACKEND_STORE_URI": "mysql+pymysql://u:p@db:3306/mlflow",
        "MLFLOW_ARTIFACTS_DESTINATION": "s3://mlflow-artifacts/",
        "MLFLOW_ALLOWED_HOSTS": "localhost:*,mlops-mlflow:*",
    })
    assert command[:4] == ["mlflow", "server", "--app-name", "basic-auth"]
    assert command[command.index("--artifacts-destination") + 1] == "s3://mlflow-artifacts/"
    assert "--serve-artifacts" in command
    assert command[command.index("--workers") + 1] == "2"


def test_initial_tables_have_distinct_foreign_key_names():
    names = [word for sql in stack_mlflow.INITIAL_AUTH_TABLES for word in sql.split() if word.startswith("fk_")]
    assert len(names) == 2 and len(set(names)) == 2
