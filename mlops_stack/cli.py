"""mlops: the stack's command-line tool for administrators.

Each command runs one of the project's plays through ansible-runner, with its variables and tags, and
renders the play's events: which role and task is running, a summary of what changed at the end, the play's
own one-line message when it stops. The plays stay the single source of behaviour.
"""
import json
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import click

from mlops_stack.stackenv import BIN, REPO

# Every run's full Ansible output, one file per run (the credentials files are listed, never their contents).
LOG_DIR = REPO / ".mlops" / "logs"


@dataclass
class Progress:
    """Renders a play's events: one line per role as it starts (rewritten in place on a terminal, with the
    task, the time and, while users are added a group at a time, how many are done), the failures the play did not
    ignore, and counts for the summary."""
    verbose: bool = False
    quiet: bool = False
    log: object = None
    started: float = field(default_factory=time.monotonic)
    role: str = ""
    changed: dict = field(default_factory=dict)  # role -> tasks that changed something
    failures: list = field(default_factory=list)
    results: dict = field(default_factory=dict)  # task name -> its result (the last host's)
    stats: dict = field(default_factory=dict)
    users: int = 0  # the users given to manage_users.yml
    group: int = 0  # the size of the group of users being added (create.yml), 0 before the first
    users_done: int = 0  # users recorded by the groups done

    def event(self, event: dict) -> bool:
        if self.log and event.get("stdout"):
            self.log.write(event["stdout"] + "\n")
        if self.verbose and event.get("stdout"):
            click.echo(event["stdout"])
        data = event.get("event_data", {})
        kind = event.get("event")
        task = data.get("task", "")
        role = data.get("role") or "play"
        if kind == "playbook_on_task_start" and not (self.verbose or self.quiet):
            self.show(role, task)
        elif kind in ("runner_on_ok", "runner_on_skipped") and task == "Record the users":
            self.users_done += self.group  # skipped: a dry run's group, which would be recorded here
        if kind == "runner_on_ok":
            self.results[task] = data.get("res", {})
            given = data.get("res", {}).get("ansible_facts", {}).get("__stack_users", [])
            if task == "Check the users given":
                self.users = len(given)
            elif task == "Take the next group of users":
                self.group = len(given)
            # A no_log result hides even `changed`: Ansible's own line still says it.
            if data.get("res", {}).get("changed") or event.get("stdout", "").strip().startswith("changed:"):
                self.changed.setdefault(role, []).append(task)
        elif kind == "runner_on_failed" and not data.get("ignore_errors"):
            self.failures.append(failure_message(data.get("res", {}), task))
        elif kind == "playbook_on_stats":
            self.stats = {name: sum(data.get(name, {}).values()) for name in ("ok", "changed", "failures", "skipped")}
        return True

    def show(self, role: str, task: str) -> None:
        elapsed = time.monotonic() - self.started
        line = f"[{int(elapsed // 60):02d}:{int(elapsed % 60):02d}] {role}: {task}"
        if self.group or task == "Take the next group of users":
            line += f" ({self.users_done} of {self.users} users done)"
        if sys.stdout.isatty():
            width = shutil.get_terminal_size().columns - 1
            click.echo("\r" + line[:width].ljust(width), nl=False)
        elif role != self.role or task == "Take the next group of users":
            click.echo(line)
        self.role = role

    def done(self) -> None:
        if sys.stdout.isatty() and not (self.verbose or self.quiet):
            click.echo()


def failure_message(result: dict, task: str) -> str:
    """The play's own message for a failure, on one line (an assert's fail_msg, a module's msg)."""
    message = result.get("msg") or result.get("message") or f"task '{task}' failed"
    if isinstance(message, list):
        message = "; ".join(str(part) for part in message)
    return " ".join(str(message).split())


