"""What the demo's tests need: run its scripts and pipeline as a student would, in the student's
environment (.venv-demo), under a temporary MLOPS_DEMO_HOME, and read back what they printed."""
import json
import os
import re
import subprocess
import textwrap
from dataclasses import dataclass
from pathlib import Path

from mlops_stack.stackenv import REPO

DEMO_VENV = REPO / ".venv-demo"
DEMO_PYTHON = DEMO_VENV / "bin" / "python"
FAST_CONFIG = Path(__file__).parent / "demo" / "fast.yaml"
PIPELINE = ["python", "-m", "demo.pipeline.run", "--config", str(FAST_CONFIG)]


def demo_env(home: Path, **extra) -> dict:
    """The environment of a student's shell with the demo environment active, and nothing of ours:
    no ZENML_*, MLFLOW_* or AWS_* from the test process."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ZENML_", "MLFLOW_", "AWS_", "VIRTUAL_ENV"))}
    env.update(PATH=f"{DEMO_VENV / 'bin'}:{env['PATH']}", MLOPS_DEMO_HOME=str(home), ZENML_ANALYTICS_OPT_IN="false",
               ZENML_LOGGING_COLORS_DISABLED="true", **extra)
    return env


def run(command: list, home: Path, check: bool = True, timeout: int = 900, **extra) -> subprocess.CompletedProcess:
    """Run a command from the repository root as the student would; on failure show its output."""
    done = subprocess.run(command, cwd=REPO, env=demo_env(home, **extra), capture_output=True, text=True,
                          timeout=timeout)
    if check and done.returncode != 0:
        raise AssertionError(f"{command} failed (rc={done.returncode}):\n{done.stdout[-5000:]}\n{done.stderr[-5000:]}")
    return done


@dataclass
class PipelineRun:
    """What `python -m demo.pipeline.run` printed at the end."""
    output: str
    zenml_name: str
    zenml_id: str
    stack: str
    mlflow_id: str
    experiment: str
    accuracy: float
    model: str
    version: int


def pipeline_run(done: subprocess.CompletedProcess) -> PipelineRun:
    output = done.stdout + done.stderr
    zenml = re.search(r"^ZenML run: (\S+) \(id ([0-9a-f-]+)\) on stack (\S+), status completed$", output, re.M)
    mlflow = re.search(r"^MLflow run: ([0-9a-f]+) in experiment (\S+)$", output, re.M)
    accuracy = re.search(r"^test accuracy: ([0-9.]+)$", output, re.M)
    model = re.search(r"^registered model: (\S+) version (\d+)$", output, re.M)
    assert zenml and mlflow and accuracy and model, output[-5000:]
    return PipelineRun(output, *zenml.groups(), *mlflow.groups(), float(accuracy.group(1)), model.group(1),
                       int(model.group(2)))


def evaluated_accuracy(env_file: str, run_id: str, home: Path) -> float:
    """The accuracy artifact of a run's evaluate step, loaded as the student of env_file through their hybrid stack
    (from their bucket, with the keys of their private ZenML secret). The probe is a file: ZenML loads the artifact
    store's flavor relative to the main module's folder."""
    probe = home / "probe.py"
    probe.write_text("from zenml.client import Client\n"
                     f"step = Client().get_pipeline_run('{run_id}').steps['evaluate']\n"
                     "print('accuracy', step.outputs['accuracy'][0].load())\n")
    done = run(["demo/stacks/hybrid.sh", env_file, "python", str(probe)], home)
    return float(done.stdout.split("accuracy ")[-1].split()[0])


def demo_python(code: str, home: Path, **extra):
    """Run `code` (which sets `result`) with the demo environment's Python; return `result`.

    ZenML keeps its client configuration global per process, hence a process per question."""
    script = "import json\n" + textwrap.dedent(code) + "\nprint('RESULT=' + json.dumps(result))\n"
    done = run([str(DEMO_PYTHON), "-c", script], home, check=False, **extra)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT=")]
    if done.returncode != 0 or not lines:
        raise AssertionError(f"demo Python failed (rc={done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT="):])


def zenml_run(run_id: str, home: Path, **extra) -> dict:
    """The pipeline run as the ZenML client of that environment sees it: status, user, stack, steps."""
    return demo_python(f"""
        from zenml.client import Client
        run = Client().get_pipeline_run("{run_id}")
        result = {{"status": run.status.value, "user": run.user.name, "stack": run.stack.name,
                  "steps": {{name: step.status.value for name, step in run.steps.items()}},
                  "uris": [a.uri for step in run.steps.values() for outs in step.outputs.values() for a in outs],
                  "mlflow_run_id": run.steps["train"].run_metadata.get("mlflow_run_id")}}
    """, home, **extra)
