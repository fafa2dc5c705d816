"""The stack's MLflow server run from this checkout (roles/mlflow_server/files/entrypoint.py with the stack's
plugin on the Python path), outside Docker: for the integration tests and bench/mlflow_rules.py."""
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

from mlops_stack.stackenv import REPO

FILES = REPO / "roles/mlflow_server/files"


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def server_env(db, tracking_schema, auth_schema, folder: Path, admin, password, **extra):
    """The entry point's environment: db is dict(host, port, user, password) of the database server."""
    return {
        "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
        "PYTHONPATH": str(FILES / "plugin"),  # the image installs it in site-packages
        "HOME": str(folder),
        "MLFLOW_DB_HOST": db["host"], "MLFLOW_DB_PORT": str(db["port"]),
        "MLFLOW_DB_USER": db["user"], "MLFLOW_DB_PASSWORD": db["password"],
        "MLFLOW_DB_NAME": tracking_schema, "MLFLOW_AUTH_DB_NAME": auth_schema,
        "MLFLOW_AUTH_ADMIN_USERNAME": admin, "MLFLOW_AUTH_ADMIN_PASSWORD": password,
        "MLFLOW_FLASK_SERVER_SECRET_KEY": os.urandom(16).hex(),
        "MLFLOW_ARTIFACTS_DESTINATION": (folder / "artifacts").as_uri(),
        "MLFLOW_AUTH_CONFIG_PATH": str(folder / "basic_auth.ini"),
        "MLFLOW_WORKERS": "1",
        **extra,
    }


@contextlib.contextmanager
def running_entrypoint(env, port, log: Path):
    """Run entrypoint.py (it becomes the server) listening on port; yield (URL, the process) once healthy."""
    with open(log, "ab") as out:
        proc = subprocess.Popen([sys.executable, str(FILES / "entrypoint.py")],
                                env={**env, "MLFLOW_LISTEN_PORT": str(port)},
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, f"the server exited ({proc.returncode}):\n{log.read_text()[-4000:]}"
            assert time.monotonic() < deadline, f"not healthy after 120 s:\n{log.read_text()[-4000:]}"
            with contextlib.suppress(requests.ConnectionError):
                if requests.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            time.sleep(1)
        yield url, proc
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
