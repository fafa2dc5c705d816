import importlib.util
from pathlib import Path

import pytest
from ansible.errors import AnsibleFilterError

SPEC = importlib.util.spec_from_file_location(
    "stack_users", Path(__file__).parents[2] / "ansible/plugins/filter/stack_users.py")
stack_users_module = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(stack_users_module)
stack_users = stack_users_module.stack_users

RESERVED = ["root", "admin", "mysql", "shared*", "mlops*", "stackadmin"]


@pytest.mark.parametrize("username,role", [
    ("alice", "developer"), ("bob-2", "teacher"), ("c3po", "administrator"), ("abc", "developer"),
    ("a" * 20, "developer"),
])
def test_valid_users(username, role):
    assert stack_users({"username": username, "role": role}, RESERVED) == [{"username": username, "role": role}]


@pytest.mark.parametrize("username,reason", [
    ("", "not a valid username"),
    ("ab", "not a valid username"),
    ("a" * 21, "not a valid username"),
    ("Alice", "not a valid username"),
    ("alice_b", "not a valid username"),
    ("alice-", "not a valid username"),
    ("al--ice", "not a valid username"),
    ("1alice", "not a valid username"),
    ("alice'; DROP DATABASE x;--", "not a valid username"),
    ("$(id)", "not a valid username"),
    ("al ice", "not a valid username"),
    ("root", "reserved"),
    ("admin", "reserved"),
    ("mysql", "reserved"),
    ("shared-data", "reserved"),
    ("mlops-root", "reserved"),
    ("stackadmin", "reserved"),
])
def test_bad_usernames(username, reason):
    with pytest.raises(AnsibleFilterError, match=reason):
        stack_users({"username": username, "role": "developer"}, RESERVED)


def test_unknown_role():
    with pytest.raises(AnsibleFilterError, match="unknown role 'student'"):
        stack_users({"username": "alice", "role": "student"}, RESERVED)


def test_role_defaults_to_developer():
    assert stack_users({"username": "alice"}, RESERVED)[0]["role"] == "developer"


def test_roster():
    text = "username,role\nalice,developer\n bob , teacher\n\ncarol,administrator\n"
    users = stack_users({"roster_text": text, "roster_name": "course.csv"}, RESERVED)
    assert [u["username"] for u in users] == ["alice", "bob", "carol"]
    assert users[1]["role"] == "teacher"


def test_a_roster_saved_by_a_spreadsheet_reads_the_same():
    text = "\ufeffusername,role\r\nalice,developer\r\nbob,teacher\r\n"
    users = stack_users({"roster_text": text, "roster_name": "course.csv"}, RESERVED)
    assert [(u["username"], u["role"]) for u in users] == [("alice", "developer"), ("bob", "teacher")]


@pytest.mark.parametrize("text,reason", [
    ("alice,developer\n", "header"),
    ("username,role\n", "no users"),
    ("username,role\nalice,developer\nalice,teacher\n", "line 3: 'alice' appears twice"),
    ("username,role\nalice,developer\nBob,developer\n", "line 3: 'Bob' is not a valid username"),
    ("username,role\nalice,developer,extra\n", "line 2: expected 2 columns"),
    ("username,role\nalice,wizard\n", "line 2: unknown role"),
    ("username,role\nroot,developer\n", "line 2: 'root' is reserved"),
])
def test_bad_rosters_are_rejected_whole(text, reason):
    with pytest.raises(AnsibleFilterError, match=reason):
        stack_users({"roster_text": text, "roster_name": "course.csv"}, RESERVED)


def test_username_and_roster_together():
    with pytest.raises(AnsibleFilterError, match="not both"):
        stack_users({"username": "alice", "roster_text": "username,role\nbob,developer\n"}, RESERVED)


def test_nothing_given():
    with pytest.raises(AnsibleFilterError, match="no user given"):
        stack_users({}, RESERVED)


def plan(username, role):
    return stack_users_module.stack_users_plan({"username": username, "role": role}, "/creds")


def test_plan_derives_every_name_once():
    assert plan("bob-2", "teacher") == {
        "username": "bob-2", "role": "teacher", "schema": "user_bob_2", "bucket": "bob-2", "stack": "bob-2",
        "service_account": "bob-2-ci", "folder": "/creds/users/bob-2", "env_file": "/creds/bob-2.env"}


SECRETS = {"alice": {"zenml": "zpw", "object_store": "s3pw", "mlflow": "mlpw", "zenml_api_key": "KEY"}}
URLS = {"object_store": "http://host:9000", "mlflow": "http://host:5000"}


