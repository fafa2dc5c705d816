"""User-lifecycle benchmark: N users from one roster in one play run, against one play run per user.

    .venv/bin/python bench/users.py --count 50

Needs the stack up (make up). Every user it adds is removed again.
"""
import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from stackenv import ansible_playbook  # noqa: E402


def manage(*args):
    start = time.monotonic()
    ansible_playbook("playbooks/manage_users.yml", *args)
    return time.monotonic() - start


def roster(names, folder):
    path = Path(folder) / "roster.csv"
    path.write_text("username,role\n" + "".join(f"{name},developer\n" for name in names))
    return str(path)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        batch = [f"bench-r{i:03d}" for i in range(args.count)]
        single = [f"bench-s{i:03d}" for i in range(args.count)]
        roster_seconds = manage("--tags", "add", "-e", f"roster={roster(batch, folder)}")
        single_seconds = sum(manage("--tags", "add", "-e", f"username={name}") for name in single)
        remove_seconds = manage("--tags", "remove", "-e", f"roster={roster(batch + single, folder)}",
                                "-e", "confirm=yes")
    n = args.count
    print(f"add {n} users, one roster, one play run: {roster_seconds:8.1f} s  ({roster_seconds / n:5.2f} s/user, target < 3)")
    print(f"add {n} users, one play run each:        {single_seconds:8.1f} s  ({single_seconds / n:5.2f} s/user)")
    print(f"speed-up of the roster:                  {single_seconds / roster_seconds:8.1f} x  (target >= 10)")
    print(f"remove {2 * n} users, one play run:           {remove_seconds:8.1f} s  ({remove_seconds / (2 * n):5.2f} s/user)")


if __name__ == "__main__":
    main()
