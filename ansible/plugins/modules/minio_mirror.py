#!/usr/bin/python
"""Copy every bucket of a MinIO-compatible server into a folder, or a folder's buckets back to a server."""

DOCUMENTATION = r"""
module: minio_mirror
short_description: Copy the buckets of a MinIO-compatible object store to a folder and back
description:
  - With O(direction=download), copies the latest version of every object of every bucket into O(path) and
    writes C(index.json) in O(path), which names each object's file, ETag, size, content type and SHA-256.
  - An object whose key, ETag and size are those in the index of O(previous) is not downloaded again; its file
    is hard-linked from O(previous), so a backup with nothing changed costs one listing.
  - Objects are stored under a name made from the SHA-256 of their key, so no key can leave O(path).
  - With O(direction=upload), creates every bucket of O(path)'s index that is missing and uploads its objects.
options:
  direction:
    description: V(download) copies the server into O(path); V(upload) copies O(path) into the server.
    type: str
    choices: [download, upload]
    required: true
  path:
    description: The folder on the host running the module; with V(download) it must not exist yet.
    type: path
    required: true
  previous:
    description: With V(download), the folder of an earlier download whose unchanged objects are linked, not copied.
    type: path
  reserve:
    description:
      - With V(download), bytes needed on the disk of O(path) besides the objects to copy (e.g. the database dump
        of the same backup). Before anything is written, the module fails when the objects it would copy (not the
        linked ones) and O(reserve) do not fit in the free space of that disk.
    type: int
    default: 0
attributes:
  check_mode:
    description: With V(download), lists what it would copy and link and checks it fits (C(bytes_needed)); writes nothing.
    support: partial
  diff_mode:
    description: Returns no diff.
    support: none
  idempotent:
    description: Each run copies into a new folder, or uploads every object again.
    support: none
extends_documentation_fragment:
  - minio
"""

EXAMPLES = r"""
- name: Copy every bucket into the backup, linking what the last backup has
  minio_mirror:
    minio_access_key: "{{ root_user }}"
    minio_secret_key: "{{ root_password }}"
    direction: download
    path: /var/backups/mlops/20261130T120000Z.partial/objects
    previous: /var/backups/mlops/20261129T120000Z/objects
"""

RETURN = r"""
buckets:
  description: The buckets copied, each with its number of objects and bytes.
  returned: when not in check mode
  type: dict
copied:
  description: Objects transferred by this run (in check mode with V(download), those it would copy).
  returned: when not in check mode with V(upload)
  type: int
linked:
  description: Objects hard-linked from O(previous) (V(download) only; in check mode, those it would link).
  returned: when not in check mode with V(upload)
  type: int
bytes_needed:
  description: The bytes the download needs on the disk of O(path) (the objects to copy and O(reserve)).
  returned: in check mode with V(download)
  type: int
"""

import hashlib
import json
import os
import shutil

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.minio_common import error_message, minio_argument_spec, minio_connect
from ansible.module_utils.stack_common import file_sha256

INDEX = "index.json"


def object_file(bucket, key):
    """Where an object is stored, relative to the folder: never outside it, whatever the key."""
    digest = hashlib.sha256(key.encode()).hexdigest()
    return f"{bucket}/{digest[:2]}/{digest}"


def read_index(folder):
    if not folder or not os.path.isfile(os.path.join(folder, INDEX)):
        return {}
    with open(os.path.join(folder, INDEX), encoding="utf-8") as stream:
        return json.load(stream)


def plan(client, previous):
    """(every bucket, every object of them: (bucket, key, etag, size, its entry in previous's index where its file
    can be linked from there, else None))."""
    earlier = read_index(previous)
    buckets, objects = sorted(b.name for b in client.list_buckets()), []
    for bucket in buckets:
        for item in client.list_objects(bucket, recursive=True):
            was = earlier.get(bucket, {}).get(item.object_name)
            if not (was and (was["etag"], was["size"]) == (item.etag, item.size)
                    and os.path.isfile(os.path.join(previous, was["file"]))):
                was = None
            objects.append((bucket, item.object_name, item.etag, item.size, was))
    return buckets, objects


