#!/usr/bin/python
"""Manage ZenML users, each with private secrets, a personal stack and a CI service account, on a ZenML server."""

DOCUMENTATION = r"""
module: zenml_users
short_description: Manage ZenML users with private secrets and their own stack
description:
  - For each user - creates the account (admin or not) and, logged in as that user, the user's
    B(private) secrets, stack components and stack, so the user owns them and nobody else sees the
    secrets. With O(state=absent), deletes every stack, component and secret the user owns, whatever its
    name (logged in as the user; when the password no longer logs in, the admin sets it first), then the
    account.
  - Refuses, before changing anything, a user whose names another account holds - a stack, component or
    secret of one of O(users[].stack), O(users[].components) or O(users[].secrets) owned by someone else,
    the service account of a user that does not exist, a deactivated account of that name - and names
    each one and its owner.
  - With O(users[].service_account), also the user's CI identity - a (non-admin) service account with one
    API key named C(ci) - and, logged in with that key, B(private) copies of the user's secrets, because a
    private secret is visible to its owner only and the user's stack resolves its C({{secret.key}})
    references by name as whoever runs the pipeline. ZenML shows an API key's value only when it is
    created or rotated - the module returns it in RV(api_keys) then; give it back in O(users[].api_key)
    on later runs. A key that is missing is created; one whose value does not log in is rotated.
  - ZenML refuses to delete an account that owns pipeline runs or other resources; the module then
    deactivates it (and deletes its API keys) and renames it C(_removed.<id>.<name>), so the name is free
    for a new account that sees nothing of the old one.
  - Takes many users at once, so a course roster costs one admin login and one read of what exists
    (a request per kind and 100 names), not one of each per student.
notes:
  - What the ZenML 0.98 OSS server enforces, measured against it - only admins may create, update,
    deactivate or delete service accounts and create, rotate, update or delete API keys, so a student
    cannot take over another user's (or their own) CI account; any user may list service accounts and
    API keys, but a key's value is never returned after its creation or rotation. Private secrets are
    hidden from every other account, admins included.
  - Not enforced by ZenML OSS (no RBAC) - any user may change or delete another user's stack and
    components, and may create a B(public) secret with the name of another user's private one; the
    client resolves C({{name.key}}) references to public secrets before private ones, so such a secret
    takes over what the other user's stack resolves.
options:
  users:
    description: The users. A name may appear once.
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
      service_account:
        description: Name of the user's CI service account; empty for none.
        type: str
        default: ""
      api_key:
        description: The value of the service account's API key from an earlier run; empty if not known.
        type: str
        default: ""
  new_only:
    description: With O(state=present), every user must be new - an existing account of that name is one more thing that refuses the run.
    type: bool
    default: false
  state:
    description: Whether the users exist.
    type: str
    choices: [present, absent]
    default: present
  workers:
    description:
      - How many users to handle at the same time. The server spends most of the time of each user
        hashing the password and API key (bcrypt), so a few at once keep it busy.
    type: int
    default: 4
extends_documentation_fragment:
  - zenml
  - stack.attributes_without_diff
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
        service_account: alice-ci
        api_key: "{{ lookup('ansible.builtin.file', 'alice_api_key', errors='ignore') | default('', true) }}"
  register: zenml
  no_log: true

- name: Keep the new API keys (shown only once)
  ansible.builtin.copy:
    content: "{{ item.value }}"
    dest: "{{ item.key }}_api_key"
    mode: "0600"
  loop: "{{ zenml.api_keys | dict2items }}"
  no_log: true
"""

RETURN = r"""
taken:
  description: With O(new_only), the names of the users something already holds (the module fails, naming each).
  returned: when O(new_only) finds any
  type: list
  elements: str
changes:
  description: What changed, one line each ("alice - created secret alice-s3").
  returned: always
  type: list
  elements: str
api_keys:
  description: The values of the API keys created or rotated by this run, user name to key.
  returned: always
  type: dict
"""

import functools
import json
import os
import shutil
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.stack_common import already_taken, batch_items, one_line
from ansible.module_utils.zenml_common import zenml_argument_spec

KEY_NAME = "ci"
# The client keeps the credentials of a login in one process-wide store per server URL.
LOGIN = threading.Lock()


