#!/bin/sh
# System packages MLife needs beyond its Python venv, installed when missing (called by `make up` and `make test`):
#   bubblewrap — the sandbox MTT runners run task code in (without it a runner refuses user code).
# Quiet, and a no-op when everything is present. Without root (or passwordless sudo) it says what to install
# and carries on: the platform runs, and task code is refused with the same advice.
set -u
missing=""
command -v bwrap >/dev/null 2>&1 || missing="$missing bubblewrap"
[ -z "$missing" ] && exit 0

if [ "$(id -u)" = 0 ]; then
    run=""
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    run="sudo -n"
else
    echo "system-packages: please install:$missing (e.g. sudo apt-get install$missing)" >&2
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "system-packages: no apt-get here; please install:$missing with your package manager" >&2
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
# shellcheck disable=SC2086
$run apt-get install -y -qq --no-install-recommends $missing >/dev/null 2>&1 || {
    $run apt-get update -qq >/dev/null 2>&1
    $run apt-get install -y -qq --no-install-recommends $missing >/dev/null 2>&1
} || echo "system-packages: could not install$missing; please install it by hand" >&2
exit 0