@pytest.mark.parametrize("role,admin", [("developer", False), ("teacher", False), ("administrator", True)])
def test_zenml_user_with_ci_account(role, admin):
    zenml = stack_users_module.stack_users_zenml(plan("alice", role), SECRETS, URLS)
    assert (zenml["name"], zenml["password"], zenml["admin"], zenml["stack"]) == ("alice", "zpw", admin, "alice")
    assert (zenml["service_account"], zenml["api_key"]) == ("alice-ci", "KEY")
    assert zenml["secrets"] == {"alice-object-store": {"aws_access_key_id": "alice", "aws_secret_access_key": "s3pw"},
                                "alice-mlflow": {"username": "alice", "password": "mlpw"}}
    tracker = zenml["components"]["alice-mlflow"]["configuration"]
    assert tracker["tracking_password"] == "{{alice-mlflow.password}}"
    assert zenml["components"]["alice-artifacts"]["configuration"]["secret"] == "{{alice-object-store.aws_secret_access_key}}"


def test_zenml_user_without_a_known_api_key():
    secrets = {"alice": {k: v for k, v in SECRETS["alice"].items() if k != "zenml_api_key"}}
    assert stack_users_module.stack_users_zenml(plan("alice", "developer"), secrets, URLS)["api_key"] == ""


SETTINGS = {"db_max_connections": 10, "bucket_quota": 1024, "bucket_expiry_days": 7,
            "object_store_policies": {"developer": ["developer"], "teacher": ["teacher"],
                                      "administrator": ["administrator"]}}


@pytest.mark.parametrize("role,admin,roles", [
    ("developer", False, []), ("teacher", False, ["teachers"]), ("administrator", True, []),
])
def test_accounts_in_each_service(role, admin, roles):
    secrets = {"bob-2": {"database": "dbpw", "object_store": "s3pw", "mlflow": "mlpw"}}
    accounts = stack_users_module.stack_users_accounts(plan("bob-2", role), secrets, SETTINGS)
    assert accounts["database"] == {"name": "bob-2", "password": "dbpw", "schema": "user_bob_2", "admin": admin,
                                    "max_connections": 10}
    assert accounts["bucket"] == {"name": "bob-2", "quota": 1024, "expiry_days": 7}
    assert accounts["object_store"] == {"access_key": "bob-2", "secret_key": "s3pw", "policies": [role]}
    assert accounts["mlflow"] == {"username": "bob-2", "password": "mlpw", "admin": admin, "roles": roles}


def test_usage_counts_each_users_bucket_schema_runs_and_their_ci_accounts_runs():
    sql = [[{"name": "user_alice_b", "bytes": 32768}, {"name": "mlflow", "bytes": 999}],
           [{"experiment_id": 4, "runs": 2, "last": "2026-11-30 10:00:00"},
            {"experiment_id": 5, "runs": 1, "last": "2026-11-28 10:00:00"},
            {"experiment_id": 6, "runs": 5, "last": "2026-12-01 10:00:00"}],
           [{"username": "alice-b", "runs": 1, "last": "2026-11-29 09:00:00"},
            {"username": "alice-b-ci", "runs": 2, "last": "2026-12-01 08:00:00"},
            {"username": "alice", "runs": 7, "last": "2026-12-01 09:00:00"}],  # another user, a prefix of the name
           [{"experiment_id": 4, "name": "alice-b.mnist"}, {"experiment_id": 5, "name": "alice-b.other"},
            {"experiment_id": 6, "name": "alice.mnist"}]]
    buckets = {"alice-b": {"objects": 2, "bytes": 300}, "mlflow-artifacts": {"objects": 9, "bytes": 70,
                                                                              "prefixes": {"4": 10, "5": 20, "6": 40}}}
    rows = stack_users_module.stack_users_usage([{"username": "alice-b", "role": "developer"},
                                                 {"username": "bob", "role": "teacher"}],
                                                sql, buckets, "mlflow-artifacts", 1000)
    assert rows == [
        {"username": "alice-b", "role": "developer", "bucket_objects": 2, "bucket_bytes": 300, "bucket_quota": 1000,
         "schema_bytes": 32768, "mlflow_runs": 3, "mlflow_artifact_bytes": 30, "zenml_runs": 3,
         "last_activity": "2026-12-01 08:00:00"},
        {"username": "bob", "role": "teacher", "bucket_objects": 0, "bucket_bytes": 0, "bucket_quota": 1000,
         "schema_bytes": 0, "mlflow_runs": 0, "mlflow_artifact_bytes": 0, "zenml_runs": 0, "last_activity": None}]


def test_held_says_per_service_whether_it_holds_the_name_nothing_or_could_not_answer():
    rows = [{"username": "alice", "role": "developer"}, {"username": "bob", "role": "teacher"}]
    looks = {"database": {"failed": True, "taken": ["alice", "bob"]},  # new_only found both
             "mlflow": {"failed": True, "taken": ["alice"]},
             "zenml": {"changed": False},  # found nothing
             "object_store": {"failed": True, "msg": "cannot read the users: connection refused"}}
    assert [row["services"] for row in stack_users_module.stack_users_held(rows, looks)] == [
        {"database": True, "mlflow": True, "zenml": False, "object_store": None},
        {"database": True, "mlflow": False, "zenml": False, "object_store": None}]