class Store:
    """One identity's connection to the ZenML server (ZenML's own REST store), by password or API key."""

    def __init__(self, url, username=None, password=None, api_key=None):
        from zenml.zen_stores.rest_zen_store import RestZenStore, RestZenStoreConfiguration
        with LOGIN:
            self.rest = RestZenStore(config=RestZenStoreConfiguration(
                url=url, username=username, password=password, api_key=api_key or None))
            # The client keeps one login per server URL in the process, the last one configured: take
            # this identity's token now, so the connection keeps it whatever identity is configured next.
            self.rest.authenticate(force=True)

    @functools.cached_property
    def me(self):
        return self.rest.get_user().id

    def own_secret(self, name):
        """This identity's secret of that name (another user's public secret may have the same name)."""
        from zenml.models import SecretFilter
        found = self.rest.list_secrets(SecretFilter(name=name), hydrate=True).items
        return next((secret for secret in found if secret.user and secret.user.id == self.me), None)

    def api_keys(self, account):
        from zenml.models import APIKeyFilter
        return self.rest.list_api_keys(account.id, APIKeyFilter()).items


class Known:
    """What the server holds already among the names of this run, read once with the admin's connection
    (a request per CHUNK names and kind instead of one per name; in ZenML OSS everyone sees all of these)."""

    CHUNK = 100  # names per request, so the query string stays short

    LISTS = {"user": ("list_users", "UserFilter"), "service_account": ("list_service_accounts", "ServiceAccountFilter"),
             "component": ("list_stack_components", "ComponentFilter"), "stack": ("list_stacks", "StackFilter"),
             "secret": ("list_secrets", "SecretFilter")}

    def __init__(self, admin, names):
        from zenml import models
        self.items = {}
        for kind, (lister, filter_name) in self.LISTS.items():
            wanted = sorted(set(names[kind]))
            for start in range(0, len(wanted), self.CHUNK):
                query = getattr(models, filter_name)(name="oneof:" + json.dumps(wanted[start:start + self.CHUNK]),
                                                     size=self.CHUNK)
                # More pages than one where components of several types share a name.
                for item in every(getattr(admin.rest, lister), query):
                    self.items.setdefault(self.key(kind, item.name, item.type.value if kind == "component" else None),
                                          []).append(item)

    @staticmethod
    def key(kind, name, component_type=None):
        """A component's name is unique among those of its type only (e.g. "artifact_store")."""
        return kind, name, component_type if kind == "component" else None

    def find(self, kind, name, component_type=None):
        return next(iter(self.all(kind, name, component_type)), None)

    def all(self, kind, name, component_type=None):
        """Everything of that kind and name: one user or stack, secrets of several owners (admins see
        everyone's public secrets and their own private ones)."""
        return self.items.get(self.key(kind, name, component_type), [])


def conflicts(known, user, new_only=False):
    """What already claims one of this user's names and is not the user's: one phrase each, naming the
    owner. A deactivated account of that name is one: it was left by a removal before accounts were
    renamed, and taking it over would hand its resources to the newcomer."""
    account = known.find("user", user["name"])
    if account is not None and (new_only or not account.active):
        return [f"{'' if account.active else 'deactivated '}account {user['name']}"]
    mine = account.id if account else None
    wanted = ([("stack", user["stack"], None)] if user["stack"] else []) + \
        [("component", name, spec["type"]) for name, spec in user["components"].items()] + \
        [("secret", name, None) for name in user["secrets"]]
    found = [(kind, name, item.user) for kind, name, component_type in wanted
             for item in known.all(kind, name, component_type) if item.user is None or item.user.id != mine]
    service_account = known.find("service_account", user["service_account"]) if user["service_account"] else None
    if service_account is not None and account is None:
        found.append(("service account", service_account.name, None))
    return [f"{kind} {name} (owned by {owner.name if owner else 'nobody'})" for kind, name, owner in found]


def every(lister, query):
    """Every item of a paged list. Hydrated here: a lazy model would hydrate itself through the process's
    default store, not the connection that listed it."""
    while True:
        page = lister(query, hydrate=True)
        yield from page.items
        if page.index >= page.total_pages:
            return
        query.page = page.index + 1


def log_in(url, **credentials):
    """This identity's connection, or None when the server refuses the credentials."""
    if not all(credentials.values()):
        return None  # without credentials the client would log in with the last ones configured
    try:
        return Store(url, **credentials)
    except Exception:  # pylint: disable=broad-except
        return None


