"""The ZenML server as its users see it: health, version, headless admin login, stacks, secrets.

Where the server is comes from the environment, so the checks run against any deployment:

    STACK_ZENML_URL=http://host:8080 STACK_ZENML_USERNAME=admin STACK_ZENML_PASSWORD=... \\
        pytest tests/integration/test_zenml_server.py

The database checks (the ZenML user's privileges, secrets encrypted at rest) also need
STACK_DATABASE_HOST, STACK_DATABASE_PORT, STACK_DATABASE_ROOT_PASSWORD and STACK_ZENML_DB_PASSWORD
(database user STACK_ZENML_DB_USER, schema STACK_ZENML_DB_NAME, both default zenml); they are
skipped without them. Without STACK_ZENML_URL the tests use the stack that tests/conftest.py brings
up from stack.yml and the credentials folder.
"""
import os
import uuid
from dataclasses import dataclass
from typing import Mapping, Optional

import pytest
import requests

from zenml_client import zenml_as

RUN_ID = uuid.uuid4().hex[:8]


@dataclass(frozen=True)
class Target:
    """One ZenML server, its admin account and (optionally) the database behind it."""
    url: str
    username: str
    password: str
    db_host: Optional[str] = None
    db_port: int = 3306
    db_root_password: Optional[str] = None
    db_user: str = "zenml"
    db_password: Optional[str] = None
    db_name: str = "zenml"

    @property
    def has_database(self) -> bool:
        return bool(self.db_host and self.db_root_password and self.db_password)


def target_from_env(env: Mapping[str, str]) -> Optional[Target]:
    """The target the STACK_ZENML_* / STACK_DATABASE_* variables describe; None without a URL."""
    url = env.get("STACK_ZENML_URL", "").strip()
    if not url:
        return None
    missing = [name for name in ("STACK_ZENML_USERNAME", "STACK_ZENML_PASSWORD") if not env.get(name)]
    if missing:
        raise ValueError(f"STACK_ZENML_URL is set but {' and '.join(missing)} not")
    return Target(
        url=url.rstrip("/"), username=env["STACK_ZENML_USERNAME"], password=env["STACK_ZENML_PASSWORD"],
        db_host=env.get("STACK_DATABASE_HOST") or None,
        db_port=int(env.get("STACK_DATABASE_PORT") or 3306),
        db_root_password=env.get("STACK_DATABASE_ROOT_PASSWORD") or None,
        db_user=env.get("STACK_ZENML_DB_USER") or "zenml",
        db_password=env.get("STACK_ZENML_DB_PASSWORD") or None,
        db_name=env.get("STACK_ZENML_DB_NAME") or "zenml",
    )


def target_from_stack(stack) -> Target:
    """The target of the stack tests/conftest.py brought up (stack.yml + credentials folder)."""
    settings = stack.settings
    return Target(
        url=stack.url("zenml"),
        username=settings.get("zenml_server_admin_username", settings.get("stack_admin_username", "stackadmin")),
        password=stack.secret("zenml_server_admin_password"),
        db_host=stack.db_host, db_port=stack.db_port,
        db_root_password=stack.secret("database_root_password"),
        db_user=settings.get("zenml_server_database_user", "zenml"),
        db_password=stack.secret("zenml_server_db_password"),
        db_name=settings.get("zenml_server_database_name", "zenml"),
    )


@pytest.fixture(scope="module")
def zenml(request) -> Target:
    target = target_from_env(os.environ)
    return target if target else target_from_stack(request.getfixturevalue("stack"))


def as_admin(target: Target, code: str):
    return zenml_as(target.url, target.username, target.password, code)


def connect(target: Target, user: str, password: str, **kwargs):
    import pymysql
    return pymysql.connect(host=target.db_host, port=target.db_port, user=user, password=password,
                           connect_timeout=10, **kwargs)


def test_health(zenml):
    response = requests.get(f"{zenml.url}/health", timeout=10)
    assert response.status_code == 200


