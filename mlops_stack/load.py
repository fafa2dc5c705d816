"""A course at once: each student, with their own account and real clients, does what a training job does
against the stack as deployed (through its TLS entry point), all at the same time; afterwards every write the
services acknowledged is read back. bench/load.py prints the figures, tests/e2e/test_load.py runs a modest size.

A student's loop, one round per training step (`pace` seconds of training in between, 0 for flat out): log a metric (MLflow REST), and every few steps a parameter, a batch of
metrics, an artifact uploaded through MLflow's proxy and downloaded again, a run search, an object put into and
read from their bucket (boto3), ZenML's calls (their user, their runs, their stack) and a registered model version;
every 20 steps, a ZenML pipeline run as an orchestrator records it (run, step, output artifact, both completed).
Nothing is retried: a failed request is counted by its kind and error.
"""
import collections
import datetime
import random
import statistics
import threading
import time
import uuid
from dataclasses import dataclass, field

import boto3
import botocore.config
import requests

from mlops_stack.stackenv import load_stack, user_env

ARTIFACT = bytes(range(256)) * 128  # 32 KiB
API = "/api/2.0/mlflow"
# What a student writes, each read back afterwards.
WRITES = ("metric", "param", "batch", "artifact", "object", "version", "run")


@dataclass
class Tally:
    """Latencies per kind of request, errors per kind and error, what was acknowledged (thread-safe)."""
    latencies: dict = field(default_factory=lambda: collections.defaultdict(list))
    errors: collections.Counter = field(default_factory=collections.Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def timed(self, kind, call):
        """call() timed as kind: (its result,) if it succeeded, None after an error (counted)."""
        start = time.perf_counter()
        try:
            result = call()
        except Exception as error:  # every failure counts, by kind and error
            with self.lock:
                self.errors[kind, describe(error)] += 1
            return None
        with self.lock:
            self.latencies[kind].append(time.perf_counter() - start)
        return (result,)


def describe(error):
    if isinstance(error, requests.HTTPError):
        return f"HTTP {error.response.status_code}"
    cause = error.__context__ or error.__cause__
    return type(error).__name__ + (f" ({type(cause).__name__})" if cause else "")


def now():
    return datetime.datetime.now(datetime.timezone.utc).isoformat()


def checked(response):
    response.raise_for_status()
    return response


class Student:
    """One student's clients and what the services acknowledged to them."""

    def __init__(self, name, tally, ca_file):
        env = user_env(name)
        self.name, self.tally, self.env, self.bucket = name, tally, env, env["STACK_BUCKET"]
        self.mlflow_url = env["MLFLOW_TRACKING_URI"].rstrip("/")
        self.zenml_url = env["ZENML_STORE_URL"].rstrip("/")
        self.mlflow, self.zenml = requests.Session(), requests.Session()
        self.mlflow.auth = (env["MLFLOW_TRACKING_USERNAME"], env["MLFLOW_TRACKING_PASSWORD"])
        self.ca = ca_file  # given with each request: REQUESTS_CA_BUNDLE would override a session's own
        self.s3 = boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"], region_name="us-east-1", verify=ca_file,
                               aws_access_key_id=env["AWS_ACCESS_KEY_ID"], aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
                               config=botocore.config.Config(retries={"total_max_attempts": 1}))
        self.acked = collections.defaultdict(set)  # kind of write -> what the service acknowledged

    def call(self, session, method, url, **options):
        return checked(session.request(method, url, verify=self.ca, timeout=60, **options))

    def post(self, path, body):
        """An MLflow REST call; its answer."""
        return self.call(self.mlflow, "POST", f"{self.mlflow_url}{API}/{path}", json=body).json()

    def get(self, path, **params):
        return self.call(self.mlflow, "GET", f"{self.mlflow_url}{API}/{path}", params=params).json()

    def api(self, method, path, body=None, **params):
        """A ZenML REST call; its answer."""
        return self.call(self.zenml, method, f"{self.zenml_url}/api/v1/{path}", json=body, params=params).json()

    def set_up(self, tag):
        """A ZenML session; an experiment, a run and a registered model of their own; a pipeline of one step on
        their own stack. False if one failed."""
        timed = self.tally.timed
        token = timed("zenml login", lambda: self.call(self.zenml, "POST", f"{self.zenml_url}/api/v1/login", data={
            "username": self.env["ZENML_STORE_USERNAME"], "password": self.env["ZENML_STORE_PASSWORD"]}).json())
        experiment = timed("mlflow create experiment", lambda: self.post("experiments/create", {"name": f"{self.name}.load-{tag}"}))
        run = experiment and timed("mlflow create run", lambda: self.post(
            "runs/create", {"experiment_id": experiment[0]["experiment_id"], "start_time": int(time.time() * 1000)}))
        self.model = f"{self.name}.load-{tag}"
        model = timed("mlflow create model", lambda: self.post("registered-models/create", {"name": self.model}))
        if not (token and run and model):
            return False
        self.zenml.headers["Authorization"] = f"Bearer {token[0]['access_token']}"
        self.experiment, self.run = experiment[0]["experiment_id"], run[0]["run"]["info"]["run_id"]
        return self.set_up_pipeline()

    def set_up_pipeline(self):
        """The pipeline (named as the model) and its snapshot of one step, "train", on their stack (named as they are)
        in the default project: what each run refers to. False if one failed."""
        timed = self.tally.timed
        project = timed("zenml get project", lambda: self.api("GET", "projects/default"))
        stack = timed("zenml find stack", lambda: self.api("GET", "stacks", name=self.name)["items"][0])
        if not (project and stack):
            return False
        self.project = project[0]["id"]
        pipeline = timed("zenml create pipeline", lambda: self.api(
            "POST", "pipelines", {"project": self.project, "name": self.model}))
        snapshot = pipeline and timed("zenml create snapshot", lambda: self.api("POST", "pipeline_snapshots", {
            "project": self.project, "pipeline": pipeline[0]["id"], "stack": stack[0]["id"], "run_name_template": "load",
            "pipeline_configuration": {"name": self.model}, "step_configurations": {
                "train": {"spec": {"source": "load.train", "upstream_steps": []}, "config": {"name": "train"}}}}))
        if not snapshot:
            return False
        self.pipeline, self.snapshot = pipeline[0]["id"], snapshot[0]["id"]
        return True

    def step(self, i):
        """Round i of the student's loop."""
        timed, run = self.tally.timed, self.run
        if timed("mlflow log-metric", lambda: self.post(
                "runs/log-metric", {"run_id": run, "key": "loss", "value": 1 / i, "timestamp": 0, "step": i})):
            self.acked["metric"].add(i)
        if i % 5 == 0 and timed("mlflow log-param", lambda: self.post(
                "runs/log-parameter", {"run_id": run, "key": f"p{i}", "value": str(i)})):
            self.acked["param"].add(f"p{i}")
        if i % 5 == 1 and timed("mlflow log-batch", lambda: self.post("runs/log-batch", {"run_id": run, "metrics": [
                {"key": f"m{k}", "value": k, "timestamp": 0, "step": i} for k in range(10)]})):
            self.acked["batch"].add(i)
        if i % 10 == 2:
            url = f"{self.mlflow_url}/api/2.0/mlflow-artifacts/artifacts/{self.experiment}/{run}/artifacts/a{i}.bin"
            if timed("mlflow artifact upload", lambda: self.call(self.mlflow, "PUT", url, data=ARTIFACT)):
                self.acked["artifact"].add(f"a{i}.bin")
                timed("mlflow artifact download", lambda: self.same(self.call(self.mlflow, "GET", url).content))
        if i % 20 == 3:  # a pipeline run per 20 training steps (the rest of the round is per 10 or fewer)
            self.pipeline_run(i)
        if i % 10 == 4:
            timed("mlflow search runs", lambda: self.post("runs/search", {"experiment_ids": [self.experiment], "max_results": 10}))
        if i % 10 == 6:
            key = f"load/{run}/o{i}"
            if timed("s3 put", lambda: self.s3.put_object(Bucket=self.bucket, Key=key, Body=ARTIFACT)):
                self.acked["object"].add(key)
                timed("s3 get", lambda: self.same(self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()))
        if i % 10 == 8:
            for kind, path in (("zenml current user", "current-user"), ("zenml list runs", "runs?size=5"),
                               ("zenml list stacks", "stacks?size=5")):
                timed(kind, lambda path=path: self.call(self.zenml, "GET", f"{self.zenml_url}/api/v1/{path}"))
        if i % 10 == 9:
            version = timed("mlflow create model version", lambda: self.post("model-versions/create", {
                "name": self.model, "source": f"runs:/{run}/model", "run_id": run}))
            if version:
                self.acked["version"].add(version[0]["model_version"]["version"])

    def pipeline_run(self, i):
        """A run of the pipeline as the orchestrator records it: run, step, the step's output artifact (its uri in their
        bucket, nothing uploaded), the step completed, then the run."""
        timed, project = self.tally.timed, self.project
        run = timed("zenml create run", lambda: self.api("POST", "runs", {  # answers [run, created]
            "project": project, "snapshot": self.snapshot, "name": f"{self.model}-{i}", "status": "running",
            "start_time": now()})[0]["id"])
        step = run and timed("zenml create step", lambda: self.api("POST", "steps", {
            "project": project, "pipeline_run_id": run[0], "name": "train", "status": "running", "start_time": now()})["id"])
        artifact = step and timed("zenml register artifact", lambda: self.api("POST", "artifact_versions", {
            "project": project, "artifact_name": self.model, "version": None, "type": "DataArtifact",
            "save_type": "step_output", "uri": f"s3://{self.bucket}/load/{self.run}/z{i}", "data_type": "builtins.bytes",
            "materializer": "zenml.materializers.built_in_materializer.BytesMaterializer"})["id"])
        done = artifact and timed("zenml update step", lambda: self.api("PUT", f"steps/{step[0]}", {
            "outputs": {"output": [artifact[0]]}, "status": "completed", "end_time": now()}))
        if done and timed("zenml update run", lambda: self.api("PUT", f"runs/{run[0]}", {"status": "completed"})):
            self.acked["run"].add(run[0])

    @staticmethod
    def same(body):
        if body != ARTIFACT:
            raise ValueError("read back other bytes than were written")
        return body

    def lost(self):
        """How many acknowledged writes of each kind the services do not hold now; metric steps stored twice."""
        def history(key):
            return self.get("metrics/get-history", run_id=self.run, metric_key=key, max_results=100000).get("metrics", [])
        steps = collections.Counter(metric["step"] for metric in history("loss"))
        held = {
            "metric": set(steps),
            "param": {param["key"] for param in self.get("runs/get", run_id=self.run)["run"]["data"].get("params", [])},
            "batch": {metric["step"] for metric in history("m9")},
            "artifact": {item["path"] for item in self.get("artifacts/list", run_id=self.run).get("files", [])},
            "object": {item["Key"] for page in self.s3.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=f"load/{self.run}/") for item in page.get("Contents", [])},
            "version": {version["version"] for version in self.get(
                "model-versions/search", filter=f"name='{self.model}'", max_results=1000).get("model_versions", [])},
            "run": self.runs_held(),
        }
        return {kind: len(self.acked[kind] - held[kind]) for kind in WRITES}, sum(count - 1 for count in steps.values())

    def runs_held(self):
        """Runs of the pipeline that completed and whose step's output artifact is registered."""
        runs = self.api("GET", "runs", pipeline_id=self.pipeline, size=10000)["items"]  # the server's largest page
        outputs = self.api("GET", "artifact_versions", artifact=self.model, size=10000)["items"]
        produced = {output["resources"]["producer_pipeline_run_id"] for output in outputs}
        return {run["id"] for run in runs if run["body"]["status"] == "completed"} & produced


