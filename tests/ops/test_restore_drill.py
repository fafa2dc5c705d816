"""The restore drill: two students work on the stack (a hybrid pipeline run with its MLflow run, artifacts and
registered model, an object of their own, a table in their schema), playbooks/backup.yml backs it up (the third
backup while a student keeps logging) and copies the backups to another host over SSH, `make purge` deletes
everything, and playbooks/restore.yml brings back the copy fetched from that host. Each student then finds their
work with the credentials they had, still out of the other's reach. Before the drill, what a restore must refuse (a
damaged backup, other versions, a stack that holds data) is refused, with nothing changed.
"""
import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
import uuid
from pathlib import Path

import mlflow
import pymysql
import pytest
from botocore.exceptions import ClientError
from mlflow.exceptions import MlflowException

from demorun import PIPELINE, evaluated_accuracy, pipeline_run, run
from mlops_stack.stackenv import REPO, ansible_playbook, backup_report, docker, recap, user_env, user_s3
from mlops_stack.stackenv import user_mlflow as mlflow_as
from roster import course, root_sql, user_sql
from zenml_client import zenml_as

SUFFIX = uuid.uuid4().hex[:6]
STUDENT, OTHER = f"bk-{SUFFIX}", f"bk-{SUFFIX}-b"
NOTE = b"notes taken before the backup\n"


def backup(folder, *args):
    return backup_report(ansible_playbook("playbooks/backup.yml", "-e", f"backup_dir={folder}", *args).stdout)


OFFSITE_IMAGE = """FROM {base}
RUN apt-get update && apt-get install -y --no-install-recommends openssh-server rsync && rm -rf /var/lib/apt/lists/* \\
 && mkdir -p /run/sshd && useradd --create-home --shell /bin/sh offsite && ssh-keygen -A
CMD ["/usr/sbin/sshd", "-D", "-e"]
"""


@pytest.fixture(scope="module")
def offsite(stack, tmp_path_factory):
    """Another host for the second copy of the backups: an SSH server with rsync, on a Docker network of its own
    (not the stack's), that lets in the account `offsite` with a key made here; and the files that trust its host key."""
    name = f"{stack.settings['stack_name']}-test-offsite"
    docker("build", "--tag", f"{name}:1", "-", input=OFFSITE_IMAGE.format(base=stack.settings["stack_base_image"]))
    subprocess.run(["docker", "rm", "--force", name], capture_output=True)
    subprocess.run(["docker", "network", "rm", name], capture_output=True)
    docker("network", "create", name)
    docker("run", "--detach", "--name", name, "--network", name, f"{name}:1")
    try:
        keys = tmp_path_factory.mktemp("offsite-keys")
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(keys / "key")], check=True)
        docker("exec", "-i", name, "sh", "-c", "install -d -o offsite -g offsite -m 700 /home/offsite/.ssh && "
               "cat > /home/offsite/.ssh/authorized_keys && chown offsite: /home/offsite/.ssh/authorized_keys",
               input=(keys / "key.pub").read_text())
        address = docker("inspect", "--format", f'{{{{(index .NetworkSettings.Networks "{name}").IPAddress}}}}', name)
        host_key = docker("exec", name, "cat", "/etc/ssh/ssh_host_ed25519_key.pub").split()[:2]
        (keys / "known_hosts").write_text(f"{address} {' '.join(host_key)}\n")
        yield {"container": name, "folder": "/home/offsite/mlops", "to": f"offsite@{address}:/home/offsite/mlops",
               "args": ["-e", f"backup_copy_to=offsite@{address}:/home/offsite/mlops", "-e", f"backup_copy_key={keys / 'key'}",
                        "-e", f"backup_copy_known_hosts={keys / 'known_hosts'}"],
               "ssh": f"ssh -i {keys / 'key'} -o BatchMode=yes -o StrictHostKeyChecking=yes "
                      f"-o UserKnownHostsFile={keys / 'known_hosts'}"}
    finally:
        subprocess.run(["docker", "rm", "--force", name], capture_output=True)
        subprocess.run(["docker", "network", "rm", name], capture_output=True)


def restore(path, *args, check=True):
    return ansible_playbook("playbooks/restore.yml", "-e", f"backup={path}", *args, check=check)


@pytest.fixture(scope="module")
def students(stack, demo_venv, tmp_path_factory):
    with course(tmp_path_factory.mktemp("roster") / "drill.csv", [STUDENT, OTHER]) as envs:
        yield envs


