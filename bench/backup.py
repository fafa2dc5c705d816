"""Backup and restore benchmark: a course of N users, each with an MLflow run and some MiB of objects in their bucket.

    .venv/bin/python bench/backup.py --count 50 --mib 20

Needs the stack up (make up). It DELETES the stack (make purge) between the backup and the restore, as the
drill does, and removes its users at the end. Prints the full backup's time, an incremental one with nothing
changed (target: under 10% of the full one), and the restore's time as a ratio of the backup's.
"""
import argparse
import os
import tempfile
import time
from pathlib import Path

import pytest

from mlops_stack.stackenv import ansible_playbook, backup_report, load_stack, user_env, user_mlflow, user_s3, write_roster


def timed(playbook, *args):
    start = time.monotonic()
    done = ansible_playbook(playbook, *args)
    return time.monotonic() - start, done.stdout


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=50)
    parser.add_argument("--mib", type=int, default=20, help="MiB of objects per user")
    args = parser.parse_args()
    os.environ.update(load_stack().tls_env())  # every client verifies the proxy's certificate
    os.environ["MLFLOW_ENABLE_PROXY_MULTIPART_UPLOAD"] = "false"
    names = [f"bench-b{i:03d}" for i in range(args.count)]
    with tempfile.TemporaryDirectory() as folder:
        roster = write_roster(Path(folder) / "roster.csv", names)
        ansible_playbook("playbooks/manage_users.yml", "--tags", "add", "-e", f"roster={roster}")
        try:
            with pytest.MonkeyPatch.context() as monkeypatch:
                for name in names:
                    env = user_env(name)
                    client = user_mlflow(env, monkeypatch)
                    run_id = client.create_run(client.create_experiment(f"{name}.bench")).info.run_id
                    client.log_metric(run_id, "loss", 0.5)
                    client.set_terminated(run_id)
                    s3 = user_s3(env)
                    for part in range(args.mib // 4 or 1):  # 4 MiB objects, as a student's checkpoints
                        s3.put_object(Bucket=env["STACK_BUCKET"], Key=f"bench/{part}.bin", Body=os.urandom(4 << 20))
            backups = Path(folder) / "backups"
            full, out = timed("playbooks/backup.yml", "-e", f"backup_dir={backups}")
            path = backup_report(out)[0]
            again, out = timed("playbooks/backup.yml", "-e", f"backup_dir={backups}")
            linked = backup_report(out)[1:]
            ansible_playbook("playbooks/teardown.yml", "-e", "teardown_remove_data=true")
            restore, _ = timed("playbooks/restore.yml", "-e", f"backup={path}")
            size = sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())
        finally:
            ansible_playbook("playbooks/manage_users.yml", "--tags", "remove", "-e", f"roster={roster}",
                             "-e", "confirm=yes")
    print(f"{args.count} users, {args.mib} MiB of objects each")
    print(f"full backup:                       {full:7.1f} s")
    print(f"backup again, nothing changed:     {again:7.1f} s  ({again / full:5.1%} of the full one, target < 10%; "
          f"objects copied {linked[0]}, linked {linked[1]})")
    print(f"restore after make purge:          {restore:7.1f} s  ({restore / full:4.1f} x the full backup)")
    print(f"size of the backup:                {size / 2**20:7.1f} MiB")


if __name__ == "__main__":
    main()