def delete_or_deactivate(delete, deactivate):
    """Delete an account; ZenML refuses to while it owns pipeline runs or other resources: deactivate it then."""
    from zenml.exceptions import IllegalOperationError
    try:
        delete()
        return "deleted"
    except IllegalOperationError:
        deactivate()
        return "deactivated and renamed (ZenML keeps accounts that own pipeline runs)"


def ensure_user(module, admin, known, user, changes):
    """The account; returns the user's own connection when the password logs in already, else None."""
    from zenml.models import UserRequest, UserUpdate
    url, name = module.params["zenml_url"], user["name"]
    found = known.find("user", name)
    if found is None:
        changes.append(f"{name} - created the account")
        if not module.check_mode:
            admin.rest.create_user(UserRequest(name=name, password=user["password"], is_admin=user["admin"], active=True))
        return None
    if found.is_admin != user["admin"]:
        changes.append(f"{name} - updated is_admin")
        if not module.check_mode:
            admin.rest.update_user(found.id, UserUpdate(is_admin=user["admin"]))
    store = log_in(url, username=name, password=user["password"])
    if store is None:  # another password
        changes.append(f"{name} - set the password")
        if not module.check_mode:
            set_password(admin, found, user["password"])
    return store


def set_password(admin, account, password):
    """Nobody may set another user's password: deactivating the account returns an activation token,
    which sets the password and activates the account again."""
    from zenml.constants import ACTIVATE, USERS
    from zenml.models import UserUpdate
    token = admin.rest.deactivate_user(account.id).activation_token
    admin.rest.put(f"{USERS}/{account.id}{ACTIVATE}", body=UserUpdate(password=password, activation_token=token))


def ensure_secrets(module, store, owner, secrets, changes, new_account=False):
    """Private secrets, created by `store`'s identity (named `owner` in the changes) so it owns them; an
    account created by this run has none yet."""
    from zenml.models import SecretRequest, SecretUpdate
    for secret_name, values in secrets.items():
        values = {k: str(v) for k, v in values.items()}
        found = None if new_account else store.own_secret(secret_name)
        if found is None:
            changes.append(f"{owner} - created secret {secret_name}")
            if not module.check_mode:
                store.rest.create_secret(SecretRequest(name=secret_name, private=True, values=values))
        elif not found.private or store.rest.get_secret(found.id).secret_values != values:
            changes.append(f"{owner} - updated secret {secret_name}")
            if not module.check_mode:
                store.rest.update_secret(found.id, SecretUpdate(private=True, values=values))


def ensure_stack(module, store, known, user, changes):
    """Components and stack, created by the user so the user owns them."""
    from zenml.enums import StackComponentType
    from zenml.models import ComponentRequest, ComponentUpdate, StackRequest
    name = user["name"]
    ids = {}
    for component_name, spec in user["components"].items():
        found = known.find("component", component_name, spec["type"])
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
    if user["stack"] and known.find("stack", user["stack"]) is None:
        changes.append(f"{name} - created stack {user['stack']}")
        if not module.check_mode:
            store.rest.create_stack(StackRequest(name=user["stack"], components=ids))


def returnable(module, admin, account, key):
    """The value of a new API key. Ansible masks every no_log value (a short user name, say) found inside
    a returned string, which would break the key: rotate it until it contains none."""
    from zenml.models import APIKeyRotateRequest
    for _ in range(20):
        if not any(value in key.key for value in module.no_log_values):
            return key.key
        key = admin.rest.rotate_api_key(account.id, key.id, APIKeyRotateRequest())
    raise ValueError(f"every new API key of {account.name} contains a secret value: are some secret values very short?")


