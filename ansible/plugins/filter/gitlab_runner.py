"""Turn the runners of runners.yml into riemers.gitlab-runner's runner list and into config.toml text.

Pure functions, no I/O: the gitlab_runner role calls them as filters and tests/unit/test_runner_filter.py
checks what they produce. Every mistake in runners.yml raises AnsibleFilterError with one line that
names the runner and the key.

Runner authentication tokens (glrt-..., GitLab's runner creation flow) carry the runner's GitLab-side
settings: its tags, whether it runs untagged or only protected jobs, and its maximum job timeout are
set in GitLab when the runner is created, and `gitlab-runner register` refuses them next to a glrt-
token. gitlab_runner_gitlab_settings() lists them so the play can show what GitLab must say.
"""
import json
import re

from ansible.errors import AnsibleFilterError

KEYS = {
    "name", "description", "tags", "run_untagged", "protected", "image", "concurrency", "job_timeout",
    "gpus", "memory", "cpus", "shm_size", "privileged", "volumes", "pull_policy", "services_timeout",
    "network", "environment", "cap_drop", "allowed_images",
}
REQUIRED = ("name", "tags", "image", "memory", "cpus")
NAME = re.compile(r"^[a-z][a-z0-9-]{0,39}$")
TAG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/-]*$")
SIZE = re.compile(r"^([0-9]+)([bkmg])$")
UNITS = {"b": 1, "k": 1024, "m": 1024 ** 2, "g": 1024 ** 3}
PULL_POLICIES = ("always", "if-not-present", "never")
ENVIRONMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
# GitLab refuses a runner maximum timeout under 10 minutes.
MIN_JOB_TIMEOUT = 600
# Capabilities of Docker's default set that a training job does not need: raw sockets (spoofing, sniffing on
# the jobs' network), device nodes, file capabilities, chroot, binding low ports, audit records.
CAP_DROP = ["NET_RAW", "MKNOD", "SETFCAP", "SETPCAP", "SYS_CHROOT", "NET_BIND_SERVICE", "AUDIT_WRITE"]
DEFAULTS = {"run_untagged": False, "protected": False, "concurrency": 1, "job_timeout": 3600,
            "privileged": False, "volumes": ["/cache"], "cap_drop": CAP_DROP}
# Every job container runs with this, whatever runners.yml says: no privilege gained through setuid binaries.
SECURITY_OPT = ["no-new-privileges"]
CAPABILITY = re.compile(r"^[A-Z_]+$")
TOKEN_PREFIX = "glrt-"


def _fail(where, message):
    raise AnsibleFilterError(f"runners.yml: {where}: {message}")


def _positive_int(value, key, where, minimum=1):
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        _fail(where, f"{key} must be a whole number of at least {minimum}, got {value!r}")
    return value


def _bool(value, key, where):
    if not isinstance(value, bool):
        _fail(where, f"{key} must be true or false, got {value!r}")
    return value


def _size(value, key, where):
    if not SIZE.match(str(value)):
        _fail(where, f"{key} must look like 512m or 16g (a whole number and b, k, m or g), got {value!r}")
    return str(value)


def _cpus(value, where):
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        _fail(where, f"cpus must be a positive number such as 2 or 1.5, got {value!r}")
    try:
        number = float(value)
    except ValueError:
        number = 0.0
    if not number > 0:
        _fail(where, f"cpus must be a positive number such as 2 or 1.5, got {value!r}")
    return f"{number:g}"


def _gpus(value, where):
    """Docker's --gpus value: "all", a count, or "device=0,1"; None, false or "" mean none."""
    if value is None or value is False or value == "":
        return None
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return str(value)
    if value == "all" or re.match(r"^device=[0-9A-Za-z-]+(,[0-9A-Za-z-]+)*$", str(value)):
        return str(value)
    _fail(where, f"gpus must be \"all\", a number of GPUs or \"device=0,1\", got {value!r}")
    return None


def _image(value, where):
    image = str(value or "")
    tail = image.rsplit("/", 1)[-1]
    if not image or any(c.isspace() for c in image):
        _fail(where, f"image must be an image name with a tag, got {value!r}")
    if "@sha256:" not in image and (":" not in tail or tail.endswith(":latest")):
        _fail(where, f"image {image!r} must be pinned to a tag (not latest), e.g. python:3.11-slim-bookworm")
    return image


