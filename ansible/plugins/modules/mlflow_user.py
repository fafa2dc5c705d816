#!/usr/bin/python
"""Manage a user of an MLflow tracking server with basic-auth."""

DOCUMENTATION = r"""
module: mlflow_user
short_description: Manage users of an MLflow tracking server with basic-auth
description:
  - Creates or deletes a user, sets the password, the admin flag and the roles the user holds.
  - With O(users), does the same for many users in one session; all of them are validated before
    anything changes.
  - The password is checked by logging in as the user, so a second run reports no change.
  - With O(state=absent), first deletes the experiments and registered models that only this user
    manages (MLflow gives the creator MANAGE); an experiment is renamed to C(_removed.<id>.<name>), a
    name no user owns (user names start with a letter), and then deleted, so its name is free again (its
    runs and artifacts stay in MLflow's trash until C(mlflow gc) on the server); a registered model is
    deleted for good. What
    another user manages as well is left alone. O(delete_owned=false) keeps all of it.
  - MLflow keeps each user's own permissions in a hidden role C(__user_<id>__); the module neither
    lists nor touches it in O(roles).
options:
  username:
    description: The user's name. Exactly one of O(username) and O(users) is required.
    type: str
  password:
    description:
      - The user's password (MLflow requires 12 or more characters). Required with O(state=present).
      - Only with O(username).
    type: str
  admin:
    description: Whether the user is an MLflow admin. Only with O(username).
    type: bool
    default: false
  roles:
    description: Names of roles (in O(workspace)) the user holds; others are taken away. Only with O(username).
    type: list
    elements: str
    default: []
  users:
    description:
      - Many users, each described like the single form. Exactly one of O(username) and O(users) is required.
      - A name may appear once.
    type: list
    elements: dict
    suboptions:
      username:
        description: The user's name.
        type: str
        required: true
      password:
        description: The user's password, 12 or more characters. Required with O(state=present).
        type: str
      admin:
        description: Whether the user is an MLflow admin.
        type: bool
        default: false
      roles:
        description: Names of roles (in O(workspace)) the user holds; others are taken away.
        type: list
        elements: str
        default: []
  delete_owned:
    description: With O(state=absent), delete the experiments and registered models only the user manages.
    type: bool
    default: true
  new_only:
    description:
      - With O(state=present), every user must be new. Before changing anything, fail naming each account,
        experiment and registered model that already holds a user's names (the user name, or the user
        name, a dot and anything, the names the stack's MLflow rules give that user) and who manages it.
      - Also in check mode, so a dry run finds what a real run would refuse.
    type: bool
    default: false
  workspace:
    description: Workspace the roles belong to.
    type: str
    default: default
  state:
    description: Whether the user (or every user in O(users)) exists.
    type: str
    choices: [present, absent]
    default: present
extends_documentation_fragment:
  - mlflow
  - stack.attributes
"""

EXAMPLES = r"""
- name: A teacher who reads every experiment through the role "teachers"
  mlflow_user:
    mlflow_url: http://127.0.0.1:5000
    mlflow_username: "{{ admin_user }}"
    mlflow_password: "{{ admin_password }}"
    username: bob
    password: "{{ bob_password }}"
    roles: [teachers]
  no_log: true

- name: Two students and a teacher in one session
  mlflow_user:
    mlflow_url: http://127.0.0.1:5000
    mlflow_username: "{{ admin_user }}"
    mlflow_password: "{{ admin_password }}"
    users:
      - {username: alice, password: "{{ alice_password }}"}
      - {username: carol, password: "{{ carol_password }}"}
      - {username: bob, password: "{{ bob_password }}", roles: [teachers]}
  no_log: true
"""

RETURN = r"""
taken:
  description: With O(new_only), the names of the users something already holds (the module fails, naming each).
  returned: when O(new_only) finds any
  type: list
  elements: str
user:
  description: The user's state after the module ran (never the password).
  returned: with O(username)
  type: dict
  sample: {exists: true, admin: false, roles: [teachers]}
users:
  description: Each user's state after the module ran, keyed by user name (never a password).
  returned: with O(users)
  type: dict
  sample: {alice: {exists: true, admin: false, roles: []}, bob: {exists: false}}
diff:
  description:
    - Before and after; with O(users) keyed by user name.
    - C(password_changed) says whether the password was (or in check mode would be) set.
  returned: always
  type: dict
"""

