"""Deadline night: N students at once, each with their own account, against the stack as deployed.

    .venv/bin/python bench/load.py --students 64 --seconds 60 --pace 5

Needs the stack up (make up). Adds the students load-001.. from one roster (kept with --keep, and reused
when they exist), runs one student alone first (the baseline), then all of them, each round of MLflow, S3 and
ZenML calls (about 1.8 MLflow requests) followed by --pace seconds of training (0: flat out, the server's
capacity); prints requests per second,
p50/p95/p99 per kind of request, errors by kind, each container's peak memory and CPU, processes the kernel
killed, and whether every acknowledged write was read back. Targets (issue 15, 2 cores, default stack.yml):
64 students with no error, no process killed and MLflow writes at p99 under 2 s; the idle stack under 2 GiB.
"""
import argparse
import json
import tempfile
from pathlib import Path

from mlops_stack import load
from mlops_stack.stackenv import REPO, ansible_playbook, load_stack, write_roster

MLFLOW_WRITES = ("mlflow log-metric", "mlflow log-param", "mlflow log-batch")


def idle_mib():
    import docker
    client = docker.from_env()
    return {name: usage / 2**20 for name, (usage, _cpu) in load.container_stats(client, load_stack().containers()).items()}


def show(title, report):
    print(f"\n{title}: {report['ready']} of {report['students']} students for {report['seconds']:.0f} s "
          f"(set-up {report['set_up_seconds']:.1f} s)")
    print(f"  {report['requests']} requests, {report['requests_per_second']:.1f}/s")
    for kind, figures in report["latency"].items():
        if figures["count"]:
            print(f"  {kind:30s} {figures['count']:6d}  p50 {figures['p50']:6.3f} s  p95 {figures['p95']:6.3f} s"
                  f"  p99 {figures['p99']:6.3f} s")
    for error, count in report["errors"].items():
        print(f"  error {error}: {count}")
    for name, figures in report["containers"].items():
        print(f"  {name:22s} peak {figures['peak_mib']:7.0f} MiB  CPU {figures['cpu_seconds']:7.1f} s"
              f"  restarts {figures['restarts']}")
    print(f"  processes killed for memory: {report['oom_kills'] or 'none'}")
    print(f"  acknowledged but lost: {report['lost'] or 'none'}; metric steps stored twice: {report['duplicated']}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=64)
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--baseline-seconds", type=int, default=20)
    parser.add_argument("--pace", type=float, default=5.0, help="seconds of training between a student's rounds")
    parser.add_argument("--keep", action="store_true", help="keep the students for the next run")
    parser.add_argument("--json", help="also write both reports to this file")
    args = parser.parse_args()
    names = [f"load-{i:03d}" for i in range(1, args.students + 1)]
    with tempfile.TemporaryDirectory() as folder:
        missing = [name for name in names if not (REPO / "credentials" / f"{name}.env").exists()]
        if missing:
            ansible_playbook("playbooks/manage_users.yml", "--tags", "add", "-e", f"roster={write_roster(Path(folder) / 'roster.csv', missing)}")
        try:
            idle = idle_mib()
            print("idle memory: " + ", ".join(f"{name} {mib:.0f} MiB" for name, mib in idle.items())
                  + f"; the stack {sum(idle.values()):.0f} MiB (target < 2048)")
            baseline = load.run(names[:1], args.baseline_seconds, pace=args.pace)
            show("baseline, one student", baseline)
            report = load.run(names, args.seconds, pace=args.pace)
            show(f"{args.students} students, {args.pace:g} s of training between rounds", report)
            writes = [report["latency"][kind]["p99"] for kind in MLFLOW_WRITES if report["latency"][kind].get("count")]
            print(f"\nMLflow writes p99 {max(writes):.3f} s (target < 2); requests/s {report['requests_per_second']:.1f}, "
                  f"{report['requests_per_second'] / baseline['requests_per_second']:.1f} x one student's; "
                  f"errors {sum(report['errors'].values())}, killed {sum(report['oom_kills'].values())}, "
                  f"lost {sum(report['lost'].values())} (targets 0)")
            if args.json:
                Path(args.json).write_text(json.dumps({"idle_mib": idle, "baseline": baseline, "load": report}, indent=1))
        finally:
            if not args.keep:
                ansible_playbook("playbooks/manage_users.yml", "--tags", "remove", "-e", f"roster={write_roster(Path(folder) / 'roster.csv', names)}",
                                 "-e", "confirm=yes")


if __name__ == "__main__":
    main()
