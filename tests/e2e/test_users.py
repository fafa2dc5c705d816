"""User lifecycle: a roster of two students and a teacher, and every way one student could reach
another's work, through the services' own clients. Each attempt must be refused by the service."""
import json
import shutil
import uuid

import pymysql
import pytest
from botocore.exceptions import ClientError
from mlflow.exceptions import MlflowException

from mlops_stack.stackenv import REPO
from mlops_stack.stackenv import user_mlflow as mlflow, user_s3 as s3
from roster import ARCHIVED, READDED, STUDENT_A, STUDENT_B, TEACHER, manage, read_env, user_rows
from roster import user_sql as sql
from zenml_client import attempts_code, zenml_as, zenml_rest

def zenml_with_key(env, code, monkeypatch):
    """Run ZenML client code logged in with the API key of a credentials file only (no user name)."""
    monkeypatch.setenv("ZENML_STORE_API_KEY", env["ZENML_STORE_API_KEY"])
    try:
        return zenml_as(env["ZENML_STORE_URL"], "", "", code)
    finally:
        monkeypatch.delenv("ZENML_STORE_API_KEY")


def test_roster_is_recorded_and_credentials_are_private(stack, users):
    assert {(STUDENT_A, "developer"), (STUDENT_B, "developer"), (TEACHER, "teacher")} <= set(user_rows(stack))
    for name in users:
        assert oct((REPO / "credentials" / f"{name}.env").stat().st_mode & 0o777) == "0o600"
        key_file = REPO / "credentials" / "users" / name / "zenml_api_key"
        assert oct(key_file.stat().st_mode & 0o777) == "0o600"
        assert key_file.read_text() == users[name]["ZENML_STORE_API_KEY"] != ""