def ensure_ci_account(module, admin, known, user, changes):
    """The user's service account with its API key and private copies of the user's secrets.

    Returns the key's value when this run created or rotated it (ZenML shows it only then), else None.
    """
    from zenml.models import (APIKeyRequest, APIKeyRotateRequest, APIKeyUpdate, ServiceAccountRequest,
                              ServiceAccountUpdate)
    url, account_name = module.params["zenml_url"], user["service_account"]
    account = known.find("service_account", account_name)
    key = next((k for k in admin.api_keys(account) if k.name == KEY_NAME), None) if account else None
    logged_in = log_in(url, api_key=user["api_key"]) if key is not None else None
    new_key, created = None, account is None
    if account is None:
        changes.append(f"{account_name} - created the service account of {user['name']}")
        if not module.check_mode:
            account = admin.rest.create_service_account(ServiceAccountRequest(
                name=account_name, active=True, description=f"CI runs of {user['name']}"))
    elif not account.active:
        changes.append(f"{account_name} - reactivated the service account")
        if not module.check_mode:
            admin.rest.update_service_account(account.id, ServiceAccountUpdate(active=True))
    if key is None:
        changes.append(f"{account_name} - created the API key")
        if not module.check_mode:
            new_key = returnable(module, admin, account, admin.rest.create_api_key(account.id, APIKeyRequest(name=KEY_NAME)))
    elif logged_in is None:
        changes.append(f"{account_name} - rotated the API key (the known value does not log in)")
        if not module.check_mode:
            if not key.active:
                admin.rest.update_api_key(account.id, key.id, APIKeyUpdate(active=True))
            new_key = returnable(module, admin, account, admin.rest.rotate_api_key(account.id, key.id, APIKeyRotateRequest()))
    store = Store(url, api_key=new_key) if new_key else logged_in
    if store:  # in check mode there is no key to log in with until the changes above are made
        ensure_secrets(module, store, account_name, user["secrets"], changes, new_account=created)
    return new_key


def delete_owned(store):
    """Delete everything the identity of `store` owns that ZenML lets its owner delete: stacks first (they
    hold the components), then components and secrets, whatever their names."""
    from zenml.models import ComponentFilter, SecretFilter, StackFilter
    for lister, query, delete in ((store.rest.list_stacks, StackFilter, store.rest.delete_stack),
                                  (store.rest.list_stack_components, ComponentFilter, store.rest.delete_stack_component),
                                  (store.rest.list_secrets, SecretFilter, store.rest.delete_secret)):
        for item in list(every(lister, query(user=store.me))):
            delete(item.id)


def retired_name(account):
    """The name a kept account takes, so that its own name is free for a new account: no user or service
    account name starts with an underscore."""
    return f"_removed.{account.id.hex[:8]}.{account.name}"


def remove_ci_account(module, admin, known, user, changes):
    """Delete what the service account owns (logged in with a key made for it), then the account; an
    account ZenML keeps loses its keys, is deactivated and renamed."""
    from zenml.models import APIKeyRequest, ServiceAccountUpdate
    account = known.find("service_account", user["service_account"])
    if account is None:
        return
    if module.check_mode:
        changes.append(f"{account.name} - deleted the service account, its API keys and secrets")
        return
    if not account.active:
        admin.rest.update_service_account(account.id, ServiceAccountUpdate(active=True))
    key = admin.rest.create_api_key(account.id, APIKeyRequest(name=f"removal-{os.getpid()}")).key
    delete_owned(Store(module.params["zenml_url"], api_key=key))

    def retire():
        for api_key in admin.api_keys(account):
            admin.rest.delete_api_key(account.id, api_key.id)
        admin.rest.update_service_account(account.id, ServiceAccountUpdate(name=retired_name(account), active=False))

    done = delete_or_deactivate(lambda: admin.rest.delete_service_account(account.id), retire)
    changes.append(f"{account.name} - {done} the service account, its API keys and secrets")


def remove(module, admin, known, user, changes):
    """Delete everything the user owns, whatever its name and whatever the user's password is now, then
    the account; an account ZenML keeps (it owns pipeline runs) is deactivated and renamed, so the name
    can be given to a new account that sees nothing of the old one."""
    from zenml.models import UserUpdate
    name = user["name"]
    if user["service_account"]:
        remove_ci_account(module, admin, known, user, changes)
    found = known.find("user", name)
    if found is None:
        return
    if module.check_mode:
        changes.append(f"{name} - deleted the account, its stacks, components and secrets")
        return
    store = log_in(module.params["zenml_url"], username=name, password=user["password"])
    if store is None:  # the user changed the password, or the account is deactivated
        set_password(admin, found, user["password"])
        store = Store(module.params["zenml_url"], name, user["password"])
    delete_owned(store)
    done = delete_or_deactivate(lambda: admin.rest.delete_user(found.id),
                                lambda: admin.rest.update_user(found.id, UserUpdate(name=retired_name(found),
                                                                                    active=False)))
    changes.append(f"{name} - {done} the account, its stacks, components and secrets")


