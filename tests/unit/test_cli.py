"""The mlops command's arguments, errors and exit codes, with click's CliRunner; the plays it runs are
tested against the real stack in tests/e2e/test_mlops_command.py."""
import json

import pytest
from click.testing import CliRunner

from mlops_stack import cli


@pytest.fixture
def plays(monkeypatch):
    """The plays the command would run, recorded instead of run."""
    ran = []

    def run_play(playbook, **kwargs):
        ran.append((playbook, kwargs))
        progress = cli.Progress(quiet=True)
        progress.results["Check the users given"] = {"ansible_facts": {"__stack_users": [
            {"env_file": str(cli.REPO / "credentials" / "alice.env")}]}}
        progress.results["Say where the backup is"] = {"msg": [f"{playbook} check={kwargs.get('check')}"]}
        progress.results["Say what the restore would do (dry run)"] = {"msg": ["Dry run, nothing was changed"]}
        return progress

    monkeypatch.setattr(cli, "run_play", run_play)
    return ran


def invoke(*args, stdin=None):
    return CliRunner().invoke(cli.main, list(args), input=stdin)


@pytest.mark.parametrize("args", [[], ["users"], ["up"], ["users", "add"], ["users", "remove"], ["users", "show"],
                                  ["env"], ["purge"], ["backup"], ["restore"]])
def test_every_command_has_help(args):
    done = invoke(*args, "--help")
    assert done.exit_code == 0 and "Usage: main" in done.output


@pytest.mark.parametrize("args,message", [
    (["users", "add"], "give one user name (or --roster FILE.csv for several)"),
    (["users", "add", "alice", "bob"], "give one user name"),
    (["users", "add", "alice", "--role", "wizard"], "Invalid value for '--role'"),
    (["users", "add", "--roster", "/nonexistent.csv"], "'/nonexistent.csv' does not exist"),
    (["users", "remove", "alice", "--roster", "pyproject.toml"], "give user names or --roster, not both"),
    (["users", "bogus"], "No such command 'bogus'"),
    (["restore", "/nonexistent"], "'/nonexistent' does not exist"),
    (["backup", "--keep", "0"], "Invalid value for '--keep'"),
])
def test_a_usage_mistake_is_one_line_and_exit_status_2(plays, args, message):
    done = invoke(*args)
    assert done.exit_code == 2 and message in done.output, done.output
    assert "Traceback" not in done.output and not plays


def test_users_add_runs_the_add_play_with_the_user_and_names_the_file(plays):
    done = invoke("users", "add", "alice", "--role", "teacher")
    assert done.exit_code == 0, done.output
    assert plays == [("playbooks/manage_users.yml", {"tags": ["add"], "extravars": {"username": "alice", "role": "teacher"},
                                                     "check": False, "verbose": False})]
    assert "hand over, each with credentials/mlops-ca.crt: credentials/alice.env" in done.output


def test_a_dry_run_is_the_plays_check_mode(plays):
    assert invoke("users", "add", "alice", "--dry-run").exit_code == 0
    assert invoke("up", "--dry-run").exit_code == 0
    assert invoke("down", "--dry-run").exit_code == 0
    assert invoke("purge", "--dry-run").exit_code == 0  # nothing to confirm, even without a terminal
    assert [kwargs["check"] for _, kwargs in plays] == [True, True, True, True]
    assert plays[-1][1]["extravars"] == {"teardown_remove_data": True}


def test_backup_and_restore_dry_runs_are_check_mode_and_print_the_plays_report(plays):
    done = invoke("backup", "--dry-run", "--keep", "3")
    assert done.exit_code == 0 and "playbooks/backup.yml check=True" in done.output, done.output
    done = invoke("restore", "tests", "--overwrite", "--dry-run")  # nothing to confirm, even without a terminal
    assert done.exit_code == 0 and "Dry run, nothing was changed" in done.output, done.output
    assert [(playbook, kwargs["check"]) for playbook, kwargs in plays] == [("playbooks/backup.yml", True),
                                                                         ("playbooks/restore.yml", True)]
    assert plays[0][1]["extravars"] == {"backup_keep": 3}
    assert plays[1][1]["extravars"] == {"backup": str(cli.REPO / "tests"), "overwrite": True}


