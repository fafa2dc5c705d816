#!/usr/bin/python
"""Manage ZenML users, each with private secrets and a personal stack, on a ZenML server."""

DOCUMENTATION = r"""
module: zenml_users
short_description: Manage ZenML users with private secrets and their own stack
description:
  - For each user - creates the account (admin or not) and, logged in as that user, the user's
    B(private) secrets, stack components and stack, so the user owns them and nobody else sees the
    secrets. With O(state=absent), deletes the stack, components and secrets as the user, then the account.
  - Takes many users at once, so a course roster costs one connection setup, not one per student.
options:
  zenml_url:
    description: URL of the ZenML server.
    type: str
    required: true
  zenml_username:
    description: A ZenML admin account.
    type: str
    required: true
  zenml_password:
    description: Password of that account.
    type: str
    required: true
  users:
    description: The users.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: User name.
        type: str
        required: true
      password:
        description: The user's password.
        type: str
        required: true
      admin:
        description: Whether the user is a ZenML admin.
        type: bool
        default: false
      secrets:
        description: Private secrets of the user, name to a dictionary of values.
        type: dict
        default: {}
      components:
        description: Stack components of the user - name to C(type), C(flavor), C(configuration).
        type: dict
        default: {}
      stack:
        description: Name of the user's stack, made of all O(users[].components); empty for none.
        type: str
        default: ""
  state:
    description: Whether the users exist.
    type: str
    choices: [present, absent]
    default: present
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  idempotent:
    support: full
requirements:
  - zenml (the version of the server) on the host that runs the module
"""

EXAMPLES = r"""
- name: A student with a private S3 secret and a stack
  zenml_users:
    zenml_url: http://127.0.0.1:8080
    zenml_username: "{{ admin_user }}"
    zenml_password: "{{ admin_password }}"
    users:
      - name: alice
        password: "{{ alice_password }}"
        secrets:
          alice-s3: {aws_access_key_id: alice, aws_secret_access_key: "{{ alice_s3 }}"}
        components:
          alice-artifacts:
            type: artifact_store
            flavor: s3
            configuration: {path: "s3://alice", key: "{{ '{{' }}alice-s3.aws_access_key_id{{ '}}' }}"}
        stack: alice
  no_log: true
"""

RETURN = r"""
changes:
  description: What changed, one line each ("alice - created secret alice-s3").
  returned: always
  type: list
  elements: str
"""

import os
import tempfile

from ansible.module_utils.basic import AnsibleModule


class Store:
    """One identity's connection to the ZenML server (ZenML's own REST store)."""

    def __init__(self, url, username, password):
        from zenml.zen_stores.rest_zen_store import RestZenStore, RestZenStoreConfiguration
        self.rest = RestZenStore(config=RestZenStoreConfiguration(url=url, username=username, password=password))

    def find(self, kind, name):
        from zenml import models
        lister, filter_class = {
            "user": ("list_users", models.UserFilter), "secret": ("list_secrets", models.SecretFilter),
            "component": ("list_stack_components", models.ComponentFilter),
            "stack": ("list_stacks", models.StackFilter)}[kind]
        items = getattr(self.rest, lister)(filter_class(name=name)).items
        return items[0] if items else None


def can_log_in(url, name, password):
    """Ask the server for a token as this user (the server info alone needs no login)."""
    try:
        Store(url, name, password).rest.authenticate(force=True)
        return True
    except Exception:  # pylint: disable=broad-except
        return False


def ensure_user(module, admin, user, changes):
    from zenml.models import UserRequest, UserUpdate
    url, name = module.params["zenml_url"], user["name"]
    found = admin.find("user", name)
    if found is None:
        changes.append(f"{name} - created the account")
        if not module.check_mode:
            admin.rest.create_user(UserRequest(name=name, password=user["password"], is_admin=user["admin"], active=True))
        return
    update = {}
    if found.is_admin != user["admin"]:
        update["is_admin"] = user["admin"]
    if not can_log_in(url, name, user["password"]):
        update["password"] = user["password"]
    if update:
        changes.append(f"{name} - updated {', '.join(sorted(update))}")
        if not module.check_mode:
            admin.rest.update_user(found.id, UserUpdate(**update))


