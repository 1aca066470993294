#!/bin/sh
# The MLflow server (pinned 3.17.2) in its own venv `.venv-mlflow`: MTT talks to it over REST only, so
# the services' venv does not carry MLflow's ~40 dependencies (pandas, pyarrow, flask, gunicorn...).
# Idempotent; the same venv serves bench/msm.py.
set -eu
ROOT=$(cd "$(dirname "$0")/../../.." && pwd)
VENV="$ROOT/.venv-mlflow"
if [ ! -x "$VENV/bin/mlflow" ]; then
  python3.11 -m venv "$VENV" 2>/dev/null || python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check mlflow==3.17.2 onnx==1.23.2 onnxruntime==1.31.1
fi
"$VENV/bin/mlflow" --version
