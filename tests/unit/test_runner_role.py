"""The gitlab_runner role: its interface, and its decisions run for real with stand-in roles.

The plays run on localhost with playbook-local stand-ins for `stack` (its defaults, no Docker network)
and for riemers.gitlab-runner (it records the variables it is given), so neither Docker nor Galaxy is
needed; tokens are fake.
"""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
ROLE = REPO / "roles" / "gitlab_runner"
BIN = Path(sys.executable).parent
TOKENS = {"gpu": "glrt-gpu-fake-0123456789", "cpu": "glrt-cpu-fake-9876543210"}
URL = "https://gitlab.example.org"

STUB_RIEMERS = """---
- name: Record the variables the gitlab_runner role passes
  ansible.builtin.copy:
    dest: "{{ playbook_dir }}/riemers_vars.json"
    mode: "0600"
    content: "{{ {'url': gitlab_runner_coordinator_url, 'type': gitlab_runner_registration_token_type,
                  'concurrent': gitlab_runner_concurrent, 'container_install': gitlab_runner_container_install,
                  'image': gitlab_runner_container_image ~ ':' ~ gitlab_runner_container_tag,
                  'name': gitlab_runner_container_name, 'mount': gitlab_runner_container_mount_path,
                  'network': gitlab_runner_container_network, 'no_log_secrets': gitlab_runner_no_log_secrets,
                  'runners': gitlab_runner_runners} | to_nice_json }}"

- name: Print the runners (the role hides this)
  ansible.builtin.debug:
    var: gitlab_runner_runners
"""


@pytest.fixture()
def play(tmp_path):
    """A playbook folder with the stand-in roles; returns a function that runs it."""
    roles = tmp_path / "play" / "roles"
    (roles / "stack" / "tasks").mkdir(parents=True)
    shutil.copytree(REPO / "roles/stack/defaults", roles / "stack" / "defaults")
    (roles / "stack" / "tasks" / "main.yml").write_text("---\n[]\n")
    (tmp_path / "credentials").mkdir(mode=0o700)
    (tmp_path / "play" / "site.yml").write_text(yaml.safe_dump([{
        "name": "GitLab Runner", "hosts": "localhost", "gather_facts": False,
        "vars_files": [str(REPO / "runners.yml")], "roles": ["gitlab_runner"]}]))
    dockerd = tmp_path / "dockerd"
    dockerd.write_text("")

    def run(*extra, riemers=True, env=None, docker=True):
        if riemers and not (roles / "riemers.gitlab-runner").exists():
            (roles / "riemers.gitlab-runner" / "tasks").mkdir(parents=True)
            (roles / "riemers.gitlab-runner" / "tasks" / "main.yml").write_text(STUB_RIEMERS)
        paths = [str(dockerd)] if docker else [str(tmp_path / "no-dockerd")]
        result = subprocess.run(
            [str(BIN / "ansible-playbook"), str(tmp_path / "play" / "site.yml"),
             "-e", json.dumps({"__gitlab_runner_dockerd_paths": paths, "__gitlab_runner_processors": 64}), *extra],
            cwd=REPO, capture_output=True, text=True, timeout=300,
            env={**{k: v for k, v in os.environ.items() if not k.startswith("GITLAB_RUNNER_TOKEN_")},
                 "PATH": f"{BIN}:{os.environ.get('PATH', '')}", "ANSIBLE_NOCOLOR": "1", **(env or {})})
        result.recorded = tmp_path / "play" / "riemers_vars.json"
        # The callback wraps long messages; compare with single spaces.
        result.text = " ".join(result.stdout.split())
        return result

    run.credentials = tmp_path / "credentials"
    return run


def token_env(**tokens):
    return {f"GITLAB_RUNNER_TOKEN_{name.upper()}": token for name, token in tokens.items()}


# Interface


def test_argument_specs_mirror_the_defaults():
    defaults = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
    specs = yaml.safe_load((ROLE / "meta" / "argument_specs.yml").read_text())["argument_specs"]
    assert set(specs["main"]["options"]) == set(defaults)
    assert all(name.startswith("gitlab_runner_") for name in defaults)


def test_runner_image_is_pinned():
    defaults = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
    assert defaults["gitlab_runner_image_tag"] not in ("", "latest")


def test_requirements_pin_the_bundled_collections():
    requirements = yaml.safe_load((REPO / "requirements.yml").read_text())
    roles = {role["name"]: role for role in requirements["roles"]}
    assert set(roles) == {"riemers.gitlab-runner", "geerlingguy.docker"}
    assert all(role.get("version") for role in roles.values())
    site = next(Path(p) for p in sys.path if (Path(p) / "ansible_collections").is_dir())
    for collection in requirements["collections"]:
        namespace, name = collection["name"].split(".")
        manifest = json.loads((site / "ansible_collections" / namespace / name / "MANIFEST.json").read_text())
        assert collection["version"] == manifest["collection_info"]["version"], collection["name"]


# Skipped until configured


def test_skips_with_one_message_while_unconfigured(play):
    result = play()
    assert result.returncode == 0, result.stdout[-3000:]
    assert result.text.count("GitLab Runner skipped") == 1
    assert "gitlab_runner_url in runners.yml" in result.text
    assert "for runner(s) gpu, cpu" in result.text
    assert "changed=0" in result.text and not result.recorded.exists()


def test_skips_when_the_galaxy_role_is_missing(play):
    result = play("-e", f"gitlab_runner_url={URL}", riemers=False, env=token_env(**TOKENS))
    assert result.returncode == 0, result.stdout[-3000:]
    assert "provide: the role riemers.gitlab-runner: ansible-galaxy install -r requirements.yml" in result.text
    assert "gitlab_runner_url in runners.yml" not in result.text


