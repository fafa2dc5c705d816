"""Pure functions of database_users and mlflow_user: identifiers, grants, input checks."""
import pytest

from stackenv import load_ansible_module as load

database_users = load("database_users")
mlflow_user = load("mlflow_user")


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


@pytest.mark.parametrize("user, present, seen, expected", [
    (db_user(), True, set(), None),
    (db_user(password=None), False, set(), None),
    (db_user(name="Al_i-ce9"), True, set(), None),
    (db_user(name="a'b"), True, set(), "user \"a'b\": the name may only hold"),
    (db_user(name="a`b"), True, set(), "user 'a`b': the name may only hold"),
    (db_user(name=""), True, set(), "user '': the name may only hold"),
    (db_user(name="a" * 33), True, set(), "the name may only hold"),
    (db_user(name="a\nb"), True, set(), "user 'a\\nb': the name may only hold"),
    (db_user(schema="user_alice`; DROP"), True, set(), "user alice: the schema may only hold"),
    (db_user(schema="a.b"), True, set(), "user alice: the schema may only hold"),
    (db_user(schema="s" * 65), True, set(), "user alice: the schema may only hold"),
    (db_user(), True, {"alice"}, "user alice: listed twice"),
    (db_user(password=None), True, set(), "user alice: a password is required"),
    (db_user(password=""), True, set(), "user alice: a password is required"),
    (db_user(max_connections=-1), True, set(), "user alice: max_connections must be"),
])
def test_database_problem(user, present, seen, expected):
    message = database_users.problem(user, present, seen)
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


@pytest.mark.parametrize("user, present, seen, expected", [
    ({"username": "bob", "password": "twelve-chars"}, True, set(), None),
    ({"username": "bob", "password": None}, False, set(), None),
    ({"username": "bob", "password": None}, True, set(), "user bob: a password is required with state=present"),
    ({"username": "bob", "password": "short"}, True, set(), "user bob: MLflow passwords need 12 or more characters"),
    ({"username": "bob", "password": "twelve-chars"}, True, {"bob"}, "user bob: listed twice"),
])
def test_mlflow_problem(user, present, seen, expected):
    assert mlflow_user.problem(user, present, seen) == expected


def own_role(user_id, *permissions):
    return {"name": f"__user_{user_id}__", "workspace": "default", "permissions": [
        {"resource_type": kind, "resource_pattern": pattern, "permission": permission}
        for kind, pattern, permission in permissions]}


LISTED = [
    {"username": "alice", "roles": [own_role(2, ("experiment", "1", "MANAGE"), ("experiment", "2", "MANAGE"),
                                             ("registered_model", "mnist-alice", "MANAGE"),
                                             ("experiment", "9", "READ")),
                                    {"name": "teachers", "workspace": "default", "permissions": [
                                        {"resource_type": "experiment", "resource_pattern": "*",
                                         "permission": "MANAGE"}]}]},
    {"username": "bob", "roles": [own_role(3, ("experiment", "2", "MANAGE"), ("experiment", "9", "MANAGE"))]},
]


def test_mlflow_deletes_only_what_no_one_else_manages():
    # Experiment 2 is managed by bob too, 9 is bob's (alice only reads it), a role's grant is not ownership.
    assert mlflow_user.managed_only_by(LISTED, "alice") == (["1"], ["mnist-alice"])
    assert mlflow_user.managed_only_by(LISTED, "bob") == (["9"], [])
    assert mlflow_user.managed_only_by(LISTED, "nobody") == ([], [])


def test_mlflow_hidden_own_role_is_not_among_the_roles():
    class Api:
        def call(self, method, path, **payload):
            return {"users": [dict(LISTED[0], is_admin=False)]}
    known, listed = mlflow_user.read_users(Api(), "default")
    assert known["alice"]["roles"] == ["teachers"]
    assert listed[0]["username"] == "alice"