def _volumes(value, where):
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        _fail(where, "volumes must be a list of Docker volume strings such as /cache")
    for volume in value:
        if "docker.sock" in volume:
            _fail(where, f"volume {volume!r} would hand every job the Docker socket (root on the host); "
                         "not allowed")
    return list(value)


def _pull_policy(value, where):
    policies = [value] if isinstance(value, str) else value
    if not isinstance(policies, list) or not policies or any(p not in PULL_POLICIES for p in policies):
        _fail(where, f"pull_policy must be one of or a list of {', '.join(PULL_POLICIES)}, got {value!r}")
    return list(policies)


def check_runner(runner, index=0, concurrent=None):
    """One runners.yml entry, checked and completed with the defaults, or AnsibleFilterError."""
    if not isinstance(runner, dict):
        raise AnsibleFilterError(f"runners.yml: entry {index + 1} must be a mapping, got {runner!r}")
    name = runner.get("name")
    if not isinstance(name, str) or not NAME.match(name):
        raise AnsibleFilterError(
            f"runners.yml: entry {index + 1}: name {name!r} must be 1 to 40 characters: a-z, 0-9 and '-', "
            "starting with a letter")
    where = f"runner {name!r}"
    unknown = sorted(set(runner) - KEYS)
    if unknown:
        _fail(where, f"unknown key(s) {', '.join(unknown)} (known: {', '.join(sorted(KEYS))})")
    missing = [key for key in REQUIRED if runner.get(key) in (None, "", [])]
    if missing:
        hint = " (at least one tag, so jobs can choose this runner)" if "tags" in missing else ""
        _fail(where, f"missing {', '.join(missing)}{hint}")
    result = {**DEFAULTS, **{k: v for k, v in runner.items() if v is not None}}
    tags = result["tags"]
    if not isinstance(tags, list) or not all(isinstance(t, str) and TAG.match(t) for t in tags):
        _fail(where, f"tags must be a list of single words such as [gpu, cuda], got {tags!r}")
    result["tags"] = list(tags)
    for key in ("run_untagged", "protected", "privileged"):
        _bool(result[key], key, where)
    result["concurrency"] = _positive_int(result["concurrency"], "concurrency", where)
    if concurrent is not None and result["concurrency"] > concurrent:
        _fail(where, f"concurrency {result['concurrency']} is more than the machine's concurrent "
                     f"({concurrent}); raise gitlab_runner_concurrent or lower concurrency")
    result["job_timeout"] = _positive_int(result["job_timeout"], "job_timeout (seconds)", where, MIN_JOB_TIMEOUT)
    result["image"] = _image(result["image"], where)
    result["memory"] = _size(result["memory"], "memory", where)
    result["cpus"] = _cpus(result["cpus"], where)
    result["gpus"] = _gpus(result.get("gpus"), where)
    if "shm_size" in result:
        size = SIZE.match(_size(result["shm_size"], "shm_size", where))
        result["shm_size"] = int(size.group(1)) * UNITS[size.group(2)]
    result["volumes"] = _volumes(result["volumes"], where)
    if "pull_policy" in result:
        result["pull_policy"] = _pull_policy(result["pull_policy"], where)
    if "services_timeout" in result:
        result["services_timeout"] = _positive_int(result["services_timeout"], "services_timeout (seconds)", where)
    environment = result.get("environment", [])
    if not isinstance(environment, list) or not all(isinstance(e, str) and ENVIRONMENT.match(e) for e in environment):
        _fail(where, f"environment must be a list of NAME=value strings, got {environment!r}")
    result["environment"] = list(environment)
    cap_drop = result["cap_drop"]
    if not isinstance(cap_drop, list) or not all(isinstance(c, str) and CAPABILITY.match(c) for c in cap_drop):
        _fail(where, f"cap_drop must be a list of capability names such as [NET_RAW], got {cap_drop!r}")
    # Only the runner's own image unless runners.yml names more (patterns as GitLab's allowed_images).
    allowed = result.setdefault("allowed_images", [result["image"]])
    if not isinstance(allowed, list) or not allowed or not all(isinstance(i, str) and i for i in allowed):
        _fail(where, f"allowed_images must be a non-empty list of image names or patterns, got {allowed!r}")
    if "network" in result and not isinstance(result["network"], str):
        _fail(where, f"network must be a Docker network name or \"\" for Docker's default, got {result['network']!r}")
    if "description" in result and not isinstance(result["description"], str):
        _fail(where, "description must be text")
    return result


