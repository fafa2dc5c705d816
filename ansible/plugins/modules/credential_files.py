#!/usr/bin/python
"""Write many small private files (credentials) in one call."""

DOCUMENTATION = r"""
module: credential_files
short_description: Write many private files, such as credentials, in one task
description:
  - Writes each file of O(files) with its content and mode O(mode), creating missing folders with mode
    O(directory_mode). A file that already has that content and mode is left alone.
  - One task for a whole course roster instead of one copy or template task per student (each loop item
    of a task costs a module run).
  - Deletes the files and folders of O(remove) (folders with everything in them).
  - The contents are never returned, logged or shown in a diff.
options:
  files:
    description: The files to write.
    type: list
    elements: dict
    default: []
    suboptions:
      path:
        description: Absolute path of the file.
        type: path
        required: true
      content:
        description: What the file holds.
        type: str
        required: true
  remove:
    description: Absolute paths of files or folders to delete.
    type: list
    elements: path
    default: []
  mode:
    description: Mode of the files.
    type: str
    default: "0600"
  directory_mode:
    description: Mode of the folders the module creates (existing folders keep theirs).
    type: str
    default: "0700"
extends_documentation_fragment:
  - stack.attributes_without_diff
"""

EXAMPLES = r"""
- name: Hand each student a credentials file
  credential_files:
    files:
      - path: /srv/stack/credentials/alice.env
        content: "{{ alice_env }}"
      - path: /srv/stack/credentials/bob.env
        content: "{{ bob_env }}"
  delegate_to: localhost
  no_log: true
"""

RETURN = r"""
written:
  description: The paths written by this run (in check mode, that would be written).
  returned: always
  type: list
  elements: str
removed:
  description: The paths deleted by this run (in check mode, that would be deleted).
  returned: always
  type: list
  elements: str
"""

import os
import shutil
import stat
import tempfile

from ansible.module_utils.basic import AnsibleModule


def needs_writing(path, content, mode):
    """Whether the file is missing, holds something else or has another mode."""
    try:
        with open(path, "rb") as current:
            same = current.read() == content
        return not same or stat.S_IMODE(os.stat(path).st_mode) != mode
    except FileNotFoundError:
        return True


def write(path, content, mode, directory_mode):
    folder = os.path.dirname(path)
    os.makedirs(folder, mode=directory_mode, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=folder, prefix=".credential-")
    with os.fdopen(handle, "wb") as out:  # mkstemp makes it 0600: the content is never readable by others
        out.write(content)
    os.chmod(temporary, mode)
    os.replace(temporary, path)  # same folder: atomic, and the new file's mode is kept


def argument_spec():
    return dict(
        files=dict(type="list", elements="dict", default=[], options=dict(
            path=dict(type="path", required=True),
            content=dict(type="str", required=True, no_log=True))),
        remove=dict(type="list", elements="path", default=[]),
        mode=dict(type="str", default="0600"),
        directory_mode=dict(type="str", default="0700"))


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    try:
        mode, directory_mode = int(module.params["mode"], 8), int(module.params["directory_mode"], 8)
    except ValueError:
        module.fail_json(msg="mode and directory_mode must be octal strings such as '0600'")
    written, removed = [], []
    for path in [spec["path"] for spec in module.params["files"]] + module.params["remove"]:
        if not os.path.isabs(path):
            module.fail_json(msg=f"{path}: give an absolute path", written=written, removed=removed)
    try:
        for spec in module.params["files"]:
            path, content = spec["path"], spec["content"].encode()
            if needs_writing(path, content, mode):
                written.append(path)
                if not module.check_mode:
                    write(path, content, mode, directory_mode)
        for path in module.params["remove"]:
            if os.path.lexists(path):
                removed.append(path)
                if module.check_mode:
                    continue
                if os.path.isdir(path) and not os.path.islink(path):
                    shutil.rmtree(path)
                else:
                    os.remove(path)
    except OSError as error:
        module.fail_json(msg=f"{error.filename}: {error.strerror}", written=written, removed=removed)
    module.exit_json(changed=bool(written or removed), written=written, removed=removed)


if __name__ == "__main__":
    main()
