"""Provisioning benchmark: cold start with images built, idempotent re-run, idle memory.

The re-run is timed twice: on Mitogen (ansible.cfg's strategy) and on Ansible's own linear strategy, the
baseline.

    .venv/bin/python bench/provisioning.py            # cold + re-run + memory
    .venv/bin/python bench/provisioning.py --build    # also time building every image from scratch

Cold start removes the stack's containers and volumes (all data) first: run it on a test machine.
"""
import argparse
import os
import re
import subprocess
import time

from mlops_stack.stackenv import ansible_playbook, load_stack, recap

UNITS = {"B": 1, "KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "kB": 1e3, "MB": 1e6, "GB": 1e9}


def timed(*args, strategy=None):
    """Seconds the play took, and its recap; strategy: another than ansible.cfg's, for this run only."""
    if strategy:
        os.environ["ANSIBLE_STRATEGY"] = strategy
    try:
        start = time.monotonic()
        result = ansible_playbook(*args)
        return time.monotonic() - start, recap(result.stdout)
    finally:
        os.environ.pop("ANSIBLE_STRATEGY", None)


def idle_memory(stack):
    """Memory in use per container, from docker stats, in bytes."""
    names = stack.containers()
    out = subprocess.run(["docker", "stats", "--no-stream", "--format", "{{.Name}} {{.MemUsage}}", *names],
                         capture_output=True, text=True, check=True).stdout
    usage = {}
    for line in out.splitlines():
        name, used = line.split()[0], line.split()[1]
        value, unit = re.match(r"([0-9.]+)(\w+)", used).groups()
        usage[name] = float(value) * UNITS[unit]
    return usage


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--build", action="store_true", help="also time building every image from scratch")
    args = parser.parse_args()
    stack = load_stack()
    if args.build:
        ansible_playbook("playbooks/teardown.yml", "-e", "teardown_remove_data=true")
        images = subprocess.run(["docker", "images", "--format", "{{.Repository}}:{{.Tag}}"],
                                capture_output=True, text=True, check=True).stdout.split()
        ours = [i for i in images if i.startswith(stack.settings["stack_name"])]
        subprocess.run(["docker", "rmi", "-f", *ours], capture_output=True, check=False)
        subprocess.run(["docker", "builder", "prune", "-af"], capture_output=True, check=False)
        seconds, _ = timed("playbooks/run_server.yml")
        print(f"build every image and provision: {seconds:7.1f} s")
    ansible_playbook("playbooks/teardown.yml", "-e", "teardown_remove_data=true")
    cold, _ = timed("playbooks/run_server.yml")
    rerun, counts = timed("playbooks/run_server.yml")
    print(f"cold provisioning (images built): {cold:7.1f} s")
    print(f"idempotent re-run:                {rerun:7.1f} s  changed={counts['changed']}  (target < 60 s)")
    print(f"re-run / cold:                    {rerun / cold:7.2f}")
    baseline, _ = timed("playbooks/run_server.yml", strategy="ansible.builtin.linear")
    print(f"idempotent re-run, Ansible's own strategy (baseline): {baseline:7.1f} s")
    print(f"re-run on Mitogen / baseline:     {rerun / baseline:7.2f}")
    time.sleep(30)  # let the services settle
    usage = idle_memory(stack)
    for name, used in sorted(usage.items()):
        print(f"idle memory {name:22s} {used / 2**20:8.1f} MiB")
    total = sum(usage.values()) / 2**30
    print(f"idle memory, whole stack:         {total:7.2f} GiB  (target < 2 GiB)")


if __name__ == "__main__":
    main()
