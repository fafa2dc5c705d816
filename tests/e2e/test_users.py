"""User lifecycle: a roster of two students and a teacher, and every way one student could reach
another's work, through the services' own clients. Each attempt must be refused by the service."""
import json
import uuid

import boto3
import pymysql
import pytest
from botocore.exceptions import ClientError
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from stackenv import REPO, ansible_playbook
from zenml_client import zenml_as

STUDENT_A, STUDENT_B, TEACHER = "it-ana", "it-ben", "it-tea"


def read_env(name):
    lines = (REPO / "credentials" / f"{name}.env").read_text().splitlines()
    env = dict(line.split("=", 1) for line in lines if "=" in line and not line.startswith("#"))
    return {k: v.replace("localhost", "127.0.0.1") for k, v in env.items()}


def manage(*args, check=True):
    return ansible_playbook("playbooks/manage_users.yml", *args, check=check)


def user_rows(stack):
    conn = pymysql.connect(host=stack.host, port=stack.settings["database_port"], user="root",
                           password=stack.secret("database_root_password"), database="stack_management")
    with conn, conn.cursor() as cur:
        cur.execute("SELECT username, role FROM users ORDER BY username")
        return cur.fetchall()


@pytest.fixture(scope="module")
def users(stack, tmp_path_factory):
    roster = tmp_path_factory.mktemp("roster") / "course.csv"
    roster.write_text(f"username,role\n{STUDENT_A},developer\n{STUDENT_B},developer\n{TEACHER},teacher\n")
    manage("--tags", "add", "-e", f"roster={roster}")
    yield {name: read_env(name) for name in (STUDENT_A, STUDENT_B, TEACHER)}
    for name in (STUDENT_A, STUDENT_B, TEACHER):
        manage("--tags", "remove", "-e", f"username={name}", "-e", "confirm=yes", check=False)


def s3(env):
    return boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"], region_name="us-east-1",
                        aws_access_key_id=env["AWS_ACCESS_KEY_ID"], aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"])


