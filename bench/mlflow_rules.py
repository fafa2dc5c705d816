"""What the stack's MLflow rules cost: the same requests against MLflow with the rules (app mlops-auth) and
without them (basic-auth), in one run, as a student (admins skip every rule).

    .venv/bin/python bench/mlflow_rules.py --requests 300

Needs the stack's database (make up): each server gets two scratch schemas there, dropped afterwards. Both
servers run from this checkout (one worker each), so the figures compare the apps, not the container.
Prints the median and 95th percentile per request and the ratio with/without (target: under 1.10).
"""
import argparse
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import pymysql
import requests

from mlops_stack.mlflow_server import free_port, running_entrypoint, server_env
from mlops_stack.stackenv import load_stack


def timings(call, count):
    seconds = []
    for _ in range(count):
        start = time.perf_counter()
        answer = call()
        seconds.append(time.perf_counter() - start)
        answer.raise_for_status()
    return statistics.median(seconds), statistics.quantiles(seconds, n=20)[18]


def measure(url, admin, count):
    """(median, p95) per request kind, as a new student in their own experiment."""
    student = ("bench-student", uuid.uuid4().hex)
    requests.post(f"{url}/api/2.0/mlflow/users/create", auth=admin, timeout=30,
                  json={"username": student[0], "password": student[1]}).raise_for_status()
    api = f"{url}/api/2.0/mlflow"
    experiment = requests.post(f"{api}/experiments/create", auth=student, timeout=30,
                               json={"name": f"{student[0]}.bench"}).json()["experiment_id"]
    run = requests.post(f"{api}/runs/create", auth=student, timeout=30,
                        json={"experiment_id": experiment}).json()["run"]["info"]["run_id"]
    step = iter(range(10**9))
    return {
        "log_metric": timings(lambda: requests.post(f"{api}/runs/log-metric", auth=student, timeout=30, json={
            "run_id": run, "key": "loss", "value": 0.5, "timestamp": 0, "step": next(step)}), count),
        "search_runs": timings(lambda: requests.post(f"{api}/runs/search", auth=student, timeout=30, json={
            "experiment_ids": [experiment], "max_results": 10}), count),
        "create_experiment (a rule)": timings(lambda: requests.post(f"{api}/experiments/create", auth=student,
                                                                    timeout=30, json={"name": f"{student[0]}.{uuid.uuid4().hex}"}),
                                              max(count // 5, 20)),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300)
    args = parser.parse_args()
    stack = load_stack()
    db = {"host": stack.db_host, "port": stack.db_port, "user": "root",
          "password": stack.secret("database_root_password")}
    conn = pymysql.connect(**db, autocommit=True)
    schemas = [f"bench_mlflow_{uuid.uuid4().hex[:8]}" for _ in range(4)]
    admin = ("bench-admin", uuid.uuid4().hex)
    results = {}
    try:
        with conn.cursor() as cur:
            for schema in schemas:
                cur.execute(f"CREATE DATABASE `{schema}` CHARACTER SET utf8mb4")
        for app, (tracking, auth) in zip(("basic-auth", "mlops-auth"), (schemas[:2], schemas[2:])):
            with tempfile.TemporaryDirectory() as folder:
                env = server_env(db, tracking, auth, Path(folder), *admin, MLFLOW_APP_NAME=app)
                with running_entrypoint(env, free_port(), Path(folder) / "server.log") as (url, _server):
                    results[app] = measure(url, admin, args.requests)
    finally:
        with conn.cursor() as cur:
            for schema in schemas:
                cur.execute(f"DROP DATABASE IF EXISTS `{schema}`")
        conn.close()
    print(f"{'request':28s} {'basic-auth median/p95 ms':>26s} {'mlops-auth median/p95 ms':>26s} {'ratio':>6s}")
    for kind in results["basic-auth"]:
        (base, base95), (rules, rules95) = results["basic-auth"][kind], results["mlops-auth"][kind]
        print(f"{kind:28s} {base * 1000:12.1f} /{base95 * 1000:8.1f}   {rules * 1000:12.1f} /{rules95 * 1000:8.1f}   "
              f"{rules / base:6.2f}")


if __name__ == "__main__":
    main()
