"""Time the log-likelihood pair encoding: one request at a time (the rule written out, as before
`encode_pairs`) against `encode_pairs` (one batched tokenizer call, shared contexts once).

    python scripts/gpu/encode_bench.py --tokenizer .data/tokenizer-qwen2.5 --data-dir DATA \
        [--dataset mmlu] [--docs 500]

Prints requests, tokens, the fastest of --rounds alternating runs and tokens/s for both, and checks that they give identical pairs.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def one_at_a_time(tok, request, prefix_id):  # type: ignore[no-untyped-def]
    from qwenharness.engines.common import EncodedPair

    def enc(text: str) -> list[int]:
        return list(tok(text, add_special_tokens=False)["input_ids"])

    context, continuation = request.context, request.continuation
    if not context:
        return EncodedPair([prefix_id], enc(continuation))
    n = len(context) - len(context.rstrip())
    if n:
        context, continuation = context[:-n], context[-n:] + continuation
    whole, ctx = enc(context + continuation), enc(context)
    split = len(ctx)
    if whole[:split] != ctx:
        split = next((i for i, (a, b) in enumerate(zip(whole, ctx)) if a != b), min(len(whole), len(ctx)))
    split = min(split, len(whole) - 1)
    return EncodedPair(whole[:split], whole[split:])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokenizer", required=True)
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--dataset", default="mmlu")
    ap.add_argument("--docs", type=int, default=500)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    from transformers import AutoTokenizer

    from qwenharness.data import load, load_docs
    from qwenharness.engines.common import encode_pairs
    from qwenharness.evaluation import EvalSettings, task_options
    from qwenharness.tasks import get_task

    tok = AutoTokenizer.from_pretrained(args.tokenizer)
    task = get_task(args.dataset)
    settings = EvalSettings(models=["qwen3_8b"], datasets=[args.dataset], data_dir=args.data_dir)
    options = task_options(task, "qwen3_8b", settings)
    docs = [{**d.record, "_index": d.index} for d in load_docs(args.dataset, args.docs, 1234, data_dir=args.data_dir)]
    split = task.fewshot_split()
    n_shot = options.n_shot if options.n_shot is not None else task.default_n_shot
    fewshot = ([{**r, "_index": i} for i, r in enumerate(load(args.dataset, split=split, data_dir=args.data_dir))]
               if split and n_shot > 0 else None)
    requests = [r for t in task.build_requests(docs, options, fewshot) for r in t.requests]
    prefix = 151643
    t_old = t_new = float("inf")
    for _ in range(args.rounds):  # alternate, keep the fastest of each (a shared CPU is noisy)
        t = time.perf_counter()
        old = [one_at_a_time(tok, r, prefix) for r in requests]
        t_old = min(t_old, time.perf_counter() - t)
        t = time.perf_counter()
        new = encode_pairs(tok, requests, prefix)
        t_new = min(t_new, time.perf_counter() - t)
    assert old == new, "encode_pairs differs from the one-at-a-time rule"
    n = sum(len(p.context) + len(p.continuation) for p in new)
    print(f"{args.dataset}: {len(docs)} docs, {len(requests)} requests, {n:,} tokens; cpu_count {os.cpu_count()}, "
          f"TOKENIZERS_PARALLELISM={os.environ.get('TOKENIZERS_PARALLELISM')}, load {os.getloadavg()[0]:.1f}")
    print(f"one at a time: {t_old:.2f} s ({n / t_old:,.0f} tok/s) | encode_pairs: {t_new:.2f} s "
          f"({n / t_new:,.0f} tok/s) | speed-up {t_old / t_new:.1f}x | identical pairs")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
