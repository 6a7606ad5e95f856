#!/usr/bin/env bash
# Sets up (scripts/setup.sh) and runs the whole test suite: unit tests, the five milestone gates and
# the benchmarks, on the embedded default (tiny models, local data, vLLM on the CPU). Writes the HTML
# report and the benchmark JSON under reports/, then checks every number of the reports against the
# stored values they cite. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
mkdir -p reports
status=0
.venv/bin/python -m pytest --html=reports/tests.html --self-contained-html \
  --benchmark-json=reports/benchmarks.json --durations=30 "$@" || status=$?
# The whole suite's reports: every number re-derived from the stored file it cites (a subset run,
# with arguments, may leave an earlier session's report beside newer results, so only then).
if [ "$#" -eq 0 ]; then
  .venv/bin/python -m qwenharness report --check-numbers --html reports/tests.html || status=$?
fi
exit "$status"