def check_space(path, objects, reserve):
    """Refuse, before anything is written, when what is to be copied (and reserve) does not fit on path's disk."""
    need = reserve + sum(size for _bucket, _key, _etag, size, was in objects if not was)
    folder = path
    while not os.path.isdir(folder):
        folder = os.path.dirname(folder)
    free = shutil.disk_usage(folder).free
    if need > free:
        raise RuntimeError(f"the backup needs {size(need)} (the objects to copy and the database) but {folder} has "
                           f"{size(free)} free: nothing was copied; free space, or set backup_dir to a larger disk")
    return need


def size(count):
    return f"{count / 2**30:.1f} GiB" if count >= 2**30 else f"{count / 2**20:.1f} MiB"


def download(client, path, previous, buckets, objects):
    """The planned buckets and objects into path (linked from previous where they can be); returns (index, copied,
    linked)."""
    index, copied, linked = {bucket: {} for bucket in buckets}, 0, 0
    os.makedirs(path, mode=0o700)
    for bucket, key, etag, size, was in objects:
        entry = {"file": object_file(bucket, key), "etag": etag, "size": size}
        target = os.path.join(path, entry["file"])
        os.makedirs(os.path.dirname(target), mode=0o700, exist_ok=True)
        if was:
            os.link(os.path.join(previous, was["file"]), target)
            entry.update(sha256=was["sha256"], content_type=was.get("content_type"))
            linked += 1
        else:
            stat = client.fget_object(bucket, key, target)
            os.chmod(target, 0o600)
            entry.update(sha256=file_sha256(target), content_type=stat.content_type)
            copied += 1
        index[bucket][key] = entry
    with open(os.open(os.path.join(path, INDEX), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w", encoding="utf-8") as out:
        json.dump(index, out, indent=1, sort_keys=True)
    return index, copied, linked


def upload(client, path):
    """Every bucket of path's index into the server; returns (index, copied)."""
    index, copied = read_index(path), 0
    if not index and not os.path.isfile(os.path.join(path, INDEX)):
        raise RuntimeError(f"{path} holds no {INDEX}: not a folder written by minio_mirror")
    for bucket, objects in sorted(index.items()):
        if not client.bucket_exists(bucket):
            client.make_bucket(bucket)
        for key, entry in sorted(objects.items()):
            client.fput_object(bucket, key, os.path.join(path, entry["file"]),
                               content_type=entry.get("content_type") or "application/octet-stream")
            copied += 1
    return index, copied


def argument_spec():
    return minio_argument_spec(
        direction=dict(type="str", required=True, choices=["download", "upload"]),
        path=dict(type="path", required=True),
        previous=dict(type="path"),
        reserve=dict(type="int", default=0))


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    params = module.params
    if params["direction"] == "download" and os.path.lexists(params["path"]):
        module.fail_json(msg=f"{params['path']} exists already: a download goes into a new folder")
    client, _ = minio_connect(module)
    try:
        if params["direction"] == "download":
            buckets, objects = plan(client, params["previous"])
            need = check_space(params["path"], objects, params["reserve"])
            if module.check_mode:
                linked = sum(1 for *_rest, was in objects if was)
                module.exit_json(changed=True, bytes_needed=need, copied=len(objects) - linked, linked=linked)
            index, copied, linked = download(client, params["path"], params["previous"], buckets, objects)
        elif module.check_mode:
            module.exit_json(changed=True)
        else:
            (index, copied), linked = upload(client, params["path"]), 0
    except Exception as error:  # one line for the play, whatever the library raised
        module.fail_json(msg=f"{params['direction']} of the buckets failed: {error_message(error)}")
    buckets = {name: {"objects": len(objects), "bytes": sum(entry["size"] for entry in objects.values())}
               for name, objects in index.items()}
    module.exit_json(changed=True, buckets=buckets, copied=copied, linked=linked)


if __name__ == "__main__":
    main()
