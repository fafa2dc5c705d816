"""mlops doctor: checks a user's credentials file and every service it names, one line each, with what to do
when a check fails. Only the services' own APIs and plain clients (requests, boto3): it runs in the demo's
environment too, without Ansible."""
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import requests

REQUIRED = ("STACK_USER", "STACK_BUCKET", "MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD",
            "AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "ZENML_STORE_URL", "ZENML_STORE_USERNAME",
            "ZENML_STORE_PASSWORD", "ZENML_STORE_API_KEY")
CA_NAMES = ("STACK_CA_FILE", "AWS_CA_BUNDLE", "MLFLOW_TRACKING_SERVER_CERT_PATH", "ZENML_STORE_VERIFY_SSL")
NEW_FILE = "ask your teacher for a new credentials file"


@dataclass
class Check:
    name: str
    ok: bool
    detail: str

    def line(self) -> str:
        return f"{'ok  ' if self.ok else 'FAIL'}  {self.name}: {self.detail}"


def read_credentials(path: Path) -> dict:
    """KEY=VALUE lines (Windows line endings too); a relative CA path is next to the file, as hybrid.sh reads it."""
    values = {}
    for line in path.read_text(encoding="utf-8-sig").splitlines():
        line = line.rstrip("\r")
        if "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            values[key.strip()] = value
    for name in CA_NAMES:
        value = values.get(name, "")
        if value and value not in ("true", "false") and not value.startswith("/"):
            values[name] = str(path.resolve().parent / value)
    return values


def ci_variables(path: Path) -> list:
    """The GitLab CI/CD variables the file's header names (its CI_VARIABLES line): (name, value, secret) each."""
    header = [line.split("=", 1)[1] for line in path.read_text(encoding="utf-8-sig").splitlines()
              if line.startswith("# CI_VARIABLES=")]
    if not header:
        raise ValueError(f"{path} has no CI_VARIABLES line: not a credentials file of the stack")
    env = read_credentials(path)
    names = header[0].split()
    missing = [name for name in names if not env.get(name)]
    if missing:
        raise ValueError(f"{path} has no {', '.join(missing)}: {NEW_FILE}")
    return [(name, env[name], secret(name)) for name in names]


def secret(name: str) -> bool:
    return any(word in name for word in ("PASSWORD", "SECRET", "API_KEY"))


def fields(env: dict, path: Path) -> Check:
    missing = [name for name in REQUIRED if not env.get(name)]
    if missing:
        return Check("file", False, f"{path} has no {', '.join(missing)}: {NEW_FILE}")
    ca = env.get("STACK_CA_FILE")
    if ca and not Path(ca).is_file():
        return Check("file", False, f"no CA certificate at {ca} (STACK_CA_FILE): keep the one handed out with the file there")
    return Check("file", True, f"{path}: every field of {env['STACK_USER']}" + (f", CA {ca}" if ca else ""))


def reach(service: str, url: str, ca: str | None) -> Check:
    """DNS, a TCP connection and the TLS certificate, each failure with its own fix."""
    parts = urlsplit(url)
    host, port = parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80)
    name = f"{service} at {url}"
    try:
        socket.getaddrinfo(host, port)
    except socket.gaierror:
        return Check(name, False, f"cannot resolve {host}: check the address in the file and your network (campus VPN?)")
    try:
        connection = socket.create_connection((host, port), timeout=10)
    except OSError as error:
        return Check(name, False, f"nothing answers on {host}:{port} ({error.strerror or error}): is the stack up, "
                                  "and are you on a network that reaches it?")
    if parts.scheme != "https":
        connection.close()
        return Check(name, False, "the address is not https: every service of the stack is behind TLS; " + NEW_FILE)
    context = ssl.create_default_context(cafile=ca) if ca else ssl.create_default_context()
    try:
        with context.wrap_socket(connection, server_hostname=host):
            pass
    except ssl.SSLCertVerificationError as error:
        return Check(name, False, f"certificate not trusted ({error.verify_message}): use the CA file handed out with "
                                  "your credentials (STACK_CA_FILE)")
    except (ssl.SSLError, OSError) as error:
        return Check(name, False, f"no TLS on {host}:{port} ({error}): check the port in the file")
    return Check(name, True, "reachable, certificate trusted")


def mlflow(env: dict, verify) -> list:
    url, user = env["MLFLOW_TRACKING_URI"], env["MLFLOW_TRACKING_USERNAME"]
    auth = (user, env["MLFLOW_TRACKING_PASSWORD"])
    signed = requests.get(f"{url}/api/2.0/mlflow/users/get", params={"username": user}, auth=auth, verify=verify, timeout=30)
    if signed.status_code != 200:
        why = {401: f"refuses MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD: {NEW_FILE}",
               429: "too many failed sign-ins from here: wait a minute"}.get(signed.status_code, f"answers {signed.status_code}")
        return [Check("MLflow sign-in", False, why)]
    checks = [Check("MLflow sign-in", True, f"as {user}")]
    experiment = f"{user}.mnist"
    found = requests.get(f"{url}/api/2.0/mlflow/experiments/get-by-name", params={"experiment_name": experiment},
                         auth=auth, verify=verify, timeout=30)
    if found.status_code == 200:
        checks.append(Check("MLflow experiment", True, f"{experiment} is yours"))
    elif found.status_code == 404:
        checks.append(Check("MLflow experiment", True, f"{experiment} not made yet: your first run makes it"))
    else:
        checks.append(Check("MLflow experiment", False, f"{experiment}: {found.status_code} {found.text[:200]}: "
                                                        "tell your teacher (someone else may hold the name)"))
    return checks