@pytest.fixture(scope="module")
def work(students, tmp_path_factory):
    """What each student made before the backup: the first also a pipeline run (the other is the one who must
    not see it)."""
    made = {STUDENT: pipeline_run(run(["demo/stacks/hybrid.sh", f"credentials/{STUDENT}.env", *PIPELINE],
                                      tmp_path_factory.mktemp(f"home-{STUDENT}")))}
    for name, env in students.items():
        user_s3(env).put_object(Bucket=env["STACK_BUCKET"], Key="notes/before.txt", Body=NOTE)
        with user_sql(env, env["DATABASE_SCHEMA"]) as connection, connection.cursor() as cursor:
            cursor.execute("CREATE TABLE marks (student VARCHAR(64), mark INT)")
            cursor.execute("INSERT INTO marks VALUES (%s, 17)", (name,))
    return made


@pytest.fixture(scope="module")
def passphrase(tmp_path_factory):
    """The administrator's passphrase file, kept outside credentials/."""
    path = tmp_path_factory.mktemp("vault") / "passphrase"
    path.write_text(uuid.uuid4().hex)
    path.chmod(0o600)
    return path


@pytest.fixture(scope="module")
def backups(work, passphrase, offsite, tmp_path_factory):
    """Three backups into a folder that keeps two, each copied to the other host: the second right after the first,
    the third (its credentials encrypted with a passphrase) while a student logs metrics as fast as the server takes
    them. They hold root's secrets: deleted after the module."""
    folder = tmp_path_factory.mktemp("backups")
    first, _, _ = backup(folder, "-e", "backup_keep=2", *offsite["args"])
    second, copied, linked = backup(folder, "-e", "backup_keep=2", *offsite["args"])
    stop = threading.Event()
    logging = threading.Thread(target=keep_logging, args=(user_env(STUDENT), stop), daemon=True)
    logging.start()
    try:
        third, _, _ = backup(folder, "-e", "backup_keep=2", "-e", f"backup_passphrase_file={passphrase}", *offsite["args"])
    finally:
        stop.set()
        logging.join(60)
    yield {"folder": folder, "first": first, "second": second, "third": third, "copied": copied, "linked": linked}
    shutil.rmtree(folder)


def keep_logging(env, stop):
    with pytest.MonkeyPatch.context() as monkeypatch:
        client = mlflow_as(env, monkeypatch)
        experiment = client.create_experiment(f"{STUDENT}.during-backup")
        while not stop.is_set():
            run_id = client.create_run(experiment).info.run_id
            for step in range(20):
                client.log_metric(run_id, "loss", 1.0 / (step + 1), step=step)
            client.set_terminated(run_id)


def test_an_unchanged_object_is_linked_not_copied(backups):
    assert backups["copied"] == 0 and backups["linked"] > 0, backups


def test_only_the_last_backups_are_kept_each_private(backups):
    kept = sorted(path.name for path in backups["folder"].iterdir())
    assert kept == sorted(path.split("/")[-1] for path in (backups["second"], backups["third"])), kept
    for folder in backups["folder"].iterdir():
        assert folder.stat().st_mode & 0o777 == 0o700
        files = [path for path in folder.rglob("*") if path.is_file()]
        assert files and all(path.stat().st_mode & 0o077 == 0 for path in files), folder


def test_the_other_host_holds_the_kept_backups_with_their_links(backups, offsite):
    """The copy is the folder of backups as it is here: the two kept backups (the first, deleted here, is deleted
    there), every file with as many names (an unchanged object is one file in both backups, there too)."""
    local = {str(path.relative_to(backups["folder"])): path.stat().st_nlink
             for path in backups["folder"].rglob("*") if path.is_file()}
    listed = docker("exec", offsite["container"], "find", offsite["folder"], "-type", "f", "-printf", "%P %n\\n")
    there = {path: int(links) for path, links in (line.rsplit(" ", 1) for line in listed.splitlines())}
    assert there == local
    assert any(links > 1 for links in there.values())