def test_server_runs_the_client_version(zenml):
    import zenml as zenml_package
    info = requests.get(f"{zenml.url}/api/v1/info", timeout=10).json()
    assert info["version"] == zenml_package.__version__
    assert info["database_type"] == "mysql"
    assert info["secrets_store_type"] == "sql"


def test_api_refuses_anonymous_requests(zenml):
    assert requests.get(f"{zenml.url}/api/v1/stacks", timeout=10).status_code == 401


def test_admin_logs_in_headless_and_lists_stacks(zenml):
    result = as_admin(zenml, """
        client = Client()
        result = {"user": client.active_user.name, "admin": client.active_user.is_admin,
                  "stacks": [s.name for s in client.list_stacks()]}
    """)
    assert result["user"] == zenml.username
    assert result["admin"] is True
    assert "default" in result["stacks"]


def test_wrong_password_is_refused(zenml):
    with pytest.raises(RuntimeError):
        zenml_as(zenml.url, zenml.username, f"not-the-password-{RUN_ID}",
                 "result = [s.name for s in Client().list_stacks()]", timeout=120)


def test_private_secret_round_trip(zenml):
    name = f"it-secret-{RUN_ID}"
    result = as_admin(zenml, f"""
        client = Client()
        client.create_secret("{name}", {{"token": "value-{RUN_ID}"}}, private=True)
        try:
            result = client.get_secret("{name}", private=True).secret_values
        finally:
            client.delete_secret("{name}", private=True)
    """)
    assert result == {"token": f"value-{RUN_ID}"}


def test_secrets_are_encrypted_at_rest(zenml):
    if not zenml.has_database:
        pytest.skip("needs the database settings (STACK_DATABASE_*, STACK_ZENML_DB_PASSWORD)")
    name, value = f"it-enc-{RUN_ID}", f"plaintext-{RUN_ID}"
    as_admin(zenml, f"""
        Client().create_secret("{name}", {{"token": "{value}"}}, private=True)
        result = True
    """)
    try:
        with connect(zenml, "root", zenml.db_root_password, database=zenml.db_name) as conn, \
                conn.cursor() as cur:
            cur.execute("SELECT `values` FROM secret WHERE name = %s", (name,))
            rows = cur.fetchall()
        assert len(rows) == 1 and rows[0][0]
        stored = rows[0][0] if isinstance(rows[0][0], str) else bytes(rows[0][0]).decode("latin-1")
        assert value not in stored
    finally:
        as_admin(zenml, f"""
            Client().delete_secret("{name}", private=True)
            result = True
        """)


def test_database_user_is_confined_to_its_schema(zenml):
    import pymysql
    if not zenml.has_database:
        pytest.skip("needs the database settings (STACK_DATABASE_*, STACK_ZENML_DB_PASSWORD)")
    with connect(zenml, zenml.db_user, zenml.db_password) as conn, conn.cursor() as cur:
        cur.execute("SHOW DATABASES")
        visible = {row[0] for row in cur.fetchall()}
        # The stack's record of its users: read for the teacher rule (mlops_rbac.py), never written.
        assert visible <= {zenml.db_name, "information_schema", "stack_management"}
        if "stack_management" in visible:
            cur.execute("SELECT username, role FROM stack_management.users")
        for statement in (f"CREATE DATABASE it_escape_{RUN_ID}", "SELECT * FROM mysql.user",
                          "CREATE USER 'it_escape'@'%' IDENTIFIED BY 'x'",
                          "UPDATE stack_management.users SET role = 'administrator'",
                          "INSERT INTO stack_management.users (username, role) VALUES ('it-escape', 'teacher')"):
            with pytest.raises(pymysql.err.MySQLError, match="denied"):
                cur.execute(statement)


def test_database_user_needs_its_password(zenml):
    import pymysql
    if not zenml.has_database:
        pytest.skip("needs the database settings (STACK_DATABASE_*, STACK_ZENML_DB_PASSWORD)")
    with pytest.raises(pymysql.err.OperationalError):
        connect(zenml, zenml.db_user, f"wrong-{RUN_ID}")
