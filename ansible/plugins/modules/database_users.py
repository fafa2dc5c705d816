#!/usr/bin/python
"""Manage users of a MySQL-compatible server, each with a private schema, in one connection."""

DOCUMENTATION = r"""
module: database_users
short_description: Manage database users, each with a private schema, on MariaDB or MySQL
description:
  - For each user, creates or drops the schema (C(utf8mb4)) and the account C('name'@'%'), sets the
    password, the grants, C(MAX_USER_CONNECTIONS) and whether it needs TLS. All users share one connection.
  - A non-admin holds exactly C(ALL PRIVILEGES) on its schema; an admin holds exactly C(ALL PRIVILEGES)
    on C(*.*) C(WITH GRANT OPTION). Any other privilege of the account is revoked.
  - The password is checked by logging in as the user, so a second run reports no change.
  - All users are validated before anything changes. On an error the module stops at that user and
    returns the changes made so far.
options:
  users:
    description: The users. A name may appear once.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: The account's user name (C('name'@'%')), letters, digits, C(_) and C(-), at most 32 characters.
        type: str
        required: true
      password:
        description: The account's password. Required with O(state=present).
        type: str
      schema:
        description: The user's private schema, letters, digits, C(_) and C(-), at most 64 characters.
        type: str
        required: true
      admin:
        description: Grant C(ALL PRIVILEGES ON *.* WITH GRANT OPTION) instead of C(ALL PRIVILEGES) on O(users[].schema).
        type: bool
        default: false
      max_connections:
        description: C(MAX_USER_CONNECTIONS) of the account; V(0) means no limit.
        type: int
        default: 0
  require_ssl:
    description:
      - Whether every account of O(users) needs TLS (C(REQUIRE SSL)), or not (C(REQUIRE NONE)).
      - The password check then logs in over TLS, verifying the server's certificate with O(ca_cert).
    type: bool
    default: false
  ca_cert:
    description:
      - CA certificate on the managed host that signed the server's certificate, for the password check of accounts
        that need TLS. The host name is not checked (the module may reach the server at an internal address).
      - Required with O(require_ssl=true), and for users whose account needs TLS already.
    type: path
  new_only:
    description:
      - With O(state=present), every user must be new. Before changing anything, fail naming each account
        and schema of the users that exists already. Also in check mode.
    type: bool
    default: false
  state:
    description: Whether the users' accounts and schemas exist. V(absent) drops both, with the schema's data.
    type: str
    choices: [present, absent]
    default: present
extends_documentation_fragment:
  - database
  - stack.attributes
notes:
  - The password check is one login as the user, which the server may log as a failed login.
  - Roles and MySQL 8 dynamic privileges granted to an account by other means are neither read nor revoked.
"""

EXAMPLES = r"""
- name: Two students with a schema each, and a teacher who may do everything
  database_users:
    login_password: "{{ root_password }}"
    users:
      - {name: alice, password: "{{ alice_password }}", schema: user_alice, max_connections: 10}
      - {name: bob, password: "{{ bob_password }}", schema: user_bob, max_connections: 10}
      - {name: carol, password: "{{ carol_password }}", schema: user_carol, admin: true}
  no_log: true

- name: Remove a student's account and schema
  database_users:
    login_password: "{{ root_password }}"
    users: [{name: alice, schema: user_alice}]
    state: absent
"""

RETURN = r"""
taken:
  description: With O(new_only), the names of the users something already holds (the module fails, naming each).
  returned: when O(new_only) finds any
  type: list
  elements: str
changes:
  description: What was (or in check mode would be) changed, one line each, in order. Never a password.
  returned: always
  type: list
  elements: str
  sample: ["alice - created schema user_alice", "alice - created account alice@%"]
diff:
  description:
    - Before and after, keyed by user name. C(grants) lists one line per level; table, column and
      routine privileges appear as C(SOME ON `db`.`object`).
  returned: always
  type: dict
  sample:
    before: {alice: {schema: false, account: false}}
    after: {alice: {schema: true, account: true, max_connections: 10, grants: ["ALL ON `user\\_alice`.*"],
                    require_ssl: false, password_changed: false}}
"""

import re

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.database_common import (database_argument_spec, database_connect,
                                                  error_message, password_works)
from ansible.module_utils.stack_common import already_taken, batch_items