def test_ci_variables_are_the_users_own_never_roots(stack, users):
    root = {path.read_text().strip() for path in stack.credentials.iterdir() if path.is_file() and "." not in path.name}
    assert len(root) >= 4
    for name in users:
        text = (REPO / "credentials" / f"{name}.env").read_text()
        listed = next(line for line in text.splitlines() if line.startswith("# CI_VARIABLES="))
        ci = listed.split("=", 1)[1].split()
        assert {"ZENML_STORE_URL", "ZENML_STORE_API_KEY", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD",
                "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} <= set(ci)
        assert not {"ZENML_STORE_USERNAME", "ZENML_STORE_PASSWORD", "DATABASE_PASSWORD"} & set(ci)
        assert all(users[name][variable] for variable in ci), name
        assert users[name]["MLFLOW_TRACKING_USERNAME"] == users[name]["AWS_ACCESS_KEY_ID"] == name
        assert not [secret for secret in root if secret in text], f"a root credential is in {name}.env"


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
    experiment = owner.create_experiment(f"{STUDENT_A}.{uuid.uuid4().hex[:6]}")
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


def test_zenml_ci_key_is_the_users_own_identity(users, monkeypatch):
    a = users[STUDENT_A]
    mine = zenml_with_key(a, """
        from zenml.enums import StackComponentType
        from zenml.stack.flavor import Flavor
        c = Client()
        tracker = c.get_stack_component(StackComponentType.EXPERIMENT_TRACKER, "%s-mlflow")
        flavor = Flavor.from_model(c.get_flavor_by_name_and_type(tracker.flavor_name, StackComponentType.EXPERIMENT_TRACKER))
        config = flavor.config_class(**tracker.configuration)  # resolves {{secret.key}} as a pipeline run does
        result = {"user": c.active_user.name, "service_account": c.active_user.is_service_account,
                  "admin": c.active_user.is_admin, "stack": c.get_stack("%s").name,
                  "private_secrets": sorted(s.name for s in c.list_secrets() if s.private),
                  "tracking": [config.tracking_username, config.tracking_password],
                  "object_store": c.get_secret_by_name_and_private_status("%s-object-store").secret_values}
    """ % (STUDENT_A, STUDENT_A, STUDENT_A), monkeypatch)
    assert mine == {
        "user": f"{STUDENT_A}-ci", "service_account": True, "admin": False, "stack": STUDENT_A,
        "private_secrets": [f"{STUDENT_A}-mlflow", f"{STUDENT_A}-object-store"],
        "tracking": [STUDENT_A, a["MLFLOW_TRACKING_PASSWORD"]],
        "object_store": {"aws_access_key_id": STUDENT_A, "aws_secret_access_key": a["AWS_SECRET_ACCESS_KEY"]}}


@pytest.mark.parametrize("by", ["password", "own API key"])
def test_zenml_ci_account_isolation(users, monkeypatch, by):
    """Another student, with their password or their own CI key, against A's service account and key."""
    a, b = users[STUDENT_A], users[STUDENT_B]
    code = f"""
from zenml.models import APIKeyFilter, APIKeyRequest, APIKeyRotateRequest, APIKeyUpdate, ServiceAccountUpdate
c = Client()
store = c.zen_store
account = c.get_service_account("{STUDENT_A}-ci")
keys = store.list_api_keys(account.id, APIKeyFilter()).items
""" + attempts_code({
        "read key value": 'store.get_api_key(account.id, "ci").key',
        "rotate key": 'store.rotate_api_key(account.id, "ci", APIKeyRotateRequest())',
        "create key": 'store.create_api_key(account.id, APIKeyRequest(name="intruder"))',
        "deactivate key": 'store.update_api_key(account.id, "ci", APIKeyUpdate(active=False))',
        "delete key": 'store.delete_api_key(account.id, "ci")',
        "deactivate account": "store.update_service_account(account.id, ServiceAccountUpdate(active=False))",
        "delete account": "store.delete_service_account(account.id)",
        "read the secret": f'c.get_secret_by_name_and_private_status("{STUDENT_A}-object-store", private=True)',
        "update the secret": f'c.update_secret("{STUDENT_A}-mlflow", add_or_update_values={{"password": "x"}})',
        "delete the secret": f'c.delete_secret("{STUDENT_A}-mlflow")',
    }) + """
result = {"me": c.active_user.name, "keys": [[k.name, k.key, k.active] for k in keys], "attempts": attempts}
"""
    if by == "password":
        theirs = zenml_as(b["ZENML_STORE_URL"], STUDENT_B, b["ZENML_STORE_PASSWORD"], code)
    else:
        theirs = zenml_with_key(b, code, monkeypatch)
    assert theirs["me"] == (STUDENT_B if by == "password" else f"{STUDENT_B}-ci")
    # Listing the service account and its keys is allowed, the key's value is never shown.
    assert theirs["keys"] == [["ci", None, True]]
    attempts = theirs["attempts"]
    assert attempts.pop("read key value") == ["allowed", "None"]
    for action in ("rotate key", "create key", "deactivate key", "delete key", "deactivate account", "delete account"):
        kind, message = attempts.pop(action)
        assert kind == "IllegalOperationError" and "Only admin users can perform" in message, (action, kind, message)
    # Neither A's private secrets nor their CI account's copies are visible: the server answers "not found".
    for action in ("read the secret", "update the secret", "delete the secret"):
        assert attempts.pop(action)[0] == "KeyError", action
    assert attempts == {}
    # A's key still works, unchanged.
    assert zenml_with_key(a, "result = Client().active_user.name", monkeypatch) == f"{STUDENT_A}-ci"


def own_stack_code(name):
    """ZenML client code that finds the user's stack and experiment tracker, and changes the tracker to
    what it already is: an update the owner may make."""
    return f"""
from zenml.enums import StackComponentType
from zenml.models import ComponentUpdate
c = Client()
tracker = c.get_stack_component(StackComponentType.EXPERIMENT_TRACKER, "{name}-mlflow")
updated = c.zen_store.update_stack_component(tracker.id, ComponentUpdate(configuration=tracker.configuration))
result = {{"me": c.active_user.name, "stack": str(c.get_stack("{name}").id), "tracker": str(tracker.id),
           "tracking_uri": updated.configuration["tracking_uri"],
           "stacks": sorted(s.name for s in c.list_stacks(size=1000).items)}}
"""


@pytest.mark.parametrize("by", ["password", "own API key"])
def test_zenml_stack_isolation(users, monkeypatch, by):
    """Another student against A's stack and components, and the admin-only user and settings calls.
    ZenML's open-source server checks no owner: the stack's RBAC class adds the rule (mlops_rbac.py)
    and keeps ZenML's admin checks, which it drops once an RBAC class is set."""
    a, b = users[STUDENT_A], users[STUDENT_B]
    mine = {"password": zenml_as(a["ZENML_STORE_URL"], STUDENT_A, a["ZENML_STORE_PASSWORD"], own_stack_code(STUDENT_A)),
            "own API key": zenml_with_key(a, own_stack_code(STUDENT_A), monkeypatch)}
    assert mine["password"]["me"] == STUDENT_A and mine["own API key"]["me"] == f"{STUDENT_A}-ci"
    assert mine["password"]["stack"] == mine["own API key"]["stack"]
    assert STUDENT_A in mine["password"]["stacks"] and STUDENT_B not in mine["password"]["stacks"]
    stack, tracker, uri = mine["password"]["stack"], mine["password"]["tracker"], mine["password"]["tracking_uri"]
    code = """
from uuid import UUID
from zenml.models import ComponentUpdate, ServerSettingsUpdate, StackUpdate, UserFilter, UserRequest, UserUpdate
c = Client()
store = c.zen_store
stacks = sorted(s.name for s in c.list_stacks(size=1000).items)
users = sorted(u.name for u in store.list_users(UserFilter(size=1000)).items)
""" + attempts_code({
        "read the stack": f'store.get_stack(UUID("{stack}"))',
        "read the tracker": f'store.get_stack_component(UUID("{tracker}"))',
        "point the tracker elsewhere": f'store.update_stack_component(UUID("{tracker}"), '
                                       'ComponentUpdate(configuration={"tracking_uri": "https://intruder.invalid", '
                                       '"tracking_username": "x", "tracking_password": "y"}))',
        "rename the stack": f'store.update_stack(UUID("{stack}"), StackUpdate(name="taken-{uuid.uuid4().hex[:6]}"))',
        "delete the tracker": f'store.delete_stack_component(UUID("{tracker}"))',
        "delete the stack": f'store.delete_stack(UUID("{stack}"))',
        "read A's account": f'store.get_user("{STUDENT_A}")',
        "rename A's account": f'store.update_user(store.get_user("{STUDENT_A}").id, UserUpdate(full_name="x"))',
        "delete A's account": f'store.delete_user("{STUDENT_A}")',
        "create an admin": f'store.create_user(UserRequest(name="intruder-{uuid.uuid4().hex[:6]}", '
                           'password="Intruder-pass-1", is_admin=True, active=True))',
        "change the server's name": 'store.update_server_settings(ServerSettingsUpdate(server_name="intruder"))',
    }) + """
result = {"me": c.active_user.name, "stacks": stacks, "users": users, "attempts": attempts}
"""
    if by == "password":
        theirs = zenml_as(b["ZENML_STORE_URL"], STUDENT_B, b["ZENML_STORE_PASSWORD"], code)
    else:
        theirs = zenml_with_key(b, code, monkeypatch)
    me = STUDENT_B if by == "password" else f"{STUDENT_B}-ci"
    assert theirs["me"] == me
    assert STUDENT_B in theirs["stacks"] and STUDENT_A not in theirs["stacks"], theirs["stacks"]
    # As in ZenML without RBAC: a person lists themselves only, a service account (not a user) nobody.
    assert theirs["users"] == ([me] if by == "password" else []), theirs["users"]
    attempts = theirs["attempts"]
    for action in ("read the stack", "read the tracker", "point the tracker elsewhere", "rename the stack",
                   "delete the tracker", "delete the stack"):
        kind, message = attempts.pop(action)
        assert kind == "IllegalOperationError" and "Insufficient permissions" in message, (action, kind, message)
    for action in ("read A's account", "rename A's account", "delete A's account", "create an admin"):
        kind, message = attempts.pop(action)
        assert kind == "IllegalOperationError" and "Only admin users can perform" in message, (action, kind, message)
    kind, message = attempts.pop("change the server's name")
    assert kind == "IllegalOperationError" and "Only admins can update server settings" in message, (kind, message)
    assert attempts == {}
    # A's stack is whole and unchanged.
    again = zenml_with_key(a, own_stack_code(STUDENT_A), monkeypatch)
    assert (again["stack"], again["tracker"], again["tracking_uri"]) == (stack, tracker, uri)


def test_zenml_versions_are_their_owners(users):
    """Students share artifacts and models by name, and each keeps their versions: ZenML checks reading and
    listing versions against their artifact or model, and lists the links of model versions unchecked, and so let
    any student read a classmate's version records (where the data lies, its metadata). The stack's RBAC class
    checks the version itself (mlops_rbac.py). Tried with plain HTTP as the other student; the owner and the
    teacher still read and list them, and everyone the shared artifact and model."""
    a, tag = users[STUDENT_A], uuid.uuid4().hex[:6]
    made = zenml_as(a["ZENML_STORE_URL"], STUDENT_A, a["ZENML_STORE_PASSWORD"], f"""
        from zenml.config.source import Source
        from zenml.enums import ArtifactType
        from zenml.models import ArtifactVersionRequest, ModelVersionArtifactRequest
        c = Client()
        store = c.get_stack_component("artifact_store", "{STUDENT_A}-artifacts")
        version = c.zen_store.create_artifact_version(ArtifactVersionRequest(
            artifact_name="grades-{tag}", type=ArtifactType.DATA, uri="s3://{STUDENT_A}/grades-{tag}",
            materializer=Source.from_import_path("zenml.materializers.built_in_materializer.BuiltInMaterializer"),
            data_type=Source.from_import_path("builtins.dict"), project=c.active_project.id,
            artifact_store_id=store.id, save_type="manual"))
        model = c.create_model(name="classifier-{tag}")
        model_version = c.create_model_version(model.id, name="exam-{tag}")
        c.zen_store.create_model_version_artifact_link(ModelVersionArtifactRequest(
            model_version=model_version.id, artifact_version=version.id))
        result = {{"artifact_version": str(version.id), "artifact": str(version.artifact.id),
                   "model_version": str(model_version.id), "model": str(model.id)}}
    """)
    paths = {kind: f"/api/v1/{kind}s/{made[kind]}" for kind in made}
    readers = {name: zenml_rest(users[name], name) for name in (STUDENT_A, STUDENT_B, TEACHER)}
    url = a["ZENML_STORE_URL"]
    answers = {name: {kind: session.get(url + path) for kind, path in paths.items()}
               for name, session in readers.items()}
    for name in (STUDENT_A, TEACHER):
        assert {kind: answer.status_code for kind, answer in answers[name].items()} == dict.fromkeys(paths, 200), name
        assert answers[name]["artifact_version"].json()["body"]["uri"] == f"s3://{STUDENT_A}/grades-{tag}"
    other = answers[STUDENT_B]
    assert other["artifact"].status_code == 200 and other["model"].status_code == 200  # shared by name
    for kind in ("artifact_version", "model_version"):
        assert other[kind].status_code == 403, (kind, other[kind].text[:300])
        assert "Insufficient permissions to READ resource" in other[kind].text, other[kind].text[:300]
        assert f":{kind}/{made[kind]}'" in other[kind].text, other[kind].text[:300]  # <project id>:<kind>/<id>
        assert f"grades-{tag}" not in other[kind].text and f"exam-{tag}" not in other[kind].text
    # Listing the shared artifact's and model's versions, and the model version's links, shows the other student
    # none of them, and the owner and the teacher each.
    lists = {"artifact_version": ("/api/v1/artifact_versions", {"artifact_id": made["artifact"]}),
             "model_version": ("/api/v1/model_versions", {"model": made["model"]}),
             "artifact link": ("/api/v1/model_version_artifacts", {"model_version_id": made["model_version"]})}
    listed = {name: {kind: session.get(url + path, params={**query, "size": 100}) for kind, (path, query) in lists.items()}
              for name, session in readers.items()}
    for name, answers in listed.items():
        found = {kind: (answer.status_code, len(answer.json()["items"]) if answer.ok else answer.text[:300])
                 for kind, answer in answers.items()}
        assert found == dict.fromkeys(lists, (200, 0 if name == STUDENT_B else 1)), (name, found)


def test_zenml_users_reads_a_roster_longer_than_one_request(users, stack):
    """The module reads what exists for a roster in requests of Known.CHUNK names: with one name per
    request, every account of the roster is still found, and a name nobody has is not. The two
    components named "default" (ZenML's artifact store and orchestrator, at least) take more than one
    page and are told apart by type."""
    admin = stack.settings["stack_admin_username"]
    found = zenml_as(stack.url("zenml"), admin, stack.secret("zenml_server_admin_password"), f"""
        import os, sys
        sys.path.insert(0, {str(REPO / "tests")!r})
        from stackenv import load_ansible_module
        zenml_users = load_ansible_module("zenml_users")
        zenml_users.Known.CHUNK = 1
        store = zenml_users.Store(*(os.environ[name] for name in ("ZENML_STORE_URL", "ZENML_STORE_USERNAME", "ZENML_STORE_PASSWORD")))
        names = ["{STUDENT_A}", "{STUDENT_B}", "{TEACHER}", "nobody-{uuid.uuid4().hex[:6]}"]
        known = zenml_users.Known(store, {{"user": names, "service_account": ["{STUDENT_A}-ci"],
                                           "component": ["{STUDENT_B}-artifacts", "default"], "stack": ["{TEACHER}"],
                                           "secret": ["nobody-secret-{uuid.uuid4().hex[:6]}"]}})
        result = {{"found": sorted(kind + ":" + name for (kind, name, _type) in known.items if name != "default"),
                   "default": sorted(known.find("component", "default", kind).type.value
                                     for kind in ("artifact_store", "orchestrator"))}}
    """)
    assert found["default"] == ["artifact_store", "orchestrator"]
    assert found["found"] == sorted([f"user:{STUDENT_A}", f"user:{STUDENT_B}", f"user:{TEACHER}",
                                     f"service_account:{STUDENT_A}-ci", f"component:{STUDENT_B}-artifacts",
                                     f"stack:{TEACHER}"])


def test_zenml_public_secret_cannot_shadow_the_users_private_one(users, monkeypatch):
    """ZenML's client resolves {{name.key}} to a public secret first (get_secret_by_name_and_private_status),
    and any user may create a public secret named like another user's private one. The stack's RBAC class
    lists a user's own secrets only, so the other student's public one is not there to win; they still
    read it themselves."""
    a, b = users[STUDENT_A], users[STUDENT_B]
    as_b = lambda code: zenml_as(b["ZENML_STORE_URL"], STUDENT_B, b["ZENML_STORE_PASSWORD"], code)  # noqa: E731
    as_b("""
        Client().create_secret("%s-mlflow", values={"username": "%s", "password": "not-yours"}, private=False)
        result = True
    """ % (STUDENT_A, STUDENT_B))
    try:
        resolved = zenml_with_key(a, """
            result = Client().get_secret_by_name_and_private_status("%s-mlflow").secret_values["username"]
        """ % STUDENT_A, monkeypatch)
    finally:
        planted = as_b("""
            c = Client()
            secret = c.get_secret("%s-mlflow", private=False)
            c.delete_secret(secret.id)
            result = secret.secret_values["password"]
        """ % STUDENT_A)
    assert planted == "not-yours"
    assert resolved == STUDENT_A


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
    ({"username": "carol", "database_max_connections": 70}, "database connections (stack_users_db_max_connections 5 "
                                                            "each), more than the 3 the services leave"),
    ({"username": "carol", "stack_users_group_size": 0}, "stack_users_group_size must be a whole number of 1 or more "
                                                         "(is 0). Nothing was changed."),
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
    assert result.returncode != 0 and "--tags add, remove, refresh, list or show (exactly one)" in result.stdout + result.stderr
    assert (STUDENT_B, "developer") in user_rows(stack)


def test_remove_then_re_add_brings_no_old_data_back(stack, own_user, monkeypatch):
    old = own_user(READDED)
    s3(old).put_object(Bucket=old["STACK_BUCKET"], Key="old.txt", Body=b"old")
    with sql(old) as conn, conn.cursor() as cur:
        cur.execute(f"CREATE TABLE `{old['DATABASE_SCHEMA']}`.old_notes (id INT)")
    name = f"{READDED}.mnist-{uuid.uuid4().hex[:6]}"
    experiment = mlflow(old, monkeypatch).create_experiment(name)
    mlflow(old, monkeypatch).create_registered_model(name)
    manage("--tags", "remove", "-e", f"username={READDED}", "-e", "confirm=yes")
    assert (READDED, "developer") not in user_rows(stack)
    assert not (REPO / "credentials" / f"{READDED}.env").exists()
    with pytest.raises(ClientError):
        s3(old).list_objects_v2(Bucket=old["STACK_BUCKET"])

    manage("--tags", "add", "-e", f"username={READDED}", "-e", "role=developer")
    new = read_env(READDED)
    assert new["AWS_SECRET_ACCESS_KEY"] != old["AWS_SECRET_ACCESS_KEY"]
    assert new["ZENML_STORE_API_KEY"] != old["ZENML_STORE_API_KEY"]
    with pytest.raises(RuntimeError, match="CredentialsNotValid"):
        zenml_with_key(old, "result = Client().active_user.name", monkeypatch)
    assert s3(new).list_objects_v2(Bucket=new["STACK_BUCKET"]).get("KeyCount", 0) == 0
    client = mlflow(new, monkeypatch)
    with pytest.raises(MlflowException):
        client.get_experiment(experiment)
    # The old experiment and model were deleted with the user: their names are the new user's to take.
    assert client.create_experiment(name) != experiment
    assert client.create_registered_model(name).name == name
    assert client.search_runs([client.get_experiment_by_name(name).experiment_id]) == []
    with sql(new) as conn, conn.cursor() as cur:
        cur.execute(f"SHOW TABLES FROM `{new['DATABASE_SCHEMA']}`")
        assert cur.fetchall() == ()


def test_remove_with_archive_exports_schema_and_bucket(stack, own_user):
    a = own_user(ARCHIVED)
    s3(a).put_object(Bucket=a["STACK_BUCKET"], Key="runs/final.txt", Body=b"keep me")
    manage("--tags", "remove", "-e", f"username={ARCHIVED}", "-e", "confirm=yes", "-e", "archive=yes")
    archives = sorted((REPO / "archive").glob(f"{ARCHIVED}-*"))
    assert archives, "no archive folder"
    latest = archives[-1]
    assert "CREATE DATABASE" in (latest / "schema.sql").read_text()
    assert (latest / "bucket" / "runs" / "final.txt").read_bytes() == b"keep me"
    assert (ARCHIVED, "developer") not in user_rows(stack)


def test_dry_run_lists_changes_and_makes_none(stack, users):
    shutil.rmtree(REPO / "credentials" / "users" / "it-dry", ignore_errors=True)  # left by an older checkout
    before = user_rows(stack)
    result = manage("--tags", "add", "-e", "username=it-dry", "--check")
    assert "changed=0" not in result.stdout
    assert user_rows(stack) == before
    assert not (REPO / "credentials" / "it-dry.env").exists()
    assert not (REPO / "credentials" / "users" / "it-dry").exists(), "the dry run generated passwords"
    with pytest.raises(ClientError):
        s3(users[TEACHER]).list_objects_v2(Bucket="it-dry")
