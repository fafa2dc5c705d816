"""The mlops command against the real stack: it runs the plays through ansible-runner, says what changed,
and stops with the play's own one line (and a non-zero status) on a mistake."""
import json
import shutil
import subprocess
import uuid
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urlsplit

from mlops_stack.doctor import NEW_FILE
from mlops_stack.stackenv import BIN, REPO, ansible_playbook, role_setting, user_s3
from mlops_stack.stackenv import user_mlflow
from roster import STUDENT_A, root_sql, user_rows, user_sql

NAME = f"cli-{uuid.uuid4().hex[:6]}"


def mlops(*args):
    return subprocess.run([str(BIN / "mlops"), *args], cwd=REPO, capture_output=True, text=True, timeout=900,
                          stdin=subprocess.DEVNULL)


def listed():
    done = mlops("users", "list", "--json")
    assert done.returncode == 0, done.stderr
    return {row["username"]: row for row in json.loads(done.stdout)}


def recorded(stack):
    """The users the stack has recorded, read as root (quicker than listed(), which asks every service)."""
    return {row[0] for row in user_rows(stack)}


def test_add_list_and_remove_a_user_through_the_tool(stack, tmp_path):
    dry = mlops("users", "add", NAME, "--dry-run")
    assert dry.returncode == 0, dry.stdout[-2000:] + dry.stderr[-2000:]
    assert "stack_users: would change" in dry.stdout
    assert NAME not in recorded(stack) and not (REPO / "credentials" / f"{NAME}.env").exists()

    added = mlops("users", "add", NAME, "--role", "teacher")
    assert added.returncode == 0, added.stdout[-2000:] + added.stderr[-2000:]
    assert f"hand over, each with credentials/mlops-ca.crt: credentials/{NAME}.env" in added.stdout
    assert "stack_users: Take the next group of users (0 of 1 users done)" in added.stdout
    assert "users: 1 of 1 added" in added.stdout
    log = Path(added.stdout.split("full log: ")[1].split()[0])
    assert log.stat().st_mode & 0o777 == 0o600 and "PLAY RECAP" in log.read_text()
    row = listed()[NAME]
    assert row["role"] == "teacher"
    assert row["services"] == dict.fromkeys(["database", "bucket", "object_store", "mlflow", "zenml"], True)
    shown = mlops("users", "show", NAME, "--json")
    assert shown.returncode == 0, shown.stderr
    user = json.loads(shown.stdout)
    assert (user["role"], user["created"]) == ("teacher", row["created"])
    assert user["held"] == [f"database: {NAME}: account {NAME}@%, schema user_{NAME.replace('-', '_')}",
                            f"object store: bucket {NAME}", f"object store: user {NAME}",
                            f"MLflow: {NAME}: account {NAME}", f"ZenML: {NAME}: account {NAME}"]

    again = mlops("users", "add", NAME)
    assert again.returncode == 1
    assert again.stderr.startswith(f"Error: Already exist: {NAME}. Nothing was changed; remove them first")
    assert len(again.stderr.splitlines()) == 1 and "Traceback" not in again.stderr

    # An account lost behind the stack's back (here the database's) shows in the list.
    with root_sql(stack) as connection, connection.cursor() as cursor:
        cursor.execute(f"DROP USER `{NAME}`@'%'")
        cursor.execute(f"DROP DATABASE `user_{NAME.replace('-', '_')}`")
    drifted = mlops("users", "list")
    assert drifted.returncode == 0, drifted.stderr
    assert [line.split(None, 4)[-1] for line in drifted.stdout.splitlines() if line.startswith(NAME + " ")] == \
        ["missing: database"], drifted.stdout

    kept = handed_out(tmp_path, NAME)  # the student keeps their file after their removal
    refused = mlops("users", "remove", NAME)  # no terminal to ask on
    assert refused.returncode == 2 and "Refused without --yes" in refused.stderr and NAME in recorded(stack)
    removed = mlops("users", "remove", NAME, "--yes")
    assert removed.returncode == 0, removed.stdout[-2000:] + removed.stderr[-2000:]
    assert NAME not in recorded(stack)
    nothing = mlops("users", "show", NAME)
    assert nothing.returncode == 1 and nothing.stderr.strip() == f"Error: no such user: {NAME}", nothing.stderr
    assert nothing.stdout.split() == [NAME, "not", "a", "user", "of", "the", "stack"]

    gone = mlops("doctor", str(kept))
    assert gone.returncode == 1, gone.stdout
    assert failed(gone) == {
        "MLflow sign-in": "refuses MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD: " + NEW_FILE,
        "ZenML sign-in": "refuses ZENML_STORE_USERNAME and ZENML_STORE_PASSWORD (401): " + NEW_FILE,
        "ZenML CI key": "ZENML_STORE_API_KEY is refused (401): " + NEW_FILE,
        "object store": "InvalidAccessKeyId: the object store does not know AWS_ACCESS_KEY_ID: " + NEW_FILE}


