#!/bin/sh
# Apache Airflow 3 (pinned 3.3.2) in its own venv `.venv-airflow`, with the MLife SDK (the `mlife` package without
# its service dependencies: the SDK needs httpx only) and this provider (`mlife-airflow`) installed editable, plus
# Pillow (the example DAG turns the digits' PNGs into model inputs). Airflow's ~150 dependencies stay out of the
# services' venv. Idempotent: a venv whose `airflow` runs and imports the provider is kept.
set -eu
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
VENV="${MLIFE_AIRFLOW_VENV:-$ROOT/.venv-airflow}"
if ! "$VENV/bin/python" -c "import airflow, mlife_airflow, mlife.steps" 2>/dev/null; then
  python3.11 -m venv "$VENV" 2>/dev/null || python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check apache-airflow==3.3.2 pillow==13.0.0
  "$VENV/bin/pip" install -q --disable-pip-version-check --no-deps -e "$ROOT"
  "$VENV/bin/pip" install -q --disable-pip-version-check -e "$ROOT/integrations/airflow"
fi
"$VENV/bin/python" -c "import airflow; print('airflow', airflow.__version__)"
