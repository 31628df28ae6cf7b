#!/usr/bin/env bash
# Creates the project virtualenv. Why a script: pip resolves `timm -> torchvision -> torch` to the
# newest CUDA torch unless torch (and a matching torchvision) are installed first.
set -euo pipefail
python_bin=${1:-python3}
venv=${2:-.venv}
[ -x "$venv/bin/python" ] || "$python_bin" -m venv "$venv"
py="$venv/bin/python"
"$py" -m pip install -q --upgrade pip wheel setuptools
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
  # GPU machine: a normal CUDA torch, and cuCIM with its CUDA dependencies for GPU decoding.
  "$py" -m pip install -q -e ".[dev,cucim]"
else
  # CPU machine: pin the tested CPU torch first; torchvision 0.28.0 is the release that matches it.
  "$py" -c "import torch" 2>/dev/null || "$py" -m pip install -q "torch==2.13.0"
  "$py" -m pip install -q "torchvision==0.28.0"
  "$py" -m pip install -q -e ".[dev]"
  # cuCIM's CPU reader needs none of the ~2.6 GB of CUDA wheels its package would pull in, only
  # these two of its dependencies (its CuPy / nvImageCodec / scikit-image ones serve GPU code).
  "$py" -m pip install -q lazy-loader click
  "$py" -m pip install -q --no-deps "cucim-cu12>=25.2"
fi
"$py" -c "import raypath, torch; print('raypath', raypath.__version__, 'torch', torch.__version__)"
