#!/usr/bin/python
"""Manage a role (a named set of permissions) of an MLflow tracking server with basic-auth."""

DOCUMENTATION = r"""
module: mlflow_role
short_description: Manage a role of an MLflow tracking server with basic-auth
description:
  - Creates a role in a workspace and makes its permissions exactly the given list; or deletes it.
options:
  name:
    description: Name of the role.
    type: str
    required: true
  workspace:
    description: Workspace of the role.
    type: str
    default: default
  permissions:
    description: The role's permissions.
    type: list
    elements: dict
    default: []
    suboptions:
      resource_type:
        description: Kind of resource, e.g. V(experiment) or V(registered_model).
        type: str
        required: true
      resource_pattern:
        description: Which resources; V(*) for all of that kind.
        type: str
        default: "*"
      permission:
        description: V(READ), V(USE), V(EDIT), V(MANAGE) or V(NO_PERMISSIONS).
        type: str
        required: true
  state:
    description: Whether the role exists.
    type: str
    choices: [present, absent]
    default: present
extends_documentation_fragment:
  - mlflow
  - stack.attributes
"""

EXAMPLES = r"""
- name: Teachers read every experiment and registered model
  mlflow_role:
    mlflow_url: http://127.0.0.1:5000
    mlflow_username: "{{ admin_user }}"
    mlflow_password: "{{ admin_password }}"
    name: teachers
    permissions:
      - {resource_type: experiment, permission: READ}
      - {resource_type: registered_model, permission: READ}
"""

RETURN = r"""
role:
  description: The role after the module ran.
  returned: always
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.mlflow_common import MlflowApi, mlflow_argument_spec
from ansible.module_utils.stack_common import one_line

ROLES = "3.0/mlflow/roles"


def grant_key(grant):
    return (grant["resource_type"], grant["resource_pattern"], grant["permission"])


def read_role(api, name, workspace):
    roles = [r for r in api.call("GET", f"{ROLES}/list", workspace=workspace)["roles"] if r["name"] == name]
    if not roles:
        return None, {"exists": False}
    grants = api.call("GET", f"{ROLES}/permissions/list", role_id=roles[0]["id"])["role_permissions"]
    return roles[0]["id"], {"exists": True, "permissions": sorted(grant_key(g) for g in grants)}, grants


def argument_spec():
    return mlflow_argument_spec(
        name=dict(type="str", required=True),
        workspace=dict(type="str", default="default"),
        permissions=dict(type="list", elements="dict", default=[], options=dict(
            resource_type=dict(type="str", required=True),
            resource_pattern=dict(type="str", default="*"),
            permission=dict(type="str", required=True))),
        state=dict(type="str", choices=["present", "absent"], default="present"))


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    params = module.params
    name, workspace = params["name"], params["workspace"]
    api = MlflowApi(module)
    after = ({"exists": True, "permissions": sorted(set(grant_key(p) for p in params["permissions"]))}
             if params["state"] == "present" else {"exists": False})
    try:
        role_id, before, *rest = read_role(api, name, workspace)
        changed = before != after
        if changed and not module.check_mode:
            if not after["exists"]:
                api.call("DELETE", f"{ROLES}/delete", role_id=role_id)
            else:
                if role_id is None:
                    role_id = api.call("POST", f"{ROLES}/create", name=name, workspace=workspace)["role"]["id"]
                    rest = [[]]
                for grant in rest[0]:
                    if grant_key(grant) not in after["permissions"]:
                        api.call("DELETE", f"{ROLES}/permissions/remove", role_permission_id=grant["id"])
                for key in sorted(set(after["permissions"]) - set(before.get("permissions", []))):
                    api.call("POST", f"{ROLES}/permissions/add", role_id=role_id, resource_type=key[0],
                             resource_pattern=key[1], permission=key[2])
    except Exception as error:  # pylint: disable=broad-except
        module.fail_json(msg=f"role {name}: {one_line(error)}")
    module.exit_json(changed=changed, role=after, diff=dict(before=before, after=after))


if __name__ == "__main__":
    main()
