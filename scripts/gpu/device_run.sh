#!/usr/bin/env bash
# On the lent GPU machine (see ../shared/gpu/README.md; vLLM 0.26.0 installed into /tmp/site first):
#   bash scripts/gpu/device_run.sh MODELS PRESETS RUN_ID [LIMIT_S] [TEST_PATHS]
# Runs the milestone-2 coverage gates and the throughput/latency benchmarks for real architectures
# with dummy weights under the vLLM engine, then packs results/ and the logs into $OUT.
# QWENHARNESS_DUMMY_TOKENIZER (a folder from scripts/gpu/make_dummy_tokenizer.py) gives the dummy
# folders the real Qwen tokenizer.
set -uo pipefail
MODELS=$1 PRESETS=$2 RUN=$3 LIMIT=${4:-540} TESTS=${5:-"tests/coverage tests/scaling/test_throughput.py"}
export PYTHONPATH=/tmp/site:$PWD PATH=/tmp/site/bin:$PATH VLLM_USE_FLASHINFER_SAMPLER=0 PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
# vLLM's own start-up timings (compile, graph capture, weights, KV cache), kept in vllm-timings-RUN.log
VLLM_TIMING_LINES="torch.compile|Compil|compil|Graph capturing|CUDA graph|Loading weights|Model loading took|KV cache|init engine|Dynamo|cache"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
timeout "$LIMIT" python3 -m pytest -p no:cacheprovider -p no:html -q -s \
  $TESTS \
  --models "$MODELS" --presets "$PRESETS" --backend vllm --load-format dummy \
  --results-dir "$OUT/results" --run-id "$RUN" --benchmark-json "$OUT/bench-$RUN.json" \
  2>&1 | tee >(grep -E "$VLLM_TIMING_LINES" > "$OUT/vllm-timings-$RUN.log") \
  | grep -v -E "^(\(EngineCore|\(MainProcess|INFO|DEBUG)" > "$OUT/pytest-$RUN.log"
rc=${PIPESTATUS[0]}
sleep 1  # let the timing filter finish writing
tail -40 "$OUT/pytest-$RUN.log"
tar czf "$OUT/results-$RUN.tgz" -C "$OUT" results && rm -rf "$OUT/results"
echo "pytest exit status: $rc"
exit "$rc"