def test_skips_when_one_token_is_missing(play):
    result = play("-e", f"gitlab_runner_url={URL}", env=token_env(gpu=TOKENS["gpu"]))
    assert result.returncode == 0
    assert "for runner(s) cpu:" in result.text and not result.recorded.exists()


# Configured


def test_registers_with_tokens_from_environment_and_file(play, tmp_path):
    (play.credentials / "gitlab_runner_cpu.token").write_text(TOKENS["cpu"] + "\n")
    (play.credentials / "mlops-ca.crt").write_text("the stack's CA certificate\n")
    result = play("-vvv", "-e", f"gitlab_runner_url={URL}", "-e", "gitlab_runner_check_gpu=false",
                  "-e", f"gitlab_runner_config_dir={tmp_path / 'runner'}", env=token_env(gpu=TOKENS["gpu"]))
    assert result.returncode == 0, result.stdout[-3000:]
    assert not any(token in result.stdout + result.stderr for token in TOKENS.values())
    given = json.loads(result.recorded.read_text())
    assert given["url"] == URL and given["type"] == "authentication-token"
    assert given["container_install"] is True and given["no_log_secrets"] is True
    assert given["name"] == "mlops-gitlab-runner" and given["network"] == "mlops"
    assert given["image"].startswith("gitlab/gitlab-runner:v") and int(given["concurrent"]) == 3
    runners = {runner["name"]: runner for runner in given["runners"]}
    assert {name: runner["token"] for name, runner in runners.items()} == TOKENS
    assert runners["gpu"]["extra_configs"]["runners.docker"]["gpus"] == "all"
    assert "gpus" not in runners["cpu"]["extra_configs"]["runners.docker"]
    assert "maximum job timeout 14400 s" in result.text
    # Every job gets the stack's CA certificate, read-only, and the variables that make its clients use it.
    assert (tmp_path / "runner" / "ca.crt").read_text() == "the stack's CA certificate\n"
    for runner in runners.values():
        assert f"{tmp_path / 'runner' / 'ca.crt'}:/etc/mlops-stack/ca.crt:ro" in runner["docker_volumes"]
        assert "AWS_CA_BUNDLE=/etc/mlops-stack/ca.crt" in runner["env_vars"]
        assert runner["docker_network_mode"] == "mlops-jobs"


@pytest.mark.parametrize("token", ["GR1348941oldregistrationtoken", "glpat-personalaccesstoken"])
def test_refuses_tokens_that_are_not_runner_authentication_tokens(play, token):
    result = play("-e", f"gitlab_runner_url={URL}", env=token_env(gpu=token, cpu=TOKENS["cpu"]))
    assert result.returncode != 0
    assert "The token of runner(s) gpu does not start with glrt-" in result.text
    assert token not in result.stdout + result.stderr and not result.recorded.exists()


def test_gpu_runners_need_the_nvidia_toolkit(play):
    result = play("-e", f"gitlab_runner_url={URL}", "-e", '{"__gitlab_runner_nvidia_toolkit_paths": ["/nonexistent"]}',
                  env=token_env(**TOKENS))
    assert result.returncode != 0
    assert "Runner(s) gpu ask for GPUs, but the NVIDIA Container Toolkit is not installed" in result.text
    assert not result.recorded.exists()


@pytest.mark.parametrize("version, refused", [("1.17.7", True), ("1.17.8", False), ("1.18.0", False)])
def test_gpu_runners_need_a_toolkit_with_the_cve_2025_23266_fix(play, tmp_path, version, refused):
    toolkit = tmp_path / "nvidia-ctk"
    toolkit.write_text(f"#!/bin/sh\necho 'NVIDIA Container Toolkit CLI version {version}'\necho 'commit: abc'\n")
    toolkit.chmod(0o755)
    (play.credentials / "mlops-ca.crt").write_text("the stack's CA certificate\n")
    result = play("-e", f"gitlab_runner_url={URL}", "-e", f'{{"__gitlab_runner_nvidia_toolkit_paths": ["{toolkit}"]}}',
                  "-e", f"gitlab_runner_config_dir={tmp_path / 'runner'}", env=token_env(**TOKENS))
    message = (f"The NVIDIA Container Toolkit on localhost is {version}, older than 1.17.8, which fixes "
               "CVE-2025-23266")
    assert (result.returncode != 0) == refused, result.stdout[-3000:]
    assert (message in result.text) == refused
    assert result.recorded.exists() != refused


def test_job_cpus_above_the_machines_processors_are_refused(play):
    result = play("-e", f"gitlab_runner_url={URL}", "-e", "gitlab_runner_check_gpu=false",
                  "-e", '{"__gitlab_runner_processors": 4}', env=token_env(**TOKENS))
    assert result.returncode != 0
    assert ("Runner gpu gives each job cpus 8, more than the 4 processors of localhost: Docker would refuse "
            "every such job. Lower cpus in runners.yml.") in result.text
    assert not result.recorded.exists()


def test_docker_missing_is_explained(play):
    result = play("-e", f"gitlab_runner_url={URL}", env=token_env(**TOKENS), docker=False)
    assert result.returncode != 0
    assert "Docker is not installed on localhost. Set gitlab_runner_docker_install: true" in result.text


def test_bad_runners_yml_fails_before_anything_else(play, tmp_path):
    bad = tmp_path / "bad.yml"
    bad.write_text(yaml.safe_dump({"gitlab_runner_runners_config": [
        {"name": "cpu", "tags": ["cpu"], "image": "python:3.11", "memory": "4g", "cpus": 2, "privileged": "no"}]}))
    result = play("-e", f"@{bad}")
    assert result.returncode != 0
    assert "runners.yml: runner 'cpu': privileged must be true or false" in result.text
