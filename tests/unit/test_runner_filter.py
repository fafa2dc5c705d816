"""The gitlab_runner filters: runners.yml -> riemers.gitlab-runner's runner list and config.toml."""
import importlib.util
import tomllib
from pathlib import Path

import pytest
import yaml
from ansible.errors import AnsibleFilterError

ROOT = Path(__file__).parents[2]
SPEC = importlib.util.spec_from_file_location("gitlab_runner_filter", ROOT / "ansible/plugins/filter/gitlab_runner.py")
gitlab_runner = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(gitlab_runner)

RUNNERS_YML = yaml.safe_load((ROOT / "runners.yml").read_text())
_JOB_DEFAULTS = yaml.safe_load((ROOT / "roles/job_image/defaults/main.yml").read_text())
_STACK_NAME = yaml.safe_load((ROOT / "roles/stack/defaults/main/stack.yml").read_text())["stack_name"]
JOB_IMAGE = f"{_STACK_NAME}/job:{_JOB_DEFAULTS['job_image_tag']}"
RUNNERS = RUNNERS_YML["gitlab_runner_runners_config"]
URL = "https://gitlab.example.org"
TOKENS = {"gpu": "glrt-gpu-0123456789abcdef", "cpu": "glrt-cpu-0123456789abcdef"}
CPU = {"name": "cpu", "tags": ["cpu"], "image": "python:3.11-slim-bookworm", "memory": "4g", "cpus": 2}


def config(runners=None, tokens=None, network="mlops", concurrent=3):
    text = gitlab_runner.gitlab_runner_config_toml(RUNNERS if runners is None else runners, URL, concurrent,
                                                   tokens=tokens, network=network)
    return text, tomllib.loads(text)


def by_name(items, key="name"):
    return {item[key]: item for item in items}


# The shipped runners.yml


def test_shipped_runners_yml_is_off_until_configured():
    assert RUNNERS_YML["gitlab_runner_url"] == ""
    assert "glrt-" not in (ROOT / "runners.yml").read_text().replace("glrt-...", "")
    assert sum(r["concurrency"] for r in RUNNERS) <= RUNNERS_YML["gitlab_runner_concurrent"]


def test_shipped_runners_render_to_valid_config_toml():
    _, parsed = config(concurrent=RUNNERS_YML["gitlab_runner_concurrent"])
    assert parsed["concurrent"] == RUNNERS_YML["gitlab_runner_concurrent"]
    runners = by_name(parsed["runners"])
    assert set(runners) == {"gpu", "cpu"}
    assert all(r["executor"] == "docker" and r["url"] == URL for r in runners.values())
    assert all(r["docker"]["privileged"] is False for r in runners.values())


@pytest.mark.parametrize("name,gpus", [("gpu", "all"), ("cpu", None)])
def test_only_gpu_runners_get_gpus(name, gpus):
    _, parsed = config()
    assert by_name(parsed["runners"])[name]["docker"].get("gpus") == gpus
    riemers = by_name(gitlab_runner.gitlab_runner_runners(RUNNERS, TOKENS))[name]
    assert riemers["extra_configs"]["runners.docker"].get("gpus") == gpus


@pytest.mark.parametrize("name,memory,cpus,limit", [("gpu", "24g", "8", 1), ("cpu", "4g", "2", 2)])
def test_limits_are_carried(name, memory, cpus, limit):
    _, parsed = config()
    runner = by_name(parsed["runners"])[name]
    assert runner["limit"] == limit
    assert runner["docker"]["memory"] == memory and runner["docker"]["memory_swap"] == memory
    assert runner["docker"]["cpus"] == cpus
    riemers = by_name(gitlab_runner.gitlab_runner_runners(RUNNERS, TOKENS))[name]
    assert riemers["concurrent_specific"] == str(limit)
    assert riemers["extra_configs"]["runners.docker"] == {
        key: value for key, value in runner["docker"].items()
        if key in ("memory", "memory_swap", "cpus", "gpus", "cap_drop", "security_opt", "allowed_images")}


@pytest.mark.parametrize("name", ["gpu", "cpu"])
def test_jobs_are_fenced_in_by_default(name):
    """Every job container: no raw sockets and the other capabilities a training job does not need, no new
    privileges, and only the runner's own image."""
    _, parsed = config()
    docker = by_name(parsed["runners"])[name]["docker"]
    assert "NET_RAW" in docker["cap_drop"] and "MKNOD" in docker["cap_drop"]
    assert docker["security_opt"] == ["no-new-privileges"]
    assert docker["allowed_images"] == [docker["image"]]


