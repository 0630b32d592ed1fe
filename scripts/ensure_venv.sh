#!/usr/bin/env bash
# Create or refresh .venv so that it matches pyproject.toml (reused only when the recorded hash matches).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=.venv
STAMP=$VENV/.msunas-pyproject.sha256
EXTRAS=test,bench  # bench: optuna, the service benchmark's baseline
want=$( (cat pyproject.toml; echo "extras=$EXTRAS") | sha256sum | cut -d' ' -f1)
if [ -x "$VENV/bin/python" ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ]; then
  exit 0
fi
PYTHON=${PYTHON:-python3}
"$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "msunas needs Python >= 3.11")'
echo "msunas: installing into $VENV (torch, ofa, pymoo, ...; a few minutes on a fresh machine)" >&2
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
# the machine's pip config names local wheel folders that may be absent: drop those warnings only
pip_install() { "$VENV/bin/python" -m pip install -q --progress-bar off "$@" 2> >(grep -v "is ignored: it is neither" >&2); }
pip_install --upgrade pip
pip_install -e ".[$EXTRAS]"
"$VENV/bin/python" -c 'import ofa.imagenet_classification.elastic_nn.networks, pymoo, onnxruntime' \
  || { echo "msunas: install check failed (ofa/pymoo/onnxruntime do not import)" >&2; exit 1; }
# BoTorch compiles its fused qLogNEHVI kernel on first use (into ~/.cache/torch_extensions): do it here, once
echo "msunas: compiling BoTorch's fused qLogNEHVI kernel (once, about a minute)" >&2
"$VENV/bin/python" -W ignore -c 'from botorch.acquisition.multi_objective.logei import _try_load_fused_kernel as f; f()'
echo "$want" > "$STAMP"