NAME = re.compile(r"[A-Za-z0-9_-]{1,32}")
SCHEMA = re.compile(r"[A-Za-z0-9_-]{1,64}")
ALL_ON_EVERYTHING = "ALL ON *.* WITH GRANT OPTION"


def quote(identifier):
    """An identifier in backticks, backticks inside doubled."""
    return "`" + identifier.replace("`", "``") + "`"


def schema_grant_target(schema):
    """`schema`.* for GRANT, where _ and % are wildcards unless escaped (user_a_b would match user_a2b)."""
    return quote(schema.replace("_", r"\_").replace("%", r"\%")) + ".*"


def wanted_grants(user):
    return [ALL_ON_EVERYTHING] if user["admin"] else [f"ALL ON {schema_grant_target(user['schema'])}"]


def problem(user, present):
    """Why this element of O(users) cannot be applied, or None."""
    name = user["name"]
    if not NAME.fullmatch(name):
        return f"user {name!r}: the name may only hold letters, digits, _ and -, at most 32 characters"
    if not SCHEMA.fullmatch(user["schema"]):
        return f"user {name}: the schema may only hold letters, digits, _ and -, at most 64 characters"
    if present and not user["password"]:
        return f"user {name}: a password is required with state=present"
    if user["max_connections"] < 0:
        return f"user {name}: max_connections must be 0 (no limit) or more"
    return None


def privilege_line(target, row):
    """'ALL ON <target>' or 'SELECT, INSERT ON <target>' for a mysql.user or mysql.db row; None for none."""
    columns = [column for column in row if column.endswith("_priv") and column != "Grant_priv"]
    held = [column[:-len("_priv")].upper() for column in columns if row[column] == "Y"]
    option = row["Grant_priv"] == "Y"
    if not held and not option:
        return None
    privileges = "ALL" if len(held) == len(columns) else ", ".join(held) or "USAGE"
    return f"{privileges} ON {target}" + (" WITH GRANT OPTION" if option else "")


def read_grants(cursor, name):
    """The account's privileges, one line per level, written like wanted_grants()."""
    cursor.execute("SELECT * FROM mysql.user WHERE User = %s AND Host = '%%'", (name,))
    lines = [privilege_line("*.*", row) for row in cursor.fetchall()]
    cursor.execute("SELECT * FROM mysql.db WHERE User = %s AND Host = '%%'", (name,))
    lines += [privilege_line(quote(row["Db"]) + ".*", row) for row in cursor.fetchall()]
    cursor.execute("SELECT Db, Table_name AS object FROM mysql.tables_priv WHERE User = %s AND Host = '%%' "
                   "UNION ALL SELECT Db, Routine_name FROM mysql.procs_priv WHERE User = %s AND Host = '%%'",
                   (name, name))
    lines += [f"SOME ON {quote(row['Db'])}.{quote(row['object'])}" for row in cursor.fetchall()]
    return sorted(line for line in lines if line)


def read_user(cursor, name, schema):
    cursor.execute("SELECT COUNT(*) AS n FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = %s", (schema,))
    state = {"schema": cursor.fetchone()["n"] > 0}
    cursor.execute("SELECT max_user_connections AS n, LENGTH(ssl_type) > 0 AS tls FROM mysql.user "
                   "WHERE User = %s AND Host = '%%'", (name,))
    account = cursor.fetchone()
    state["account"] = account is not None
    if account:
        state.update(max_connections=int(account["n"]), grants=read_grants(cursor, name), require_ssl=bool(account["tls"]))
    return state