def run_play(playbook: str, *, tags=(), extravars=None, check=False, verbose=False, quiet=False) -> Progress:
    """Run a play of the repository through ansible-runner; raise ClickException with the play's own message
    when it fails. quiet: no progress and no summary (a play whose result is the answer)."""
    import ansible_runner

    LOG_DIR.mkdir(parents=True, exist_ok=True, mode=0o700)
    log_path = LOG_DIR / f"{time.strftime('%Y%m%d-%H%M%S')}-{Path(playbook).stem}.log"
    private = tempfile.mkdtemp(prefix="mlops-runner-")  # 0700; its artifacts are deleted below
    try:
        with open(log_path, "w", encoding="utf-8") as log:
            log_path.chmod(0o600)
            progress = Progress(verbose=verbose, quiet=quiet, log=log)
            runner = ansible_runner.run(
                private_data_dir=private, project_dir=str(REPO), playbook=playbook,
                tags=",".join(tags) or None, extravars=extravars or {},
                cmdline="--check" if check else None, event_handler=progress.event, quiet=True,
                # The ansible-playbook of this environment, whether or not it is activated.
                envvars={"PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", "ANSIBLE_NOCOLOR": "1"})
    finally:
        shutil.rmtree(private, ignore_errors=True)
    progress.done()
    if runner.rc != 0:
        reason = progress.failures[-1] if progress.failures else f"{playbook} ended with status {runner.rc}"
        raise click.ClickException(f"{reason} (full log: {log_path})")
    if not quiet:
        summarize(progress, log_path, check)
    return progress


def summarize(progress: Progress, log_path: Path, check: bool) -> None:
    """What changed, per role, and where the log is."""
    verb = "would change" if check else "changed"
    for role, tasks in progress.changed.items():
        click.echo(f"{role}: {verb} {len(tasks)}: {'; '.join(tasks)}")
    if not progress.changed:
        click.echo("nothing to change" if check else "nothing changed")
    if progress.group:
        click.echo(f"users: {progress.users_done} of {progress.users} {'would be ' if check else ''}added")
    minutes, seconds = divmod(int(time.monotonic() - progress.started), 60)
    click.echo(f"done in {minutes}:{seconds:02d}; full log: {log_path}")


def interactive() -> bool:
    return sys.stdin.isatty()


def confirm(question: str, yes: bool) -> None:
    """Ask, on a terminal only: a script must say --yes."""
    if yes:
        return
    if not interactive():
        raise click.UsageError(f"{question} Refused without --yes (no terminal to ask on).")
    click.confirm(question, abort=True)


def users_given(names, roster) -> dict:
    """The play's variables for one user name or a roster (the play checks both)."""
    if roster and names:
        raise click.UsageError("give user names or --roster, not both")
    if roster:
        return {"roster": str(Path(roster).resolve())}
    if len(names) != 1:
        raise click.UsageError("give one user name (or --roster FILE.csv for several)")
    return {"username": names[0]}


verbose_option = click.option("--verbose", "-v", is_flag=True, help="Stream Ansible's own output.")
dry_run_option = click.option("--dry-run", is_flag=True, help="Show what would change; change nothing (check mode).")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main():
    """Run and manage the MLOps stack (the plays of this repository, through ansible-runner)."""


@main.command()
@dry_run_option
@verbose_option
def up(dry_run, verbose):
    """Bring the whole stack up (run_server.yml); again after any change of stack.yml."""
    run_play("playbooks/run_server.yml", check=dry_run, verbose=verbose)
    stack = REPO / "credentials" / "root.env"
    click.echo(f"services and root accounts: {stack}")


@main.command()
@dry_run_option
@verbose_option
def down(dry_run, verbose):
    """Stop and remove the containers; every data volume stays."""
    run_play("playbooks/teardown.yml", check=dry_run, verbose=verbose)


@main.command()
@click.option("--yes", is_flag=True, help="Do not ask.")
@dry_run_option
@verbose_option
def purge(yes, dry_run, verbose):
    """Remove the containers, volumes and network: every database, bucket and run is lost."""
    if not dry_run:
        confirm("Delete every database, bucket and run of the stack?", yes)
    run_play("playbooks/teardown.yml", extravars={"teardown_remove_data": True}, check=dry_run, verbose=verbose)


