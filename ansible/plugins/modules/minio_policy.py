#!/usr/bin/python
"""Manage an IAM policy on a MinIO-compatible server."""

DOCUMENTATION = r"""
module: minio_policy
short_description: Manage a policy on a MinIO-compatible object store
description:
  - Creates, updates or removes a named IAM policy through the MinIO admin API.
options:
  name:
    description: Name of the policy.
    type: str
    required: true
  policy:
    description: The policy document (IAM JSON as a dictionary). Required with O(state=present).
    type: dict
  state:
    description: Whether the policy exists.
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
- name: Let every user read and write the bucket named after them
  minio_policy:
    minio_url: http://127.0.0.1:9000
    minio_access_key: "{{ root_user }}"
    minio_secret_key: "{{ root_password }}"
    name: developer
    policy:
      Version: "2012-10-17"
      Statement:
        - Effect: Allow
          Action: ["s3:*"]
          Resource: ["arn:aws:s3:::${aws:username}", "arn:aws:s3:::${aws:username}/*"]
"""

RETURN = r"""
policy:
  description: The policy document after the module ran (null when absent).
  returned: always
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.minio_common import MINIO_CONNECTION_ARGS, admin_json, minio_connect


def _as_sorted_list(value):
    return sorted(value) if isinstance(value, list) else [value]


def normalize_policy(document):
    """The policy in a canonical form: single values as lists, lists sorted, statements sorted."""
    if document is None:
        return None
    statements = []
    for statement in document.get("Statement", []):
        statements.append({key: _as_sorted_list(value) if key in ("Action", "NotAction", "Resource", "NotResource")
                           else value for key, value in statement.items() if key != "Sid"})
    statements.sort(key=repr)
    return {"Version": document.get("Version", "2012-10-17"), "Statement": statements}


def current_policy(admin, name):
    from minio.error import MinioAdminException
    try:
        info = admin_json(admin.policy_info(name))
    except MinioAdminException as error:
        if "404" in str(getattr(error, "_code", "")) or "NoSuchPolicy" in str(error):
            return None
        raise
    return info.get("Policy", info)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            name=dict(type="str", required=True),
            policy=dict(type="dict"),
            state=dict(type="str", choices=["present", "absent"], default="present"),
            **MINIO_CONNECTION_ARGS),
        required_if=[("state", "present", ["policy"])],
        supports_check_mode=True,
    )
    name, state = module.params["name"], module.params["state"]
    _client, admin = minio_connect(module)
    try:
        before = normalize_policy(current_policy(admin, name))
        after = normalize_policy(module.params["policy"]) if state == "present" else None
        changed = before != after
        if changed and not module.check_mode:
            if state == "present":
                admin.policy_add(name, policy=module.params["policy"])
            else:
                admin.policy_remove(name)
    except Exception as error:  # the service's own message, on one line
        module.fail_json(msg=f"policy {name}: {error}")
    module.exit_json(changed=changed, policy=after, diff=dict(before=before or {}, after=after or {}))


if __name__ == "__main__":
    main()
