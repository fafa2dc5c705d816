#!/usr/bin/python
"""Manage a user of an MLflow tracking server with basic-auth."""

DOCUMENTATION = r"""
module: mlflow_user
short_description: Manage a user of an MLflow tracking server with basic-auth
description:
  - Creates or deletes a user, sets the password, the admin flag and the roles the user holds.
  - The password is checked by logging in as the user, so a second run reports no change.
options:
  username:
    description: The user's name.
    type: str
    required: true
  password:
    description: The user's password (MLflow requires 12 or more characters). Required with O(state=present).
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
  workspace:
    description: Workspace the roles belong to.
    type: str
    default: default
  state:
    description: Whether the user exists.
    type: str
    choices: [present, absent]
    default: present
extends_documentation_fragment:
  - mlflow
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
  idempotent:
    support: full
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
"""

RETURN = r"""
user:
  description: The user's state after the module ran (never the password).
  returned: always
  type: dict
  sample: {exists: true, admin: false, roles: [teachers]}
"""

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.mlflow_common import MLFLOW_CONNECTION_ARGS, MlflowApi

USERS = "2.0/mlflow/users"


def read_user(api, username, workspace):
    found = api.call("GET", f"{USERS}/get", missing_ok=True, username=username)
    if not found:
        return {"exists": False}
    roles = api.call("GET", "3.0/mlflow/users/roles/list", username=username)["roles"]
    return {"exists": True, "admin": bool(found["user"].get("is_admin")),
            "roles": sorted(r["name"] for r in roles if r.get("workspace", workspace) == workspace)}


def role_ids(api, workspace):
    roles = api.call("GET", "3.0/mlflow/roles/list", workspace=workspace)["roles"]
    return {role["name"]: role["id"] for role in roles}


def main():
    module = AnsibleModule(
        argument_spec=dict(
            username=dict(type="str", required=True),
            password=dict(type="str", no_log=True),
            admin=dict(type="bool", default=False),
            roles=dict(type="list", elements="str", default=[]),
            workspace=dict(type="str", default="default"),
            state=dict(type="str", choices=["present", "absent"], default="present"),
            **MLFLOW_CONNECTION_ARGS),
        required_if=[("state", "present", ["password"])],
        supports_check_mode=True,
    )
    params = module.params
    name, workspace = params["username"], params["workspace"]
    if params["state"] == "present" and len(params["password"]) < 12:
        module.fail_json(msg=f"user {name}: MLflow passwords need 12 or more characters")
    api = MlflowApi(module)
    after = ({"exists": True, "admin": params["admin"], "roles": sorted(set(params["roles"]))}
             if params["state"] == "present" else {"exists": False})
    try:
        before = read_user(api, name, workspace)
        new_password = (after["exists"] and before["exists"]
                        and not api.password_works(name, params["password"]))
        changed = before != after or new_password
        if changed and not module.check_mode:
            if not after["exists"]:
                api.call("DELETE", f"{USERS}/delete", username=name)
            else:
                if not before["exists"]:
                    api.call("POST", f"{USERS}/create", username=name, password=params["password"])
                    before = {"exists": True, "admin": False, "roles": []}
                elif new_password:
                    api.call("PATCH", f"{USERS}/update-password", username=name, password=params["password"])
                if before["admin"] != after["admin"]:
                    api.call("PATCH", f"{USERS}/update-admin", username=name, is_admin=after["admin"])
                ids = role_ids(api, workspace)
                missing = sorted(set(after["roles"]) - set(ids))
                if missing:
                    raise ValueError(f"no such role in workspace {workspace}: {', '.join(missing)}")
                for role in sorted(set(after["roles"]) - set(before["roles"])):
                    api.call("POST", "3.0/mlflow/roles/assign", username=name, role_id=ids[role])
                for role in sorted(set(before["roles"]) - set(after["roles"])):
                    api.call("DELETE", "3.0/mlflow/roles/unassign", username=name, role_id=ids[role])
    except Exception as error:  # the service's own message, on one line
        module.fail_json(msg=f"user {name}: {error}")
    module.exit_json(changed=changed, user=after,
                     diff=dict(before=before, after=dict(after, password_changed=new_password)))


if __name__ == "__main__":
    main()