import re

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.mlflow_common import MlflowApi, mlflow_argument_spec
from ansible.module_utils.stack_common import already_taken, batch_items, one_line

USERS = "2.0/mlflow/users"
# MLflow's hidden role holding one user's own permissions (MANAGE on what the user created).
OWN_ROLE = re.compile(r"^__user_\d+__$")
USER = dict(  # one user: the single form's options and the suboptions of `users`
    username=dict(type="str", required=True),
    password=dict(type="str", no_log=True),
    admin=dict(type="bool", default=False),
    roles=dict(type="list", elements="str", default=[]))



def read_users(api, workspace):
    """Every user's state keyed by name, and the list as the server gave it: one request."""
    listed = api.call("GET", f"{USERS}/list")["users"]
    return {found["username"]: {
        "exists": True, "admin": bool(found.get("is_admin")),
        "roles": sorted(r["name"] for r in found.get("roles", [])
                        if r.get("workspace", workspace) == workspace and not OWN_ROLE.match(r["name"]))}
        for found in listed}, listed


def managed_only_by(listed, username):
    """(experiment ids, registered model names) that this user manages and no other user does."""
    def managed(user):
        return {(p["resource_type"], p["resource_pattern"]) for role in user.get("roles", [])
                if OWN_ROLE.match(role["name"]) for p in role.get("permissions", []) if p["permission"] == "MANAGE"}
    mine = set().union(*[managed(user) for user in listed if user["username"] == username])
    others = set().union(*[managed(user) for user in listed if user["username"] != username])
    only = sorted(mine - others)
    return ([pattern for kind, pattern in only if kind == "experiment"],
            [pattern for kind, pattern in only if kind == "registered_model"])


def delete_owned(api, experiments, models):
    """Free the experiments' names, delete them and the registered models."""
    for experiment_id in experiments:
        found = api.call("GET", "2.0/mlflow/experiments/get", missing_ok=True, experiment_id=experiment_id)
        if not found:
            continue
        experiment = found["experiment"]
        if experiment.get("lifecycle_stage") == "active":
            api.call("POST", "2.0/mlflow/experiments/update", experiment_id=experiment_id,
                     new_name=f"_removed.{experiment_id}.{experiment['name']}")
            api.call("POST", "2.0/mlflow/experiments/delete", experiment_id=experiment_id)
    for name in models:
        api.call("DELETE", "2.0/mlflow/registered-models/delete", missing_ok=True, name=name)


def managers(listed):
    """Who manages what: (resource type, experiment id or model name) to the users whose own role has MANAGE."""
    found = {}
    for user in listed:
        for role in user.get("roles", []):
            if OWN_ROLE.match(role["name"]):
                for grant in role.get("permissions", []):
                    if grant["permission"] == "MANAGE":
                        found.setdefault((grant["resource_type"], grant["resource_pattern"]), []).append(user["username"])
    return found


def every(api, method, path, key, **query):
    """Every item of a paged MLflow search."""
    items, token = [], None
    while True:
        answer = api.call(method, path, max_results=1000, **query, **({"page_token": token} if token else {}))
        items += answer.get(key, [])
        token = answer.get("next_page_token")
        if not token:
            return items


def claims(api, listed, names):
    """What already holds each user's names (the name, or the name, a dot and anything): user name to one
    phrase each, with who manages it. Reads every experiment and registered model once, not per user."""
    owners = managers(listed)
    experiments = every(api, "POST", "2.0/mlflow/experiments/search", "experiments", view_type="ALL")
    models = every(api, "GET", "2.0/mlflow/registered-models/search", "registered_models")

    def owner(kind, key):
        return ", ".join(sorted(owners.get((kind, key), []))) or "nobody"

    def theirs(name, item_name):
        return item_name == name or item_name.startswith(name + ".")

    accounts = {user["username"] for user in listed}
    return {name: ([f"account {name}"] if name in accounts else [])
            + [f"experiment {e['name']} (managed by {owner('experiment', e['experiment_id'])})"
               for e in experiments if theirs(name, e["name"])]
            + [f"registered model {m['name']} (managed by {owner('registered_model', m['name'])})"
               for m in models if theirs(name, m["name"])]
            for name in names}


def role_ids(api, workspace):
    roles = api.call("GET", "3.0/mlflow/roles/list", workspace=workspace)["roles"]
    return {role["name"]: role["id"] for role in roles}


