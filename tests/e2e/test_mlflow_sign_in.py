"""Signing in to MLflow: a worker remembers a password it checked (the stack's app, rule 4), yet a password
changed elsewhere (here straight in the auth database, as no worker sees it) stops at once: MLflow's own cache
would accept the old one until it expired. The new password works at once."""
import uuid

import requests
from werkzeug.security import generate_password_hash

from mlops_stack.stackenv import role_setting
from roster import root_sql

API = "/api/2.0/mlflow"


def statuses(url, auth, ca_file):
    """The statuses of a few requests as auth, each on a new connection; fewer wrong ones than a worker takes
    before it throttles the client."""
    return {requests.get(f"{url}{API}/experiments/search", params={"max_results": 1}, auth=auth, verify=ca_file,
                         timeout=60, headers={"Connection": "close"}).status_code for _ in range(6)}


def test_a_password_changed_elsewhere_stops_at_once(stack, own_user):
    env = own_user("it-pwchange")
    url, name, old = env["MLFLOW_TRACKING_URI"], env["MLFLOW_TRACKING_USERNAME"], env["MLFLOW_TRACKING_PASSWORD"]
    assert statuses(url, (name, old), stack.ca_file) == {200}  # the workers that answered remember it now
    new = uuid.uuid4().hex
    with root_sql(stack, role_setting("mlflow_server", "mlflow_server_auth_database_name")) as conn, conn.cursor() as cur:
        assert cur.execute("UPDATE users SET password_hash = %s WHERE username = %s",
                           (generate_password_hash(new), name)) == 1
        conn.commit()
    assert statuses(url, (name, old), stack.ca_file) == {401}
    assert statuses(url, (name, new), stack.ca_file) == {200}
