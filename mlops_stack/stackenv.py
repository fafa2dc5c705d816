"""What the tests and benchmarks need to drive the stack: run playbooks, read stack.yml and credentials.

REPO is the checkout this package lives in, so it is installed editable (`pip install -e .`, which
requirements.txt does), never copied into site-packages.
"""
import json
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path


REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

RECAP = re.compile(r"^(?P<host>\S+)\s+:\s+(?P<counts>(?:\w+=\d+\s*)+)$", re.MULTILINE)


def recap(output: str) -> dict:
    """Counts of the PLAY RECAP lines summed over hosts, e.g. {'ok': 12, 'changed': 0, ...}."""
    totals: dict = {}
    for match in RECAP.finditer(output):
        for pair in match.group("counts").split():
            key, value = pair.split("=")
            totals[key] = totals.get(key, 0) + int(value)
    if not totals:
        raise ValueError("no PLAY RECAP in the output")
    return totals


def ansible_playbook(playbook: str, *args: str, check: bool = True, timeout: int = 3600):
    """Run a playbook from the repository root; on failure show the end of its output."""
    result = subprocess.run(
        [str(BIN / "ansible-playbook"), playbook, *args],
        cwd=REPO, capture_output=True, text=True, timeout=timeout,
        env={**_clean_env(), "ANSIBLE_NOCOLOR": "1", "ANSIBLE_STDOUT_CALLBACK": "default"},
    )
    if check and result.returncode != 0:
        raise AssertionError(f"{playbook} failed (rc={result.returncode}):\n{result.stdout[-6000:]}\n{result.stderr[-3000:]}")
    return result


def _clean_env() -> dict:
    import os
    env = dict(os.environ)
    env["PATH"] = f"{BIN}:{env.get('PATH', '')}"
    return env


@dataclass
class Stack:
    """The running stack as the tests see it: the registry run_server.yml wrote (credentials/stack.json:
    its settings and services) and the credentials folder."""
    settings: dict
    services: dict
    credentials: Path
    host: str = "127.0.0.1"

    def secret(self, name: str) -> str:
        return (self.credentials / name).read_text().strip()

    def url(self, service: str) -> str:
        """The URL this machine reaches a service at, e.g. url("mlflow")."""
        return self.services[service]["local_url"]

    def container(self, service: str) -> str:
        return self.services[service]["container"]

    def containers(self) -> list:
        """The containers of the services users reach (each with a URL), in start order."""
        return [service["container"] for service in self.services.values() if "url" in service]


def user_env(name: str) -> dict:
    """The variables of credentials/<name>.env, the file a user is handed."""
    lines = (REPO / "credentials" / f"{name}.env").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if "=" in line and not line.startswith("#"))


def user_s3(env: dict):
    """A boto3 S3 client with the object-store keys of a user's env."""
    import boto3
    return boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"], region_name="us-east-1",
                        aws_access_key_id=env["AWS_ACCESS_KEY_ID"], aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"])


def user_mlflow(env: dict, monkeypatch):
    """An MLflow client signed in as the user of env (MLflow reads the login from the environment)."""
    from mlflow import MlflowClient
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", env["MLFLOW_TRACKING_USERNAME"])
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", env["MLFLOW_TRACKING_PASSWORD"])
    return MlflowClient(tracking_uri=env["MLFLOW_TRACKING_URI"])


def load_stack() -> Stack:
    """The stack as run_server.yml last provisioned it (its registry, credentials/stack.json)."""
    credentials = REPO / "credentials"
    registry = json.loads((credentials / "stack.json").read_text())
    return Stack(settings=registry["settings"], services=registry["services"], credentials=credentials)
