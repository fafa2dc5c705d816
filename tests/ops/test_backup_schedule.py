"""Backups on a schedule: backup_schedule in stack.yml makes run_server.yml install a cron entry on the
controller, and cron (installed and started by the play) runs playbooks/backup.yml at that time; an empty
schedule removes the entry, and a malformed one is refused with one line."""
import json
import subprocess
import time
from pathlib import Path

from mlops_stack.stackenv import REPO, ansible_playbook


def schedule(stack, when, folder, check=True):
    return ansible_playbook("playbooks/run_server.yml", "--tags", "backup_schedule",
                            "-e", json.dumps({"backup_schedule": when, "backup_dir": str(folder)}), check=check)


def backups_running():
    return subprocess.run(["pgrep", "-f", "playbooks/backup.yml"], capture_output=True).returncode == 0


def test_cron_backs_the_stack_up_on_schedule_and_an_empty_schedule_removes_the_entry(stack, tmp_path):
    entry = Path("/etc/cron.d") / f"{stack.settings['stack_name']}-backup"
    try:
        schedule(stack, "* * * * *", tmp_path)  # every minute
        line = [text for text in entry.read_text().splitlines() if not text.startswith("#")][0]
        assert line.startswith("* * * * * root umask 077; cd ") and f"-e backup_dir={tmp_path}" in line, line
        for _ in range(240):
            done = [path for path in tmp_path.iterdir() if not path.name.endswith(".partial")]
            if done:
                break
            time.sleep(1)
        else:
            raise AssertionError(f"no backup from cron within 4 minutes: {sorted(tmp_path.iterdir())}")
        manifest = json.loads((done[0] / "manifest.json").read_text())
        assert set(manifest["info"]["versions"]) >= {"database", "object_store", "zenml", "mlflow"}
    finally:
        schedule(stack, "", tmp_path)
        while backups_running():  # one cron may have started meanwhile
            time.sleep(1)
    assert not entry.exists() or "backup.yml" not in entry.read_text()
    # The backup is complete a task before its play says where it is, in the log: read it once no play runs.
    log = REPO / ".mlops" / "logs" / "scheduled-backups.log"
    assert log.stat().st_mode & 0o077 == 0 and f"Backup: {done[0]}" in log.read_text()


def test_a_malformed_schedule_is_one_line_and_changes_nothing(stack, tmp_path):
    entry = Path("/etc/cron.d") / f"{stack.settings['stack_name']}-backup"
    before = entry.read_text() if entry.exists() else None
    done = schedule(stack, "nightly", tmp_path, check=False)
    assert done.returncode != 0
    assert 'backup_schedule must be the five fields of a cron time (e.g. "30 2 * * *", every night at 02:30) or ' \
           'empty (no schedule), not "nightly". Nothing was changed.' in " ".join(done.stdout.split()), done.stdout[-2000:]
    assert (entry.read_text() if entry.exists() else None) == before
