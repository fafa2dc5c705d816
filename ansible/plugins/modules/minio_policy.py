#!/usr/bin/python
"""Manage an IAM policy on a MinIO-compatible server."""

DOCUMENTATION = r"""
module: minio_policy
short_description: Manage a policy on a MinIO-compatible object store
description:
  - Creates, updates or removes a named IAM policy through the MinIO admin API.
  - Documents are compared in the form the server stores them (single values as lists, order of
    actions, resources and statements ignored), so an unchanged document reports no change.
options:
  name:
    description: Name of the policy.
    type: str
    required: true
  policy:
    description: The policy document (IAM JSON as a dictionary). Required with O(state=present).
    type: dict
  state:
    description: Whether the policy exists. Removing a policy that is attached to users is an error.
    type: str
    choices: [present, absent]
    default: present
extends_documentation_fragment:
  - minio
  - stack.attributes
"""

EXAMPLES = r"""
- name: Let every user read and write the bucket named after them
  minio_policy:
    minio_access_key: "{{ root_user }}"
    minio_secret_key: "{{ root_password }}"
    name: own-bucket
    policy:
      Version: "2012-10-17"
      Statement:
        - Effect: Allow
          Action: ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"]
          Resource: ["arn:aws:s3:::${aws:username}/*"]

- name: Remove a policy
  minio_policy:
    minio_url: http://127.0.0.1:19000
    minio_access_key: "{{ root_user }}"
    minio_secret_key: "{{ root_password }}"
    name: own-bucket
    state: absent
"""

RETURN = r"""
policy:
  description: The policy document after the module ran, in its canonical form (null when absent).
  returned: always
  type: dict
  sample:
    Version: "2012-10-17"
    Statement: [{Effect: Allow, Action: ["s3:GetObject"], Resource: ["arn:aws:s3:::data/*"]}]
"""

import json

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.minio_common import (admin_error_code, admin_json, error_message,
                                               minio_argument_spec, minio_connect)

LIST_KEYS = ("Action", "NotAction", "Resource", "NotResource")


def _strings(value):
    """A policy value as the server returns it: a sorted list of distinct strings."""
    values = value if isinstance(value, list) else [value]
    return sorted({str(v).lower() if isinstance(v, bool) else str(v) for v in values})


def normalize_policy(document):
    """The policy in a canonical form (None for no policy): lists sorted, statements sorted."""
    if not document:
        return None
    statements = []
    for statement in document.get("Statement", []):
        canonical = {}
        for key, value in statement.items():
            if key in LIST_KEYS:
                value = _strings(value)
            elif key == "Condition":
                value = {operator: {name: _strings(values) for name, values in conditions.items()}
                         for operator, conditions in value.items()}
            elif key == "Sid" and not value:
                continue
            canonical[key] = value
        statements.append(canonical)
    statements.sort(key=lambda statement: json.dumps(statement, sort_keys=True))
    return {"Version": document.get("Version", "2012-10-17"), "Statement": statements}


def read_policy(admin, name):
    from minio.error import MinioAdminException
    try:
        info = admin_json(admin.policy_info(name))
    except MinioAdminException as error:
        if admin_error_code(error) == "XMinioAdminNoSuchPolicy":
            return None
        raise
    return info.get("Policy", info)


def argument_spec():
    return minio_argument_spec(
        name=dict(type="str", required=True),
        policy=dict(type="dict"),
        state=dict(type="str", choices=["present", "absent"], default="present"))


def main():
    module = AnsibleModule(
        argument_spec=argument_spec(),
        required_if=[("state", "present", ["policy"])],
        supports_check_mode=True,
    )
    name, state = module.params["name"], module.params["state"]
    _client, admin = minio_connect(module)
    after = normalize_policy(module.params["policy"]) if state == "present" else None
    try:
        before = normalize_policy(read_policy(admin, name))
        changed = before != after
        if changed and not module.check_mode:
            if state == "present":
                admin.policy_add(name, policy=module.params["policy"])
            else:
                admin.policy_remove(name)
    except Exception as error:  # pylint: disable=broad-except
        module.fail_json(msg=f"policy {name}: {error_message(error)}")
    module.exit_json(changed=changed, policy=after, diff=dict(before=before or {}, after=after or {}))


if __name__ == "__main__":
    main()
