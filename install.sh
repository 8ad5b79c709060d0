#!/usr/bin/env bash
# Create ./.venv (or $VENV) and install the framework with every optional part and the test tools.
# Usage: bash install.sh            (idempotent: rerunning only installs what is missing)
set -euo pipefail
cd "$(dirname "$0")"
VENV="${VENV:-.venv}"
PYTHON="${PYTHON:-python3}"
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip
# torch and torchvision: the registry's normal wheels (the CUDA build also runs on CPU).
"$VENV/bin/python" -m pip install -q torch torchvision
"$VENV/bin/python" -m pip install -q -e ".[all,dev]"
# Khronos glTF validator (node) used by the asset tests, when node/npm exist.
if command -v npm >/dev/null 2>&1 && [ -f tools/gltf_validator/package.json ]; then
  npm install --silent --no-audit --no-fund --prefix tools/gltf_validator >/dev/null 2>&1 \
    || echo "install.sh: npm install of the glTF validator failed; its tests will be skipped" >&2
fi
echo "install.sh: environment ready in $VENV"