@pytest.mark.parametrize("args", [["purge"], ["users", "remove", "alice"], ["restore", "tests", "--overwrite"]])
def test_destruction_asks_and_a_no_changes_nothing(plays, monkeypatch, args):
    monkeypatch.setattr(cli, "interactive", lambda: True)
    done = invoke(*args, stdin="n\n")
    assert done.exit_code == 1 and "Aborted" in done.output and not plays


@pytest.mark.parametrize("args", [["purge"], ["users", "remove", "alice"], ["restore", "tests", "--overwrite"]])
def test_destruction_without_a_terminal_needs_yes(plays, args):
    done = invoke(*args)  # CliRunner's stdin is not a terminal
    assert done.exit_code == 2 and "Refused without --yes (no terminal to ask on)" in done.output and not plays
    assert invoke(*args, "--yes").exit_code == 0 and len(plays) == 1


def test_restore_names_the_folder_absolute_and_asks_nothing_onto_an_empty_stack(plays):
    assert invoke("restore", "tests").exit_code == 0
    assert plays == [("playbooks/restore.yml", {"extravars": {"backup": str(cli.REPO / "tests"), "overwrite": False},
                                                "check": False, "verbose": False})]


def test_restore_passes_the_passphrase_file_absolute(plays):
    assert invoke("restore", "tests", "--passphrase-file", "pyproject.toml").exit_code == 0
    assert plays[0][1]["extravars"]["backup_passphrase_file"] == str(cli.REPO / "pyproject.toml")


def test_remove_passes_the_confirmation_and_archive_to_the_play(plays):
    assert invoke("users", "remove", "alice", "--archive", "--yes").exit_code == 0
    assert plays[0][1]["extravars"] == {"username": "alice", "confirm": "yes", "archive": "yes"}
    assert plays[0][1]["tags"] == ["remove"]


def test_the_plays_message_is_the_error_line():
    progress = cli.Progress(quiet=True)
    progress.event({"event": "runner_on_failed", "event_data": {"task": "Check", "ignore_errors": True,
                                                               "res": {"msg": "ignored"}}})
    progress.event({"event": "runner_on_failed", "event_data": {"task": "Refuse users that exist already",
                                                               "res": {"msg": "Already exist: alice.\n Nothing was changed"}}})
    assert progress.failures == ["Already exist: alice. Nothing was changed"]


def test_changes_are_counted_per_role():
    progress = cli.Progress(quiet=True)
    for role, task, changed in [("database", "Create the schema", True), ("database", "Read it", False),
                                ("proxy", "Run the proxy", True)]:
        progress.event({"event": "runner_on_ok", "event_data": {"role": role, "task": task, "res": {"changed": changed}}})
    assert progress.changed == {"database": ["Create the schema"], "proxy": ["Run the proxy"]}


def test_doctor_reads_a_file_saved_on_windows_with_its_ca_next_to_it(tmp_path):
    from mlops_stack.doctor import fields, read_credentials
    (tmp_path / "mlops-ca.crt").write_text("a certificate")
    path = tmp_path / "alice.env"
    path.write_bytes(b"\xef\xbb\xbf# comment\r\nSTACK_USER=alice\r\nSTACK_CA_FILE=mlops-ca.crt\r\nZENML_STORE_VERIFY_SSL=true\r\n")
    env = read_credentials(path)
    assert env == {"STACK_USER": "alice", "STACK_CA_FILE": str(tmp_path / "mlops-ca.crt"), "ZENML_STORE_VERIFY_SSL": "true"}
    check = fields(env, path)
    assert not check.ok and check.detail.startswith(f"{path} has no STACK_BUCKET, MLFLOW_TRACKING_URI")


def test_doctor_of_a_missing_file_is_a_usage_error():
    done = invoke("doctor", "/nonexistent.env")
    assert done.exit_code == 2 and "'/nonexistent.env' does not exist" in done.output


