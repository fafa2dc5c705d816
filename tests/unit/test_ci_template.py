"""One list of CI/CD variables: what every credentials file's header names (and demo/scripts/ci_variables.sh
prints) is what extras/gitlab-ci.yml checks before a job runs."""
import re

import yaml

from mlops_stack.stackenv import REPO


def handed_out():
    variables = yaml.safe_load((REPO / "roles/stack_users/vars/main.yml").read_text())
    return variables["__stack_users_ci_variables"]


def checked():
    job = yaml.safe_load((REPO / "extras/gitlab-ci.yml").read_text())["train"]
    loop = next(line for line in job["before_script"] if line.startswith("for name in "))
    return re.match(r"for name in (.*?); do", loop).group(1).split()


def test_the_template_checks_every_variable_the_file_hands_out():
    assert checked() == handed_out()


def test_the_ci_identity_is_the_api_key_never_the_zenml_password():
    assert "ZENML_STORE_API_KEY" in handed_out()
    assert not {"ZENML_STORE_PASSWORD", "ZENML_STORE_USERNAME", "DATABASE_PASSWORD"} & set(handed_out())


def test_the_header_names_the_list():
    template = (REPO / "roles/stack_users/templates/user.env.j2").read_text()
    assert "# CI_VARIABLES={{ __stack_users_ci_variables | join(' ') }}" in template
