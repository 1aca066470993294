#!/bin/sh
# Kubeflow Pipelines' SDK (kfp, pinned 2.17.3) in its own venv `.venv-kfp`: kfp needs protobuf < 7 while the
# services' venv holds protobuf 7 (onnx, onnxruntime), so the two cannot share one. With it: the MLife SDK (the
# `mlife` package without its service dependencies: the SDK needs httpx only), this package (`mlife-kubeflow`)
# editable, and what the digits example's components use (scikit-learn for the data, Pillow for model inputs).
# kfp.local's SubprocessRunner(use_venv=False) runs every component with this venv's Python.
# Idempotent: a venv that imports kfp, mlife_kubeflow and mlife.steps is kept.
set -eu
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
VENV="${MLIFE_KFP_VENV:-$ROOT/.venv-kfp}"
if ! "$VENV/bin/python" -c "import kfp, sklearn, PIL, mlife_kubeflow, mlife.steps" 2>/dev/null; then
  python3.11 -m venv "$VENV" 2>/dev/null || python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check kfp==2.17.3 httpx==0.28.1 pillow==13.0.0 \
    scikit-learn==1.9.1 numpy==2.4.6
  "$VENV/bin/pip" install -q --disable-pip-version-check --no-deps -e "$ROOT"
  "$VENV/bin/pip" install -q --disable-pip-version-check --no-deps -e "$ROOT/integrations/kubeflow"
fi
"$VENV/bin/python" -c "import kfp; print('kfp', kfp.__version__)"
