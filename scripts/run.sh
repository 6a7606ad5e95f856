#!/usr/bin/env bash
# The main job: sets up (scripts/setup.sh), shows the datasets, runs the milestone gates 1-5 in order
# on the embedded default (tiny models, local data, vLLM on the CPU), then writes the reports:
#   reports/milestones.html                      pytest-html report with result tables and plots
#   results/LARGE_SCALE_EVALUATION_FINAL_REPORT.md and results/PROJECT_TRACKER.md
#   reports/milestones.png                       the HTML report rendered by headless Chromium (if installed)
# Extra arguments go to pytest, e.g. on a GPU machine:
#   QWENHARNESS_TARGET=gpu scripts/run.sh --models qwen3_8b,qwen3_14b --presets balanced
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/python -m qwenharness datasets --summary
mkdir -p reports
status=0
.venv/bin/python -m pytest -m "milestone1 or milestone2 or milestone3 or milestone4 or milestone5" \
  --html=reports/milestones.html --self-contained-html "$@" || status=$?
.venv/bin/python -m qwenharness report --tracker || status=$?
if command -v chromium >/dev/null 2>&1; then
  .venv/bin/python scripts/screenshot_report.py reports/milestones.html reports/milestones.png || status=$?
else
  echo "run: chromium is not installed, so no screenshot of the report (apt-get install -y chromium)"
fi
exit "$status"