def zenml(env: dict, verify) -> list:
    url, user = env["ZENML_STORE_URL"], env["ZENML_STORE_USERNAME"]
    checks = []
    login = requests.post(f"{url}/api/v1/login", data={"username": user, "password": env["ZENML_STORE_PASSWORD"]},
                          verify=verify, timeout=30)
    if login.status_code != 200:
        checks.append(Check("ZenML sign-in", False, f"refuses ZENML_STORE_USERNAME and ZENML_STORE_PASSWORD "
                                                    f"({login.status_code}): {NEW_FILE}"))
    else:
        checks.append(Check("ZenML sign-in", True, f"as {user}"))
        stacks = requests.get(f"{url}/api/v1/stacks", params={"name": env["STACK_USER"], "hydrate": True}, verify=verify,
                              headers={"Authorization": f"Bearer {login.json()['access_token']}"}, timeout=30).json()
        owners = [(item.get("resources") or {}).get("user", {}).get("name") for item in stacks.get("items", [])]
        checks.append(Check("ZenML stack", user in owners, f"{env['STACK_USER']}, yours" if user in owners else
                            f"no stack {env['STACK_USER']} of yours (owners: {owners or 'none'}): ask your administrator"))
    key = requests.post(f"{url}/api/v1/login", data={"grant_type": "zenml-api-key", "password": env["ZENML_STORE_API_KEY"]},
                        verify=verify, timeout=30)
    checks.append(Check("ZenML CI key", key.status_code == 200, "ZENML_STORE_API_KEY signs in (your CI identity)"
                        if key.status_code == 200 else f"ZENML_STORE_API_KEY is refused ({key.status_code}): {NEW_FILE}"))
    return checks


def object_store(env: dict, verify) -> list:
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError
    client = boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"], aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
                          aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"], region_name="us-east-1", verify=verify)
    bucket, key = env["STACK_BUCKET"], ".mlops-doctor"
    try:
        client.put_object(Bucket=bucket, Key=key, Body=b"probe")
        assert client.get_object(Bucket=bucket, Key=key)["Body"].read() == b"probe"
        client.delete_object(Bucket=bucket, Key=key)
        # The object store lists only the buckets a key may use: any other must be read-only (shared datasets).
        others = [item["Name"] for item in client.list_buckets()["Buckets"] if item["Name"] != bucket]
        writable = [other for other in others if writes(client, other, key)]
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code", "")
        fix = {"InvalidAccessKeyId": f"the object store does not know AWS_ACCESS_KEY_ID: {NEW_FILE}",
               "SignatureDoesNotMatch": f"the object store refuses AWS_SECRET_ACCESS_KEY: {NEW_FILE}",
               "NoSuchBucket": f"no bucket {bucket}: ask your administrator",
               "AccessDenied": f"no access to {bucket}: ask your administrator"}.get(code, str(error))
        return [Check("object store", False, f"{code}: {fix}")]
    except BotoCoreError as error:
        return [Check("object store", False, str(error))]
    if writable:
        return [Check("object store", False, f"your keys can write to {', '.join(writable)}: tell your administrator")]
    return [Check("object store", True, f"bucket {bucket} readable and writable"
                                        + (f"; read-only: {', '.join(others)}" if others else ""))]


def writes(client, bucket: str, key: str) -> bool:
    """Whether a put into the bucket is allowed (what it put is deleted)."""
    from botocore.exceptions import ClientError
    try:
        client.put_object(Bucket=bucket, Key=key, Body=b"probe")
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") == "AccessDenied":
            return False
        raise
    client.delete_object(Bucket=bucket, Key=key)
    return True


def database(env: dict, ca: str | None) -> Check:
    """The database account, where the administrator publishes the database (it is not, by default)."""
    host, port = env.get("DATABASE_HOST", ""), int(env.get("DATABASE_PORT") or 3306)
    try:
        socket.create_connection((host, port), timeout=10).close()
    except OSError:
        return Check("database", True, f"not published at {host}:{port}: nothing to check (the stack's database is "
                                       "reachable only where your administrator publishes it)")
    try:
        import pymysql
    except ImportError:
        return Check("database", True, f"{host}:{port} answers: install pymysql to check the sign-in")
    try:
        pymysql.connect(host=host, port=port, user=env["DATABASE_USER"], password=env["DATABASE_PASSWORD"],
                        database=env["DATABASE_SCHEMA"], ssl={"ca": ca} if ca else None, connect_timeout=10).close()
    except pymysql.err.OperationalError as error:
        fix = {1045: f"refuses DATABASE_USER and DATABASE_PASSWORD: {NEW_FILE}",
               1044: f"no access to schema {env['DATABASE_SCHEMA']}: ask your administrator"}.get(error.args[0], str(error))
        return Check("database", False, fix)
    return Check("database", True, f"signed in as {env['DATABASE_USER']}, schema {env['DATABASE_SCHEMA']} is yours")


def diagnose(path: Path) -> list:
    """Every check, in order; a service that cannot be reached is not asked anything more."""
    env = read_credentials(path)
    checks = [fields(env, path)]
    if not checks[0].ok:
        return checks
    ca = env.get("STACK_CA_FILE") or None
    verify = ca or True
    services = (("MLflow", "MLFLOW_TRACKING_URI", mlflow), ("ZenML", "ZENML_STORE_URL", zenml),
                ("object store", "AWS_ENDPOINT_URL", object_store))
    for service, variable, ask in services:
        reached = reach(service, env[variable], ca)
        checks.append(reached)
        if reached.ok:
            checks.extend(ask(env, verify))
    if env.get("DATABASE_USER"):
        checks.append(database(env, ca))
    return checks