def handed_out(folder, name, change=lambda text: text):
    """A user's file and the CA, as a student keeps them in a folder of their own."""
    shutil.copy(REPO / "credentials" / "mlops-ca.crt", folder / "mlops-ca.crt")
    path = folder / f"{name}.env"
    path.write_text(change((REPO / "credentials" / f"{name}.env").read_text()))
    return path


def failed(done):
    """The failed checks doctor printed: name -> what it said."""
    lines = [line[len("FAIL  "):] for line in done.stdout.splitlines() if line.startswith("FAIL  ")]
    return dict(line.split(": ", 1) for line in lines)


def test_doctor_passes_a_good_file_and_names_each_broken_thing(users, stack, tmp_path):
    good = mlops("doctor", str(handed_out(tmp_path, STUDENT_A)))
    assert good.returncode == 0, good.stdout + good.stderr
    lines = good.stdout.splitlines()
    assert len(lines) == 11 and all(line.startswith("ok  ") for line in lines), lines
    assert f"ok    MLflow sign-in: as {STUDENT_A}" in lines and f"ok    ZenML stack: {STUDENT_A}, yours" in lines
    shared = ", ".join(sorted(stack.settings["object_store_shared_buckets"]))
    assert f"ok    object store: bucket {STUDENT_A} readable and writable; read-only: {shared}" in lines
    assert lines[-1].startswith("ok    database: not published at ")  # the default: the database is not published

    env = users[STUDENT_A]
    wrong = mlops("doctor", str(handed_out(tmp_path, STUDENT_A, lambda text: text.replace(
        f"MLFLOW_TRACKING_PASSWORD={env['MLFLOW_TRACKING_PASSWORD']}", "MLFLOW_TRACKING_PASSWORD=not-it"))))
    assert wrong.returncode == 1 and wrong.stderr.strip() == "Error: 1 check failed: MLflow sign-in", wrong.stderr
    assert failed(wrong) == {"MLflow sign-in": "refuses MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD: " + NEW_FILE}
    as_json = mlops("doctor", "--json", str(tmp_path / f"{STUDENT_A}.env"))  # the same file, for a script
    assert as_json.returncode == 1, as_json.stderr
    checks = json.loads(as_json.stdout)
    assert {"name": "ZenML stack", "ok": True, "detail": f"{STUDENT_A}, yours"} in checks
    assert [(check["name"], check["detail"]) for check in checks if not check["ok"]] == [
        ("MLflow sign-in", "refuses MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD: " + NEW_FILE)]

    host = urlsplit(env["ZENML_STORE_URL"]).hostname
    moved = mlops("doctor", str(handed_out(tmp_path, STUDENT_A, lambda text: text.replace(
        f"ZENML_STORE_URL={env['ZENML_STORE_URL']}", f"ZENML_STORE_URL=https://{host}:1"))))
    assert moved.returncode == 1
    assert failed(moved)[f"ZenML at https://{host}:1"].startswith(f"nothing answers on {host}:1 (Connection refused)")

    stranger = tmp_path / "stranger"
    stranger.mkdir()
    path = handed_out(stranger, STUDENT_A)
    (stranger / "mlops-ca.crt").write_text(certifi_ca())  # a CA that did not sign the stack's certificate
    untrusted = mlops("doctor", str(path))
    assert untrusted.returncode == 1
    assert failed(untrusted)[f"MLflow at {env['MLFLOW_TRACKING_URI']}"].startswith("certificate not trusted (")
    assert len(failed(untrusted)) == 3  # each service, and nothing asked of any