def problem(user, present):
    """Why this user cannot be applied, or None."""
    name = user["username"]
    if present and not user["password"]:
        return f"user {name}: a password is required with state=present"
    if present and len(user["password"]) < 12:
        return f"user {name}: MLflow passwords need 12 or more characters"
    return None


def ensure_user(api, user, before, workspace, present, check_mode, ids, owned=((), ())):
    """Change what differs from before (read_users), return (before, after, password_changed).

    ids: the workspace's role ids, read when first needed and kept for the next users.
    owned: (experiment ids, registered model names) to delete with the user.
    """
    name = user["username"]
    after = ({"exists": True, "admin": user["admin"], "roles": sorted(set(user["roles"]))}
             if present else {"exists": False})
    new_password = (after["exists"] and before["exists"]
                    and not api.password_works(name, user["password"]))
    if (before == after and not new_password) or check_mode:
        return before, after, new_password
    if not after["exists"]:
        delete_owned(api, *owned)
        api.call("DELETE", f"{USERS}/delete", username=name)
        return before, after, new_password
    current = before
    if not before["exists"]:
        api.call("POST", f"{USERS}/create", username=name, password=user["password"])
        current = {"exists": True, "admin": False, "roles": []}
    elif new_password:
        api.call("PATCH", f"{USERS}/update-password", username=name, password=user["password"])
    if current["admin"] != after["admin"]:
        api.call("PATCH", f"{USERS}/update-admin", username=name, is_admin=after["admin"])
    if not ids:
        ids.update(role_ids(api, workspace))
    missing = sorted(set(after["roles"]) - set(ids))
    if missing:
        raise ValueError(f"no such role in workspace {workspace}: {', '.join(missing)}")
    for role in sorted(set(after["roles"]) - set(current["roles"])):
        api.call("POST", "3.0/mlflow/roles/assign", username=name, role_id=ids[role])
    for role in sorted(set(current["roles"]) - set(after["roles"])):
        api.call("DELETE", "3.0/mlflow/roles/unassign", username=name, role_id=ids[role])
    return before, after, new_password


def argument_spec():
    return mlflow_argument_spec(
        users=dict(type="list", elements="dict", options=USER),
        delete_owned=dict(type="bool", default=True),
        new_only=dict(type="bool", default=False),
        workspace=dict(type="str", default="default"),
        state=dict(type="str", choices=["present", "absent"], default="present"),
        **dict(USER, username=dict(type="str")))


def main():
    module = AnsibleModule(
        argument_spec=argument_spec(),
        required_one_of=[("username", "users")],
        mutually_exclusive=[("users", option) for option in USER],
        supports_check_mode=True,
    )
    params = module.params
    single = params["username"] is not None
    try:
        users = batch_items(params, "users", list(USER))
    except ValueError as error:
        module.fail_json(msg=str(error))
    present = params["state"] == "present"
    for user in users:
        message = problem(user, present)
        if message:
            module.fail_json(msg=message)
    api, ids, done = MlflowApi(module), {}, {}
    try:
        known, listed = read_users(api, params["workspace"])
    except Exception as error:  # pylint: disable=broad-except
        module.fail_json(msg=f"cannot list the users: {one_line(error)}")
    if present and params["new_only"]:
        try:
            found = claims(api, listed, [user["username"] for user in users])
            taken = {name: f"{name}: {', '.join(phrases)}" for name, phrases in found.items() if phrases}
        except Exception as error:  # pylint: disable=broad-except
            module.fail_json(msg=f"cannot search the experiments and models: {one_line(error)}")
        if taken:
            module.fail_json(**already_taken("MLflow", taken))
    for user in users:
        name = user["username"]
        try:
            owned = managed_only_by(listed, name) if params["delete_owned"] else ((), ())
            done[name] = ensure_user(api, user, known.get(name, {"exists": False}), params["workspace"], present,
                                     module.check_mode, ids, owned)
        except Exception as error:  # pylint: disable=broad-except
            module.fail_json(msg=f"user {name}: {one_line(error)}")
    changed = any(old != new or new_password for old, new, new_password in done.values())
    before = {name: result[0] for name, result in done.items()}
    after = {name: dict(result[1], password_changed=result[2]) for name, result in done.items()}
    if single:
        name = params["username"]
        module.exit_json(changed=changed, user=done[name][1], diff=dict(before=before[name], after=after[name]))
    module.exit_json(changed=changed, users={name: result[1] for name, result in done.items()},
                     diff=dict(before=before, after=after))


if __name__ == "__main__":
    main()
