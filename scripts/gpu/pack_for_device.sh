#!/usr/bin/env bash
# Here (not on the GPU machine), in the project root, once per session: what the issue-18 calls of
# scripts/gpu/issue18_calls.sh carry besides the vLLM wheelhouse (.vwh/bK, ../shared/gpu/build_wheelhouse.sh)
# and the lm-eval wheels (.whl, scripts/gpu/build_lmeval_wheels.sh):
#   .data/pack_tok/tok.tar.xz    the real Qwen2.5 tokenizer for dummy folders (~1.4 MB), from the
#                                qwen2.5_coder_1.5b GGUF (`qwenharness fetch-model qwen2.5_coder_1.5b`)
#   .data/pack_data/data.tar.xz  the dataset files the calls read (~6 MB): mmlu test/dev, hellaswag,
#                                gsm8k test/train, humaneval, mbpp, mt_bench; and bwrap/, Debian's bubblewrap
#                                package (the GPU machine has no bwrap, and without it HumanEval and MBPP
#                                refuse to run generated code: the milestone-3 call of 2026-12-03)
# usage: bash scripts/gpu/pack_for_device.sh [GGUF] [DATA_DIR]   (.data/ is git-ignored)
set -euo pipefail
GGUF=${1:-$(ls ~/.cache/qwenharness/files/*/*.gguf 2>/dev/null | grep -i 'qwen2.5-coder-1.5b' | head -1 || true)}
DATA=${2:-${QWENHARNESS_DATA_DIR:-../shared/data}}
PY=${PY:-.venv/bin/python}
[ -n "$GGUF" ] && [ -f "$GGUF" ] || { echo "no qwen2.5_coder_1.5b GGUF found: run '.venv/bin/qwenharness fetch-model qwen2.5_coder_1.5b' or pass its path"; exit 1; }
[ -d "$DATA/mmlu" ] || { echo "$DATA has no mmlu/: pass the data folder (e.g. ../shared/data)"; exit 1; }
rm -rf .data/stage .data/pack_tok .data/pack_data && mkdir -p .data/stage/data .data/pack_tok .data/pack_data
"$PY" scripts/gpu/make_dummy_tokenizer.py --gguf "$GGUF" --out .data/stage/tokenizer-qwen2.5
tar cf - -C .data/stage tokenizer-qwen2.5 | xz -9 > .data/pack_tok/tok.tar.xz
mkdir -p .data/stage/data/{mmlu,hellaswag,gsm8k}
cp "$DATA"/mmlu/{test,dev}.jsonl .data/stage/data/mmlu/
cp "$DATA"/hellaswag/validation.jsonl .data/stage/data/hellaswag/
cp "$DATA"/gsm8k/{test,train}.jsonl .data/stage/data/gsm8k/
cp -r "$DATA"/humaneval "$DATA"/mbpp "$DATA"/mt_bench .data/stage/data/
chmod -R u+w .data/stage/data
mkdir -p .data/stage/bwrap
(cd .data/stage/bwrap && apt-get download -qq bubblewrap >/dev/null 2>&1) || echo "no bubblewrap .deb (apt-get download failed): the m3 step will run generated code unisolated"
tar cf - -C .data/stage data bwrap | xz -9 > .data/pack_data/data.tar.xz
du -sh .data/pack_tok/tok.tar.xz .data/pack_data/data.tar.xz
