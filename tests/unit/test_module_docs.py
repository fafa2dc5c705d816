"""Every custom module's documentation renders with ansible-doc (doc fragments merged), its EXAMPLES and RETURN
are YAML, and the documented options are exactly the module's argument spec."""
import functools
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from stackenv import load_ansible_module

REPO = Path(__file__).resolve().parents[2]
MODULES = sorted(path.stem for path in (REPO / "ansible/plugins/modules").glob("*.py"))
SECRET = re.compile(r"pass|secret|api_key")  # option names that say their value is a secret
ATTRIBUTES = {"check_mode", "diff_mode", "idempotent"}


@functools.cache
def ansible_doc(name):
    """The module's documentation as `ansible-doc --json` gives it, with the repository's ansible.cfg."""
    result = subprocess.run(
        [str(Path(sys.executable).parent / "ansible-doc"), "--json", "-M", str(REPO / "ansible/plugins/modules"), name],
        cwd=REPO, capture_output=True, text=True, timeout=120,
        env={**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"})
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)[name]


def shape(options, children):
    """Options (documented ones or an argument spec, whose nested options are under `children`) reduced to what
    both must agree on, with AnsibleModule's defaults filled in."""
    return {name: {"type": option.get("type", "str"), "elements": option.get("elements"),
                   "required": option.get("required", False), "default": option.get("default"),
                   "choices": option.get("choices"), "aliases": option.get("aliases", []),
                   "options": shape(option[children], children) if option.get(children) else None}
            for name, option in (options or {}).items()}


def walk(options, children):
    """(dotted name, option) of every option and nested option."""
    for name, option in (options or {}).items():
        yield name, option
        for subname, suboption in walk(option.get(children), children):
            yield f"{name}.{subname}", suboption


@pytest.mark.parametrize("name", MODULES)
def test_documentation_renders(name):
    doc = ansible_doc(name)["doc"]
    assert doc["module"] == name and doc["short_description"]
    assert [option for option, given in walk(doc["options"], "suboptions") if not given.get("description")] == []
    assert set(doc["attributes"]) == ATTRIBUTES
    assert {attribute["support"] for attribute in doc["attributes"].values()} <= {"full", "partial", "none"}


@pytest.mark.parametrize("name", MODULES)
def test_documented_options_are_the_argument_spec(name):
    documented = shape(ansible_doc(name)["doc"]["options"], "suboptions")
    assert documented == shape(load_ansible_module(name).argument_spec(), "options")


def hidden_as_needed(option):
    """A secret's value is never logged; an option that picks among choices (update_password) says no_log=False,
    which also keeps AnsibleModule from guessing and warning."""
    return option.get("no_log") is (False if option.get("choices") else True)


@pytest.mark.parametrize("name", MODULES)
def test_secrets_are_not_logged(name):
    spec = load_ansible_module(name).argument_spec()
    assert [option for option, given in walk(spec, "options") if SECRET.search(option) and not hidden_as_needed(given)] \
        == []


@pytest.mark.parametrize("name", MODULES)
def test_examples_use_documented_options(name):
    doc = ansible_doc(name)
    options = doc["doc"]["options"]
    known = set(options) | {alias for option in options.values() for alias in option.get("aliases", [])}
    calls = [task[name] for task in yaml.safe_load(doc["examples"]) if name in task]
    assert calls, f"no example calls {name}"
    assert [sorted(set(call) - known) for call in calls] == [[]] * len(calls)


@pytest.mark.parametrize("name", MODULES)
def test_return_values_are_documented(name):
    returned = ansible_doc(name)["return"]
    assert returned
    assert {key: sorted({"description", "returned", "type"} - set(value)) for key, value in returned.items()} == \
        {key: [] for key in returned}
