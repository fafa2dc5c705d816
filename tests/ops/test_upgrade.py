"""The upgrade path is `make up` with newer pinned versions: before any container is replaced, run_server.yml
compares the running stack with this checkout's images, refuses a downgrade with one line and nothing changed,
and backs the stack up before an upgrade (a newer tag than any built here stands for the next release; only the
first play runs, with --tags upgrade)."""
import json
import shutil

from mlops_stack.stackenv import ansible_playbook, docker


def test_a_downgrade_is_refused_and_nothing_changes(stack):
    containers = stack.containers()
    before = {name: docker("inspect", "--format", "{{.Id}}", name) for name in containers}
    running = stack.image("mlflow")
    done = ansible_playbook("playbooks/run_server.yml", "-e", "mlflow_server_image_tag=3.0.0", check=False)
    assert done.returncode != 0
    said = " ".join(done.stdout.split())
    assert (f"mlflow runs {running} but this checkout has {running.split(':')[0]}:3.0.0, an older version: "
            "downgrades are refused (migrated data may not open). Nothing was changed.") in said, done.stdout[-3000:]
    assert {name: docker("inspect", "--format", "{{.Id}}", name) for name in containers} == before


def test_an_upgrade_backs_the_stack_up_first_and_a_rerun_does_not(stack, tmp_path):
    running = stack.image("mlflow")
    newer = f"{running.split(':')[0]}:99.0.0"
    try:
        done = ansible_playbook("playbooks/run_server.yml", "--tags", "upgrade", "-e", "mlflow_server_image_tag=99.0.0",
                                "-e", f"backup_dir={tmp_path}")
        assert f"Upgrade: mlflow {running} {newer}: backing up first" in " ".join(done.stdout.split()), done.stdout[-3000:]
        [backup] = list(tmp_path.iterdir())
        assert json.loads((backup / "manifest.json").read_text())["info"]["versions"]["mlflow"] == running
        again = ansible_playbook("playbooks/run_server.yml", "--tags", "upgrade", "-e", f"backup_dir={tmp_path}")
        assert "Upgrade:" not in again.stdout and list(tmp_path.iterdir()) == [backup]
    finally:
        shutil.rmtree(tmp_path)  # the backup holds root's secrets