def certifi_ca():
    import certifi
    return Path(certifi.where()).read_text()


def test_a_bad_roster_line_is_the_plays_one_line(stack, tmp_path):
    roster = tmp_path / "course.csv"
    roster.write_text("username,role\nok-name,developer\nBad Name,developer\n")
    done = mlops("users", "add", "--roster", str(roster))
    assert done.returncode == 1 and len(done.stderr.splitlines()) == 1, done.stderr
    assert "course.csv line 3: 'Bad Name' is not a valid username" in done.stderr
    assert "ok-name" not in recorded(stack)


def test_status_reports_each_service_and_a_stopped_one(stack):
    done = mlops("status", "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    rows = {row["service"]: row for row in report["services"]}
    assert [disk["path"] for disk in report["disks"]][0] == docker_root() and report["database_bytes"] > 0
    assert set(rows) == {name for name, service in stack.services.items() if "container" in service}
    for name, row in rows.items():
        if row["needed"]:
            assert (row["state"], row["health"], row["ready"]) == ("running", "healthy", True), row
            assert row["url"] == stack.services[name].get("url", "")
    proxy = stack.container("proxy")
    subprocess.run(["docker", "stop", proxy], check=True, capture_output=True)
    try:
        stopped = mlops("status")
        assert stopped.returncode == 1, stopped.stderr
        assert stopped.stderr.splitlines() == ["warning: proxy is exited, health unhealthy",
                                               "Error: down: proxy (make up starts them; docker logs <container> says why)"]
        assert any(line.startswith("proxy          exited") for line in stopped.stdout.splitlines()), stopped.stdout
    finally:
        subprocess.run(["docker", "start", proxy], check=True, capture_output=True)
        subprocess.run(["docker", "exec", proxy, "true"], check=True, capture_output=True)
    for _ in range(60):
        if mlops("status").returncode == 0:
            break
    else:
        raise AssertionError("the proxy did not come back healthy")


def test_status_finds_a_service_not_ready_whose_container_is_healthy(stack):
    """Readiness includes what a service depends on: with the object store stopped, MLflow's container is running
    and healthy (Docker asks its process), but MLflow cannot list artifacts; ZenML, which reads no artifacts to
    sign in, stays ready."""
    object_store = stack.container("object_store")
    subprocess.run(["docker", "stop", object_store], check=True, capture_output=True)
    try:
        stopped = mlops("status", "--json")
        assert stopped.returncode == 1, stopped.stderr
        rows = {row["service"]: row for row in json.loads(stopped.stdout)["services"]}
        assert (rows["mlflow"]["state"], rows["mlflow"]["health"], rows["mlflow"]["ready"]) == ("running", "healthy", False)
        assert rows["zenml"]["ready"] is True
        assert stopped.stderr.splitlines() == [
            "warning: object_store is exited, health unhealthy",
            "warning: mlflow is not ready: /api/2.0/mlflow-artifacts/artifacts answered 500",
            "Error: down: object_store (make up starts them; docker logs <container> says why); not ready: mlflow "
            "(the warnings say what failed)"]
    finally:
        subprocess.run(["docker", "start", object_store], check=True, capture_output=True)
    for _ in range(60):
        if mlops("status").returncode == 0:
            break
    else:
        raise AssertionError("the object store did not come back, or MLflow did not become ready again")


def docker_root():
    return subprocess.run(["docker", "info", "--format", "{{.DockerRootDir}}"], capture_output=True, text=True,
                          check=True).stdout.strip()


def test_status_usage_counts_what_a_student_holds(users, stack):
    """Each figure against what the student's own clients see: their bucket's bytes, their MLflow runs."""
    import pytest
    from mlflow.entities import ViewType
    env = users[STUDENT_A]
    s3 = user_s3(env)
    s3.put_object(Bucket=env["STACK_BUCKET"], Key=f"usage/{uuid.uuid4().hex}", Body=b"x" * 123457)
    listed_bytes = sum(item["Size"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=env["STACK_BUCKET"])
                       for item in page.get("Contents", []))
    with user_sql(env, env["DATABASE_SCHEMA"]) as connection, connection.cursor() as cursor:
        cursor.execute("CREATE TABLE IF NOT EXISTS usage_probe (id INT)")
    with pytest.MonkeyPatch.context() as monkeypatch:
        client = user_mlflow(env, monkeypatch)
        experiment = client.create_experiment(f"{STUDENT_A}.usage-{uuid.uuid4().hex[:6]}")
        client.set_terminated(client.create_run(experiment).info.run_id)
        experiments = [item.experiment_id for item in client.search_experiments(view_type=ViewType.ALL)
                       if item.name.startswith(f"{STUDENT_A}.")]
        runs = len(client.search_runs(experiments, run_view_type=ViewType.ALL, max_results=5000))
    done = mlops("status", "--usage", "--json")
    assert done.returncode == 0, done.stderr
    [row] = [user for user in json.loads(done.stdout)["users"] if user["username"] == STUDENT_A]
    assert (row["bucket_bytes"], row["mlflow_runs"], row["role"]) == (listed_bytes, runs, "developer")
    assert row["bucket_quota"] == role_setting("stack_users", "stack_users_bucket_quota")
    assert row["schema_bytes"] >= 16384  # InnoDB's first page of the table
    assert row["last_activity"].startswith(datetime.now(timezone.utc).strftime("%Y-%m-%d"))


def test_status_strict_fails_on_a_warning_and_passes_without(stack, tmp_path):
    schedule = json.dumps({"backup_schedule": "30 2 * * *", "backup_dir": str(tmp_path)})
    late = ansible_playbook("playbooks/status.yml", "-e", "strict=yes", "-e", schedule,
                            "-e", "stack_summary_disk_warn_percent=100", check=False)
    assert late.returncode != 0
    assert ("backups are scheduled (30 2 * * *) but the newest is missing (see .mlops/logs/scheduled-backups.log)"
            in " ".join(late.stdout.split())), late.stdout[-2000:]
    full = ansible_playbook("playbooks/status.yml", "-e", "strict=yes", "-e", "stack_summary_disk_warn_percent=0",
                            check=False)
    assert full.returncode != 0 and f"disk of {docker_root()} is " in full.stdout
    ansible_playbook("playbooks/status.yml", "-e", "strict=yes", "-e", "stack_summary_disk_warn_percent=100")


def test_purge_dry_run_names_what_it_would_delete_and_deletes_nothing(stack):
    def docker(*args):
        return sorted(subprocess.run(["docker", *args], capture_output=True, text=True, check=True).stdout.split())

    volumes, running = docker("volume", "ls", "-q"), docker("ps", "--format", "{{.Names}}")
    done = mlops("purge", "--dry-run")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "stack_teardown: would change" in done.stdout
    assert docker("volume", "ls", "-q") == volumes and docker("ps", "--format", "{{.Names}}") == running
    assert stack.services["database"]["volume"] in volumes and stack.services["database"]["container"] in running