def mlflow(env, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", env["MLFLOW_TRACKING_USERNAME"])
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", env["MLFLOW_TRACKING_PASSWORD"])
    return MlflowClient(tracking_uri=env["MLFLOW_TRACKING_URI"])


def sql(env):
    return pymysql.connect(host=env["DATABASE_HOST"], port=int(env["DATABASE_PORT"]), user=env["DATABASE_USER"],
                           password=env["DATABASE_PASSWORD"], autocommit=True)


def test_roster_is_recorded_and_credentials_are_private(stack, users):
    assert {(STUDENT_A, "developer"), (STUDENT_B, "developer"), (TEACHER, "teacher")} <= set(user_rows(stack))
    for name in users:
        assert oct((REPO / "credentials" / f"{name}.env").stat().st_mode & 0o777) == "0o600"


def test_sql_isolation(users):
    a, b = users[STUDENT_A], users[STUDENT_B]
    with sql(a) as conn, conn.cursor() as cur:
        cur.execute(f"CREATE TABLE `{a['DATABASE_SCHEMA']}`.notes (id INT)")
        cur.execute(f"INSERT INTO `{a['DATABASE_SCHEMA']}`.notes VALUES (1)")
    with sql(b) as conn, conn.cursor() as cur:
        for statement in (f"SELECT * FROM `{a['DATABASE_SCHEMA']}`.notes",
                          f"DROP TABLE `{a['DATABASE_SCHEMA']}`.notes",
                          f"CREATE TABLE `{a['DATABASE_SCHEMA']}`.intruder (id INT)",
                          "CREATE DATABASE it_rogue",
                          "SELECT * FROM stack_management.users"):
            with pytest.raises(pymysql.err.OperationalError if "SELECT * FROM `" not in statement
                               else (pymysql.err.OperationalError, pymysql.err.ProgrammingError)):
                cur.execute(statement)
        cur.execute("SHOW DATABASES")
        assert a["DATABASE_SCHEMA"] not in {row[0] for row in cur.fetchall()}


def test_object_store_isolation(users):
    a, b, teacher = users[STUDENT_A], users[STUDENT_B], users[TEACHER]
    s3(a).put_object(Bucket=a["STACK_BUCKET"], Key="model.bin", Body=b"weights")
    assert s3(a).get_object(Bucket=a["STACK_BUCKET"], Key="model.bin")["Body"].read() == b"weights"
    intruder = s3(b)
    attempts = [
        lambda: intruder.get_object(Bucket=a["STACK_BUCKET"], Key="model.bin"),
        lambda: intruder.put_object(Bucket=a["STACK_BUCKET"], Key="evil.bin", Body=b"x"),
        lambda: intruder.list_objects_v2(Bucket=a["STACK_BUCKET"]),
        lambda: intruder.delete_object(Bucket=a["STACK_BUCKET"], Key="model.bin"),
    ]
    for number, attempt in enumerate(attempts):
        with pytest.raises(ClientError, match="AccessDenied"):
            attempt()
            pytest.fail(f"attempt {number} on another student's bucket was allowed")
    try:
        visible = [bucket["Name"] for bucket in intruder.list_buckets()["Buckets"]]
    except ClientError as error:
        assert "AccessDenied" in str(error)
    else:
        assert a["STACK_BUCKET"] not in visible
    # The teacher reads every bucket and changes none.
    assert s3(teacher).get_object(Bucket=a["STACK_BUCKET"], Key="model.bin")["Body"].read() == b"weights"
    with pytest.raises(ClientError, match="AccessDenied"):
        s3(teacher).put_object(Bucket=a["STACK_BUCKET"], Key="graded.bin", Body=b"x")
    with pytest.raises(ClientError, match="AccessDenied"):
        s3(teacher).delete_object(Bucket=a["STACK_BUCKET"], Key="model.bin")
    assert s3(a).get_object(Bucket=a["STACK_BUCKET"], Key="model.bin")["Body"].read() == b"weights"


def test_mlflow_isolation(users, monkeypatch, tmp_path):
    a, b, teacher = users[STUDENT_A], users[STUDENT_B], users[TEACHER]
    owner = mlflow(a, monkeypatch)
    experiment = owner.create_experiment(f"{STUDENT_A}-{uuid.uuid4().hex[:6]}")
    run = owner.create_run(experiment)
    owner.log_metric(run.info.run_id, "accuracy", 0.9)
    (tmp_path / "weights.txt").write_text("secret weights")
    owner.log_artifact(run.info.run_id, str(tmp_path / "weights.txt"))

    intruder = mlflow(b, monkeypatch)
    for attempt in (lambda: intruder.get_experiment(experiment),
                    lambda: intruder.get_run(run.info.run_id),
                    lambda: intruder.download_artifacts(run.info.run_id, "weights.txt", str(tmp_path)),
                    lambda: intruder.log_metric(run.info.run_id, "accuracy", 0.1),
                    lambda: intruder.delete_experiment(experiment)):
        with pytest.raises(MlflowException, match="PERMISSION_DENIED|403|Permission"):
            attempt()
    assert experiment not in [e.experiment_id for e in intruder.search_experiments()]

    reader = mlflow(teacher, monkeypatch)
    assert reader.get_run(run.info.run_id).data.metrics["accuracy"] == 0.9
    with open(reader.download_artifacts(run.info.run_id, "weights.txt", str(tmp_path / "t"))) as f:
        assert f.read() == "secret weights"
    for attempt in (lambda: reader.log_metric(run.info.run_id, "accuracy", 1.0),
                    lambda: reader.delete_run(run.info.run_id)):
        with pytest.raises(MlflowException, match="PERMISSION_DENIED|403|Permission"):
            attempt()


def test_zenml_secret_isolation(users):
    a, b = users[STUDENT_A], users[STUDENT_B]
    mine = zenml_as(a["ZENML_STORE_URL"], STUDENT_A, a["ZENML_STORE_PASSWORD"], """
        c = Client()
        result = {"secrets": sorted(s.name for s in c.list_secrets()), "stack": c.get_stack("%s").name,
                  "admin": c.active_user.is_admin,
                  "key": c.get_secret("%s-object-store").secret_values["aws_access_key_id"]}
    """ % (STUDENT_A, STUDENT_A))
    assert mine == {"secrets": [f"{STUDENT_A}-mlflow", f"{STUDENT_A}-object-store"], "stack": STUDENT_A,
                    "admin": False, "key": STUDENT_A}
    theirs = zenml_as(b["ZENML_STORE_URL"], STUDENT_B, b["ZENML_STORE_PASSWORD"], """
        from zenml.models import SecretUpdate
        c = Client()
        seen = sorted(s.name for s in c.list_secrets())
        attempts = {}
        for name, act in {
            "read": lambda: c.get_secret("%s-object-store"),
            "update": lambda: c.update_secret("%s-object-store", add_or_update_values={"x": "y"}),
            "delete": lambda: c.delete_secret("%s-object-store"),
        }.items():
            try:
                act()
                attempts[name] = "allowed"
            except Exception as error:
                attempts[name] = type(error).__name__
        result = {"seen": seen, "attempts": attempts}
    """ % (STUDENT_A, STUDENT_A, STUDENT_A))
    assert not any(name.startswith(STUDENT_A) for name in theirs["seen"])
    assert "allowed" not in theirs["attempts"].values(), theirs


@pytest.mark.parametrize("extra,message", [
    ({"username": "Alice"}, "not a valid username"),
    ({"username": "alice'; DROP DATABASE x;--"}, "not a valid username"),
    ({"username": "$(id)"}, "not a valid username"),
    ({"username": ""}, "not a valid username"),
    ({"username": "a" * 21}, "not a valid username"),
    ({"username": "root"}, "reserved"),
    ({"username": "admin"}, "reserved"),
    ({"username": "shared-x"}, "reserved"),
    ({"username": "mlops-x"}, "reserved"),
    ({"username": "mlflow-artifacts"}, "reserved"),
    ({"username": "carol", "role": "wizard"}, "unknown role"),
    ({"username": STUDENT_A}, "Already exist"),
])
def test_bad_input_is_refused_and_changes_nothing(stack, users, extra, message):
    before = user_rows(stack)
    result = manage("--tags", "add", "-e", json.dumps(extra), check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0 and message in output, output[-2000:]
    assert user_rows(stack) == before


def test_bad_roster_is_refused_whole(stack, users, tmp_path):
    roster = tmp_path / "bad.csv"
    roster.write_text("username,role\nit-good,developer\nit-good,teacher\n")
    before = user_rows(stack)
    result = manage("--tags", "add", "-e", f"roster={roster}", check=False)
    assert result.returncode != 0 and "appears twice" in result.stdout + result.stderr
    assert user_rows(stack) == before
    assert not (REPO / "credentials" / "it-good.env").exists()


def test_remove_needs_confirmation_and_an_existing_user(stack, users):
    result = manage("--tags", "remove", "-e", f"username={STUDENT_B}", check=False)
    assert result.returncode != 0 and "confirm=yes" in result.stdout + result.stderr
    result = manage("--tags", "remove", "-e", "username=it-nobody", "-e", "confirm=yes", check=False)
    assert result.returncode != 0 and "No such users: it-nobody" in result.stdout + result.stderr
    result = manage("-e", f"username={STUDENT_B}", check=False)
    assert result.returncode != 0 and "--tags add or --tags remove" in result.stdout + result.stderr
    assert (STUDENT_B, "developer") in user_rows(stack)


def test_remove_then_re_add_brings_no_old_data_back(stack, users, monkeypatch):
    old = users[STUDENT_B]
    s3(old).put_object(Bucket=old["STACK_BUCKET"], Key="old.txt", Body=b"old")
    experiment = mlflow(old, monkeypatch).create_experiment(f"{STUDENT_B}-old")
    manage("--tags", "remove", "-e", f"username={STUDENT_B}", "-e", "confirm=yes")
    assert (STUDENT_B, "developer") not in user_rows(stack)
    assert not (REPO / "credentials" / f"{STUDENT_B}.env").exists()
    with pytest.raises(ClientError):
        s3(old).list_objects_v2(Bucket=old["STACK_BUCKET"])

    manage("--tags", "add", "-e", f"username={STUDENT_B}", "-e", "role=developer")
    new = read_env(STUDENT_B)
    assert new["AWS_SECRET_ACCESS_KEY"] != old["AWS_SECRET_ACCESS_KEY"]
    assert s3(new).list_objects_v2(Bucket=new["STACK_BUCKET"]).get("KeyCount", 0) == 0
    client = mlflow(new, monkeypatch)
    with pytest.raises(MlflowException):
        client.get_experiment(experiment)
    with sql(new) as conn, conn.cursor() as cur:
        cur.execute(f"SHOW TABLES FROM `{new['DATABASE_SCHEMA']}`")
        assert cur.fetchall() == ()


def test_remove_with_archive_exports_schema_and_bucket(stack, users):
    a = users[STUDENT_A]
    s3(a).put_object(Bucket=a["STACK_BUCKET"], Key="runs/final.txt", Body=b"keep me")
    manage("--tags", "remove", "-e", f"username={STUDENT_A}", "-e", "confirm=yes", "-e", "archive=yes")
    archives = sorted((REPO / "archive").glob(f"{STUDENT_A}-*"))
    assert archives, "no archive folder"
    latest = archives[-1]
    assert f"CREATE DATABASE" in (latest / "schema.sql").read_text()
    assert (latest / "bucket" / "runs" / "final.txt").read_bytes() == b"keep me"
    assert (STUDENT_A, "developer") not in user_rows(stack)


def test_dry_run_lists_changes_and_makes_none(stack, users):
    before = user_rows(stack)
    result = manage("--tags", "add", "-e", "username=it-dry", "--check")
    assert "changed=0" not in result.stdout
    assert user_rows(stack) == before
    assert not (REPO / "credentials" / "it-dry.env").exists()
    with pytest.raises(ClientError):
        s3(users[TEACHER]).list_objects_v2(Bucket="it-dry")