STATUS = {
    "services": [{"service": "database", "container": "mlops-database", "state": "running", "health": "healthy",
                  "restarts": 0, "image": "x", "url": "", "needed": True, "memory": "144MiB", "ready": True, "not_ready": ""},
                 {"service": "mlflow", "container": "mlops-mlflow", "state": "exited", "health": "unhealthy",
                  "restarts": 3, "image": "y", "url": "https://h:5000", "needed": True, "memory": "", "ready": False,
                  "not_ready": "/api/2.0/mlflow/experiments/search did not answer (Connection refused)"},
                 {"service": "gitlab_runner", "container": "mlops-gitlab-runner", "state": "absent", "health": "absent",
                  "restarts": 0, "image": "", "url": "", "needed": False, "memory": "", "ready": None, "not_ready": ""}],
    "disks": [{"path": "/var/lib/docker", "bytes": 100 << 30, "free": 5 << 30, "used_percent": 95}],
    "database_bytes": 11 << 20, "backups": {"dir": "/var/backups/mlops", "count": 0, "newest": None, "age_hours": None},
    "warnings": ["disk of /var/lib/docker is 95% full"]}


@pytest.fixture
def status_play(monkeypatch):
    import copy
    report = copy.deepcopy(STATUS)

    def run_play(playbook, **kwargs):
        progress = cli.Progress(quiet=True)
        progress.results["Report the services, the disks, the backups and the warnings"] = {"msg": copy.deepcopy(report)}
        progress.results["Report what each user holds"] = {"msg": [{
            "username": "alice", "role": "developer", "bucket_objects": 2, "bucket_bytes": 1 << 30,
            "bucket_quota": 4 << 30, "schema_bytes": 16384, "mlflow_runs": 3, "mlflow_artifact_bytes": 2048,
            "zenml_runs": 1, "last_activity": "2026-12-01 05:00:00"}]}
        return progress

    monkeypatch.setattr(cli, "run_play", run_play)
    return report


def test_status_is_non_zero_when_a_needed_service_is_down(status_play):
    done = invoke("status")
    assert done.exit_code == 1 and "Error: down: mlflow (make up starts them" in done.output
    assert "gitlab_runner  absent    not configured" in done.output
    assert "disk           /var/lib/docker: 95% used, 5.0 GiB free" in done.output
    assert "warning: disk of /var/lib/docker is 95% full" in done.output
    assert "backups        none in /var/backups/mlops (mlops backup)" in done.output
    status_play["services"][1].update(state="running", health="healthy")
    not_ready = invoke("status")
    assert not_ready.exit_code == 1 and "mlflow         running   not ready" in not_ready.output
    assert "Error: not ready: mlflow (the warnings say what failed)" in not_ready.output
    status_play["services"][1].update(ready=True, not_ready="")
    assert invoke("status").exit_code == 0
    strict = invoke("status", "--strict")
    assert strict.exit_code == 1 and "Error: 1 warning" in strict.output


def test_status_usage_shows_each_users_share_of_the_quota(status_play):
    status_play["services"][1].update(state="running", health="healthy", ready=True)
    done = invoke("status", "--usage")
    assert done.exit_code == 0, done.output
    assert done.stdout.splitlines()[-1].split() == ["alice", "developer", "1.0", "GiB", "25%", "16.0", "KiB", "3",
                                                    "2.0", "KiB", "1", "2026-12-01", "05:00:00"]
    assert json.loads(invoke("status", "--usage", "--json").stdout)["users"][0]["mlflow_runs"] == 3


def test_a_hidden_result_counts_as_changed_when_ansible_says_so():
    progress = cli.Progress(quiet=True)
    progress.event({"event": "runner_on_ok", "stdout": "changed: [localhost]", "event_data": {
        "role": "stack_users", "task": "Create the accounts", "res": {"censored": "hidden: no_log"}}})
    progress.event({"event": "runner_on_ok", "stdout": "ok: [localhost]", "event_data": {
        "role": "stack_users", "task": "Read them", "res": {"censored": "hidden: no_log"}}})
    assert progress.changed == {"stack_users": ["Create the accounts"]}


HANDED_OUT = """# MLOps stack credentials of alice (developer).
# CI_VARIABLES=STACK_USER ZENML_STORE_API_KEY MLFLOW_TRACKING_PASSWORD\r
STACK_USER=alice\r
STACK_CA_FILE=mlops-ca.crt
MLFLOW_TRACKING_PASSWORD=pw1
ZENML_STORE_PASSWORD=pw2
ZENML_STORE_API_KEY=key3
"""


