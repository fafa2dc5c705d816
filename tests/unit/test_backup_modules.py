"""The file side of backups: where minio_mirror stores an object (never outside its folder, whatever the key) and
backup_manifest's checksums (a changed, missing or linked file). The copy itself is the restore drill's
(tests/ops/test_restore_drill.py), against the real object store."""
import os

import pytest

from stackenv import load_ansible_module as load

minio_mirror = load("minio_mirror")
backup_manifest = load("backup_manifest")


@pytest.mark.parametrize("key", ["a/b.txt", "../../etc/passwd", "/abs", "a/../../b", "", "x" * 1024, "ü/é"])
def test_an_object_is_stored_inside_its_bucket_folder_whatever_its_key(tmp_path, key):
    relative = minio_mirror.object_file("alice", key)
    assert os.path.realpath(tmp_path / relative).startswith(str(tmp_path / "alice") + os.sep)
    assert relative != minio_mirror.object_file("alice", key + " ")


def backup_folder(path):
    (path / "objects").mkdir(parents=True)
    (path / "database.sql").write_text("CREATE TABLE t (a INT);\n")
    (path / "objects" / "one").write_bytes(b"1" * 100)
    return path


def test_a_written_manifest_verifies_and_names_each_part(tmp_path):
    folder = backup_folder(tmp_path / "b1")
    written = backup_manifest.write(str(folder), {"versions": {"mlflow": "mlops/mlflow:3.17.2"}}, None)
    assert written["parts"] == {"database.sql": {"files": 1, "bytes": 24}, "objects": {"files": 1, "bytes": 100}}
    manifest, difference = backup_manifest.verify(str(folder))
    assert difference is None and manifest["info"]["versions"]["mlflow"] == "mlops/mlflow:3.17.2"
    assert (folder / "manifest.json").stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize("damage,difference", [
    (lambda folder: (folder / "database.sql").write_text("CREATE TABLE t (a INT);\n-- edited\n"),
     "database.sql does not match its checksum"),
    (lambda folder: (folder / "objects" / "one").write_bytes(b"2" * 100), "objects/one does not match its checksum"),
    (lambda folder: (folder / "objects" / "one").unlink(), "objects/one is missing"),
])
def test_a_damaged_backup_names_its_first_bad_file(tmp_path, damage, difference):
    folder = backup_folder(tmp_path / "b1")
    backup_manifest.write(str(folder), {}, None)
    damage(folder)
    assert backup_manifest.verify(str(folder))[1] == difference


def test_a_linked_file_takes_its_checksum_from_the_previous_manifest(tmp_path, monkeypatch):
    first = backup_folder(tmp_path / "b1")
    backup_manifest.write(str(first), {}, None)
    second = tmp_path / "b2"
    (second / "objects").mkdir(parents=True)
    os.link(first / "objects" / "one", second / "objects" / "one")
    (second / "database.sql").write_text("changed\n")
    read = []
    monkeypatch.setattr(backup_manifest, "file_sha256",
                        lambda path, real=backup_manifest.file_sha256: read.append(path) or real(path))
    backup_manifest.write(str(second), {}, str(first))
    assert read == [str(second / "database.sql")]
    assert backup_manifest.verify(str(second))[1] is None


class Listing:
    """A server's answer to list_buckets and list_objects, for the plan of a download."""
    def __init__(self, buckets):
        self.buckets = buckets

    def list_buckets(self):
        return [type("Bucket", (), {"name": name}) for name in self.buckets]

    def list_objects(self, bucket, recursive):
        return [type("Item", (), {"object_name": key, "etag": etag, "size": size})
                for key, etag, size in self.buckets[bucket]]


def test_a_download_that_does_not_fit_is_refused_before_anything_is_written(tmp_path, monkeypatch):
    previous = tmp_path / "b1" / "objects"
    (previous / "alice").mkdir(parents=True)
    (previous / "alice" / "kept").write_bytes(b"k")
    (previous / "index.json").write_text('{"alice": {"old": {"file": "alice/kept", "etag": "e1", "size": 900, '
                                         '"sha256": "x"}}}')
    server = Listing({"alice": [("old", "e1", 900), ("new", "e2", 100)], "empty": []})
    buckets, objects = minio_mirror.plan(server, str(previous))
    assert buckets == ["alice", "empty"] and [was is not None for *_, was in objects] == [True, False]
    target = tmp_path / "b2.partial" / "objects"
    free = 3 << 20
    monkeypatch.setattr(minio_mirror.shutil, "disk_usage", lambda path: type("Usage", (), {"free": free}))
    assert minio_mirror.check_space(str(target), objects, free - 100) == free  # the linked object takes no space
    with pytest.raises(RuntimeError) as refused:
        minio_mirror.check_space(str(target), objects, (2 << 30) - 100)
    assert str(refused.value) == (f"the backup needs 2.0 GiB (the objects to copy and the database) but {tmp_path} has "
                                  "3.0 MiB free: nothing was copied; free space, or set backup_dir to a larger disk")
    assert not target.exists()
