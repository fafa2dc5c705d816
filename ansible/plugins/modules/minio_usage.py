#!/usr/bin/python
"""Report how many objects and bytes each bucket of a MinIO-compatible object store holds."""

DOCUMENTATION = r"""
module: minio_usage
short_description: Report each bucket's objects and bytes on a MinIO-compatible object store
description:
  - Lists every object of every bucket (latest versions) and adds up their sizes. Changes nothing.
  - The sizes are exact at the time of the listing (the object store's own usage figures are refreshed by a
    background scanner, minutes late).
options:
  by_prefix:
    description:
      - Buckets whose bytes are also reported per first segment of their keys (the part before the first
        slash), e.g. the MLflow artifacts bucket, whose keys start with the experiment's ID.
    type: list
    elements: str
    default: []
extends_documentation_fragment:
  - minio
  - stack.attributes_without_diff
"""

EXAMPLES = r"""
- name: How much each bucket holds, the MLflow artifacts per experiment
  minio_usage:
    minio_access_key: "{{ root_user }}"
    minio_secret_key: "{{ root_password }}"
    by_prefix: [mlflow-artifacts]
"""

RETURN = r"""
buckets:
  description: Each bucket's objects and bytes, and with O(by_prefix) its bytes per first key segment.
  returned: always
  type: dict
  sample: {alice: {objects: 12, bytes: 5242880}, mlflow-artifacts: {objects: 3, bytes: 900, prefixes: {"4": 900}}}
"""

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.minio_common import error_message, minio_argument_spec, minio_connect


def argument_spec():
    return minio_argument_spec(by_prefix=dict(type="list", elements="str", default=[]))


def usage(client, bucket, by_prefix):
    found = {"objects": 0, "bytes": 0}
    prefixes = {}
    for item in client.list_objects(bucket, recursive=True):
        found["objects"] += 1
        found["bytes"] += item.size or 0
        if by_prefix:
            first = item.object_name.split("/", 1)[0]
            prefixes[first] = prefixes.get(first, 0) + (item.size or 0)
    if by_prefix:
        found["prefixes"] = prefixes
    return found


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    client, _admin = minio_connect(module)
    try:
        buckets = {bucket.name: usage(client, bucket.name, bucket.name in module.params["by_prefix"])
                   for bucket in client.list_buckets()}
    except Exception as error:  # pylint: disable=broad-except
        module.fail_json(msg=f"cannot read the buckets: {error_message(error)}")
    module.exit_json(changed=False, buckets=buckets)


if __name__ == "__main__":
    main()