def test_env_ci_prints_the_files_ci_variables_as_ci_variables_sh_does_with_secrets_marked(tmp_path):
    import subprocess
    path = tmp_path / "alice.env"
    path.write_text(HANDED_OUT)
    done = invoke("env", str(path), "--ci")
    assert done.exit_code == 0, done.output
    rows = [line.split() for line in done.stdout.splitlines()]
    assert rows == [["STACK_USER", "visible", "alice"], ["ZENML_STORE_API_KEY", "secret:", "mask", "it", "key3"],
                    ["MLFLOW_TRACKING_PASSWORD", "secret:", "mask", "it", "pw1"]]
    script = subprocess.run(["bash", str(cli.REPO / "demo/scripts/ci_variables.sh"), str(path)],
                            capture_output=True, text=True, check=True)
    assert script.stdout.splitlines() == [f"{row[0]}={row[-1]}" for row in rows]
    as_json = json.loads(invoke("env", str(path), "--ci", "--json").stdout)
    assert as_json[1] == {"key": "ZENML_STORE_API_KEY", "value": "key3", "masked": True, "protected": True}


def test_env_without_ci_hides_every_secret(tmp_path):
    path = tmp_path / "alice.env"
    path.write_text(HANDED_OUT)
    done = invoke("env", str(path))
    assert done.exit_code == 0, done.output
    assert "pw1" not in done.output and "pw2" not in done.output and "key3" not in done.output
    assert done.stdout.splitlines()[0].split() == ["STACK_USER", "CI", "and", "here", "alice"]
    assert ["ZENML_STORE_PASSWORD", "here", "(hidden)"] in [line.split() for line in done.stdout.splitlines()]


@pytest.mark.parametrize("text,message", [
    ("STACK_USER=alice\n", "has no CI_VARIABLES line: not a credentials file of the stack"),
    ("# CI_VARIABLES=STACK_USER ZENML_STORE_API_KEY\nSTACK_USER=alice\nZENML_STORE_API_KEY=\n",
     "has no ZENML_STORE_API_KEY: ask your teacher for a new credentials file"),
])
def test_env_of_a_file_that_is_not_whole_is_one_line(tmp_path, text, message):
    path = tmp_path / "alice.env"
    path.write_text(text)
    done = invoke("env", str(path), "--ci")
    assert done.exit_code == 1 and done.output.strip() == f"Error: {path} {message}", done.output


def test_users_list_says_which_services_hold_each_user(plays, monkeypatch):
    services = dict.fromkeys(["database", "bucket", "object_store", "mlflow", "zenml"], True)
    rows = [{"username": "alice", "role": "developer", "created": "2026-12-01 10:00:00", "services": services},
            {"username": "bob", "role": "teacher", "created": "2026-12-01 11:00:00",
             "services": {**services, "mlflow": False, "zenml": None}}]
    monkeypatch.setattr(cli, "listed", lambda: rows)
    done = invoke("users", "list")
    assert done.exit_code == 0, done.output
    assert done.output.splitlines()[:2] == ["alice                 developer      2026-12-01 10:00:00  all",
                                           "bob                   teacher        2026-12-01 11:00:00  missing: mlflow; "
                                           "not answering: zenml"]


def test_progress_counts_the_users_each_recorded_group_adds(capsys):
    progress = cli.Progress()

    def ok(task, facts=None):
        progress.event({"event": "playbook_on_task_start", "event_data": {"role": "stack_users", "task": task}})
        progress.event({"event": "runner_on_ok", "event_data": {"role": "stack_users", "task": task,
                                                                "res": {"ansible_facts": facts or {}}}})

    ok("Check the users given", {"__stack_users": [{"username": f"s{i}"} for i in range(3)]})
    for group in ([{"username": "s0"}, {"username": "s1"}], [{"username": "s2"}]):
        ok("Take the next group of users", {"__stack_users": group})
        ok("Record the users")
    assert (progress.users, progress.users_done) == (3, 3)
    shown = [line.split("] ", 1)[1] for line in capsys.readouterr().out.splitlines()]
    assert shown == ["stack_users: Check the users given",
                     "stack_users: Take the next group of users (0 of 3 users done)",
                     "stack_users: Take the next group of users (2 of 3 users done)"]
