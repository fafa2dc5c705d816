"""Turn runners.yml into the riemers.gitlab-runner role's runner list, and into config.toml text."""
import json
import re

from ansible.errors import AnsibleFilterError

KEYS = {"name", "tags", "image", "concurrency", "job_timeout", "gpus", "memory", "cpus", "privileged", "volumes"}
MEMORY = re.compile(r"^[0-9]+[kmg]$")


def check_runner(runner: dict) -> None:
    name = runner.get("name")
    where = f"runners.yml: runner {name!r}"
    if not name or not re.match(r"^[a-z][a-z0-9-]*$", str(name)):
        raise AnsibleFilterError(f"runners.yml: runner name {name!r} must be lowercase letters, digits and '-'")
    unknown = sorted(set(runner) - KEYS)
    if unknown:
        raise AnsibleFilterError(f"{where}: unknown keys {', '.join(unknown)} (known: {', '.join(sorted(KEYS))})")
    if not runner.get("tags"):
        raise AnsibleFilterError(f"{where}: needs at least one tag, so jobs can choose it")
    for key in ("concurrency", "job_timeout"):
        if not isinstance(runner.get(key), int) or runner[key] < 1:
            raise AnsibleFilterError(f"{where}: {key} must be a positive whole number")
    if "memory" in runner and not MEMORY.match(str(runner["memory"])):
        raise AnsibleFilterError(f"{where}: memory must look like 512m or 16g")


def docker_section(runner: dict) -> dict:
    """The [runners.docker] settings of one runner."""
    section = {"image": runner["image"], "privileged": bool(runner.get("privileged", False)),
               "volumes": list(runner.get("volumes", ["/cache"]))}
    for key in ("memory", "cpus", "gpus"):
        if runner.get(key):
            section[key] = str(runner[key])
    return section


def gitlab_runner_runners(runners: list, tokens: dict) -> list:
    """The riemers.gitlab-runner role's gitlab_runner_runners list (authentication-token flow)."""
    result = []
    for runner in runners:
        check_runner(runner)
        if not tokens.get(runner["name"], "").startswith("glrt-"):
            raise AnsibleFilterError(
                f"runners.yml: runner {runner['name']!r} needs a runner authentication token (glrt-...) in "
                f"credentials/gitlab_runner_token_{runner['name']}")
        result.append({
            "name": runner["name"], "state": "present", "token": tokens[runner["name"]],
            "executor": "docker", "docker_image": runner["image"], "tags": list(runner["tags"]),
            "run_untagged": False, "concurrent_specific": str(runner["concurrency"]),
            "extra_registration_option": f"--maximum-timeout={runner['job_timeout']}",
            "extra_configs": {"runners": {"limit": runner["concurrency"]}, "runners.docker": docker_section(runner)},
        })
    return result


def gitlab_runner_config_toml(runners: list, url: str, concurrent: int) -> str:
    """The config.toml these runners amount to (tokens left out), for review and tests."""
    lines = [f"concurrent = {int(concurrent)}", ""]
    for runner in runners:
        check_runner(runner)
        lines += ["[[runners]]", f"  name = {json.dumps(runner['name'])}", f"  url = {json.dumps(url)}",
                  '  executor = "docker"', f"  limit = {runner['concurrency']}", "  [runners.docker]"]
        for key, value in docker_section(runner).items():
            lines.append(f"    {key} = {json.dumps(value)}")
        lines.append("")
    return "\n".join(lines)


class FilterModule:
    def filters(self):
        return {"gitlab_runner_runners": gitlab_runner_runners,
                "gitlab_runner_config_toml": gitlab_runner_config_toml}
