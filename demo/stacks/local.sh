#!/usr/bin/env bash
# Local scenario: everything on this machine, no server. Registers (once) and activates the ZenML
# stack "local" (local orchestrator, local artifact store, MLflow tracker on local files) in a ZenML
# configuration of its own, then runs COMMAND with it; without COMMAND, prints the shell lines that
# make this shell use it.
#
#   demo/stacks/local.sh python -m demo.pipeline.run --config demo/config/train.yaml
#   eval "$(demo/stacks/local.sh)"
#
# Everything lives under $MLOPS_DEMO_HOME (default ~/.mlops-demo)/local: zenml/ (ZenML's
# configuration and store), artifacts/ (ZenML artifacts, MLflow's mlflow.db and mlflow_artifacts/).
set -euo pipefail

home="${MLOPS_DEMO_HOME:-$HOME/.mlops-demo}"
command -v zenml >/dev/null || { echo "local.sh: zenml not found: activate the demo environment first (make demo-venv; . .venv-demo/bin/activate)" >&2; exit 1; }

export MLOPS_DEMO_HOME="$home" ZENML_CONFIG_PATH="$home/local/zenml" ZENML_ANALYTICS_OPT_IN=false
# A server login in the environment (a loaded credentials file) would win over the local store.
unset ZENML_STORE_URL ZENML_STORE_USERNAME ZENML_STORE_PASSWORD ZENML_STORE_API_KEY
mkdir -p "$home/local/artifacts"

# ZenML logs to stdout: send it to stderr, stdout is for the lines to eval.
python - "$home/local/artifacts" <<'PY' >&2
import sys

from zenml.client import Client
from zenml.enums import StackComponentType as Kind

client = Client()
components = {
    Kind.ORCHESTRATOR: ("local-orchestrator", "local", {}),
    Kind.ARTIFACT_STORE: ("local-artifacts", "local", {"path": sys.argv[1]}),
    Kind.EXPERIMENT_TRACKER: ("local-mlflow", "mlflow", {}),  # no tracking URI: mlflow.db in the artifact store
}
for kind, (name, flavor, configuration) in components.items():
    if not client.list_stack_components(type=kind, name=name).items:
        client.create_stack_component(name=name, flavor=flavor, component_type=kind, configuration=configuration)
if not client.list_stacks(name="local").items:
    client.create_stack(name="local", components={kind: name for kind, (name, _, _) in components.items()})
client.activate_stack("local")
print(f"local.sh: stack 'local' is active; artifacts and MLflow runs in {sys.argv[1]}", file=sys.stderr)
PY

if [[ $# -gt 0 ]]; then
  exec "$@"
fi
printf 'export MLOPS_DEMO_HOME=%q ZENML_CONFIG_PATH=%q ZENML_ANALYTICS_OPT_IN=false\n' "$home" "$ZENML_CONFIG_PATH"
echo 'unset ZENML_STORE_URL ZENML_STORE_USERNAME ZENML_STORE_PASSWORD ZENML_STORE_API_KEY'