@main.command()
@click.option("--keep", type=click.IntRange(min=1), help="How many backups to keep (backup_keep of stack.yml).")
@dry_run_option
@verbose_option
def backup(keep, dry_run, verbose):
    """Back up the running stack (backup.yml) into a new folder of backup_dir; print where (with --dry-run: what
    it would copy and delete)."""
    progress = run_play("playbooks/backup.yml", extravars={"backup_keep": keep} if keep else None, check=dry_run,
                        verbose=verbose)
    for line in progress.results["Say where the backup is"]["msg"]:
        click.echo(line)


@main.command()
@click.argument("folder", type=click.Path(exists=True, file_okay=False))
@click.option("--overwrite", is_flag=True, help="Delete the stack here first if it holds data.")
@click.option("--passphrase-file", type=click.Path(exists=True, dir_okay=False),
              help="The file holding the passphrase of the backup's encrypted credentials.")
@click.option("--yes", is_flag=True, help="Do not ask.")
@dry_run_option
@verbose_option
def restore(folder, overwrite, passphrase_file, yes, dry_run, verbose):
    """Restore a backup folder (restore.yml) onto an empty stack, or over this one with --overwrite; with --dry-run,
    check the backup (checksums, versions, passphrase) and the stack, and say what a restore would do."""
    if overwrite and not dry_run:
        confirm("Delete every database, bucket and run of the stack here, then restore the backup?", yes)
    extravars = {"backup": str(Path(folder).resolve()), "overwrite": overwrite}
    if passphrase_file:
        extravars["backup_passphrase_file"] = str(Path(passphrase_file).resolve())
    progress = run_play("playbooks/restore.yml", extravars=extravars, check=dry_run, verbose=verbose)
    if dry_run:
        for line in progress.results["Say what the restore would do (dry run)"]["msg"]:
            click.echo(line)


@main.command()
@click.option("--usage", is_flag=True, help="Also what each user holds (lists every object: slower).")
@click.option("--strict", is_flag=True, help="Non-zero on any warning (a full disk, an old backup), not only when down.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object.")
def status(usage, strict, as_json):
    """The stack's health: each service (state, health, readiness, restarts, memory, URL), the disks, the database's
    size, the backups and warnings; non-zero when a service is down or not ready."""
    progress = run_play("playbooks/status.yml", extravars={"usage": usage}, quiet=True)
    report = progress.results["Report the services, the disks, the backups and the warnings"]["msg"]
    if usage and "Report what each user holds" in progress.results:  # skipped when the database is not ready
        report["users"] = progress.results["Report what each user holds"]["msg"]
    down = [row["service"] for row in report["services"] if row["needed"] and (
        row["state"] != "running" or row["health"] not in ("healthy", "none"))]
    not_ready = [row["service"] for row in report["services"] if row["ready"] is False and row["service"] not in down]
    if as_json:
        click.echo(json.dumps(report, indent=2))
    else:
        show_status(report)
    for warning in report["warnings"]:
        click.echo(f"warning: {warning}", err=True)
    if down or not_ready:
        raise click.ClickException("; ".join(
            ([f"down: {', '.join(down)} (make up starts them; docker logs <container> says why)"] if down else [])
            + ([f"not ready: {', '.join(not_ready)} (the warnings say what failed)"] if not_ready else [])))
    if strict and report["warnings"]:
        raise click.ClickException(f"{len(report['warnings'])} warning{'s' if len(report['warnings']) > 1 else ''}")


def size(count) -> str:
    count = float(count or 0)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if count < 1024 or unit == "GiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return ""