def ensure_user(module, cursor, user, present, changes):
    """Read the user, change what differs (appending to changes), return (before, after) for the diff."""
    name, schema, tls = user["name"], user["schema"], module.params["require_ssl"]
    before = read_user(cursor, name, schema)
    after = ({"schema": True, "account": True, "max_connections": user["max_connections"],
              "grants": wanted_grants(user), "require_ssl": tls} if present else {"schema": False, "account": False})
    # The account logs in as it is now: over TLS where it needs it.
    ca_cert = module.params["ca_cert"] if before.get("require_ssl") else None
    if present and before.get("require_ssl") and not ca_cert:
        raise ValueError("the account needs TLS: give ca_cert, to check its password over TLS")
    new_password = present and before["account"] and not password_works(module, name, user["password"], ca_cert)

    def run(change, sql, args=()):
        if not module.check_mode:
            cursor.execute(sql, args)
        changes.append(f"{name} - {change}")

    # The account is always 'name'@'%' with the name a query parameter; the password only ever one.
    if not present:
        if before["account"]:
            run(f"dropped account {name}@%", "DROP USER %s@'%%'", (name,))
        if before["schema"]:
            run(f"dropped schema {schema}", f"DROP DATABASE {quote(schema)}")
        return before, dict(after, password_changed=False)
    if not before["schema"]:
        run(f"created schema {schema}", f"CREATE DATABASE {quote(schema)} CHARACTER SET utf8mb4")
    if not before["account"]:
        run(f"created account {name}@%", "CREATE USER %s@'%%' IDENTIFIED BY %s WITH MAX_USER_CONNECTIONS %s",
            (name, user["password"], user["max_connections"]))
    else:
        if new_password:
            run("changed the password", "ALTER USER %s@'%%' IDENTIFIED BY %s", (name, user["password"]))
        if before["max_connections"] != user["max_connections"]:
            run(f"set max_connections {user['max_connections']} (was {before['max_connections']})",
                "ALTER USER %s@'%%' WITH MAX_USER_CONNECTIONS %s", (name, user["max_connections"]))
    if before.get("require_ssl", False) != tls:
        run("requires TLS" if tls else "no longer requires TLS",
            f"ALTER USER %s@'%%' REQUIRE {'SSL' if tls else 'NONE'}", (name,))
    if before.get("grants") != after["grants"]:
        if before.get("grants"):
            run(f"revoked {'; '.join(before['grants'])}", "REVOKE ALL PRIVILEGES, GRANT OPTION FROM %s@'%%'",
                (name,))
        if user["admin"]:
            run(f"granted {ALL_ON_EVERYTHING}", "GRANT ALL PRIVILEGES ON *.* TO %s@'%%' WITH GRANT OPTION", (name,))
        else:
            target = schema_grant_target(schema)
            run(f"granted ALL ON {target}", f"GRANT ALL PRIVILEGES ON {target} TO %s@'%%'", (name,))
    return before, dict(after, password_changed=new_password)


def argument_spec():
    return database_argument_spec(
        users=dict(type="list", elements="dict", required=True, options=dict(
            name=dict(type="str", required=True),
            password=dict(type="str", no_log=True),
            schema=dict(type="str", required=True),
            admin=dict(type="bool", default=False),
            max_connections=dict(type="int", default=0))),
        require_ssl=dict(type="bool", default=False),
        ca_cert=dict(type="path"),
        new_only=dict(type="bool", default=False),
        state=dict(type="str", choices=["present", "absent"], default="present"))


def claims(cursor, user):
    """What of this user exists already: one phrase each."""
    state = read_user(cursor, user["name"], user["schema"])
    return ([f"account {user['name']}@%"] if state["account"] else []) + \
        ([f"schema {user['schema']}"] if state["schema"] else [])


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True,
                           required_if=[("require_ssl", True, ["ca_cert"])])
    present = module.params["state"] == "present"
    try:
        users = batch_items(module.params, "users", ["name"])
    except ValueError as error:
        module.fail_json(msg=str(error), changes=[])
    for user in users:
        message = problem(user, present)
        if message:
            module.fail_json(msg=message, changes=[])
    changes, before, after = [], {}, {}
    try:
        connection = database_connect(module)
    except Exception as error:  # pylint: disable=broad-except
        module.fail_json(msg=f"cannot log in as {module.params['login_user']}: {error_message(error)}", changes=[])
    with connection, connection.cursor() as cursor:
        if present and module.params["new_only"]:
            taken = {user["name"]: f"{user['name']}: {', '.join(found)}" for user in users if (found := claims(cursor, user))}
            if taken:
                module.fail_json(changes=[], **already_taken("database", taken))
        for user in users:
            try:
                before[user["name"]], after[user["name"]] = ensure_user(module, cursor, user, present, changes)
            except Exception as error:  # pylint: disable=broad-except
                module.fail_json(msg=f"user {user['name']}: {error_message(error)}", changes=changes)
    module.exit_json(changed=bool(changes), changes=changes, diff=dict(before=before, after=after))


if __name__ == "__main__":
    main()
