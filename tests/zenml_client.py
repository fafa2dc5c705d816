"""Run ZenML client code as one identity, in a child process with its own ZenML config folder.

ZenML keeps its client configuration global per process, so each identity gets a fresh process.
"""
import json
import os
import subprocess
import sys
import tempfile
import textwrap

import requests


def zenml_as(url: str, username: str, password: str, code: str, timeout: int = 300):
    """Run `code` (which sets `result`) as `username` against the ZenML server; return `result`."""
    script = "import json\nfrom zenml.client import Client\n" + textwrap.dedent(code) + \
             "\nprint('RESULT=' + json.dumps(result))\n"
    with tempfile.TemporaryDirectory() as config:
        env = {**os.environ, "ZENML_CONFIG_PATH": config, "ZENML_STORE_URL": url,
               "ZENML_STORE_USERNAME": username, "ZENML_STORE_PASSWORD": password,
               "ZENML_ANALYTICS_OPT_IN": "false", "ZENML_LOGGING_VERBOSITY": "WARN",
               "ZENML_ENABLE_REPO_INIT_WARNINGS": "false"}
        # ZenML needs a source file to run pipelines from (not `python -c`).
        with open(os.path.join(config, "probe.py"), "w", encoding="utf-8") as probe:
            probe.write(script)
        done = subprocess.run([sys.executable, "probe.py"], env=env, cwd=config,
                              capture_output=True, text=True, timeout=timeout)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT=")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"ZenML client failed (rc={done.returncode}): {done.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT="):])


def attempts_code(attempts):
    """ZenML client code that tries each `name: expression` and records what the server answered."""
    lines = "\n".join(f"    {name!r}: lambda: {expression}," for name, expression in attempts.items())
    return f"""
attempts = {{}}
for name, act in {{
{lines}
}}.items():
    try:
        attempts[name] = ["allowed", repr(act())[:200]]
    except Exception as error:
        attempts[name] = [type(error).__name__, " ".join(str(error).split())[:300]]
"""


def zenml_rest(env, name):
    """A requests session signed in to the ZenML server's REST API as the user of env (a plain HTTP client)."""
    session = requests.Session()
    login = session.post(f"{env['ZENML_STORE_URL']}/api/v1/login",
                         data={"username": name, "password": env["ZENML_STORE_PASSWORD"]})
    login.raise_for_status()
    session.headers["Authorization"] = f"Bearer {login.json()['access_token']}"
    return session
