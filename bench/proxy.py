"""What the TLS entry point costs: the same requests through the proxy (https, verified with the stack's CA)
and straight to the service on the stack network (plain HTTP, which only this machine reaches), in one run.

    .venv/bin/python bench/proxy.py --seconds 10 --size-mib 200 --rounds 3

Needs the running stack (make up). Prints MLflow log_metric requests per second for one client and for 8
parallel clients (each with its own kept-alive connection), S3 PUT and GET throughput of one object, each with
the ratio proxy/direct (target: at least 0.80), and the idle memory of the proxy (target: under 64 MiB) and of
the whole stack (target: under 2 GiB).

The S3 figures are the median of --rounds transfers each way (proxy and direct in turns), in two ways: one
stream (one request for the whole object), and boto3's own transfer settings, which awscli and boto3 users get
(parts of 8 MiB, 10 at once).
"""
import argparse
import os
import statistics
import subprocess
import threading
import time
import uuid

import boto3
import requests
from boto3.s3.transfer import TransferConfig

from mlops_stack.stackenv import load_stack


def log_metric_rate(url, auth, run, clients, seconds, verify):
    """Requests per second of `clients` threads logging metrics to one run for `seconds`."""
    counts = [0] * clients
    stop = time.monotonic() + seconds

    def client(index):
        session = requests.Session()
        session.auth = auth
        step = 0
        while time.monotonic() < stop:
            # verify on each request: requests lets REQUESTS_CA_BUNDLE override a session's own.
            session.post(f"{url}/api/2.0/mlflow/runs/log-metric", timeout=30, verify=verify, json={
                "run_id": run, "key": f"c{index}", "value": 0.5, "timestamp": 0, "step": step}).raise_for_status()
            step += 1
        counts[index] = step

    threads = [threading.Thread(target=client, args=(index,)) for index in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(counts) / seconds


# One stream: one request for the whole object each way. boto3's own: parts of 8 MiB, 10 at once.
TRANSFERS = {"one stream": TransferConfig(multipart_threshold=2**40, max_concurrency=1),
             "boto3's parts": TransferConfig()}


def s3_rates(endpoint, keys, bucket, body, verify, config):
    """(PUT MiB/s, GET MiB/s) of one object of len(body) bytes, transferred with config (a TransferConfig)."""
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", verify=verify,
                      aws_access_key_id=keys[0], aws_secret_access_key=keys[1])
    key = f"bench-proxy-{uuid.uuid4().hex}"
    path = f"/tmp/{key}"
    with open(path, "wb") as out:
        out.write(body)
    try:
        start = time.perf_counter()
        s3.upload_file(path, bucket, key, Config=config)
        put = len(body) / 2**20 / (time.perf_counter() - start)
        start = time.perf_counter()
        s3.download_file(bucket, key, path, Config=config)
        get = len(body) / 2**20 / (time.perf_counter() - start)
    finally:
        s3.delete_object(Bucket=bucket, Key=key)
        os.unlink(path)
    return put, get


def memory_mib(containers):
    """{container: MiB in use} from docker stats."""
    lines = subprocess.run(["docker", "stats", "--no-stream", "--format", "{{.Name}} {{.MemUsage}}", *containers],
                           capture_output=True, text=True, check=True).stdout.splitlines()
    units = {"KiB": 1 / 1024, "MiB": 1, "GiB": 1024, "B": 1 / 2**20}
    found = {}
    for line in lines:
        name, usage = line.split(" ", 1)
        value = usage.split("/")[0].strip()
        unit = next(u for u in units if value.endswith(u))
        found[name] = float(value[:-len(unit)]) * units[unit]
    return found


def row(label, proxy, direct, unit):
    print(f"{label:34} proxy {proxy:9.1f} {unit:6} direct {direct:9.1f} {unit:6} ratio {proxy / direct:5.2f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--size-mib", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    stack = load_stack()
    memory = memory_mib(stack.containers())
    print(f"idle memory: proxy {memory[stack.container('proxy')]:.1f} MiB, "
          f"whole stack {sum(memory.values()):.0f} MiB ({len(memory)} containers)")

    admin = (stack.settings["stack_admin_username"], stack.secret("mlflow_server_admin_password"))
    routes = {"proxy": (stack.url("mlflow"), stack.ca_file), "direct": (stack.direct_url("mlflow"), True)}
    api = f"{routes['direct'][0]}/api/2.0/mlflow"
    experiment = requests.post(f"{api}/experiments/create", auth=admin, timeout=30,
                               json={"name": f"bench-proxy-{uuid.uuid4().hex[:8]}"}).json()["experiment_id"]
    run = requests.post(f"{api}/runs/create", auth=admin, timeout=30,
                        json={"experiment_id": experiment}).json()["run"]["info"]["run_id"]
    try:
        for clients in (1, 8):
            rates = {name: log_metric_rate(url, admin, run, clients, args.seconds, verify)
                     for name, (url, verify) in routes.items()}
            row(f"MLflow log_metric, {clients} client(s)", rates["proxy"], rates["direct"], "req/s")
    finally:
        requests.post(f"{api}/experiments/delete", auth=admin, timeout=30, json={"experiment_id": experiment})

    keys = (stack.services["object_store"]["admin"]["user"], stack.secret("object_store_root_password"))
    body = os.urandom(args.size_mib * 2**20)
    bucket = stack.settings["object_store_cache_bucket"]
    endpoints = {"proxy": (stack.url("object_store"), stack.ca_file), "direct": (stack.direct_url("object_store"), True)}
    for way, config in TRANSFERS.items():
        rates = {name: [] for name in endpoints}
        for _ in range(args.rounds):
            for name, (url, verify) in endpoints.items():
                rates[name].append(s3_rates(url, keys, bucket, body, verify, config))
        for index, verb in enumerate(("PUT", "GET")):
            proxy, direct = (statistics.median(rate[index] for rate in rates[name]) for name in endpoints)
            row(f"S3 {verb} of {args.size_mib} MiB, {way}", proxy, direct, "MiB/s")


if __name__ == "__main__":
    main()