@pytest.mark.parametrize("key, value, message", [
    ("cap_drop", "NET_RAW", "cap_drop must be a list of capability names"),
    ("cap_drop", ["net raw"], "cap_drop must be a list of capability names"),
    ("allowed_images", [], "allowed_images must be a non-empty list"),
])
def test_bad_hardening_keys_are_named(key, value, message):
    runner = {**RUNNERS[0], key: value}
    with pytest.raises(AnsibleFilterError, match=message):
        gitlab_runner.check_runner(runner)


def test_gpu_runner_extras():
    _, parsed = config()
    docker = by_name(parsed["runners"])["gpu"]["docker"]
    assert docker["shm_size"] == 4 * 1024 ** 3
    assert docker["pull_policy"] == ["if-not-present"]
    assert docker["image"] == JOB_IMAGE


def test_runners_and_the_ci_template_use_the_job_image_the_stack_builds():
    """runners.yml, extras/gitlab-ci.yml and roles/job_image name the same local image."""
    assert {runner["docker"]["image"] for runner in config()[1]["runners"]} == {JOB_IMAGE}
    template = yaml.safe_load((ROOT / "extras/gitlab-ci.yml").read_text())
    assert template["variables"]["STACK_JOB_IMAGE"] == JOB_IMAGE


# Tokens


def test_tokens_never_appear_unless_given():
    text, parsed = config()
    assert "glrt-" not in text and "token" not in str(parsed)
    assert all("token" not in runner for runner in gitlab_runner.gitlab_runner_runners(RUNNERS))


def test_tokens_given_are_written():
    _, parsed = config(tokens=TOKENS)
    assert {r["name"]: r["token"] for r in parsed["runners"]} == TOKENS
    assert {r["name"]: r["token"] for r in gitlab_runner.gitlab_runner_runners(RUNNERS, TOKENS)} == TOKENS


@pytest.mark.parametrize("tokens,reason", [
    ({"gpu": TOKENS["gpu"]}, "no runner authentication token for runner\\(s\\) cpu"),
    ({"gpu": TOKENS["gpu"], "cpu": "  "}, "no runner authentication token for runner\\(s\\) cpu"),
    ({**TOKENS, "cpu": "GR1348941-old-registration-token"}, "runner\\(s\\) cpu is not a runner authentication"),
    ({**TOKENS, "gpu": "glpat-personal-access-token"}, "runner\\(s\\) gpu is not a runner authentication"),
])
def test_bad_tokens_are_refused_without_being_repeated(tokens, reason):
    with pytest.raises(AnsibleFilterError, match=reason) as error:
        gitlab_runner.gitlab_runner_runners(RUNNERS, tokens)
    assert "GR1348941" not in str(error.value) and "glpat" not in str(error.value)


# Timeouts and the GitLab side


def test_job_timeouts_and_tags_are_gitlab_settings():
    by_tags = {tuple(s["tag_list"]): s for s in gitlab_runner.gitlab_runner_gitlab_settings(RUNNERS)}
    assert by_tags[("gpu", "cuda")]["maximum_timeout"] == 14400
    assert by_tags[("gpu", "cuda")]["run_untagged"] is False
    assert by_tags[("cpu",)]["maximum_timeout"] == 3600
    assert by_tags[("cpu",)]["run_untagged"] is True
    assert all(s["access_level"] == "not_protected" for s in by_tags.values())


def test_gitlab_side_settings_stay_out_of_registration():
    # `gitlab-runner register` refuses --maximum-timeout, --tag-list, ... next to a glrt- token.
    for runner in gitlab_runner.gitlab_runner_runners(RUNNERS, TOKENS):
        assert "extra_registration_option" not in runner


def test_gitlab_side_is_documented_in_config_toml():
    text, _ = config()
    assert "maximum job timeout 14400 s" in text and "tags gpu, cuda" in text


def test_services_timeout_becomes_wait_for_services_timeout():
    runner = {**CPU, "services_timeout": 120}
    _, parsed = config([runner], concurrent=1)
    assert parsed["runners"][0]["docker"]["wait_for_services_timeout"] == 120
    riemers = gitlab_runner.gitlab_runner_runners([runner])[0]
    assert riemers["docker_wait_for_services_timeout"] == 120


def test_defaults_for_a_minimal_runner():
    runner = gitlab_runner.gitlab_runner_runners([CPU], network="mlops")[0]
    assert runner["docker_privileged"] is False
    assert runner["docker_volumes"] == ["/cache"]
    assert runner["docker_network_mode"] == "mlops"
    assert runner["run_untagged"] is False and runner["concurrent_specific"] == "1"
    assert gitlab_runner.gitlab_runner_gitlab_settings([CPU])[0]["maximum_timeout"] == 3600


@pytest.mark.parametrize("network,runner_network,expected", [
    ("mlops", None, "mlops"), ("mlops", "ci", "ci"), ("mlops", "", None), (None, None, None)])
