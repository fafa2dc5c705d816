#!/usr/bin/python
"""Manage users and their policies on a MinIO-compatible server."""

DOCUMENTATION = r"""
module: minio_user
short_description: Manage users on a MinIO-compatible object store
description:
  - Creates or removes a user, enables it, sets its secret key and the exact list of policies attached to it.
  - The server never returns a secret key. With O(update_password=always) the module signs one request
    as the user; an authentication error means the secret differs, and only then is it set again.
    So a second run with the same secret reports no change.
  - With O(users), handles many users in order over one admin connection, so a course roster costs
    one task, not one per student.
options:
  access_key:
    description:
      - The user's access key (user name), 3 to 20 characters.
      - Exactly one of O(access_key) and O(users) is required.
    type: str
  secret_key:
    description: The user's secret key, 8 to 40 characters. Required with O(state=present).
    type: str
  users:
    description:
      - Many users, each with the options of the single form.
      - O(update_password) and O(state) apply to all of them.
      - With it, O(secret_key) and O(policies) are given per user only.
      - An access key may appear once.
    type: list
    elements: dict
    suboptions:
      access_key:
        description: As O(access_key).
        type: str
        required: true
      secret_key:
        description: As O(secret_key); required with O(state=present).
        type: str
      policies:
        description: As O(policies).
        type: list
        elements: str
        default: []
  update_password:
    description:
      - V(always) sets the secret key of an existing user when it differs from O(secret_key).
      - V(on_create) sets it only when the user is created; an existing user keeps its secret key.
    type: str
    choices: [always, on_create]
    default: always
  policies:
    description: Names of the policies attached to the user; others are detached. The policies must exist.
    type: list
    elements: str
    default: []
  new_only:
    description:
      - With O(state=present), every user must be new. Before changing anything, fail naming each access key
        already taken, by a user or by a service account (and whose it is). Also in check mode.
    type: bool
    default: false
  state:
    description: Whether the user (with O(users), every user) exists.
    type: str
    choices: [present, absent]
    default: present
extends_documentation_fragment:
  - minio
  - stack.attributes
notes:
  - The secret check is one signed C(ListBuckets) request as the user, which the server may log as a failed login.
"""

EXAMPLES = r"""
- name: A student who may use their own bucket
  minio_user:
    minio_access_key: "{{ root_user }}"
    minio_secret_key: "{{ root_password }}"
    access_key: alice
    secret_key: "{{ alice_secret }}"
    policies: [developer]
  no_log: true

- name: Keep whatever secret an existing service account has
  minio_user:
    minio_access_key: "{{ root_user }}"
    minio_secret_key: "{{ root_password }}"
    access_key: backup
    secret_key: "{{ backup_secret }}"
    update_password: on_create
    policies: [readwrite]
  no_log: true

- name: Many users in one task
  minio_user:
    minio_access_key: "{{ root_user }}"
    minio_secret_key: "{{ root_password }}"
    users:
      - {access_key: alice, secret_key: "{{ alice_secret }}", policies: [developer]}
      - {access_key: bob, secret_key: "{{ bob_secret }}", policies: [developer]}
  no_log: true

- name: Remove two users
  minio_user:
    minio_access_key: "{{ root_user }}"
    minio_secret_key: "{{ root_password }}"
    state: absent
    users: [{access_key: alice}, {access_key: bob}]
"""

RETURN = r"""
taken:
  description: With O(new_only), the names of the access keys something already holds (the module fails, naming each).
  returned: when O(new_only) finds any
  type: list
  elements: str
user:
  description: The user's state after the module ran (the secret key is never returned).
  returned: with O(access_key)
  type: dict
  sample: {exists: true, enabled: true, policies: [developer]}
secret_changed:
  description: Whether the secret key was (or in check mode would be) set.
  returned: with O(access_key)
  type: bool
users:
  description: Each user's access key and its state after the module ran (secret keys are never returned).
  returned: with O(users)
  type: dict
  sample: {alice: {exists: true, enabled: true, policies: [developer]}, bob: {exists: false}}
secrets_changed:
  description: The access keys whose secret key was (or in check mode would be) set.
  returned: with O(users)
  type: list
  elements: str
  sample: [alice]
"""

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.minio_common import (admin_error_code, admin_json, error_message, minio_argument_spec,
                                               minio_connect)
from ansible.module_utils.stack_common import already_taken, batch_items

AUTH_ERRORS = ("InvalidAccessKeyId", "SignatureDoesNotMatch")
# What MinIO answers (info-service-account) for an access key that is no service account.
# What MinIO answers info-service-account with for a key that is no service account: none by that key, or a
# user's key (MinIO's answer to that is AccessDenied).
NO_SERVICE_ACCOUNT = ("XMinioInvalidIAMCredentials", "AccessDenied")
USER = dict(  # one user: the single form's options and the suboptions of `users`
    access_key=dict(type="str", required=True, no_log=False),
    secret_key=dict(type="str", no_log=True),
    policies=dict(type="list", elements="str", default=[]))


