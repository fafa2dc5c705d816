import importlib.util
import tomllib
from pathlib import Path

import pytest
import yaml
from ansible.errors import AnsibleFilterError

SPEC = importlib.util.spec_from_file_location(
    "gitlab_runner", Path(__file__).parents[2] / "ansible/plugins/filter/gitlab_runner.py")
gitlab_runner = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(gitlab_runner)

RUNNERS = yaml.safe_load((Path(__file__).parents[2] / "runners.yml").read_text().replace(
    "{{ stack_name }}", "mlops"))["gitlab_runner_runners_config"]
TOKENS = {"gpu": "glrt-gpu-token", "cpu": "glrt-cpu-token"}


def test_shipped_runners_render_to_valid_config_toml():
    config = tomllib.loads(gitlab_runner.gitlab_runner_config_toml(RUNNERS, "https://gitlab.example.org", 4))
    assert config["concurrent"] == 4
    by_name = {r["name"]: r for r in config["runners"]}
    assert by_name["gpu"]["docker"]["gpus"] == "all"
    assert "gpus" not in by_name["cpu"]["docker"]
    assert by_name["gpu"]["docker"]["memory"] == "16g" and by_name["cpu"]["docker"]["cpus"] == "2"
    assert by_name["cpu"]["limit"] == 2
    assert all(r["executor"] == "docker" and r["docker"]["privileged"] is False for r in config["runners"])
    assert "glrt-" not in gitlab_runner.gitlab_runner_config_toml(RUNNERS, "https://gitlab.example.org", 4)


def test_riemers_runner_list_carries_tokens_timeouts_and_gpus():
    runners = {r["name"]: r for r in gitlab_runner.gitlab_runner_runners(RUNNERS, TOKENS)}
    assert runners["gpu"]["token"] == "glrt-gpu-token"
    assert runners["gpu"]["extra_configs"]["runners.docker"]["gpus"] == "all"
    assert runners["gpu"]["extra_registration_option"] == "--maximum-timeout=7200"
    assert runners["cpu"]["tags"] == ["cpu"] and runners["cpu"]["run_untagged"] is False


@pytest.mark.parametrize("change,reason", [
    ({"tags": []}, "at least one tag"),
    ({"concurrency": -1}, "concurrency must be a positive"),
    ({"job_timeout": 0}, "job_timeout must be a positive"),
    ({"memory": "lots"}, "memory must look like"),
    ({"colour": "blue"}, "unknown keys colour"),
    ({"name": "GPU!"}, "runner name"),
])
def test_bad_runners_are_named(change, reason):
    with pytest.raises(AnsibleFilterError, match=reason):
        gitlab_runner.gitlab_runner_runners([{**RUNNERS[1], **change}], {"cpu": "glrt-x", "GPU!": "glrt-x"})


def test_missing_or_old_style_token_is_refused():
    with pytest.raises(AnsibleFilterError, match="authentication token"):
        gitlab_runner.gitlab_runner_runners(RUNNERS, {"gpu": "GR1348941old-registration-token"})
