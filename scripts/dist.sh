#!/bin/sh
# make dist: the source distribution and the wheel of every MLife package (shared, the four services, the
# gateway and the root `mlife` CLI/SDK package) into dist/ (or the folder given as $1), with `python -m build`.
# Each package is built from a clean copy of its folder (no *.egg-info: setuptools reads an old SOURCES.txt back
# and would ship files the package no longer declares), and the wheel from the sdist, so a file the package
# forgets is missing from the wheel too and tests/dist/test_install.py sees it. `twine check` runs when
# twine is installed.
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PY=${PY:-$ROOT/.venv/bin/python}
OUT=$(mkdir -p "${1:-$ROOT/dist}" && cd "${1:-$ROOT/dist}" && pwd)
STAGE=$(mktemp -d)
trap 'rm -rf "$STAGE"' EXIT
rm -f "$OUT"/*.whl "$OUT"/*.tar.gz

stage() {  # stage <folder> <entries...>: a copy without build leftovers
  from=$1; shift
  mkdir -p "$STAGE/$from"
  tar -C "$ROOT/$from" --exclude='*.egg-info' --exclude=__pycache__ --exclude='*.pyc' --exclude=./build \
      --exclude=./dist -cf - "$@" | tar -C "$STAGE/$from" -xf -
}
for pkg in shared services/bam services/dam services/mtt services/msm services/gateway; do
  stage "$pkg" .
  cp "$ROOT/LICENSE" "$STAGE/$pkg/LICENSE"  # setuptools' default license-files pattern ships it in both archives
done
stage . pyproject.toml README.md LICENSE mlife

# One build environment for the seven builds (fourteen isolated ones cost twice the time): the packages'
# [build-system] requires, newest matching versions, as an isolated build would install them.
REQUIRES=$(cd "$STAGE" && "$PY" -c 'import sys, tomllib
print("\n".join(sorted({r for f in sys.argv[1:] for r in tomllib.load(open(f, "rb"))["build-system"]["requires"]})))' \
  shared/pyproject.toml services/*/pyproject.toml pyproject.toml)
"$PY" -m venv "$STAGE/.build-env"
echo "$REQUIRES" | xargs "$STAGE/.build-env/bin/python" -m pip install --quiet --disable-pip-version-check \
  "build==1.6.1" >"$STAGE/.build-env.log" 2>&1 || { cat "$STAGE/.build-env.log" >&2; exit 1; }

# Two at a time (the machines here have two cores).
printf '%s\n' shared services/bam services/dam services/mtt services/msm services/gateway . |
  xargs -P 2 -I{} sh -c 'log="$1/.build-$(echo "$3" | tr / -).log"
    "$0" -m build --no-isolation --outdir "$2" "$1/$3" >"$log" 2>&1 \
      || { cat "$log" >&2; echo "make dist: $3 did not build" >&2; exit 255; }' \
    "$STAGE/.build-env/bin/python" "$STAGE" "$OUT" {}
if "$PY" -m twine --version >/dev/null 2>&1; then
  "$PY" -m twine check --strict "$OUT"/*
fi
ls -1 "$OUT"
