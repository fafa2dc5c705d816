"""The previous releases the upgrade drill starts from (tests/previous.py) stay the minor releases before the pins."""
import pytest
import yaml

from previous import PREVIOUS, ROLES, SERVICE_PACKAGE, pins, previous_requirements, previous_version


@pytest.mark.parametrize("role", sorted(PREVIOUS))
def test_the_previous_release_is_the_minor_release_before_the_pin(role):
    pinned = yaml.safe_load((ROLES / role / "defaults" / "main.yml").read_text())[f"{role}_version"]
    assert pins((ROLES / role / "files" / "requirements.txt").read_text())[SERVICE_PACKAGE[role]] == pinned
    major, minor = (int(part) for part in pinned.split(".")[:2])
    assert previous_version(role).split(".")[:2] == [str(major), str(minor - 1)], \
        f"tests/previous.py: {role} pins {pinned}; name the release before it"


@pytest.mark.parametrize("role", sorted(PREVIOUS))
def test_the_previous_requirements_change_only_the_previous_pins(role):
    current = pins((ROLES / role / "files" / "requirements.txt").read_text())
    older = pins(previous_requirements(role))
    assert older == {**current, **PREVIOUS[role]}
    assert {name for name in current if current[name] != older[name]} == \
        {name for name, version in PREVIOUS[role].items() if current[name] != version}


def test_a_pin_the_requirements_lack_is_an_error(monkeypatch):
    monkeypatch.setitem(PREVIOUS, "zenml_server", {**PREVIOUS["zenml_server"], "no-such-package": "1.0"})
    with pytest.raises(ValueError, match=r"zenml_server/files/requirements.txt pins none of \['no-such-package'\]"):
        previous_requirements("zenml_server")
