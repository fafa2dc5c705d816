"""What the tests need to drive the stack: run playbooks, read stack.yml and credentials."""
import importlib.util
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def load_ansible_module(name):
    """ansible/plugins/modules/<name>.py imported for its pure functions; its `ansible.module_utils.<x>`
    imports find ansible/plugins/module_utils, as when Ansible ships the module to a host."""
    import ansible.module_utils
    utils = str(REPO / "ansible/plugins/module_utils")
    if utils not in ansible.module_utils.__path__:
        ansible.module_utils.__path__.append(utils)
    spec = importlib.util.spec_from_file_location(name, REPO / "ansible/plugins/modules" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
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
    """The running stack as the tests see it: settings, credentials and URLs."""
    settings: dict
    credentials: Path
    host: str = "127.0.0.1"

    def secret(self, name: str) -> str:
        return (self.credentials / name).read_text().strip()

    def url(self, port_key: str) -> str:
        return f"http://{self.host}:{self.settings[port_key]}"

    def container(self, service: str) -> str:
        return f"{self.settings['stack_name']}-{service}"


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
    settings = yaml.safe_load((REPO / "stack.yml").read_text())
    return Stack(settings=settings, credentials=REPO / "credentials")
