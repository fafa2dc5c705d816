"""Remote-scenario overhead: a CI job's time from its start to the demo's first training step, in the
stack's prebuilt job image, against installing the environment inside the job from a plain Python image
(the way without a job image). Both jobs run with gitlab-ci-local and the Docker executor on the local
ZenML stack (no server needed), so the difference is the environment alone.

    .venv/bin/python bench/remote_overhead.py

Needs the job image (playbooks/run_server.yml builds it) and gitlab-ci-local (make tools).
"""
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import yaml

from mlops_stack.stackenv import REPO, ansible_playbook, load_stack

GITLAB_CI_LOCAL = REPO / ".tools/node_modules/.bin/gitlab-ci-local"
RUN = "demo/stacks/local.sh python -m demo.pipeline.run --config demo/config/train.yaml --data demo/data/sample"
MARKER = "training on"  # the train step's first line


def images():
    """The job image and the plain Python stage of the same Dockerfile (built here)."""
    ansible_playbook("playbooks/run_server.yml", "--tags", "job_image")
    job = yaml.safe_load((REPO / "extras/gitlab-ci.yml").read_text())["variables"]["STACK_JOB_IMAGE"]
    plain = job.replace("/job:", "/job-python:")
    name = load_stack().settings["stack_name"]
    build = Path("/var/lib") / name / "build/job"
    subprocess.run(["docker", "build", "--quiet", "--target", "python", "--build-arg",
                    f"BASE_IMAGE={name}-base:bookworm", "-t", plain, str(build)],
                   check=True, capture_output=True)
    return job, plain


def project(root, job, plain):
    shutil.copytree(REPO / "demo", root / "demo", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "demo/environments/requirements.txt", root / "requirements.txt")
    (root / ".gitlab-ci.yml").write_text(yaml.safe_dump({
        "prebuilt": {"image": job, "script": [RUN]},
        "scratch": {"image": plain, "script": [
            "python3 -m venv /tmp/venv", "/tmp/venv/bin/pip install --quiet -r requirements.txt",
            f". /tmp/venv/bin/activate && {RUN}"]},
    }))
    for command in (["init", "-q", "-b", "main"], ["remote", "add", "origin", "https://gitlab.example.org/b/b.git"],
                    ["add", "-A"], ["-c", "user.name=b", "-c", "user.email=b@example.org", "commit", "-qm", "bench"]):
        subprocess.run(["git", *command], cwd=root, check=True)


def time_to_training(root, name, helper):
    """Seconds from starting the job to the train step's first line."""
    start = time.monotonic()
    job = subprocess.Popen([str(GITLAB_CI_LOCAL), "--helper-image", helper, "--pull-policy", "if-not-present", name],
                           cwd=root, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seconds = None
    for line in job.stdout:
        if seconds is None and MARKER in line:
            seconds = time.monotonic() - start
    if job.wait() != 0 or seconds is None:
        raise SystemExit(f"job {name} failed or never trained (rc={job.returncode})")
    return seconds


def main():
    job, plain = images()
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        project(root, job, plain)
        prebuilt = time_to_training(root, "prebuilt", job)
        scratch = time_to_training(root, "scratch", job)
    print(f"job start to first training step, prebuilt job image:      {prebuilt:7.1f} s")
    print(f"job start to first training step, environment made in job:  {scratch:7.1f} s")
    print(f"ratio (made in job / prebuilt):                             {scratch / prebuilt:7.1f}x  (target >= 5x)")


if __name__ == "__main__":
    main()
