"""The status report (playbooks/status.yml): memory per container, disks, backups and warnings."""
import importlib.util
from datetime import datetime, timedelta, timezone
from pathlib import Path

SPEC = importlib.util.spec_from_file_location("stack_filter", Path(__file__).parents[2] / "ansible/plugins/filter/stack.py")
stack_filter = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(stack_filter)

SERVICES = [{"service": "database", "container": "mlops-database", "state": "running", "health": "healthy", "needed": True},
            {"service": "mlflow", "container": "mlops-mlflow", "state": "running", "health": "unhealthy", "needed": True},
            {"service": "gitlab_runner", "container": "mlops-gitlab-runner", "state": "absent", "health": "absent",
             "needed": False}]
DF = "Mounted on      1B-blocks        Avail Use%\n/var/lib/docker 1000 80 92%\n/ 1000 500 50%\n"
MEMORY = "mlops-database 144MiB / 1GiB\nmlops-mlflow 623.4MiB / 1GiB\n"
SETTINGS = {"disk_warn_percent": 90, "backup_max_age_hours": 26, "backup_schedule": "", "backup_dir": "/b"}


def backup_named(hours_ago):
    return "/b/" + (datetime.now(timezone.utc) - timedelta(hours=hours_ago)).strftime("%Y%m%dT%H%M%SZ")


def test_the_report_has_memory_disks_database_size_and_warnings():
    report = stack_filter.stack_status(SERVICES, DF, MEMORY, [], [{"name": "a", "bytes": 10}, {"name": "b", "bytes": None}],
                                       [], SETTINGS)
    assert [row["memory"] for row in report["services"]] == ["144MiB", "623.4MiB", ""]
    assert report["disks"] == [{"path": "/var/lib/docker", "bytes": 1000, "free": 80, "used_percent": 92},
                               {"path": "/", "bytes": 1000, "free": 500, "used_percent": 50}]
    assert report["database_bytes"] == 10
    assert report["backups"] == {"dir": "/b", "count": 0, "newest": None, "age_hours": None}
    assert report["warnings"] == ["mlflow is running, health unhealthy", "disk of /var/lib/docker is 92% full"]


def test_a_scheduled_backup_too_old_or_missing_is_a_warning_and_a_recent_one_is_not():
    scheduled = dict(SETTINGS, backup_schedule="30 2 * * *", disk_warn_percent=99)
    healthy = SERVICES[:1]
    recent = stack_filter.stack_status(healthy, DF, MEMORY, [backup_named(30), backup_named(2)], [], [], scheduled)
    assert recent["warnings"] == [] and recent["backups"]["count"] == 2 and 1.9 <= recent["backups"]["age_hours"] <= 2.1
    old = stack_filter.stack_status(healthy, DF, MEMORY, [backup_named(30)], [], [], scheduled)
    assert old["warnings"] == ["backups are scheduled (30 2 * * *) but the newest is 30.0 hours old (see "
                               ".mlops/logs/scheduled-backups.log)"]
    none = stack_filter.stack_status(healthy, DF, MEMORY, [], [], [], scheduled)
    assert none["warnings"][0].startswith("backups are scheduled (30 2 * * *) but the newest is missing")
    assert stack_filter.stack_status(healthy, DF, MEMORY, [], [], [], dict(scheduled, backup_schedule=""))["warnings"] == []


def test_a_running_service_whose_requests_fail_is_not_ready():
    """Readiness: each of a service's requests must answer 200; one without requests has no readiness (None)."""
    healthy = [dict(row, health="healthy") for row in SERVICES[:2]]
    probes = [["mlflow", "/api/2.0/mlflow/experiments/search", 200, ""],
              ["mlflow", "/api/2.0/mlflow-artifacts/artifacts", 500, ""], ["database", "queries", 200, ""]]
    report = stack_filter.stack_status(healthy, DF, MEMORY, [], [], probes, dict(SETTINGS, disk_warn_percent=99))
    assert [(row["service"], row["ready"]) for row in report["services"]] == [("database", True), ("mlflow", False)]
    assert report["warnings"] == ["mlflow is not ready: /api/2.0/mlflow-artifacts/artifacts answered 500"]
    silent = [["mlflow", "/api/2.0/mlflow/experiments/search", -1, "Connection refused"]]
    report = stack_filter.stack_status(healthy, DF, MEMORY, [], [], silent, dict(SETTINGS, disk_warn_percent=99))
    assert [row["ready"] for row in report["services"]] == [None, False]
    assert report["warnings"] == ["mlflow is not ready: /api/2.0/mlflow/experiments/search did not answer (Connection refused)"]


def test_the_readiness_answers_name_service_path_and_status():
    results = [{"item": [{"key": "mlflow"}, {"path": "/api", "sign_in": "basic"}], "status": 500, "msg": "Status code was 500"},
               {"item": [{"key": "proxy"}, {"path": "/"}], "status": -1, "msg": "Connection refused"}]
    assert stack_filter.stack_ready_answers(results) == [["mlflow", "/api", 500, "Status code was 500"],
                                                         ["proxy", "/", -1, "Connection refused"]]
