#!/usr/bin/env bash
# Hybrid scenario: the pipeline runs on this machine, as you, on your own stack of the central ZenML
# server: its artifacts go to your bucket, its MLflow runs to the central MLflow under your name.
# Connects the ZenML client to the server with your credentials file, activates your stack (named
# after you, made when your account was), then runs COMMAND with it; without COMMAND, prints the
# shell lines that make this shell use it.
#
#   demo/stacks/hybrid.sh credentials/alice.env python -m demo.pipeline.run --config demo/config/train.yaml
#   eval "$(demo/stacks/hybrid.sh credentials/alice.env)"
set -euo pipefail

usage="usage: hybrid.sh CREDENTIALS_FILE [COMMAND...]   (the .env file your administrator gave you)"
if [[ $# -lt 1 || $1 == -* ]]; then
  echo "$usage" >&2
  exit 2
fi
credentials=$1
shift
[[ -f $credentials && -r $credentials ]] || { printf 'hybrid.sh: %s: no such readable file\n%s\n' "$credentials" "$usage" >&2; exit 1; }
command -v zenml >/dev/null || { echo "hybrid.sh: zenml not found: activate the demo environment first (make demo-venv; . .venv-demo/bin/activate)" >&2; exit 1; }

# Its KEY=VALUE lines, exported (as `set -a; . FILE` would, without running anything else in it); a file
# saved with Windows line endings reads the same.
while IFS= read -r line || [[ -n $line ]]; do
  line=${line%$'\r'}
  if [[ $line =~ ^([A-Z_][A-Z0-9_]*)=(.*)$ ]]; then
    export "${BASH_REMATCH[1]}=${BASH_REMATCH[2]}"
  fi
done < "$credentials"
# The CA certificate's paths, when relative (as handed out), are next to the credentials file.
folder=$(dirname "$(realpath "$credentials")")
ca_names=(STACK_CA_FILE AWS_CA_BUNDLE MLFLOW_TRACKING_SERVER_CERT_PATH ZENML_STORE_VERIFY_SSL)
for name in "${ca_names[@]}"; do
  value=${!name:-}
  if [[ -n $value && $value != /* && $value != true && $value != false ]]; then
    export "$name=$folder/$value"
  fi
done
if [[ -n ${STACK_CA_FILE:-} && ! -r $STACK_CA_FILE ]]; then
  echo "hybrid.sh: no CA certificate at $STACK_CA_FILE (STACK_CA_FILE of $credentials): keep the one you were handed there" >&2
  exit 1
fi
for name in STACK_USER ZENML_STORE_URL ZENML_STORE_USERNAME ZENML_STORE_PASSWORD MLFLOW_TRACKING_URI MLFLOW_TRACKING_USERNAME MLFLOW_TRACKING_PASSWORD; do
  [[ -n ${!name:-} ]] || { echo "hybrid.sh: $credentials has no $name: not a credentials file of the stack" >&2; exit 1; }
done

home="${MLOPS_DEMO_HOME:-$HOME/.mlops-demo}"
# A ZenML configuration per user, so nothing of the local scenario (or another user) leaks in.
export MLOPS_DEMO_HOME="$home" ZENML_CONFIG_PATH="$home/hybrid-$STACK_USER/zenml" ZENML_ANALYTICS_OPT_IN=false
unset ZENML_STORE_API_KEY

# ZenML logs to stdout: send it to stderr, stdout is for the lines to eval.
python - <<'PY' >&2
import os
import sys

from zenml.client import Client

import requests

# Runs log to MLflow with the password in the user's ZenML secret, not this one: check this one too, since
# the web UI and your own scripts use it.
mlflow_url, mlflow_user = os.environ["MLFLOW_TRACKING_URI"], os.environ["MLFLOW_TRACKING_USERNAME"]
try:
    answer = requests.get(f"{mlflow_url}/api/2.0/mlflow/users/get", params={"username": mlflow_user}, timeout=30,
                          auth=(mlflow_user, os.environ["MLFLOW_TRACKING_PASSWORD"]),
                          verify=os.environ.get("MLFLOW_TRACKING_SERVER_CERT_PATH") or True)
except requests.RequestException as error:
    sys.exit(f"hybrid.sh: cannot reach MLflow at {mlflow_url}: {error}")
if answer.status_code == 401:
    sys.exit(f"hybrid.sh: MLflow at {mlflow_url} refuses MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD "
             "of your credentials file: ask your teacher for a new file")

user, url = os.environ["STACK_USER"], os.environ["ZENML_STORE_URL"]
try:
    Client().activate_stack(user)
except Exception as error:  # login refused, server down, no such stack: say which, on one line
    message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    sys.exit(f"hybrid.sh: cannot activate stack '{user}' on {url} as {user}: {message}")
print(f"hybrid.sh: stack '{user}' on {url} is active (your bucket, the central MLflow)", file=sys.stderr)
PY

if [[ $# -gt 0 ]]; then
  exec "$@"
fi
printf 'set -a; eval "$(tr -d %q < %q)"; set +a; unset ZENML_STORE_API_KEY\n' $'\r' "$(realpath "$credentials")"
for name in "${ca_names[@]}"; do
  [[ -z ${!name:-} ]] || printf 'export %s=%q\n' "$name" "${!name}"
done
printf 'export MLOPS_DEMO_HOME=%q ZENML_CONFIG_PATH=%q ZENML_ANALYTICS_OPT_IN=false\n' "$home" "$ZENML_CONFIG_PATH"
