#!/usr/bin/env bash
# Where to see your MLflow runs.
#
#   demo/scripts/mlflow_tracking.sh credentials/alice.env   # the central MLflow: URL and user name
#   demo/scripts/mlflow_tracking.sh --local [PORT]          # serve your local runs (default port 5001)
#
# The central server's password is not printed: the line to read it from is.
set -euo pipefail

usage="usage: mlflow_tracking.sh CREDENTIALS_FILE | --local [PORT]"
[[ $# -ge 1 ]] || { echo "$usage" >&2; exit 2; }

if [[ $1 == --local ]]; then
  port=${2:-5001}
  [[ $port =~ ^[0-9]+$ ]] || { echo "mlflow_tracking.sh: $port is not a port number" >&2; exit 2; }
  command -v mlflow >/dev/null || { echo "mlflow_tracking.sh: mlflow not found: activate the demo environment first (. .venv-demo/bin/activate)" >&2; exit 1; }
  # The local stack's MLflow store (demo/stacks/local.sh), also used by pipelines run without a tracker.
  store="${MLOPS_DEMO_HOME:-$HOME/.mlops-demo}/local/artifacts"
  [[ -f $store/mlflow.db ]] || { echo "mlflow_tracking.sh: no local MLflow runs yet ($store/mlflow.db): run the pipeline with demo/stacks/local.sh first" >&2; exit 1; }
  echo "MLflow UI for your local runs: http://127.0.0.1:$port (Ctrl-C stops it)" >&2
  export MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false
  exec mlflow server --backend-store-uri "sqlite:///$store/mlflow.db" --host 127.0.0.1 --port "$port" --workers 1
fi

credentials=$1
[[ -f $credentials && -r $credentials ]] || { printf 'mlflow_tracking.sh: %s: no such readable file\n%s\n' "$credentials" "$usage" >&2; exit 1; }
value() { sed -n "s/^$1=//p" "$credentials" | tail -n 1 | tr -d '\r'; }  # Windows line endings too
url=$(value MLFLOW_TRACKING_URI)
username=$(value MLFLOW_TRACKING_USERNAME)
[[ -n $url && -n $username ]] || { echo "mlflow_tracking.sh: $credentials has no MLFLOW_TRACKING_URI or MLFLOW_TRACKING_USERNAME" >&2; exit 1; }
echo "MLflow UI: $url"
echo "user name: $username"
echo "password:  the line MLFLOW_TRACKING_PASSWORD in $credentials"
