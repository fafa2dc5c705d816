"""The server app of the previous MLflow image the upgrade drill builds (as plugin/mlops_mlflow_auth.py): MLflow's own
basic-auth under the stack's app name. The stack's rules are written against mlflow.server.auth as MLflow 3.17 remade
it (the image build's check_mlflow names what 3.16 lacks), so the stack on the previous release runs without them;
the drill's students sign in, log and read as on the real stack, and the rules are back after the upgrade."""
from mlflow.server.auth import authenticate_request_basic_auth as authenticate  # noqa: F401 (the ini names it)
from mlflow.server.auth import create_app  # noqa: F401 (the entry point mlops-auth)


def check_mlflow():
    """Every name used here is MLflow's own."""
