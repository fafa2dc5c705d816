"""Local scenario: the MNIST pipeline on the student's own machine, no server (demo/stacks/local.sh),
read back from the local ZenML store and the local MLflow store; caching, the device, the local
MLflow UI, and bad input."""
import gzip
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
from mlflow import MlflowClient

from demorun import DEMO_PYTHON, PIPELINE, demo_env, demo_python, pipeline_run, run, zenml_run
from mlops_stack.stackenv import REPO

SAMPLE = REPO / "demo" / "data" / "sample"
sys.path.insert(0, str(REPO))
from demo.pipeline import data  # noqa: E402  (numpy only: the test's own environment has it)


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    return tmp_path_factory.mktemp("local-home")


def local(home):
    """The environment local.sh sets up, for reading its stores back."""
    return {"ZENML_CONFIG_PATH": str(home / "local" / "zenml")}


def mlflow_store(home):
    return MlflowClient(tracking_uri=f"sqlite:///{home / 'local' / 'artifacts' / 'mlflow.db'}")


@pytest.fixture(scope="module")
def first(demo_venv, home):
    return pipeline_run(run(["demo/stacks/local.sh", *PIPELINE], home))


def test_the_run_is_in_the_local_zenml_store(first, home):
    assert first.stack == "local"
    seen = zenml_run(first.zenml_id, home, **local(home))
    assert seen["status"] == "completed" and seen["stack"] == "local" and seen["user"] == "default"
    assert seen["steps"] == dict.fromkeys(["load_data", "validate_data", "train", "evaluate", "register"], "completed")
    assert seen["mlflow_run_id"] == first.mlflow_id
    assert seen["uris"] and all(uri.startswith(str(home / "local" / "artifacts")) for uri in seen["uris"]), seen["uris"]


def test_mlflow_has_the_params_metrics_and_registered_model(first, home):
    client = mlflow_store(home)
    mlflow_run = client.get_run(first.mlflow_id)
    assert client.get_experiment(mlflow_run.info.experiment_id).name == first.experiment == "default.mnist"
    assert mlflow_run.info.run_name == first.zenml_name
    params, metrics = mlflow_run.data.params, mlflow_run.data.metrics
    # From the configuration, through the autologged SummaryWriter.add_hparams.
    assert {k: params[k] for k in ("epochs", "batch_size", "learning_rate", "channels", "hidden", "seed")} == \
        {"epochs": "2", "batch_size": "32", "learning_rate": "0.003", "channels": "8", "hidden": "32", "seed": "0"}
    assert params["train_examples"] == "1200"
    assert round(metrics["test_accuracy"], 4) == first.accuracy and first.accuracy >= 0.5
    assert metrics["training_seconds"] > 0 and metrics["samples_per_second"] > 0
    # One autologged value per epoch.
    assert [m.step for m in client.get_metric_history(first.mlflow_id, "train_loss")] == [0, 1]
    assert len(client.get_metric_history(first.mlflow_id, "train_accuracy")) == 2
    version = client.get_model_version(first.model, str(first.version))
    assert first.model == "default.mnist" and version.run_id == first.mlflow_id and version.status == "READY"


def test_the_registered_model_loads_and_predicts(first, home):
    measured = demo_python(f"""
        import mlflow
        from demo.pipeline import data, model
        mlflow.set_tracking_uri("sqlite:///{home / 'local' / 'artifacts' / 'mlflow.db'}")
        loaded = mlflow.pyfunc.load_model("models:/{first.model}/{first.version}")
        arrays = data.load(data.Path("{SAMPLE}"))
        logits = loaded.predict(model.to_tensor(arrays["test_images"]).numpy())
        result = float((logits.argmax(1) == arrays["test_labels"]).mean())
    """, home)
    assert round(measured, 4) == first.accuracy


def test_training_says_which_device_it_used(first, home):
    cuda = demo_python("import torch\nresult = torch.cuda.is_available()", home)
    expected = "cuda" if cuda else "cpu"
    assert f"training on {expected}" in first.output
    assert mlflow_store(home).get_run(first.mlflow_id).data.params["device_used"] == expected


def test_a_rerun_takes_the_data_steps_from_the_cache(first, home):
    second = pipeline_run(run(["demo/stacks/local.sh", *PIPELINE], home))
    seen = zenml_run(second.zenml_id, home, **local(home))
    assert seen["steps"] == {"load_data": "cached", "validate_data": "cached", "train": "completed",
                             "evaluate": "completed", "register": "completed"}
    assert second.mlflow_id != first.mlflow_id and second.version == first.version + 1


