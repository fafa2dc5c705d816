#!/usr/bin/python
"""Write or check the manifest of a backup folder: every file's size and SHA-256, and what the backup is of."""

DOCUMENTATION = r"""
module: backup_manifest
short_description: Write or verify the manifest of a backup folder
description:
  - With O(state=written), lists every file under O(path) with its size and SHA-256 in O(path)/manifest.json
    (mode 0600), with O(info) (what the backup is of, such as the services' versions) and the size of each part (each
    entry at the top of O(path)).
  - A file hard-linked from O(previous) (the same inode) takes its checksum from O(previous)'s manifest instead of
    being read again.
  - With O(state=verified), reads the manifest and fails, naming the first file, when a file is missing or its
    size or checksum differs; returns the manifest's O(info).
options:
  path:
    description: The backup folder, on the host running the module.
    type: path
    required: true
  state:
    description: Write the manifest (V(written)) or check the folder against it (V(verified)).
    type: str
    choices: [written, verified]
    default: written
  info:
    description: What the backup is of, stored as it is (V(written) only).
    type: dict
    default: {}
  previous:
    description: An earlier backup folder whose unchanged, linked files need not be read again.
    type: path
attributes:
  check_mode:
    description: In check mode, V(verified) checks as usual and V(written) writes nothing.
    support: full
  diff_mode:
    description: Returns no diff.
    support: none
  idempotent:
    description: V(verified) changes nothing; V(written) writes the manifest again each run.
    support: partial
"""

EXAMPLES = r"""
- name: Check a backup before restoring it
  backup_manifest:
    path: /var/backups/mlops/20261130T120000Z
    state: verified
  register: manifest
"""

RETURN = r"""
info:
  description: The manifest's O(info).
  returned: always
  type: dict
parts:
  description: Each part of the backup (its top-level file or folder) with its number of files and bytes.
  returned: always
  type: dict
"""

import json
import os

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.stack_common import file_sha256

MANIFEST = "manifest.json"


def read(folder):
    with open(os.path.join(folder, MANIFEST), encoding="utf-8") as stream:
        return json.load(stream)


def files_under(folder):
    for root, _, names in os.walk(folder):
        for name in names:
            relative = os.path.relpath(os.path.join(root, name), folder)
            if relative != MANIFEST:
                yield relative


def parts(files):
    summary = {}
    for relative, entry in files.items():
        part = summary.setdefault(relative.split(os.sep)[0], {"files": 0, "bytes": 0})
        part["files"] += 1
        part["bytes"] += entry["size"]
    return summary


def write(folder, info, previous):
    earlier = read(previous)["files"] if previous and os.path.isfile(os.path.join(previous, MANIFEST)) else {}
    files = {}
    for relative in sorted(files_under(folder)):
        path = os.path.join(folder, relative)
        was = earlier.get(relative)
        if was and os.path.exists(os.path.join(previous, relative)) and os.path.samefile(path, os.path.join(previous, relative)):
            files[relative] = was
        else:
            files[relative] = {"size": os.path.getsize(path), "sha256": file_sha256(path)}
    manifest = {"format": 1, "info": info, "parts": parts(files), "files": files}
    with open(os.open(os.path.join(folder, MANIFEST), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w",
              encoding="utf-8") as out:
        json.dump(manifest, out, indent=1, sort_keys=True)
    return manifest


def verify(folder):
    """The manifest, or the first difference as one line."""
    manifest = read(folder)
    for relative, entry in sorted(manifest["files"].items()):
        path = os.path.join(folder, relative)
        if not os.path.isfile(path):
            return manifest, f"{relative} is missing"
        if os.path.getsize(path) != entry["size"] or file_sha256(path) != entry["sha256"]:
            return manifest, f"{relative} does not match its checksum"
    return manifest, None


def argument_spec():
    return dict(
        path=dict(type="path", required=True),
        state=dict(type="str", default="written", choices=["written", "verified"]),
        info=dict(type="dict", default={}),
        previous=dict(type="path"))


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    folder = module.params["path"]
    if module.params["state"] == "verified":
        if not os.path.isfile(os.path.join(folder, MANIFEST)):
            module.fail_json(msg=f"{folder} is not a backup: it has no {MANIFEST}")
        try:
            manifest, difference = verify(folder)
        except (ValueError, KeyError) as error:
            module.fail_json(msg=f"{folder}/{MANIFEST} cannot be read: {error}")
        if difference:
            module.fail_json(msg=f"Backup {folder} is damaged: {difference}. Nothing was restored.")
        module.exit_json(changed=False, info=manifest["info"], parts=manifest["parts"])
    if module.check_mode:
        module.exit_json(changed=True, info=module.params["info"], parts={})
    try:
        manifest = write(folder, module.params["info"], module.params["previous"])
    except OSError as error:
        module.fail_json(msg=f"{error.filename}: {error.strerror}")
    module.exit_json(changed=True, info=manifest["info"], parts=manifest["parts"])


if __name__ == "__main__":
    main()