def check_runners(runners, concurrent=None):
    """The whole list, checked; names must be unique."""
    if not isinstance(runners, list):
        raise AnsibleFilterError(f"runners.yml: gitlab_runner_runners_config must be a list, got {runners!r}")
    if concurrent is not None:
        if isinstance(concurrent, str) and concurrent.strip().isdigit():
            concurrent = int(concurrent)
        concurrent = _positive_int(concurrent, "gitlab_runner_concurrent", "the machine")
    checked = [check_runner(runner, index, concurrent) for index, runner in enumerate(runners)]
    names = [runner["name"] for runner in checked]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise AnsibleFilterError(f"runners.yml: runner name(s) {', '.join(twice)} appear more than once")
    return checked


def check_tokens(runners, tokens):
    """Every runner's token, checked: a runner authentication token (glrt-...) each."""
    if not isinstance(tokens, dict):
        raise AnsibleFilterError("gitlab_runner tokens must be a mapping of runner name to token")
    missing = [r["name"] for r in runners if not str(tokens.get(r["name"]) or "").strip()]
    if missing:
        raise AnsibleFilterError(f"no runner authentication token for runner(s) {', '.join(missing)}")
    wrong = [r["name"] for r in runners if not str(tokens[r["name"]]).strip().startswith(TOKEN_PREFIX)]
    if wrong:
        # Never repeat the token itself: it may be a real secret in the wrong place.
        raise AnsibleFilterError(
            f"the token of runner(s) {', '.join(wrong)} is not a runner authentication token "
            f"({TOKEN_PREFIX}...); registration tokens are gone since GitLab 18: create the runner in GitLab "
            "and use the token it shows")
    return {r["name"]: str(tokens[r["name"]]).strip() for r in runners}


def _network(runner, network):
    return runner["network"] if "network" in runner else (network or "")


def docker_section(runner, network=None):
    """The [runners.docker] settings of one checked runner, in config.toml's names and types."""
    section = {"image": runner["image"], "privileged": runner["privileged"], "volumes": runner["volumes"],
               "memory": runner["memory"], "memory_swap": runner["memory"], "cpus": runner["cpus"],
               "cap_drop": runner["cap_drop"], "security_opt": SECURITY_OPT, "allowed_images": runner["allowed_images"]}
    if runner["gpus"]:
        section["gpus"] = runner["gpus"]
    if "shm_size" in runner:
        section["shm_size"] = runner["shm_size"]
    if "pull_policy" in runner:
        section["pull_policy"] = runner["pull_policy"]
    if "services_timeout" in runner:
        section["wait_for_services_timeout"] = runner["services_timeout"]
    if _network(runner, network):
        section["network_mode"] = _network(runner, network)
    return section


# Where a job finds the stack's CA certificate (ca_file of gitlab_runner_runners), and the variables that make
# the clients a job uses verify the proxy with it.
JOB_CA_FILE = "/etc/mlops-stack/ca.crt"
JOB_CA_VARIABLES = ("STACK_CA_FILE", "AWS_CA_BUNDLE", "MLFLOW_TRACKING_SERVER_CERT_PATH", "ZENML_STORE_VERIFY_SSL")