def argument_spec():
    return zenml_argument_spec(
        users=dict(type="list", elements="dict", required=True, options=dict(
            name=dict(type="str", required=True),
            password=dict(type="str", required=True, no_log=True),
            admin=dict(type="bool", default=False),
            secrets=dict(type="dict", default={}, no_log=True),
            components=dict(type="dict", default={}),
            stack=dict(type="str", default=""),
            service_account=dict(type="str", default=""),
            api_key=dict(type="str", default="", no_log=True))),
        new_only=dict(type="bool", default=False),
        state=dict(type="str", choices=["present", "absent"], default="present"),
        workers=dict(type="int", default=4))


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    params = module.params
    try:  # one user in two threads would race with itself
        users = batch_items(params, "users", ["name"])
    except ValueError as error:
        module.fail_json(msg=str(error), changes=[], api_keys={})
    # The ZenML client keeps a global configuration, with each login's password or key and token: give this run
    # a private one (0700), deleted however the run ends (fail_json and exit_json leave through SystemExit).
    config = tempfile.mkdtemp(prefix="zenml-users-")
    os.environ["ZENML_CONFIG_PATH"] = config
    os.environ.setdefault("ZENML_ANALYTICS_OPT_IN", "false")
    os.environ.setdefault("ZENML_LOGGING_VERBOSITY", "ERROR")
    try:
        run(module, users)
    finally:
        shutil.rmtree(config, ignore_errors=True)


def run(module, users):
    params = module.params
    try:
        import zenml  # noqa: F401
    except ImportError:
        module.fail_json(msg="the Python library 'zenml' (the server's version) is required on the host running this module")
    url = params["zenml_url"]
    try:
        # One admin connection for every worker thread: its session keeps the admin's token.
        admin = Store(url, params["zenml_username"], params["zenml_password"])
        known = Known(admin, {
            "user": [user["name"] for user in users],
            "service_account": [user["service_account"] for user in users if user["service_account"]],
            "component": [name for user in users for name in user["components"]],
            "stack": [user["stack"] for user in users if user["stack"]],
            "secret": [name for user in users for name in user["secrets"]]})
    except Exception as error:  # the service's own message, on one line
        module.fail_json(msg=f"ZenML: {one_line(error)}")

    if params["state"] == "present":
        claimed = {user["name"]: f"{user['name']}: {', '.join(found)}" for user in users
                   if (found := conflicts(known, user, params["new_only"]))}
        if claimed:
            module.fail_json(changes=[], api_keys={}, **already_taken("ZenML", claimed))

    def work(user):
        """One user's changes, the new API key (or None) and the error (or None)."""
        changes, new_key = [], None
        try:
            if params["state"] == "absent":
                remove(module, admin, known, user, changes)
                return changes, None, None
            new_account = known.find("user", user["name"]) is None
            store = ensure_user(module, admin, known, user, changes)
            if store is None and not module.check_mode:  # created, or its password set, just now
                store = Store(url, user["name"], user["password"])
            if store:
                ensure_secrets(module, store, user["name"], user["secrets"], changes, new_account)
                ensure_stack(module, store, known, user, changes)
            if user["service_account"]:
                new_key = ensure_ci_account(module, admin, known, user, changes)
            return changes, new_key, None
        except Exception as error:  # the service's own message, on one line
            return changes, new_key, f"ZenML ({user['name']}): {one_line(error)}"

    # Users in parallel: the server spends most of each user's time hashing passwords and keys.
    with ThreadPoolExecutor(max_workers=max(1, min(params["workers"], len(users)))) as pool:
        results = list(pool.map(work, users))
    changes = [line for user_changes, _key, _error in results for line in user_changes]
    api_keys = {user["name"]: key for user, (_changes, key, _error) in zip(users, results) if key}
    errors = [error for _changes, _key, error in results if error]
    if errors:
        module.fail_json(msg=errors[0], changes=changes, api_keys=api_keys)
    module.exit_json(changed=bool(changes), changes=changes, api_keys=api_keys)


if __name__ == "__main__":
    main()
