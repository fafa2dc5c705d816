#!/usr/bin/python
"""Manage buckets, their quotas and their expiry rules on a MinIO-compatible server."""

DOCUMENTATION = r"""
module: minio_bucket
short_description: Manage buckets on a MinIO-compatible object store
description:
  - Creates or removes a bucket, and sets its hard quota and an object-expiry lifecycle rule.
  - The expiry rule is the lifecycle rule with the ID C(stack-expiry); other lifecycle rules of the
    bucket are left as they are.
  - With O(buckets), handles many buckets in order over one connection, so a course roster costs
    one task, not one per student.
options:
  name:
    description:
      - Name of the bucket.
      - Exactly one of O(name) and O(buckets) is required.
    type: str
  buckets:
    description:
      - Many buckets, each with the options of the single form; O(state) applies to all.
      - With it, O(quota), O(expiry_days), O(purge) and O(archive_dir) are given per bucket only.
      - A name may appear once.
    type: list
    elements: dict
    suboptions:
      name:
        description: Name of the bucket.
        type: str
        required: true
      quota:
        description: As O(quota).
        type: int
        default: 0
      expiry_days:
        description: As O(expiry_days).
        type: int
        default: 0
      purge:
        description: As O(purge).
        type: bool
        default: false
      archive_dir:
        description: As O(archive_dir).
        type: path
  new_only:
    description:
      - With O(state=present), every bucket must be new. Before changing anything, fail naming each one that
        exists already. Also in check mode.
    type: bool
    default: false
  state:
    description: Whether the bucket (with O(buckets), every bucket) exists.
    type: str
    choices: [present, absent]
    default: present
  quota:
    description: Hard quota in bytes; V(0) means no quota.
    type: int
    default: 0
  expiry_days:
    description: Objects older than this many days are deleted; V(0) means they are kept.
    type: int
    default: 0
  purge:
    description:
      - With O(state=absent), delete the bucket's objects (all versions) first.
      - Without it, removing a bucket that is not empty is an error.
    type: bool
    default: false
  archive_dir:
    description:
      - With O(state=absent), first download every object (latest versions) into this folder on the
        host running the module, keeping their keys as paths.
    type: path
extends_documentation_fragment:
  - minio
  - stack.attributes
"""

EXAMPLES = r"""
- name: A student's bucket with 5 GiB and a 180-day expiry
  minio_bucket:
    minio_access_key: "{{ root_user }}"
    minio_secret_key: "{{ root_password }}"
    name: alice
    quota: 5368709120
    expiry_days: 180

- name: Remove the bucket and everything in it
  minio_bucket:
    minio_access_key: "{{ root_user }}"
    minio_secret_key: "{{ root_password }}"
    name: alice
    state: absent
    purge: true

- name: Many buckets in one task
  minio_bucket:
    minio_access_key: "{{ root_user }}"
    minio_secret_key: "{{ root_password }}"
    buckets:
      - {name: alice, quota: 5368709120, expiry_days: 180}
      - {name: bob, quota: 5368709120, expiry_days: 180}

- name: Archive and remove two buckets
  minio_bucket:
    minio_access_key: "{{ root_user }}"
    minio_secret_key: "{{ root_password }}"
    state: absent
    buckets:
      - {name: alice, purge: true, archive_dir: /srv/archive/alice}
      - {name: bob, purge: true, archive_dir: /srv/archive/bob}
"""

RETURN = r"""
taken:
  description: With O(new_only), the names of the buckets something already holds (the module fails, naming each).
  returned: when O(new_only) finds any
  type: list
  elements: str
bucket:
  description: The bucket's state after the module ran.
  returned: with O(name)
  type: dict
  sample: {exists: true, quota: 5368709120, expiry_days: 180}
buckets:
  description: Each bucket's name and its state after the module ran.
  returned: with O(buckets)
  type: dict
  sample: {alice: {exists: true, quota: 5368709120, expiry_days: 180}, bob: {exists: false}}
"""

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.minio_common import admin_json, error_message, minio_argument_spec, minio_connect
from ansible.module_utils.stack_common import already_taken, batch_items

RULE_ID = "stack-expiry"
BUCKET = dict(  # one bucket: the single form's options and the suboptions of `buckets`
    name=dict(type="str", required=True),
    quota=dict(type="int", default=0),
    expiry_days=dict(type="int", default=0),
    purge=dict(type="bool", default=False),
    archive_dir=dict(type="path"))


def expiry_days(config):
    """Days after which the module's rule expires objects (0: no such rule)."""
    for rule in (config.rules if config else []):
        if rule.rule_id == RULE_ID and rule.expiration and rule.expiration.days:
            return rule.expiration.days
    return 0


