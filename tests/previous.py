"""The previous minor releases of MLflow and ZenML, which the upgrade drill (tests/ops/test_upgrade_drill.py) runs a
stack on before upgrading it to this checkout's pins: their requirements are this checkout's
(roles/<role>/files/requirements.txt) with the pins below in place of its own. On a version bump, name the releases
before the new pins, and the dependencies they pin otherwise (pip check in the image build names them).
"""
import re
from pathlib import Path

ROLES = Path(__file__).parents[1] / "roles"

PREVIOUS = {
    "mlflow_server": {"mlflow[auth]": "3.16.1", "mlflow-skinny": "3.16.1", "mlflow-tracing": "3.16.1"},
    # ZenML 0.97 pins PyJWT.
    "zenml_server": {"zenml[server]": "0.97.0", "PyJWT": "2.13.0"},
}
# The package whose version is the role's <role>_version.
SERVICE_PACKAGE = {"mlflow_server": "mlflow[auth]", "zenml_server": "zenml[server]"}


def pins(text: str) -> dict:
    return dict(re.findall(r"^([A-Za-z0-9_.\-\[\]]+)==(\S+)$", text, re.M))


def previous_version(role: str) -> str:
    return PREVIOUS[role][SERVICE_PACKAGE[role]]


def previous_requirements(role: str) -> str:
    """The role's requirements.txt with the previous release's pins; a name it does not pin is an error."""
    text = (ROLES / role / "files" / "requirements.txt").read_text()
    missing = set(PREVIOUS[role]) - set(pins(text))
    if missing:
        raise ValueError(f"roles/{role}/files/requirements.txt pins none of {sorted(missing)} (tests/previous.py)")
    for name, version in PREVIOUS[role].items():
        text = re.sub(rf"^{re.escape(name)}==\S+$", f"{name}=={version}", text, flags=re.M)
    return text
