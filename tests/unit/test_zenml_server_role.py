"""The zenml_server role's static promises, and the integration checks' target parsing."""
import importlib.util
import re
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
ROLE = REPO / "roles" / "zenml_server"
PIN = re.compile(r"^(?P<name>[A-Za-z0-9._-]+)(?:\[(?P<extras>[a-z0-9,_-]+)\])?==(?P<version>[A-Za-z0-9.+!-]+)$")


def load_checks():
    """tests/integration/test_zenml_server.py as a module (it is not on the import path)."""
    path = REPO / "tests" / "integration" / "test_zenml_server.py"
    spec = importlib.util.spec_from_file_location("zenml_server_checks", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def requirement_lines(path: Path) -> list:
    lines = (line.split("#", 1)[0].strip() for line in path.read_text().splitlines())
    return [line for line in lines if line]


def pins(path: Path) -> dict:
    """{normalised name: version} of a requirements file; every line must be name==version."""
    found = {}
    for line in requirement_lines(path):
        match = PIN.match(line)
        assert match, f"{path.name}: {line!r} is not pinned with =="
        found[re.sub(r"[-_.]+", "-", match["name"]).lower()] = match["version"]
    return found


@pytest.fixture(scope="module")
def defaults():
    return yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())


@pytest.mark.parametrize("line, expected", [
    ("zenml[server]==0.98.0", ("zenml", "server", "0.98.0")),
    ("PyMySQL==1.1.2", ("PyMySQL", None, "1.1.2")),
    ("python-dateutil==2.9.0.post0", ("python-dateutil", None, "2.9.0.post0")),
])
def test_pin_pattern_reads_pinned_lines(line, expected):
    match = PIN.match(line)
    assert (match["name"], match["extras"], match["version"]) == expected


@pytest.mark.parametrize("line", ["zenml", "zenml>=0.98", "zenml[server]~=0.98.0", "zenml==", "zenml == 0.98"])
def test_pin_pattern_refuses_unpinned_lines(line):
    assert PIN.match(line) is None


def test_every_image_package_is_pinned():
    image = pins(ROLE / "files" / "requirements.txt")
    assert {"zenml", "pymysql"} <= set(image)
    assert "pip" not in image  # pip is removed from the image after the install


def test_image_installs_the_server_extra():
    assert any(line.startswith("zenml[server]==") for line in requirement_lines(ROLE / "files" / "requirements.txt"))


def test_server_version_equals_the_client_version(defaults):
    image = pins(ROLE / "files" / "requirements.txt")
    client = {match["name"].lower(): match["version"]
              for match in map(PIN.match, requirement_lines(REPO / "requirements.txt")) if match}
    assert image["zenml"] == defaults["zenml_server_version"]
    assert client.get("zenml") == defaults["zenml_server_version"]


def test_image_tag_is_pinned(defaults):
    assert defaults["zenml_server_image_tag"] == "{{ zenml_server_version }}"
    assert re.fullmatch(r"\d+\.\d+\.\d+", defaults["zenml_server_version"])


def test_argument_specs_mirror_the_defaults(defaults):
    specs = yaml.safe_load((ROLE / "meta" / "argument_specs.yml").read_text())["argument_specs"]["main"]["options"]
    assert set(specs) == set(defaults)
    python_type = {"str": str, "int": int, "float": float, "list": list, "dict": dict, "bool": bool}
    for name, value in defaults.items():
        if not (isinstance(value, str) and "{{" in value):
            assert isinstance(value, python_type[specs[name]["type"]]), name


def test_defaults_are_prefixed_and_hold_no_secret(defaults):
    assert all(name.startswith("zenml_server_") for name in defaults)
    assert not [name for name in defaults if re.search(r"password|secret|key$", name)]


def test_dockerfile_builds_from_the_base_and_runs_as_non_root():
    text = (ROLE / "files" / "Dockerfile").read_text()
    assert re.search(r"^ARG BASE_IMAGE$", text, re.M)
    assert re.search(r"^FROM \$\{BASE_IMAGE\}$", text, re.M)
    users = re.findall(r"^USER (\S+)$", text, re.M)
    assert users and users[-1] not in ("root", "0")
    assert "zenml.zen_server.zen_server_api:app" in text
    assert "latest" not in text


def test_role_depends_on_the_shared_role():
    meta = yaml.safe_load((ROLE / "meta" / "main.yml").read_text())
    assert {"role": "stack"} in meta["dependencies"]


# --- the integration checks' target, from the environment ----------------------------------------

def test_no_url_means_no_target():
    assert load_checks().target_from_env({}) is None


def test_target_from_env_with_database():
    checks = load_checks()
    target = checks.target_from_env({
        "STACK_ZENML_URL": "http://10.0.0.5:8080/", "STACK_ZENML_USERNAME": "admin",
        "STACK_ZENML_PASSWORD": "pw", "STACK_DATABASE_HOST": "10.0.0.5", "STACK_DATABASE_PORT": "3307",
        "STACK_DATABASE_ROOT_PASSWORD": "root-pw", "STACK_ZENML_DB_PASSWORD": "db-pw"})
    assert target.url == "http://10.0.0.5:8080"
    assert (target.username, target.password) == ("admin", "pw")
    assert (target.db_host, target.db_port, target.db_user, target.db_name) == ("10.0.0.5", 3307, "zenml", "zenml")
    assert target.has_database


@pytest.mark.parametrize("env", [
    {"STACK_ZENML_URL": "http://x:8080"},
    {"STACK_ZENML_URL": "http://x:8080", "STACK_ZENML_USERNAME": "admin"},
    {"STACK_ZENML_URL": "http://x:8080", "STACK_ZENML_PASSWORD": "pw"},
])
def test_url_without_credentials_is_an_error(env):
    with pytest.raises(ValueError):
        load_checks().target_from_env(env)


@pytest.mark.parametrize("missing", ["STACK_DATABASE_HOST", "STACK_DATABASE_ROOT_PASSWORD", "STACK_ZENML_DB_PASSWORD"])
def test_database_checks_need_every_database_setting(missing):
    env = {"STACK_ZENML_URL": "http://x:8080", "STACK_ZENML_USERNAME": "a", "STACK_ZENML_PASSWORD": "p",
           "STACK_DATABASE_HOST": "x", "STACK_DATABASE_ROOT_PASSWORD": "r", "STACK_ZENML_DB_PASSWORD": "d"}
    del env[missing]
    assert not load_checks().target_from_env(env).has_database
