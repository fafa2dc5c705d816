"""The modules that take many users or buckets at once: the shared batch and error helpers, identifiers, grants,
input checks, and a name given twice refused before anything is touched."""
import json

import pytest
from ansible.module_utils.testing import patch_module_args

from stackenv import load_ansible_module as load

database_users = load("database_users")
mlflow_user = load("mlflow_user")
minio_bucket = load("minio_bucket")
minio_user = load("minio_user")
zenml_users = load("zenml_users")
from ansible.module_utils import stack_common  # noqa: E402  (found once a module is loaded)


@pytest.mark.parametrize("params,items", [
    # the single form becomes one item of the given fields
    ({"buckets": None, "name": "a", "quota": 5, "state": "present"}, [{"name": "a", "quota": 5}]),
    # the batch form as given, in order
    ({"buckets": [{"name": "b", "quota": 0}, {"name": "a", "quota": 5}], "name": None, "quota": None},
     [{"name": "b", "quota": 0}, {"name": "a", "quota": 5}]),
    ({"buckets": [], "name": None, "quota": None}, []),
])
def test_batch_items(params, items):
    assert stack_common.batch_items(params, "buckets", ["name", "quota"]) == items


def test_batch_items_refuse_a_name_twice():
    params = {"users": [{"access_key": "a"}, {"access_key": "b"}, {"access_key": "a"}], "access_key": None}
    with pytest.raises(ValueError, match="users: a given more than once"):
        stack_common.batch_items(params, "users", ["access_key"])


@pytest.mark.parametrize("module, spec, key", [
    (minio_bucket, minio_bucket.BUCKET, "name"),
    (minio_user, minio_user.USER, "access_key"),
    (mlflow_user, mlflow_user.USER, "username"),
])
def test_one_spec_for_both_forms(module, spec, key):
    """The batch form's elements take exactly the single form's options; the first, required there, names one."""
    options = module.argument_spec()
    assert spec[key]["required"] and list(spec)[0] == key and not options[key].get("required")
    assert {name: options[name] for name in spec if name != key} == {name: spec[name] for name in spec if name != key}


@pytest.mark.parametrize("error, line", [
    (RuntimeError("first line\n  second\tline "), "first line second line"),
    ("HTTP 502: <html>\n<body>Bad gateway</body>\n</html>", "HTTP 502: <html> <body>Bad gateway</body> </html>"),
    (RuntimeError(), "RuntimeError"),
    ("", ""),
    (ValueError("x" * 600), "x" * 500),
])
def test_one_line(error, line):
    assert stack_common.one_line(error) == line


def test_one_line_limit():
    assert stack_common.one_line("a  b c", 3) == "a b"


ADMIN = {"database_users": {"login_password": "root-password"},
         "minio_bucket": {"minio_access_key": "root", "minio_secret_key": "root-password"},
         "minio_user": {"minio_access_key": "root", "minio_secret_key": "root-password"},
         "mlflow_user": {"mlflow_url": "http://127.0.0.1:9", "mlflow_username": "admin", "mlflow_password": "pw"},
         "zenml_users": {"zenml_url": "http://127.0.0.1:9", "zenml_username": "admin", "zenml_password": "pw"}}


@pytest.mark.parametrize("name, connect, args", [
    ("database_users", "database_connect", {"users": [{"name": "alice", "password": "first-one", "schema": "a"},
                                                      {"name": "bob", "password": "other-one", "schema": "b"},
                                                      {"name": "alice", "password": "other-one", "schema": "c"}]}),
    ("minio_bucket", "minio_connect", {"buckets": [{"name": "alice"}, {"name": "alice", "quota": 5}]}),
    ("minio_user", "minio_connect", {"users": [{"access_key": "alice", "secret_key": "first-secret"},
                                               {"access_key": "alice", "secret_key": "other-secret"}]}),
    ("mlflow_user", "MlflowApi", {"users": [{"username": "alice", "password": "first-password"},
                                            {"username": "alice", "password": "other-password"}]}),
    # two threads would each create the account, set its password and its secrets
    ("zenml_users", "Store", {"users": [{"name": "alice", "password": "first-password"},
                                        {"name": "alice", "password": "other-password", "admin": True}]}),
])
def test_a_name_given_twice_is_refused_before_connecting(name, connect, args, monkeypatch, capsys):
    module = load(name)
    monkeypatch.setattr(module, connect, lambda *args, **kwargs: pytest.fail(f"{name} connected"))
    with patch_module_args(dict(ADMIN[name], **args)), pytest.raises(SystemExit) as exit:
        module.main()
    result = json.loads(capsys.readouterr().out)
    option = "buckets" if name == "minio_bucket" else "users"
    assert exit.value.code == 1 and result["failed"] and not result.get("changed")
    assert result["msg"] == f"{option}: alice given more than once"


@pytest.mark.parametrize("identifier, quoted", [
    ("user_alice", "`user_alice`"),
    ("a`b", "`a``b`"),
    ("``", "``````"),
])
def test_quote_doubles_backticks(identifier, quoted):
    assert database_users.quote(identifier) == quoted


