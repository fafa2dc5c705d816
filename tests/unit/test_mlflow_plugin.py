"""The pure parts of the stack's MLflow rules (roles/mlflow_server/files/plugin/mlops_mlflow_auth.py); the
rules themselves are tried against the real server in tests/e2e/test_mlflow_rules.py."""
import importlib.util

import pytest

from mlops_stack.stackenv import REPO

PLUGIN = REPO / "roles/mlflow_server/files/plugin"
SPEC = importlib.util.spec_from_file_location("mlops_mlflow_auth", PLUGIN / "mlops_mlflow_auth.py")
plugin = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(plugin)


@pytest.mark.parametrize("name, owned", [
    ("alice", True), ("alice.mnist", True), ("alice.a.b", True),
    ("alice-ci.mnist", False), ("alicex", False), ("mnist-alice", False), ("bob.alice", False), ("", False),
])
def test_a_name_is_owned_by_its_prefix(name, owned):
    assert plugin.owns_name("alice", name) is owned


@pytest.mark.parametrize("source, path", [
    ("mlflow-artifacts:/1/abc/artifacts/model", "1/abc/artifacts/model"),
    ("mlflow-artifacts://host:5000/1/abc/artifacts", "1/abc/artifacts"),
    ("http://host:5000/api/2.0/mlflow-artifacts/artifacts/1/abc", "1/abc"),
    ("https://host//api/2.0/mlflow-artifacts/artifacts//1/abc", "1/abc"),
    ("s3://mlflow-artifacts/1/abc/artifacts", "1/abc/artifacts"),
    ("s3://mlflow-artifacts//1/abc", "1/abc"),
    ("s3://mlflow-artifacts-other/1/abc", None),
    ("s3://alice/model", None),
    ("http://host:5000/api/2.0/mlflow/experiments/get", None),
    ("/etc/passwd", None),
    ("file:///etc", None),
    ("mlflow-artifacts:/1/../2/abc", None),
])
def test_artifact_path_inside_the_servers_store(source, path):
    assert plugin.artifact_path(source, "s3://mlflow-artifacts/") == path


def test_the_installed_mlflow_has_what_the_plugin_uses():
    plugin.check_mlflow()


def test_the_plugin_is_an_mlflow_app():
    entry = (PLUGIN / "mlops_mlflow_auth-1.0.dist-info" / "entry_points.txt").read_text()
    assert "[mlflow.app]\nmlops-auth = mlops_mlflow_auth:create_app" in entry


def test_failed_sign_ins_are_throttled_per_client(monkeypatch):
    """Rule 3 on a bare Flask app: a client's 401s count, its next request with credentials gets 429 at the
    limit, another client is not affected, and requests without credentials are never throttled."""
    from flask import Flask
    app = Flask("probe")
    monkeypatch.setattr(plugin, "LOGIN_FAILURES_PER_MINUTE", 3)
    monkeypatch.setattr(plugin, "_failures", {})
    app.before_request(plugin.throttle)
    app.after_request(plugin.count_failure)
    app.add_url_rule("/", "index", lambda: ("no", 401))
    client = app.test_client()
    attacker = {"X-Forwarded-For": "203.0.113.7", "Authorization": "Basic YTpi"}
    other = {"X-Forwarded-For": "203.0.113.8", "Authorization": "Basic YTpi"}
    assert [client.get("/", headers=attacker).status_code for _ in range(4)] == [401, 401, 401, 429]
    assert client.get("/", headers=attacker).headers["Retry-After"].isdigit()
    assert client.get("/", headers=other).status_code == 401
    assert client.get("/", headers={"X-Forwarded-For": "203.0.113.7"}).status_code == 401
    # A minute later the attacker's failures have expired.
    monkeypatch.setattr(plugin.time, "monotonic", lambda real=plugin.time.monotonic: real() + 61)
    assert client.get("/", headers=attacker).status_code == 401
