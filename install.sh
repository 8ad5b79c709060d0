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
# Google's <model-viewer> (npm @google/model-viewer), inlined into the viewer.html `diffusion4d export` writes.
if command -v npm >/dev/null 2>&1 && [ -f tools/model_viewer/package.json ]; then
  npm install --silent --no-audit --no-fund --prefix tools/model_viewer >/dev/null 2>&1 \
    || echo "install.sh: npm install of @google/model-viewer failed; exports get no viewer.html and its tests are skipped" >&2
fi
# Build the compiled CPU rasteriser kernel now (recon/cpu_kernel.py; cached under ~/.cache/torch_extensions)
# so the first reconstruction does not pay the ~1 min compile; without a C++ compiler recon falls back to pure torch.
"$VENV/bin/python" -c "from recon import cpu_kernel; cpu_kernel.load() or print('install.sh: compiled CPU rasteriser unavailable:', cpu_kernel.error())" 2>/dev/null \
  || echo "install.sh: building the CPU rasteriser kernel failed; reconstruction will use the pure-torch rasteriser" >&2
echo "install.sh: environment ready in $VENV"
