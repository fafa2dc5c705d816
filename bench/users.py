"""User-lifecycle benchmark: N users from one roster in one play run, against one play run per user.

    .venv/bin/python bench/users.py --count 50

Needs the stack up (make up). Every user it adds is removed again. Also prints the CPU time each service
spent per user of the roster: the busiest one bounds how fast a roster can go.
"""
import argparse
import tempfile
import time
from pathlib import Path

from mlops_stack import load
from mlops_stack.stackenv import ansible_playbook, load_stack, write_roster


def manage(*args):
    start = time.monotonic()
    ansible_playbook("playbooks/manage_users.yml", *args)
    return time.monotonic() - start


def cpu_seconds(containers):
    """CPU time each container has used since it started, from the Docker engine."""
    import docker
    return {name: cpu for name, (_memory, cpu) in load.container_stats(docker.from_env(), containers).items()}


def roster(names, folder):
    return write_roster(Path(folder) / "roster.csv", names)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=50)
    args = parser.parse_args()
    stack = load_stack()
    containers = [service["container"] for service in stack.services.values() if service["accounts"]]
    with tempfile.TemporaryDirectory() as folder:
        batch = [f"bench-r{i:03d}" for i in range(args.count)]
        single = [f"bench-s{i:03d}" for i in range(args.count)]
        before = cpu_seconds(containers)
        roster_seconds = manage("--tags", "add", "-e", f"roster={roster(batch, folder)}")
        after = cpu_seconds(containers)
        single_seconds = sum(manage("--tags", "add", "-e", f"username={name}") for name in single)
        remove_seconds = manage("--tags", "remove", "-e", f"roster={roster(batch + single, folder)}",
                                "-e", "confirm=yes")
    n = args.count
    print(f"add {n} users, one roster, one play run: {roster_seconds:8.1f} s  ({roster_seconds / n:5.2f} s/user, target < 3)")
    print(f"add {n} users, one play run each:        {single_seconds:8.1f} s  ({single_seconds / n:5.2f} s/user)")
    print(f"speed-up of the roster:                  {single_seconds / roster_seconds:8.1f} x  (target >= 10)")
    print(f"remove {2 * n} users, one play run:           {remove_seconds:8.1f} s  ({remove_seconds / (2 * n):5.2f} s/user)")
    for name in containers:
        print(f"CPU per user of the roster, {name + ':':22s}{(after[name] - before[name]) / n:5.2f} s")


if __name__ == "__main__":
    main()