def with_expiry(config, days):
    """The bucket's lifecycle rules with the module's rule set to `days` (dropped for 0)."""
    from minio.commonconfig import ENABLED, Filter
    from minio.lifecycleconfig import Expiration, Rule
    rules = [rule for rule in (config.rules if config else []) if rule.rule_id != RULE_ID]
    if days:
        rules.append(Rule(ENABLED, rule_filter=Filter(prefix=""), rule_id=RULE_ID,
                          expiration=Expiration(days=days)))
    return rules


def read_bucket(client, admin, name):
    if not client.bucket_exists(name):
        return {"exists": False}
    quota = admin_json(admin.bucket_quota_get(name)).get("quota") or 0
    return {"exists": True, "quota": quota, "expiry_days": expiry_days(client.get_bucket_lifecycle(name))}


def purge_objects(client, name):
    from minio.deleteobjects import DeleteObject
    objects = (DeleteObject(o.object_name, o.version_id)
               for o in client.list_objects(name, recursive=True, include_version=True))
    errors = list(client.remove_objects(name, objects))
    if errors:
        raise RuntimeError(f"could not delete {len(errors)} objects, first: {errors[0].message}")


def archive_objects(client, name, folder):
    """Download the bucket's objects into folder; the keys become relative paths."""
    import os
    root = os.path.realpath(folder)
    for item in client.list_objects(name, recursive=True):
        target = os.path.realpath(os.path.join(root, item.object_name))
        if not target.startswith(root + os.sep):
            raise RuntimeError(f"object key {item.object_name!r} leaves the archive folder")
        client.fget_object(name, item.object_name, target)


def apply(client, admin, name, before, after, purge, archive_dir=None):
    from minio.lifecycleconfig import LifecycleConfig
    if not after["exists"]:
        if archive_dir:
            archive_objects(client, name, archive_dir)
        if purge:
            purge_objects(client, name)
        client.remove_bucket(name)
        return
    if not before["exists"]:
        client.make_bucket(name)
        before = {"exists": True, "quota": 0, "expiry_days": 0}
    if before["quota"] != after["quota"]:
        admin.bucket_quota_set(name, after["quota"])  # 0 clears the quota
    if before["expiry_days"] != after["expiry_days"]:
        rules = with_expiry(client.get_bucket_lifecycle(name), after["expiry_days"])
        if rules:
            client.set_bucket_lifecycle(name, LifecycleConfig(rules))
        else:
            client.delete_bucket_lifecycle(name)


def ensure(module, client, admin, spec, state):
    """Bring one bucket to `spec` and `state` (in check mode only compare): (before, after, changed)."""
    name = spec["name"]
    after = ({"exists": True, "quota": spec["quota"], "expiry_days": spec["expiry_days"]}
             if state == "present" else {"exists": False})
    before = read_bucket(client, admin, name)
    changed = before != after
    if changed and not module.check_mode:
        apply(client, admin, name, before, after, spec["purge"], spec["archive_dir"])
    return before, after, changed


def argument_spec():
    return minio_argument_spec(
        buckets=dict(type="list", elements="dict", options=BUCKET),
        new_only=dict(type="bool", default=False),
        state=dict(type="str", choices=["present", "absent"], default="present"),
        **dict(BUCKET, name=dict(type="str")))


def main():
    options = [option for option in BUCKET if option != "name"]
    module = AnsibleModule(
        argument_spec=argument_spec(),
        mutually_exclusive=[["name", "buckets"]] + [["buckets", option] for option in options],
        required_one_of=[["name", "buckets"]],
        supports_check_mode=True,
    )
    params = module.params
    try:
        buckets = batch_items(params, "buckets", list(BUCKET))
    except ValueError as error:
        module.fail_json(msg=str(error))
    for spec in buckets:
        if spec["quota"] < 0 or spec["expiry_days"] < 0:
            module.fail_json(msg=f"bucket {spec['name']}: quota and expiry_days must not be negative")
    client, admin = minio_connect(module)
    if params["state"] == "present" and params["new_only"]:
        try:
            taken = {spec["name"]: f"bucket {spec['name']}" for spec in buckets if client.bucket_exists(spec["name"])}
        except Exception as error:  # pylint: disable=broad-except
            module.fail_json(msg=f"cannot read the buckets: {error_message(error)}")
        if taken:
            module.fail_json(**already_taken("object store", taken))
    changed, results, diff = False, {}, dict(before={}, after={})
    for spec in buckets:
        name = spec["name"]
        try:
            before, after, bucket_changed = ensure(module, client, admin, spec, params["state"])
        except Exception as error:  # pylint: disable=broad-except
            module.fail_json(msg=f"bucket {name}: {error_message(error)}", changed=changed)
        changed = changed or bucket_changed
        results[name] = after
        diff["before"][name], diff["after"][name] = before, after
    if params["buckets"] is None:
        module.exit_json(changed=changed, bucket=after, diff=dict(before=before, after=after))
    module.exit_json(changed=changed, buckets=results, diff=diff)


if __name__ == "__main__":
    main()
