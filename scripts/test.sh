#!/usr/bin/env bash
# Sets up (scripts/setup.sh) and runs the whole test suite: unit tests, the five milestone gates and
# the benchmarks, on the embedded default (tiny models, local data, vLLM on the CPU). Writes the HTML
# report and the benchmark JSON under reports/. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
mkdir -p reports
exec .venv/bin/python -m pytest --html=reports/tests.html --self-contained-html \
  --benchmark-json=reports/benchmarks.json --durations=30 "$@"
