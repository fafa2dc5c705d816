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

from mlops_stack.doctor import read_credentials

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


def docker(*args: str, input: str = None) -> str:
    """docker's output (stripped); on failure show the end of what it said."""
    done = subprocess.run(["docker", *args], input=input, capture_output=True, text=True)
    if done.returncode != 0:
        raise AssertionError(f"docker {' '.join(args[:2])} failed (rc={done.returncode}):\n"
                             f"{done.stdout[-2000:]}\n{done.stderr[-3000:]}")
    return done.stdout.strip()


def backup_report(output: str) -> tuple:
    """(folder, objects copied, objects linked) from the output of playbooks/backup.yml."""
    folder = re.search(r"Backup: (\S+?)'?$", output, re.M).group(1)
    copied, linked = map(int, re.search(r"Objects: (\d+) copied, (\d+) unchanged", output).groups())
    return folder, copied, linked


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

    def secret(self, name: str) -> str:
        return (self.credentials / name).read_text().strip()

    def url(self, service: str) -> str:
        """The URL users reach a service at, through the proxy over TLS, e.g. url("mlflow")."""
        return self.services[service]["url"]

    def direct_url(self, service: str) -> str:
        """The URL of the service itself on the stack network (plain HTTP; only this machine reaches it)."""
        port = self.services[service]["ports"][0]["internal"]
        return f"http://{self.address(service)}:{port}"

    def address(self, service: str) -> str:
        """The container's address on the stack network now (Docker may change it on a restart)."""
        network = self.settings["stack_network_name"]
        return docker("inspect", "--format", f'{{{{(index .NetworkSettings.Networks "{network}").IPAddress}}}}',
                      self.container(service))

    @property
    def db_host(self) -> str:
        """Where this machine reaches the database (not published: its address on the stack network)."""
        return self.address("database")

    @property
    def db_port(self) -> int:
        return self.services["database"]["ports"][0]["internal"]

    @property
    def ca_file(self) -> str:
        """The CA certificate clients verify the proxy with (handed out with the users' files)."""
        return self.settings["proxy_ca_file"]

    def tls_env(self) -> dict:
        """The variables that make every client the project ships verify the proxy with the stack's CA,
        as a user's file sets them (plus requests' own, for plain HTTP clients)."""
        return {name: self.ca_file for name in ("AWS_CA_BUNDLE", "MLFLOW_TRACKING_SERVER_CERT_PATH",
                                                "ZENML_STORE_VERIFY_SSL", "REQUESTS_CA_BUNDLE")}

    def container(self, service: str) -> str:
        return self.services[service]["container"]

    def image(self, service: str) -> str:
        """The image (repo:tag) the service's container runs now."""
        return docker("inspect", "--format", "{{.Config.Image}}", self.container(service))

    def containers(self) -> list:
        """The containers of the stack's services (each with resource limits), in start order."""
        return [service["container"] for service in self.services.values() if "limits" in service]


def user_env(name: str) -> dict:
    """The variables of credentials/<name>.env, the file a user is handed, read as `mlops doctor` reads it."""
    return read_credentials(REPO / "credentials" / f"{name}.env")


def write_roster(path, names, role: str = "developer") -> str:
    """A roster file for manage_users.yml: every name in names, with one role."""
    Path(path).write_text("username,role\n" + "".join(f"{name},{role}\n" for name in names))
    return str(path)


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


def role_setting(role: str, key: str):
    """A role's setting as the plays read it: stack.yml's value, else the role's default (a plain value), from
    defaults/main.yml or the files of defaults/main/ (the stack role's shared settings)."""
    import yaml
    chosen = yaml.safe_load((REPO / "stack.yml").read_text()) or {}
    if key in chosen:
        return chosen[key]
    defaults = REPO / f"roles/{role}/defaults"
    for path in sorted((defaults / "main").glob("*.yml")) if (defaults / "main").is_dir() else [defaults / "main.yml"]:
        values = yaml.safe_load(path.read_text()) or {}
        if key in values:
            return values[key]
    raise KeyError(f"roles/{role}/defaults has no {key}")


def load_stack() -> Stack:
    """The stack as run_server.yml last provisioned it (its registry, credentials/stack.json)."""
    credentials = REPO / "credentials"
    registry = json.loads((credentials / "stack.json").read_text())
    return Stack(settings=registry["settings"], services=registry["services"], credentials=credentials)