def show_status(report: dict) -> None:
    for row in report["services"]:
        health = row["health"] if row["needed"] or row["state"] != "absent" else "not configured"
        health = "not ready" if row["ready"] is False and row["state"] == "running" else health
        click.echo(f"{row['service']:<14} {row['state']:<9} {health:<15} restarts {row['restarts']:<3} "
                   f"{row['memory'] or '-':<10} {row['url']}")
    for disk in report["disks"]:
        click.echo(f"{'disk':<14} {disk['path']}: {disk['used_percent']}% used, {size(disk['free'])} free")
    click.echo(f"{'database':<14} {size(report['database_bytes'])}")
    backups = report["backups"]
    click.echo(f"{'backups':<14} " + (f"{backups['count']} in {backups['dir']}, the newest {backups['age_hours']} hours old"
                                      if backups["count"] else f"none in {backups['dir']} (mlops backup)"))
    if "users" in report:
        click.echo(f"\n{'user':<21} {'role':<14} {'bucket':>10} {'of quota':>9} {'schema':>10} {'MLflow runs':>11} "
                   f"{'artifacts':>10} {'ZenML runs':>10}  last activity")
        for user in report["users"]:
            share = f"{100 * user['bucket_bytes'] / user['bucket_quota']:.0f}%" if user["bucket_quota"] else "-"
            click.echo(f"{user['username']:<21} {user['role']:<14} {size(user['bucket_bytes']):>10} {share:>9} "
                       f"{size(user['schema_bytes']):>10} {user['mlflow_runs']:>11} {size(user['mlflow_artifact_bytes']):>10} "
                       f"{user['zenml_runs']:>10}  {user['last_activity'] or '-'}")


@main.group()
def users():
    """Add, remove and list the stack's users."""


@users.command("add")
@click.argument("names", nargs=-1)
@click.option("--role", type=click.Choice(["developer", "teacher", "administrator"]), default="developer",
              show_default=True, help="The user's role (with a user name).")
@click.option("--roster", type=click.Path(exists=True, dir_okay=False), help="A CSV file: username,role.")
@dry_run_option
@verbose_option
def users_add(names, role, roster, dry_run, verbose):
    """Add a user (NAME --role ROLE) or a course roster (--roster FILE.csv)."""
    extravars = users_given(names, roster)
    if "username" in extravars:
        extravars["role"] = role
    progress = run_play("playbooks/manage_users.yml", tags=["add"], extravars=extravars, check=dry_run, verbose=verbose)
    planned = progress.results["Check the users given"]["ansible_facts"]["__stack_users"]
    if not dry_run:
        click.echo("hand over, each with credentials/mlops-ca.crt: "
                   + ", ".join(str(Path(user["env_file"]).relative_to(REPO)) for user in planned))


@users.command("remove")
@click.argument("names", nargs=-1)
@click.option("--roster", type=click.Path(exists=True, dir_okay=False), help="A CSV file: username,role.")
@click.option("--archive", is_flag=True, help="Export each schema and bucket into archive/ first.")
@click.option("--yes", is_flag=True, help="Do not ask.")
@dry_run_option
@verbose_option
def users_remove(names, roster, archive, yes, dry_run, verbose):
    """Remove a user (NAME) or a roster's users, with everything they own."""
    extravars = users_given(names, roster)
    if not dry_run:
        confirm(f"Remove {extravars.get('username') or 'the users of ' + str(roster)} and everything they own?", yes)
    extravars.update(confirm="yes", archive="yes" if archive else "no")
    run_play("playbooks/manage_users.yml", tags=["remove"], extravars=extravars, check=dry_run, verbose=verbose)


@users.command("refresh")
@dry_run_option
@verbose_option
def users_refresh(dry_run, verbose):
    """Bring every user's file and ZenML stack to the stack's addresses (after a change of stack_public_host)."""
    run_play("playbooks/manage_users.yml", tags=["refresh"], check=dry_run, verbose=verbose)


def listed() -> list:
    progress = run_play("playbooks/manage_users.yml", tags=["list"], quiet=True)
    return progress.results["List the users (user name, role, when added, which services hold them)"]["msg"]


