#!/usr/bin/env bash
# The main job: sets up (scripts/setup.sh), shows the datasets, then runs the milestone gates 1-5 in
# order on the embedded default (tiny models, local data, vLLM on the CPU) and writes the HTML report
# under reports/ and results under results/. Extra arguments go to pytest, e.g. on a GPU machine:
#   QWENHARNESS_TARGET=gpu scripts/run.sh --models qwen3_8b,qwen3_14b --presets balanced
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/python -m qwenharness datasets --summary
mkdir -p reports
exec .venv/bin/python -m pytest -m "milestone1 or milestone2 or milestone3 or milestone4 or milestone5" \
  --html=reports/milestones.html --self-contained-html "$@"