def test_a_host_it_cannot_trust_stops_the_backup_before_anything_is_written(offsite, tmp_path):
    """A known_hosts file without the host's key: ssh's own refusal, in one line, and no backup."""
    stranger = tmp_path / "known_hosts"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "other")], check=True)
    address = offsite["to"].split("@")[1].split(":")[0]
    stranger.write_text(f"{address} {' '.join((tmp_path / 'other.pub').read_text().split()[:2])}\n")
    folder = tmp_path / "backups"
    done = ansible_playbook("playbooks/backup.yml", "-e", f"backup_dir={folder}", *offsite["args"],
                            "-e", f"backup_copy_known_hosts={stranger}", check=False)
    assert done.returncode != 0
    assert (f"Cannot sign in to {offsite['to'].split(':')[0]} over SSH for the second copy of the backups "
            "(backup_copy_to): Host key verification failed. Nothing was backed up.") in " ".join(done.stdout.split()), \
        done.stdout[-2000:]
    assert not folder.exists()
    bad = ansible_playbook("playbooks/backup.yml", "-e", f"backup_dir={folder}", *offsite["args"],
                           "-e", json.dumps({"backup_copy_to": "not a destination"}), check=False)
    assert bad.returncode != 0 and "backup_copy_to must be user@host:/folder (is 'not a destination')" in bad.stdout
    assert not folder.exists()


def test_the_manifest_names_versions_and_checksums(backups, stack):
    manifest = json.loads((REPO / backups["third"] / "manifest.json").read_text())
    versions = manifest["info"]["versions"]
    assert {"database", "object_store", "zenml", "mlflow", "proxy"} <= set(versions)
    for service, image in versions.items():
        assert image == stack.image(service), service
    assert {"database.sql", "credentials.tar.gpg", "objects", "files"} <= set(manifest["parts"])
    assert "credentials.tar" in json.loads((REPO / backups["second"] / "manifest.json").read_text())["parts"]
    assert all(re.fullmatch(r"[0-9a-f]{64}", entry["sha256"]) for entry in manifest["files"].values())


def still_there(students, work, monkeypatch):
    """The positive control of each refusal: the student's run is where it was."""
    run_id = work[STUDENT].mlflow_id
    assert mlflow_as(students[STUDENT], monkeypatch).get_run(run_id).info.status == "FINISHED"


def test_the_credentials_are_encrypted_with_the_passphrase(backups, passphrase, tmp_path):
    sealed = REPO / backups["third"] / "credentials.tar.gpg"
    assert not (REPO / backups["third"] / "credentials.tar").exists()
    assert b"root.env" not in sealed.read_bytes() and b"ustar" not in sealed.read_bytes()
    opened = tmp_path / "credentials.tar"
    subprocess.run(["gpg", "--homedir", str(tmp_path), "--batch", "--no-symkey-cache", "--pinentry-mode", "loopback",
                    "--passphrase-file", str(passphrase), "--output", str(opened), "--decrypt", str(sealed)],
                   check=True, capture_output=True)
    subprocess.run(["gpgconf", "--homedir", str(tmp_path), "--kill", "all"], check=False)
    names = subprocess.run(["tar", "-tf", str(opened)], capture_output=True, text=True, check=True).stdout.split()
    opened.unlink()  # root's secrets
    assert {"./root.env", "./zenml_server_encryption_key"} <= set(names), names


def test_a_passphrase_kept_in_credentials_is_refused(backups):
    inside = REPO / "credentials" / "passphrase"
    inside.write_text("kept with what it protects")
    try:
        done = ansible_playbook("playbooks/backup.yml", "-e", f"backup_dir={backups['folder']}",
                                "-e", f"backup_passphrase_file={inside}", check=False)
    finally:
        inside.unlink()
    assert done.returncode != 0
    assert (f"backup_passphrase_file must be an absolute path to a file on this controller, kept outside credentials/ "
            f"(a backup holds credentials/): {inside}. Nothing was backed up.") in " ".join(done.stdout.split())
    assert len(list(backups["folder"].iterdir())) == 2


@pytest.mark.parametrize("damage,message", [
    ("checksum", "is damaged: database.sql does not match its checksum. Nothing was restored."),
    ("version", "The backup is of mlops/mlflow:0.0.1 (mlflow) but this stack runs"),
    ("no passphrase", "The backup's credentials are encrypted: add -e backup_passphrase_file=<the file holding the "
                      "passphrase>. Nothing was restored."),
    ("wrong passphrase", "does not open the backup's credentials (gpg: decryption failed: Bad session key). Nothing was "
                         "restored."),
    ("none", "The stack here holds data (mlops-proxy-data, mlops-database-data"),
])
def test_a_restore_refuses_and_changes_nothing(backups, students, work, passphrase, tmp_path, monkeypatch, damage,
                                               message):
    copy = tmp_path / "backup"
    shutil.copytree(backups["third"], copy)
    if damage == "checksum":
        with open(copy / "database.sql", "ab") as dump:
            dump.write(b"-- one more line\n")
    elif damage == "version":
        manifest = json.loads((copy / "manifest.json").read_text())
        manifest["info"]["versions"]["mlflow"] = "mlops/mlflow:0.0.1"
        (copy / "manifest.json").write_text(json.dumps(manifest))
    key = {"no passphrase": [], "wrong passphrase": [tmp_path / "wrong"]}.get(damage, [passphrase])
    (tmp_path / "wrong").write_text("not the passphrase")
    before = sorted(path.name for path in (REPO / "credentials").iterdir())
    try:
        done = restore(copy, *[arg for path in key for arg in ("-e", f"backup_passphrase_file={path}")], check=False)
    finally:
        shutil.rmtree(copy)  # root's secrets
    assert done.returncode != 0
    assert message in " ".join(done.stdout.split()), done.stdout[-3000:]
    assert sorted(path.name for path in (REPO / "credentials").iterdir()) == before
    still_there(students, work, monkeypatch)


