"""Connection options and REST calls shared by the mlflow_* modules (MLflow's basic-auth API)."""
from ansible.module_utils.stack_common import one_line

try:
    import requests
    HAS_REQUESTS = True
except ImportError:  # reported by MlflowApi
    HAS_REQUESTS = False


def mlflow_argument_spec(**options):
    """The module's own options plus the connection options documented in the mlflow doc fragment."""
    return dict(
        mlflow_url=dict(type="str", required=True),
        mlflow_username=dict(type="str", required=True),
        mlflow_password=dict(type="str", required=True, no_log=True),
        **options)


class MlflowApiError(Exception):
    """An answer other than success from the MLflow server, as one line."""


class MlflowApi:
    """The admin's session with the MLflow server's auth REST API."""

    def __init__(self, module):
        if not HAS_REQUESTS:
            module.fail_json(msg="the Python library 'requests' is required on the host running this module")
        self.url = module.params["mlflow_url"].rstrip("/")
        self.session = requests.Session()
        self.session.auth = (module.params["mlflow_username"], module.params["mlflow_password"])

    def call(self, method, path, missing_ok=False, **payload):
        """Call /api/<path>: JSON body for writes, query for reads; None for a missing resource."""
        kwargs = {"params": payload} if method == "GET" else {"json": payload}
        answer = self.session.request(method, f"{self.url}/api/{path}", timeout=30, **kwargs)
        if answer.status_code == 404 and missing_ok:
            return None
        if answer.status_code >= 400:
            raise MlflowApiError(f"{method} {path}: HTTP {answer.status_code}: {one_line(answer.text, 300)}")
        return answer.json() if answer.content else {}

    def password_works(self, username, password):
        """Whether the server accepts these credentials (HTTP basic auth): 403 is a signed-in account that may not
        read its own record (the metrics account)."""
        answer = requests.get(f"{self.url}/api/2.0/mlflow/users/current", auth=(username, password), timeout=30)
        if answer.status_code in (200, 401, 403):
            return answer.status_code != 401
        raise MlflowApiError(f"GET 2.0/mlflow/users/current: HTTP {answer.status_code}: {one_line(answer.text, 300)}")