def test_the_local_mlflow_ui_shows_the_runs(first, home):
    with socket.socket() as probe:  # a free port
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    ui = subprocess.Popen(["demo/scripts/mlflow_tracking.sh", "--local", str(port)], cwd=REPO, env=demo_env(home),
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline, answer = time.monotonic() + 120, None
        while time.monotonic() < deadline and ui.poll() is None:
            try:
                answer = requests.get(f"http://127.0.0.1:{port}/api/2.0/mlflow/runs/get",
                                      params={"run_id": first.mlflow_id}, timeout=5)
                break
            except requests.ConnectionError:
                time.sleep(1)
        assert answer is not None and answer.status_code == 200, ui.stderr.read() if ui.poll() is not None else "no answer"
        metrics = {m["key"]: m["value"] for m in answer.json()["run"]["data"]["metrics"]}
        assert round(metrics["test_accuracy"], 4) == first.accuracy
    finally:
        os.killpg(ui.pid, signal.SIGTERM)  # the group this test started: the script's mlflow server
        ui.wait(timeout=30)


@pytest.fixture(scope="module")
def bare(tmp_path_factory):
    """A home with a fresh ZenML configuration: only the default stack, no experiment tracker."""
    home = tmp_path_factory.mktemp("bare-home")
    return home, {"ZENML_CONFIG_PATH": str(home / "zenml")}


def test_without_an_experiment_tracker_mlflow_runs_go_to_the_local_store(demo_venv, bare):
    home, env = bare
    done = pipeline_run(run(PIPELINE, home, **env))
    assert done.stack == "default"
    client = mlflow_store(home)
    assert round(client.get_run(done.mlflow_id).data.metrics["test_accuracy"], 4) == done.accuracy
    assert client.get_model_version("default.mnist", str(done.version)).run_id == done.mlflow_id


@pytest.mark.parametrize("change,message", [
    ({"epochs": "0"}, "train.epochs: Input should be greater than or equal to 1 (got 0)"),
    ({"epochs": "three"}, "train.epochs: Input should be a valid integer (got 'three')"),
    ({"learning_rate": "1e-3"}, "train.learning_rate: Input should be a valid number (got '1e-3')"),
    ({"device": "gpu"}, "train.device: Input should be 'auto', 'cpu' or 'cuda' (got 'gpu')"),
    ({"epoch": "2"}, "train.epoch: Extra inputs are not permitted (got 2)"),
    ({"seed": ""}, "train.seed: Input should be a valid integer (got None)"),
])
def test_a_bad_config_value_is_one_clear_line(demo_venv, tmp_path, change, message):
    (key, value), = change.items()  # written as a student would type it in the train: section
    text = (REPO / "tests/demo/fast.yaml").read_text()
    text = re.sub(rf"^  {key}: .*$", f"  {key}: {value}", text, flags=re.M) if f"  {key}:" in text else \
        text.replace("train:\n", f"train:\n  {key}: {value}\n")
    config = tmp_path / "bad.yaml"
    config.write_text(text)
    done = run([str(DEMO_PYTHON), "-m", "demo.pipeline.run", "--config", str(config)], tmp_path, check=False)
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.splitlines() == [f"Error: {config}: {message}"], done.stderr


@pytest.mark.parametrize("arguments,message", [
    (["--data", "/nonexistent/mnist"], "Error: /nonexistent/mnist: no MNIST files there (train-images-idx3-ubyte.gz"),
    (["--config", "/nonexistent.yaml"], "Error: /nonexistent.yaml: cannot read it (No such file or directory)"),
])
def test_a_missing_path_is_one_clear_line(demo_venv, tmp_path, arguments, message):
    done = run([str(DEMO_PYTHON), "-m", "demo.pipeline.run", "--config", "tests/demo/fast.yaml", *arguments],
               tmp_path, check=False)
    assert done.returncode == 1 and len(done.stderr.splitlines()) == 1, done.stderr
    assert done.stderr.startswith(message), done.stderr


def test_invalid_data_stops_the_run_at_validation(demo_venv, bare, tmp_path):
    folder = tmp_path / "bad-mnist"
    folder.mkdir()
    for name in data.FILES.values():
        (folder / name).write_bytes((SAMPLE / name).read_bytes())
    labels = data.read_idx(SAMPLE / "train-labels-idx1-ubyte.gz").copy()
    labels[:3] = 12  # not a digit
    with gzip.open(folder / "train-labels-idx1-ubyte.gz", "wb") as out:
        out.write(bytes([0, 0, 8, 1]) + len(labels).to_bytes(4, "big") + labels.tobytes())
    done = run(PIPELINE + ["--data", str(folder)], bare[0], check=False, **bare[1])
    assert done.returncode == 1
    assert done.stderr.splitlines()[-1] == "Error: invalid data: train labels outside 0..9: [12]", done.stderr[-3000:]
    assert "Step train has started" not in done.stdout + done.stderr


USAGE = {"hybrid.sh": "usage: hybrid.sh CREDENTIALS_FILE [COMMAND...]",
         "mlflow_tracking.sh": "usage: mlflow_tracking.sh CREDENTIALS_FILE | --local [PORT]",
         "ci_variables.sh": "usage: ci_variables.sh CREDENTIALS_FILE"}


@pytest.mark.parametrize("command,code,message", [
    (["demo/stacks/hybrid.sh"], 2, USAGE["hybrid.sh"]),
    (["demo/stacks/hybrid.sh", "/nonexistent.env"], 1, "hybrid.sh: /nonexistent.env: no such readable file"),
    # The credentials file forgotten: the command's first word taken for it.
    (["demo/stacks/hybrid.sh", "python", "-m", "demo.pipeline.run"], 1, "hybrid.sh: python: no such readable file"),
    (["demo/stacks/hybrid.sh", "tests/demo/fast.yaml"], 1, "hybrid.sh: tests/demo/fast.yaml has no STACK_USER"),
    (["demo/scripts/mlflow_tracking.sh"], 2, USAGE["mlflow_tracking.sh"]),
    (["demo/scripts/mlflow_tracking.sh", "/nonexistent.env"], 1, "mlflow_tracking.sh: /nonexistent.env: no such readable file"),
    (["demo/scripts/mlflow_tracking.sh", "--local", "http"], 2, "mlflow_tracking.sh: http is not a port number"),
    (["demo/scripts/mlflow_tracking.sh", "--local"], 1, "mlflow_tracking.sh: no local MLflow runs yet"),
    (["demo/scripts/ci_variables.sh"], 2, USAGE["ci_variables.sh"]),
    (["demo/scripts/ci_variables.sh", "/nonexistent.env"], 1, "ci_variables.sh: /nonexistent.env: no such readable file"),
    (["demo/scripts/ci_variables.sh", "tests/demo/fast.yaml"], 1, "ci_variables.sh: tests/demo/fast.yaml has no CI_VARIABLES"),
])
def test_script_misuse_is_one_clear_line(demo_venv, tmp_path, command, code, message):
    """One line saying what is wrong; where a file is missing, the usage line after it."""
    done = run(command, tmp_path, check=False)
    lines = done.stderr.splitlines()
    assert done.returncode == code and lines and lines[0].startswith(message), done.stderr
    if "no such readable file" in message:
        assert len(lines) == 2 and lines[1].startswith(USAGE[command[0].rsplit("/", 1)[1]]), done.stderr
    else:
        assert len(lines) == 1, done.stderr


def test_missing_files_are_downloaded_from_the_given_url(tmp_path):
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(SimpleHTTPRequestHandler, directory=str(SAMPLE)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}"
        arrays = data.load(tmp_path / "mnist", url)
        for name in data.FILES.values():
            assert (tmp_path / "mnist" / name).read_bytes() == (SAMPLE / name).read_bytes()
        assert arrays["train_images"].shape == (1200, 28, 28) and arrays["test_labels"].shape == (300,)
        with pytest.raises(data.DataError, match=r"cannot download .*/missing/train-images-idx3-ubyte.gz: HTTP Error 404"):
            data.load(tmp_path / "other", f"{url}/missing")
    finally:
        server.shutdown()


def test_local_sh_without_a_command_prints_the_lines_to_eval(first, home):
    done = run(["bash", "-c", 'eval "$(demo/stacks/local.sh)" && '
                'python -c "from zenml.client import Client; print(Client().active_stack_model.name)"'], home)
    assert done.stdout.splitlines()[-1] == "local", done.stdout
