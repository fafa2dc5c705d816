#!/usr/bin/python
"""Manage a user and its policies on a MinIO-compatible server."""

DOCUMENTATION = r"""
module: minio_user
short_description: Manage a user on a MinIO-compatible object store
description:
  - Creates or removes a user, sets its secret key and the exact list of policies attached to it.
  - The secret key is checked by signing a request as the user, so a changed secret is detected
    and a second run with the same secret reports no change.
options:
  access_key:
    description: The user's access key (user name).
    type: str
    required: true
  secret_key:
    description: The user's secret key (8 to 40 characters). Required with O(state=present).
    type: str
  policies:
    description: Names of the policies attached to the user; others are detached.
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
"""

EXAMPLES = r"""
- name: A student who may use their own bucket
  minio_user:
    minio_url: http://127.0.0.1:9000
    minio_access_key: "{{ root_user }}"
    minio_secret_key: "{{ root_password }}"
    access_key: alice
    secret_key: "{{ alice_secret }}"
    policies: [developer]
  no_log: true
"""

RETURN = r"""
user:
  description: The user's state after the module ran (the secret is never returned).
  returned: always
  type: dict
  sample: {exists: true, policies: [developer]}
"""

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.minio_common import MINIO_CONNECTION_ARGS, admin_json, minio_connect

AUTH_ERRORS = ("InvalidAccessKeyId", "SignatureDoesNotMatch")


def policy_names(value):
    """MinIO lists a user's policies as one comma-separated string."""
    return sorted(name for name in (value or "").split(",") if name)


def read_user(admin, access_key):
    from minio.error import MinioAdminException
    try:
        info = admin_json(admin.user_info(access_key))
    except MinioAdminException as error:
        if "NoSuchUser" in str(error) or "404" in str(getattr(error, "_code", "")):
            return {"exists": False}
        raise
    return {"exists": True, "policies": policy_names(info.get("policyName"))}


def secret_matches(module, access_key, secret_key):
    """Sign one request as the user: an authentication error means the secret differs."""
    from minio import Minio
    from minio.error import S3Error
    from urllib.parse import urlparse
    url = urlparse(module.params["minio_url"])
    try:
        Minio(url.netloc, access_key=access_key, secret_key=secret_key,
              secure=url.scheme == "https").list_buckets()
    except S3Error as error:
        return error.code not in AUTH_ERRORS
    return True


def main():
    module = AnsibleModule(
        argument_spec=dict(
            access_key=dict(type="str", required=True),
            secret_key=dict(type="str", no_log=True),
            policies=dict(type="list", elements="str", default=[]),
            state=dict(type="str", choices=["present", "absent"], default="present"),
            **MINIO_CONNECTION_ARGS),
        required_if=[("state", "present", ["secret_key"])],
        supports_check_mode=True,
    )
    params = module.params
    name = params["access_key"]
    _client, admin = minio_connect(module)
    after = ({"exists": True, "policies": sorted(set(params["policies"]))}
             if params["state"] == "present" else {"exists": False})
    try:
        before = read_user(admin, name)
        new_secret = (params["state"] == "present" and
                      (not before["exists"] or not secret_matches(module, name, params["secret_key"])))
        changed = before != after or new_secret
        if changed and not module.check_mode:
            if not after["exists"]:
                admin.user_remove(name)
            else:
                if new_secret:
                    admin.user_add(name, params["secret_key"])
                attached = before.get("policies", [])
                if set(attached) - set(after["policies"]):
                    admin.detach_policy(sorted(set(attached) - set(after["policies"])), user=name)
                if set(after["policies"]) - set(attached):
                    admin.attach_policy(sorted(set(after["policies"]) - set(attached)), user=name)
    except Exception as error:  # the service's own message, on one line
        module.fail_json(msg=f"user {name}: {error}")
    module.exit_json(changed=changed, user=after,
                     diff=dict(before=before, after=dict(after, secret_changed=new_secret)))


if __name__ == "__main__":
    main()