def ensure_owned(module, store, user, changes):
    """Secrets, components and stack, created by the user so the user owns them."""
    from zenml.enums import StackComponentType
    from zenml.models import ComponentRequest, ComponentUpdate, SecretRequest, SecretUpdate, StackRequest
    name = user["name"]
    for secret_name, values in user["secrets"].items():
        values = {k: str(v) for k, v in values.items()}
        found = store.find("secret", secret_name)
        if found is None:
            changes.append(f"{name} - created secret {secret_name}")
            if not module.check_mode:
                store.rest.create_secret(SecretRequest(name=secret_name, private=True, values=values))
        elif not found.private or store.rest.get_secret(found.id).secret_values != values:
            changes.append(f"{name} - updated secret {secret_name}")
            if not module.check_mode:
                store.rest.update_secret(found.id, SecretUpdate(private=True, values=values))
    ids = {}
    for component_name, spec in user["components"].items():
        found = store.find("component", component_name)
        if found is None:
            changes.append(f"{name} - created component {component_name}")
            if not module.check_mode:
                found = store.rest.create_stack_component(ComponentRequest(
                    name=component_name, type=StackComponentType(spec["type"]), flavor=spec["flavor"],
                    configuration=spec.get("configuration", {})))
        elif found.configuration != spec.get("configuration", {}):
            changes.append(f"{name} - updated component {component_name}")
            if not module.check_mode:
                store.rest.update_stack_component(found.id, ComponentUpdate(configuration=spec.get("configuration", {})))
        if found is not None:
            ids[StackComponentType(spec["type"])] = [found.id]
    if user["stack"] and store.find("stack", user["stack"]) is None:
        changes.append(f"{name} - created stack {user['stack']}")
        if not module.check_mode:
            store.rest.create_stack(StackRequest(name=user["stack"], components=ids))


def remove(module, admin, user, changes):
    name = user["name"]
    if admin.find("user", name) is None:
        return
    changes.append(f"{name} - deleted the account, its stack, components and secrets")
    if module.check_mode:
        return
    if can_log_in(module.params["zenml_url"], name, user["password"]):
        store = Store(module.params["zenml_url"], name, user["password"])
        if user["stack"] and (stack := store.find("stack", user["stack"])):
            store.rest.delete_stack(stack.id)
        for component_name in user["components"]:
            if component := store.find("component", component_name):
                store.rest.delete_stack_component(component.id)
        for secret_name in user["secrets"]:
            if secret := store.find("secret", secret_name):
                store.rest.delete_secret(secret.id)
    admin.rest.delete_user(name)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            zenml_url=dict(type="str", required=True),
            zenml_username=dict(type="str", required=True),
            zenml_password=dict(type="str", required=True, no_log=True),
            users=dict(type="list", elements="dict", required=True, options=dict(
                name=dict(type="str", required=True),
                password=dict(type="str", required=True, no_log=True),
                admin=dict(type="bool", default=False),
                secrets=dict(type="dict", default={}, no_log=True),
                components=dict(type="dict", default={}),
                stack=dict(type="str", default=""))),
            state=dict(type="str", choices=["present", "absent"], default="present")),
        supports_check_mode=True,
    )
    params = module.params
    # The ZenML client keeps a global configuration: give this run a private, throw-away one.
    os.environ["ZENML_CONFIG_PATH"] = tempfile.mkdtemp(prefix="zenml-users-")
    os.environ.setdefault("ZENML_ANALYTICS_OPT_IN", "false")
    os.environ.setdefault("ZENML_LOGGING_VERBOSITY", "ERROR")
    try:
        import zenml  # noqa: F401
    except ImportError:
        module.fail_json(msg="the Python library 'zenml' (the server's version) is required on the host running this module")
    changes = []
    try:
        admin = Store(params["zenml_url"], params["zenml_username"], params["zenml_password"])
        for user in params["users"]:
            if params["state"] == "absent":
                remove(module, admin, user, changes)
                continue
            ensure_user(module, admin, user, changes)
            if not module.check_mode or admin.find("user", user["name"]) is not None:
                ensure_owned(module, Store(params["zenml_url"], user["name"], user["password"]), user, changes)
    except Exception as error:  # the service's own message, on one line
        module.fail_json(msg=f"ZenML: {' '.join(str(error).split())[:500]}", changes=changes)
    module.exit_json(changed=bool(changes), changes=changes)


if __name__ == "__main__":
    main()