def policy_names(value):
    """MinIO lists a user's policies as one comma-separated string."""
    return sorted({name.strip() for name in (value or "").split(",") if name.strip()})


def read_user(admin, access_key):
    from minio.error import MinioAdminException
    try:
        info = admin_json(admin.user_info(access_key))
    except MinioAdminException as error:
        if admin_error_code(error) == "XMinioAdminNoSuchUser":
            return {"exists": False}
        raise
    return {"exists": True, "enabled": info.get("status") == "enabled",
            "policies": policy_names(info.get("policyName"))}


def claim(admin, access_key):
    """Who holds this access key already, or None."""
    from minio.error import MinioAdminException
    try:  # first: MinIO refuses user-info on a service account's access key
        info = admin_json(admin.get_service_account(access_key))
    except MinioAdminException as error:
        if admin_error_code(error) not in NO_SERVICE_ACCOUNT:
            raise
        return f"user {access_key}" if read_user(admin, access_key)["exists"] else None
    return f"access key {access_key} (a service account of {info.get('parentUser') or 'nobody'})"


def secret_matches(module, access_key, secret_key):
    """Sign one request as the user: an authentication error means the secret differs."""
    from minio.error import S3Error
    client, _admin = minio_connect(module, access_key, secret_key)
    try:
        client.list_buckets()
    except S3Error as error:
        if error.code in AUTH_ERRORS:
            return False
        if error.code != "AccessDenied":  # signed correctly, just not allowed to list
            raise
    return True


def ensure(module, admin, spec, state):
    """Bring one user to `spec` and `state` (in check mode only compare).

    Returns (before, after, changed, secret_changed); update_password comes from the module params.
    """
    name = spec["access_key"]
    after = ({"exists": True, "enabled": True, "policies": sorted(set(spec["policies"]))}
             if state == "present" else {"exists": False})
    before = read_user(admin, name)
    new_secret = after["exists"] and (not before["exists"] or (
        module.params["update_password"] == "always" and
        (not before["enabled"] or not secret_matches(module, name, spec["secret_key"]))))
    changed = before != after or new_secret
    if changed and not module.check_mode:
        if not after["exists"]:
            admin.user_remove(name)
        else:
            if new_secret:
                admin.user_add(name, spec["secret_key"])  # creates, or sets secret and enables
            elif not before["enabled"]:
                admin.user_enable(name)
            attached = set(before.get("policies", []))
            wanted = set(after["policies"])
            if attached - wanted:
                admin.detach_policy(sorted(attached - wanted), user=name)
            if wanted - attached:
                admin.attach_policy(sorted(wanted - attached), user=name)
    return before, after, changed, new_secret


def argument_spec():
    return minio_argument_spec(
        users=dict(type="list", elements="dict", options=USER),
        update_password=dict(type="str", choices=["always", "on_create"], default="always", no_log=False),
        new_only=dict(type="bool", default=False),
        state=dict(type="str", choices=["present", "absent"], default="present"),
        **dict(USER, access_key=dict(type="str", no_log=False)))


def main():
    module = AnsibleModule(
        argument_spec=argument_spec(),
        mutually_exclusive=[["access_key", "users"], ["users", "secret_key"], ["users", "policies"]],
        required_one_of=[["access_key", "users"]],
        supports_check_mode=True,
    )
    params = module.params
    try:
        users = batch_items(params, "users", list(USER))
    except ValueError as error:
        module.fail_json(msg=str(error))
    for spec in users:
        if params["state"] == "present" and not spec["secret_key"]:
            module.fail_json(msg=f"user {spec['access_key']}: secret_key is required with state=present")
    _client, admin = minio_connect(module)
    if params["state"] == "present" and params["new_only"]:
        try:
            taken = {spec["access_key"]: found for spec in users if (found := claim(admin, spec["access_key"]))}
        except Exception as error:  # pylint: disable=broad-except
            module.fail_json(msg=f"cannot read the users: {error_message(error)}")
        if taken:
            module.fail_json(**already_taken("object store", taken))
    changed, results, secrets, diff = False, {}, [], dict(before={}, after={})
    for spec in users:
        name = spec["access_key"]
        try:
            before, after, user_changed, new_secret = ensure(module, admin, spec, params["state"])
        except Exception as error:  # pylint: disable=broad-except
            module.fail_json(msg=f"user {name}: {error_message(error)}", changed=changed)
        changed = changed or user_changed
        results[name] = after
        if new_secret:
            secrets.append(name)
        diff["before"][name], diff["after"][name] = before, dict(after, secret_changed=new_secret)
    if params["users"] is None:
        module.exit_json(changed=changed, user=after, secret_changed=new_secret,
                         diff=dict(before=before, after=diff["after"][name]))
    module.exit_json(changed=changed, users=results, secrets_changed=secrets, diff=diff)


if __name__ == "__main__":
    main()
