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