def gitlab_runner_runners(runners, tokens=None, network=None, concurrent=None, ca_file=None):
    """Filter: runners.yml entries -> riemers.gitlab-runner's gitlab_runner_runners list.

    tokens: {runner name: glrt-... token}; each runner needs one. None leaves tokens out (a preview).
    network: Docker network job containers join unless a runner names its own ("" for Docker's default).
    concurrent: the machine's gitlab_runner_concurrent; no runner may allow more jobs than that.
    ca_file: the stack's CA certificate on the runner's machine: mounted into every job, read-only, and named by
    the variables of JOB_CA_VARIABLES.
    """
    checked = check_runners(runners, concurrent)
    secrets = check_tokens(checked, tokens) if tokens is not None else {}
    result = []
    for runner in checked:
        if ca_file:
            runner = {**runner, "volumes": runner["volumes"] + [f"{ca_file}:{JOB_CA_FILE}:ro"],
                      "environment": runner["environment"] + [f"{name}={JOB_CA_FILE}" for name in JOB_CA_VARIABLES]}
        docker = docker_section(runner, network)
        item = {
            "name": runner["name"],
            "state": "present",
            "executor": "docker",
            # Server-side settings: riemers leaves them out of `register` for authentication tokens;
            # they are here so the list reads like the runner it describes.
            "tags": runner["tags"],
            "run_untagged": runner["run_untagged"],
            "protected": runner["protected"],
            "concurrent_specific": str(runner["concurrency"]),
            "docker_image": docker.pop("image"),
            "docker_privileged": docker.pop("privileged"),
            "docker_volumes": docker.pop("volumes"),
            "env_vars": runner["environment"],
        }
        if "network_mode" in docker:
            item["docker_network_mode"] = docker.pop("network_mode")
        if "pull_policy" in docker:
            item["docker_pull_policy"] = docker.pop("pull_policy")
        if "shm_size" in docker:
            item["docker_shm_size"] = docker.pop("shm_size")
        if "wait_for_services_timeout" in docker:
            item["docker_wait_for_services_timeout"] = docker.pop("wait_for_services_timeout")
        # What riemers has no variable for (limits, GPUs) goes into [runners.docker] as extra config.
        item["extra_configs"] = {"runners.docker": docker}
        if runner["name"] in secrets:
            item["token"] = secrets[runner["name"]]
        result.append(item)
    return result


def gitlab_runner_gitlab_settings(runners):
    """Filter: what GitLab must say about each runner (set when the runner is created in GitLab).

    The keys are those of GitLab's "create a runner" API (POST /user/runners), so the list can also feed
    an automation that creates the runners.
    """
    return [{"description": r.get("description") or r["name"], "tag_list": r["tags"],
             "run_untagged": r["run_untagged"],
             "access_level": "ref_protected" if r["protected"] else "not_protected",
             "maximum_timeout": r["job_timeout"]} for r in check_runners(runners)]


def _toml(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    # A JSON string is a valid TOML basic string.
    return json.dumps(str(value))


def gitlab_runner_config_toml(runners, url, concurrent, tokens=None, network=None):
    """Filter: the config.toml these runners amount to, for review and tests.

    Tokens appear only when given. GitLab-side settings (tags, maximum job timeout) are comments:
    config.toml has no place for them.
    """
    checked = check_runners(runners, concurrent)
    secrets = check_tokens(checked, tokens) if tokens is not None else {}
    lines = [f"concurrent = {int(concurrent)}", "check_interval = 0", ""]
    for runner, gitlab in zip(checked, gitlab_runner_gitlab_settings(runners)):
        lines += [
            "[[runners]]",
            f"  # GitLab side: tags {', '.join(gitlab['tag_list'])}; run untagged {_toml(gitlab['run_untagged'])}; "
            f"{gitlab['access_level']}; maximum job timeout {gitlab['maximum_timeout']} s",
            f"  name = {_toml(runner['name'])}",
            f"  url = {_toml(url)}",
        ]
        if runner["name"] in secrets:
            lines.append(f"  token = {_toml(secrets[runner['name']])}")
        lines += ['  executor = "docker"', f"  limit = {runner['concurrency']}"]
        if runner["environment"]:
            lines.append(f"  environment = {_toml(runner['environment'])}")
        lines.append("  [runners.docker]")
        lines += [f"    {key} = {_toml(value)}" for key, value in docker_section(runner, network).items()]
        lines.append("")
    return "\n".join(lines)


class FilterModule:
    def filters(self):
        return {
            "gitlab_runner_runners": gitlab_runner_runners,
            "gitlab_runner_gitlab_settings": gitlab_runner_gitlab_settings,
            "gitlab_runner_config_toml": gitlab_runner_config_toml,
        }