@pytest.mark.parametrize("schema, target", [
    ("user_a_b", r"`user\_a\_b`.*"),  # unescaped, `user_a_b`.* would also match user_a2b
    ("plain", "`plain`.*"),
    ("50%", r"`50\%`.*"),
])
def test_schema_grant_target_escapes_wildcards(schema, target):
    assert database_users.schema_grant_target(schema) == target


def db_user(**given):
    return dict({"name": "alice", "password": "secret", "schema": "user_alice", "admin": False,
                 "max_connections": 0}, **given)


@pytest.mark.parametrize("user, present, expected", [
    (db_user(), True, None),
    (db_user(password=None), False, None),
    (db_user(name="Al_i-ce9"), True, None),
    (db_user(name="a'b"), True, "user \"a'b\": the name may only hold"),
    (db_user(name="a`b"), True, "user 'a`b': the name may only hold"),
    (db_user(name=""), True, "user '': the name may only hold"),
    (db_user(name="a" * 33), True, "the name may only hold"),
    (db_user(name="a\nb"), True, "user 'a\\nb': the name may only hold"),
    (db_user(schema="user_alice`; DROP"), True, "user alice: the schema may only hold"),
    (db_user(schema="a.b"), True, "user alice: the schema may only hold"),
    (db_user(schema="s" * 65), True, "user alice: the schema may only hold"),
    (db_user(password=None), True, "user alice: a password is required"),
    (db_user(password=""), True, "user alice: a password is required"),
    (db_user(max_connections=-1), True, "user alice: max_connections must be"),
])
def test_database_problem(user, present, expected):
    message = database_users.problem(user, present)
    if expected is None:
        assert message is None
    else:
        assert expected in message and "\n" not in message


def privileges(held, grant="N", extra=("Select", "Insert", "Drop")):
    row = {"Host": "%", "User": "alice", "Grant_priv": grant, "max_user_connections": 0}
    row.update({f"{name}_priv": "Y" if name in held else "N" for name in extra})
    return row


@pytest.mark.parametrize("row, line", [
    (privileges({"Select", "Insert", "Drop"}), "ALL ON *.*"),
    (privileges({"Select", "Insert", "Drop"}, grant="Y"), "ALL ON *.* WITH GRANT OPTION"),
    (privileges({"Select", "Insert"}), "SELECT, INSERT ON *.*"),
    (privileges(set(), grant="Y"), "USAGE ON *.* WITH GRANT OPTION"),
    (privileges(set()), None),
])
def test_privilege_line(row, line):
    assert database_users.privilege_line("*.*", row) == line


@pytest.mark.parametrize("admin, grants", [
    (False, [r"ALL ON `user\_alice`.*"]),
    (True, ["ALL ON *.* WITH GRANT OPTION"]),
])
def test_wanted_grants(admin, grants):
    assert database_users.wanted_grants(db_user(admin=admin)) == grants


@pytest.mark.parametrize("user, present, expected", [
    ({"username": "bob", "password": "twelve-chars"}, True, None),
    ({"username": "bob", "password": None}, False, None),
    ({"username": "bob", "password": None}, True, "user bob: a password is required with state=present"),
    ({"username": "bob", "password": "short"}, True, "user bob: MLflow passwords need 12 or more characters"),
])
def test_mlflow_problem(user, present, expected):
    assert mlflow_user.problem(user, present) == expected


def own_role(user_id, *permissions):
    return {"name": f"__user_{user_id}__", "workspace": "default", "permissions": [
        {"resource_type": kind, "resource_pattern": pattern, "permission": permission}
        for kind, pattern, permission in permissions]}


LISTED = [
    {"username": "alice", "roles": [own_role(2, ("experiment", "1", "MANAGE"), ("experiment", "2", "MANAGE"),
                                             ("registered_model", "alice.mnist", "MANAGE"),
                                             ("experiment", "9", "READ")),
                                    {"name": "teachers", "workspace": "default", "permissions": [
                                        {"resource_type": "experiment", "resource_pattern": "*",
                                         "permission": "MANAGE"}]}]},
    {"username": "bob", "roles": [own_role(3, ("experiment", "2", "MANAGE"), ("experiment", "9", "MANAGE"))]},
]


def test_mlflow_deletes_only_what_no_one_else_manages():
    # Experiment 2 is managed by bob too, 9 is bob's (alice only reads it), a role's grant is not ownership.
    assert mlflow_user.managed_only_by(LISTED, "alice") == (["1"], ["alice.mnist"])
    assert mlflow_user.managed_only_by(LISTED, "bob") == (["9"], [])
    assert mlflow_user.managed_only_by(LISTED, "nobody") == ([], [])


def test_mlflow_hidden_own_role_is_not_among_the_roles():
    class Api:
        def call(self, method, path, **payload):
            return {"users": [dict(LISTED[0], is_admin=False)]}
    known, listed = mlflow_user.read_users(Api(), "default")
    assert known["alice"]["roles"] == ["teachers"]
    assert listed[0]["username"] == "alice"