def test_job_network(network, runner_network, expected):
    runner = dict(CPU) if runner_network is None else {**CPU, "network": runner_network}
    _, parsed = config([runner], network=network, concurrent=1)
    assert parsed["runners"][0]["docker"].get("network_mode") == expected


def test_environment_is_passed_to_jobs():
    runner = {**CPU, "environment": ["MLFLOW_TRACKING_URI=http://mlops-mlflow:5000"]}
    _, parsed = config([runner], concurrent=1)
    assert parsed["runners"][0]["environment"] == ["MLFLOW_TRACKING_URI=http://mlops-mlflow:5000"]
    assert gitlab_runner.gitlab_runner_runners([runner])[0]["env_vars"] == runner["environment"]


@pytest.mark.parametrize("gpus,expected", [("all", "all"), (2, "2"), ("device=0,1", "device=0,1"),
                                           (None, None), (False, None), ("", None)])
def test_gpu_values(gpus, expected):
    _, parsed = config([{**CPU, "gpus": gpus}], concurrent=1)
    assert parsed["runners"][0]["docker"].get("gpus") == expected


# Bad input


@pytest.mark.parametrize("change,reason", [
    ({"colour": "blue"}, "runner 'cpu': unknown key\\(s\\) colour"),
    ({"tags": []}, "runner 'cpu': missing tags \\(at least one tag"),
    ({"tags": None}, "missing tags"),
    ({"tags": "cpu"}, "tags must be a list"),
    ({"tags": ["two words"]}, "tags must be a list of single words"),
    ({"concurrency": -1}, "concurrency must be a whole number of at least 1, got -1"),
    ({"concurrency": 0}, "concurrency must be a whole number of at least 1"),
    ({"concurrency": "2"}, "concurrency must be a whole number"),
    ({"concurrency": True}, "concurrency must be a whole number"),
    ({"job_timeout": 60}, "job_timeout \\(seconds\\) must be a whole number of at least 600"),
    ({"memory": "lots"}, "memory must look like 512m or 16g"),
    ({"memory": None}, "missing memory"),
    ({"cpus": 0}, "cpus must be a positive number"),
    ({"cpus": "many"}, "cpus must be a positive number"),
    ({"gpus": "some"}, "gpus must be \"all\""),
    ({"gpus": 0}, "gpus must be \"all\""),
    ({"image": "python"}, "must be pinned to a tag"),
    ({"image": "python:latest"}, "must be pinned to a tag"),
    ({"image": "registry.local:5000/python"}, "must be pinned to a tag"),
    ({"privileged": "yes"}, "privileged must be true or false"),
    ({"volumes": ["/var/run/docker.sock:/var/run/docker.sock"]}, "Docker socket"),
    ({"volumes": "/cache"}, "volumes must be a list"),
    ({"pull_policy": "sometimes"}, "pull_policy must be one of"),
    ({"shm_size": "huge"}, "shm_size must look like"),
    ({"environment": ["no equals sign"]}, "environment must be a list of NAME=value"),
    ({"name": "GPU!"}, "entry 1: name 'GPU!' must be"),
    ({"name": None}, "entry 1: name None must be"),
])
def test_bad_runners_are_named(change, reason):
    runner = {**CPU, **change}
    with pytest.raises(AnsibleFilterError, match=reason):
        gitlab_runner.gitlab_runner_runners([runner])
    with pytest.raises(AnsibleFilterError, match=reason):
        gitlab_runner.gitlab_runner_config_toml([runner], URL, 4)


@pytest.mark.parametrize("image", ["python:3.11-slim-bookworm", "registry.local:5000/python:3.11",
                                   "python@sha256:" + "0" * 64])
def test_pinned_images_pass(image):
    assert gitlab_runner.gitlab_runner_runners([{**CPU, "image": image}])[0]["docker_image"] == image


@pytest.mark.parametrize("runners,concurrent,reason", [
    ([CPU, CPU], 4, "runner name\\(s\\) cpu appear more than once"),
    ([{**CPU, "concurrency": 5}], 4, "concurrency 5 is more than the machine's concurrent \\(4\\)"),
    ([CPU], 0, "gitlab_runner_concurrent must be a whole number of at least 1"),
    ([CPU], -2, "gitlab_runner_concurrent must be a whole number of at least 1"),
    ("cpu", 4, "gitlab_runner_runners_config must be a list"),
    (["cpu"], 4, "entry 1 must be a mapping"),
])
def test_bad_lists_are_refused(runners, concurrent, reason):
    with pytest.raises(AnsibleFilterError, match=reason):
        gitlab_runner.gitlab_runner_runners(runners, concurrent=concurrent)


def test_filters_are_registered():
    assert set(gitlab_runner.FilterModule().filters()) == {
        "gitlab_runner_runners", "gitlab_runner_gitlab_settings", "gitlab_runner_config_toml"}