def test_a_backup_dry_run_writes_nothing_and_says_what_it_would_copy_and_delete(backups):
    kept = sorted(backups["folder"].iterdir())
    done = ansible_playbook("playbooks/backup.yml", "-e", f"backup_dir={backups['folder']}", "-e", "backup_keep=2",
                            "--check")
    text = " ".join(done.stdout.split())
    assert f"Dry run, nothing was written: a backup would go into {backups['folder']}/" in text, done.stdout[-3000:]
    assert re.search(r"Objects: [0-9]+ to copy, [1-9][0-9]* unchanged \(linked\); [0-9]+ bytes needed", text), text[-3000:]
    oldest = backups["second"].split("/")[-1]
    assert f"Backups it would delete (keeping the last 2): {oldest}" in text
    assert sorted(backups["folder"].iterdir()) == kept


def test_a_restore_dry_run_checks_the_backup_and_changes_nothing(backups, students, work, passphrase, tmp_path,
                                                                 monkeypatch):
    before = sorted(path.name for path in (REPO / "credentials").iterdir())
    done = restore(backups["third"], "-e", f"backup_passphrase_file={passphrase}", "-e", "overwrite=yes", "--check")
    text = " ".join(done.stdout.split())
    assert f"Dry run, nothing was changed: the backup {backups['third']}" in text, done.stdout[-3000:]
    assert "Its credentials: encrypted; the passphrase opens them." in text
    assert "The stack here: holds data (mlops-proxy-data, mlops-database-data" in text and "a restore deletes it first" in text
    # The dry run checks what a restore checks: a wrong passphrase is refused the same way.
    (tmp_path / "wrong").write_text("not the passphrase")
    refused = restore(backups["third"], "-e", f"backup_passphrase_file={tmp_path / 'wrong'}", "-e", "overwrite=yes",
                      "--check", check=False)
    assert refused.returncode != 0 and "does not open the backup's credentials" in " ".join(refused.stdout.split())
    assert sorted(path.name for path in (REPO / "credentials").iterdir()) == before
    # The credentials it decrypted to check the passphrase are gone with their private folder.
    assert not list(Path(tempfile.gettempdir()).glob("mlops-restore-*"))
    still_there(students, work, monkeypatch)


@pytest.fixture(scope="module")
def purged(backups, students, work, stack):
    """`make purge`, with backups scheduled (once a year): whether the cron entry and the services' secret files
    were there before and after."""
    entry = Path("/etc/cron.d") / f"{stack.settings['stack_name']}-backup"
    secrets = Path(stack.settings["stack_secrets_dir"])
    ansible_playbook("playbooks/run_server.yml", "--tags", "backup_schedule",
                     "-e", json.dumps({"backup_schedule": "0 3 1 1 *"}))
    before = entry.is_file(), secrets.is_dir()
    ansible_playbook("playbooks/teardown.yml", "-e", "teardown_remove_data=true")
    return before, (entry.is_file(), secrets.exists())


@pytest.fixture(scope="module")
def restored(purged, backups, offsite, passphrase, tmp_path_factory):
    """The restore of the last backup onto the purged stack: its copy, fetched from the other host."""
    fetched = tmp_path_factory.mktemp("fetched") / Path(backups["third"]).name
    subprocess.run(["rsync", "--archive", "--hard-links", "--rsh", offsite["ssh"],
                    f"{offsite['to']}/{fetched.name}/", f"{fetched}/"], check=True, capture_output=True)
    done = restore(str(fetched), "-e", f"backup_passphrase_file={passphrase}")
    assert recap(done.stdout)["failed"] == 0
    return done