def container_stats(client, names):
    """{name: (memory in use without the page cache, CPU seconds so far, OOM kills so far)} from the Docker engine."""
    result = {}
    for name in names:
        stats = client.containers.get(name).stats(stream=False, one_shot=True)
        memory = stats["memory_stats"]
        usage = memory.get("usage", 0) - memory.get("stats", {}).get("inactive_file", 0)
        result[name] = (usage, stats["cpu_stats"]["cpu_usage"]["total_usage"] / 1e9)
    return result


def oom_kills(client, since, until):
    """Containers the kernel killed a process in, from the Docker engine's events (one per kill)."""
    events = client.events(since=since, until=until, filters={"event": "oom"}, decode=True)
    return collections.Counter(event["Actor"]["Attributes"].get("name", event["id"]) for event in events)


def run(names, seconds, pace=0.0, tag=None):
    """The load of one student per name (each added to the stack) for `seconds`, each round followed by `pace`
    seconds of training (0: none, every student flat out); the report as a dict."""
    import docker
    stack = load_stack()
    client = docker.from_env()
    containers = stack.containers()
    tally = Tally()
    tag = tag or uuid.uuid4().hex[:8]
    students = [Student(name, tally, stack.ca_file) for name in names]
    set_up_start = time.monotonic()
    ready = [student for student in students if student.set_up(tag)]
    set_up_seconds = time.monotonic() - set_up_start
    before = container_stats(client, containers)
    peaks = {name: usage for name, (usage, _cpu) in before.items()}
    restarts = {name: client.containers.get(name).attrs["RestartCount"] for name in containers}
    start_wall, start, stop = time.time(), time.monotonic(), threading.Event()

    def loop(student):
        i = 0
        stop.wait(random.uniform(0, pace))  # jobs start at different times, not all in one instant
        while not stop.is_set():
            i += 1
            student.step(i)
            stop.wait(pace)

    threads = [threading.Thread(target=loop, args=(student,)) for student in ready]
    for thread in threads:
        thread.start()
    while time.monotonic() - start < seconds:  # a sample a second: the sampler shares the machine with the stack
        for name, (usage, _cpu) in container_stats(client, containers).items():
            peaks[name] = max(peaks[name], usage)
        time.sleep(min(1, max(0, seconds - (time.monotonic() - start))))
    stop.set()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - start
    after = container_stats(client, containers)
    lost, duplicated = collections.Counter(), 0
    acknowledged = collections.Counter({kind: sum(len(student.acked[kind]) for student in ready) for kind in WRITES})
    for student in ready:
        missing, twice = student.lost()
        lost.update(missing)
        duplicated += twice
    requests_done = sum(len(values) for values in tally.latencies.values())
    return {
        "students": len(names), "ready": len(ready), "seconds": elapsed, "pace": pace, "set_up_seconds": set_up_seconds,
        "requests": requests_done, "requests_per_second": requests_done / elapsed,
        "latency": {kind: percentiles(values) for kind, values in sorted(tally.latencies.items())},
        "errors": {f"{kind}: {error}": count for (kind, error), count in sorted(tally.errors.items())},
        "acknowledged": dict(acknowledged), "lost": {kind: count for kind, count in lost.items() if count},
        "duplicated": duplicated,
        "containers": {name: {"peak_mib": peaks[name] / 2**20, "cpu_seconds": after[name][1] - before[name][1],
                              "restarts": client.containers.get(name).attrs["RestartCount"] - restarts[name]}
                       for name in containers},
        "oom_kills": dict(oom_kills(client, int(start_wall) - 1, int(time.time()) + 1)),
    }


def percentiles(values):
    """count, p50, p95, p99 (seconds) of values."""
    if not values:
        return {"count": 0}
    cuts = statistics.quantiles(values * 2 if len(values) == 1 else values, n=100, method="inclusive")
    return {"count": len(values), "p50": cuts[49], "p95": cuts[94], "p99": cuts[98]}
