#!/usr/bin/env bash
# Issue 15's GPU check: Qwen3-8B (dummy weights) served by `vllm serve` and measured over HTTP with
# `qwenharness bench --backend openai`, then the in-process engine on the same random prompts
# (same seed, lengths and count). Results: results/benchmarks/serve-http and serve-inproc.
#   bash scripts/gpu/serve_throughput.sh            # PORT, PROMPTS, MODEL override the defaults
set -euo pipefail
cd "$(dirname "$0")/../.."
PORT=${PORT:-8011} PROMPTS=${PROMPTS:-256} MODEL=${MODEL:-qwen3_8b}
PY=.venv/bin/python
mapfile -t SERVE < <($PY -c "
from qwenharness.presets import get_model_config
from qwenharness.serve import serve_command
print('\n'.join(serve_command(get_model_config('$MODEL', 'balanced', load_format='dummy'), port=$PORT)))")
mkdir -p results
"${SERVE[@]}" > results/serve-$MODEL.log 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
until curl -sf "http://127.0.0.1:$PORT/health" >/dev/null; do
  kill -0 $server 2>/dev/null || { echo "vllm serve exited; see results/serve-$MODEL.log" >&2; exit 1; }
  sleep 2
done
common=(--models "$MODEL" --load-format dummy --num-prompts "$PROMPTS" --text-dataset none --json)
$PY -m qwenharness bench "${common[@]}" --backend openai --base-url "http://127.0.0.1:$PORT/v1" \
    --max-concurrency "$PROMPTS" --run-id serve-http > results/serve-http.json
kill $server; wait $server 2>/dev/null || true
$PY -m qwenharness bench "${common[@]}" --backend vllm --run-id serve-inproc > results/serve-inproc.json
$PY - <<'PY'
import json
for name in ("serve-http", "serve-inproc"):
    r = json.load(open(f"results/{name}.json"))[0]["throughput"]["random"]
    print(f"{name}: {r['output_tokens_per_s']:.0f} output tok/s, {r['requests_per_s']:.2f} req/s")
PY