def held(services: dict) -> str:
    """Which services hold a user: `all`, else what is missing and what could not be asked."""
    missing = [name for name, holds in services.items() if holds is False]
    unknown = [name for name, holds in services.items() if holds is None]
    if not (missing or unknown):
        return "all"
    return "; ".join(part for part in (missing and f"missing: {', '.join(missing)}",
                                       unknown and f"not answering: {', '.join(unknown)}") if part)


@users.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON array.")
def users_list(as_json):
    """The stack's users: name, role, when they were added, and which services hold their accounts (all of the
    database, bucket, object store, MLflow and ZenML, or what is missing)."""
    rows = listed()
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    for row in rows:
        click.echo(f"{row['username']:<21} {row['role']:<14} {row['created']}  {held(row['services'])}")
    click.echo(f"{len(rows)} user{'s' if len(rows) != 1 else ''}", err=True)


@users.command("show")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="One JSON object.")
def users_show(name, as_json):
    """A user's role, when they were added, and what each service holds under their name."""
    progress = run_play("playbooks/manage_users.yml", tags=["show"], extravars={"username": name}, quiet=True)
    user = progress.results["Show the user (role, when added, what each service holds)"]["msg"]
    if as_json:
        click.echo(json.dumps(user, indent=2))
    else:
        click.echo(f"{user['username']:<21} {user['role'] or 'not a user of the stack':<14} {user['created'] or ''}")
        for line in user["held"]:
            click.echo(f"  {line}")
    if not user["role"]:
        raise click.ClickException(f"no such user: {name}" + (" (the services hold what is listed above under the "
                                                              "name: a leftover)" if user["held"] else ""))


@main.command()
@click.argument("credentials", type=click.Path(exists=True, dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="One JSON array: each check's name, ok and detail.")
def doctor(credentials, as_json):
    """Check a user's credentials file and every service it names, one line each, with the fix."""
    from mlops_stack.doctor import diagnose
    checks = diagnose(Path(credentials))
    if as_json:
        click.echo(json.dumps([{"name": check.name, "ok": check.ok, "detail": check.detail} for check in checks], indent=2))
    else:
        for check in checks:
            click.echo(check.line())
    failed = [check.name for check in checks if not check.ok]
    if failed:
        raise click.ClickException(f"{len(failed)} check{'s' if len(failed) > 1 else ''} failed: {', '.join(failed)}")


@main.command("env")
@click.argument("credentials", type=click.Path(exists=True, dir_okay=False))
@click.option("--ci", is_flag=True, help="The GitLab CI/CD variables to add to a project, with their values.")
@click.option("--json", "as_json", is_flag=True, help="One JSON array in GitLab's variable fields (key, value, masked).")
def env(credentials, ci, as_json):
    """What a credentials file holds, its secrets hidden; with --ci, the GitLab CI/CD variables to add to a
    project (Settings > CI/CD > Variables), secrets marked."""
    from mlops_stack.doctor import ci_variables, read_credentials, secret
    try:
        variables = ci_variables(Path(credentials))
    except ValueError as error:
        raise click.ClickException(str(error)) from None
    if not ci:
        for_ci = {name for name, _value, _hidden in variables}
        variables = [(name, "(hidden)" if secret(name) else value, secret(name))
                     for name, value in read_credentials(Path(credentials)).items()]
    if as_json:
        click.echo(json.dumps([{"key": name, "value": value, "masked": hidden, "protected": True}
                               for name, value, hidden in variables], indent=2))
        return
    for name, value, hidden in variables:
        use = ("secret: mask it" if hidden else "visible") if ci else ("CI and here" if name in for_ci else "here")
        click.echo(f"{name:<32} {use:<16} {value}")
    if ci:
        click.echo("Add each as Key and Value; tick Mask variable where it says secret, Protect variable on all.", err=True)


if __name__ == "__main__":
    main()
