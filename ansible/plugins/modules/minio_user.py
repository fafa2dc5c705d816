#!/usr/bin/python
"""Manage a user and its policies on a MinIO-compatible server."""

DOCUMENTATION = r"""
module: minio_user
short_description: Manage a user on a MinIO-compatible object store
description:
  - Creates or removes a user, enables it, sets its secret key and the exact list of policies attached to it.
  - The server never returns a secret key. With O(update_password=always) the module signs one request
    as the user; an authentication error means the secret differs, and only then is it set again.
    So a second run with the same secret reports no change.
options:
  access_key:
    description: The user's access key (user name), 3 to 20 characters.
    type: str
    required: true
  secret_key:
    description: The user's secret key, 8 to 40 characters. Required with O(state=present).
    type: str
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
  state:
    description: Whether the user exists.
    type: str
    choices: [present, absent]
    default: present
extends_documentation_fragment:
  - minio
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
  idempotent:
    support: full
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
"""

RETURN = r"""
user:
  description: The user's state after the module ran (the secret key is never returned).
  returned: always
  type: dict
  sample: {exists: true, enabled: true, policies: [developer]}
secret_changed:
  description: Whether the secret key was (or in check mode would be) set.
  returned: always
  type: bool
"""

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.minio_common import (admin_error_code, admin_json, error_message,
                                               minio_argument_spec, minio_connect)

AUTH_ERRORS = ("InvalidAccessKeyId", "SignatureDoesNotMatch")


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


def main():
    module = AnsibleModule(
        argument_spec=minio_argument_spec(
            access_key=dict(type="str", required=True, no_log=False),
            secret_key=dict(type="str", no_log=True),
            update_password=dict(type="str", choices=["always", "on_create"], default="always"),
            policies=dict(type="list", elements="str", default=[]),
            state=dict(type="str", choices=["present", "absent"], default="present")),
        required_if=[("state", "present", ["secret_key"])],
        supports_check_mode=True,
    )
    params = module.params
    name = params["access_key"]
    _client, admin = minio_connect(module)
    after = ({"exists": True, "enabled": True, "policies": sorted(set(params["policies"]))}
             if params["state"] == "present" else {"exists": False})
    new_secret = False
    try:
        before = read_user(admin, name)
        if after["exists"]:
            new_secret = not before["exists"] or (
                params["update_password"] == "always" and
                (not before["enabled"] or not secret_matches(module, name, params["secret_key"])))
        changed = before != after or new_secret
        if changed and not module.check_mode:
            if not after["exists"]:
                admin.user_remove(name)
            else:
                if new_secret:
                    admin.user_add(name, params["secret_key"])  # creates, or sets secret and enables
                elif not before["enabled"]:
                    admin.user_enable(name)
                attached = set(before.get("policies", []))
                wanted = set(after["policies"])
                if attached - wanted:
                    admin.detach_policy(sorted(attached - wanted), user=name)
                if wanted - attached:
                    admin.attach_policy(sorted(wanted - attached), user=name)
    except Exception as error:  # pylint: disable=broad-except
        module.fail_json(msg=f"user {name}: {error_message(error)}")
    module.exit_json(changed=changed, user=after, secret_changed=new_secret,
                     diff=dict(before=before, after=dict(after, secret_changed=new_secret)))


if __name__ == "__main__":
    main()