def test_purge_removes_the_scheduled_backups_and_the_secret_files(purged, restored, stack):
    """Backups of a purged stack would fail every time (make up, or a restore, installs the schedule again), and
    its services' secret files would outlive their data (the restore writes them again)."""
    assert purged == ((True, True), (False, False))
    assert any(Path(stack.settings["stack_secrets_dir"], "database").iterdir())


def test_the_students_find_their_mlflow_runs_artifacts_and_models(restored, students, work, monkeypatch, tmp_path):
    made, client = work[STUDENT], mlflow_as(students[STUDENT], monkeypatch)
    run_ = client.get_run(made.mlflow_id)
    assert run_.data.metrics["test_accuracy"] == pytest.approx(made.accuracy, abs=1e-4)
    assert client.get_model_version(made.model, str(made.version)).status == "READY"
    # The model's files, through MLflow's artifact proxy, from the restored bucket.
    files = mlflow.artifacts.download_artifacts(artifact_uri=client.get_model_version_download_uri(made.model, made.version),
                                                dst_path=str(tmp_path), tracking_uri=students[STUDENT]["MLFLOW_TRACKING_URI"])
    assert "MLmodel" in os.listdir(files), os.listdir(files)
    with pytest.raises(MlflowException, match="PERMISSION_DENIED|403"):
        mlflow_as(students[OTHER], monkeypatch).get_run(made.mlflow_id)


def test_the_students_find_their_zenml_runs_stacks_and_artifacts(restored, students, work, tmp_path):
    env, made = students[STUDENT], work[STUDENT]
    seen = zenml_as(env["ZENML_STORE_URL"], STUDENT, env["ZENML_STORE_PASSWORD"], f"""
        run = Client().get_pipeline_run("{made.zenml_id}")
        result = {{"status": run.status.value, "user": run.user.name, "stack": run.stack.name}}
    """)
    assert seen == {"status": "completed", "user": STUDENT, "stack": STUDENT}
    accuracy = evaluated_accuracy(f"credentials/{STUDENT}.env", made.zenml_id, tmp_path)
    assert accuracy == pytest.approx(made.accuracy, abs=1e-4)


def test_the_ci_api_key_still_signs_in(restored, students, monkeypatch):
    env = students[STUDENT]
    monkeypatch.setenv("ZENML_STORE_API_KEY", env["ZENML_STORE_API_KEY"])
    seen = zenml_as(env["ZENML_STORE_URL"], "", "", "result = Client().active_user.name")
    assert seen == f"{STUDENT}-ci"


def test_the_students_objects_and_tables_are_back_and_still_private(restored, students):
    env, other = students[STUDENT], students[OTHER]
    assert user_s3(env).get_object(Bucket=env["STACK_BUCKET"], Key="notes/before.txt")["Body"].read() == NOTE
    with pytest.raises(ClientError, match="AccessDenied"):
        user_s3(other).get_object(Bucket=env["STACK_BUCKET"], Key="notes/before.txt")
    with user_sql(env, env["DATABASE_SCHEMA"]) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT student, mark FROM marks")
        assert cursor.fetchall() == ((STUDENT, 17),)
    with pytest.raises(pymysql.err.OperationalError, match="1142|denied"):
        with user_sql(other, other["DATABASE_SCHEMA"]) as connection, connection.cursor() as cursor:
            cursor.execute(f"SELECT * FROM `{env['DATABASE_SCHEMA']}`.marks")


def test_the_backup_taken_during_logging_is_consistent(restored, stack):
    """--single-transaction: no metric without its run, no run without its experiment."""
    with root_sql(stack, "mlflow") as connection, connection.cursor() as cursor:
        cursor.execute("SELECT COUNT(*) FROM metrics WHERE run_uuid NOT IN (SELECT run_uuid FROM runs)")
        assert cursor.fetchone()[0] == 0
        cursor.execute("SELECT COUNT(*) FROM runs WHERE experiment_id NOT IN (SELECT experiment_id FROM experiments)")
        assert cursor.fetchone()[0] == 0
        cursor.execute("SELECT COUNT(*) FROM runs r JOIN experiments e USING (experiment_id) WHERE e.name = %s",
                       (f"{STUDENT}.during-backup",))
        assert cursor.fetchone()[0] > 0


def test_a_new_run_is_logged_after_the_restore(restored, students, monkeypatch):
    client = mlflow_as(students[STUDENT], monkeypatch)
    experiment = client.get_experiment_by_name(f"{STUDENT}.during-backup")
    run_id = client.create_run(experiment.experiment_id).info.run_id
    client.log_metric(run_id, "after_restore", 1.0)
    assert client.get_run(run_id).data.metrics["after_restore"] == 1.0
