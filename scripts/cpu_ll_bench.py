#!/usr/bin/env python3
"""Time one engine's log-likelihood requests with and without reading the prefix cache, side by side.

    python scripts/cpu_ll_bench.py MODEL DOCS [--dataset arc_easy]

One vLLM engine answers the same requests three times (cache read on, off, on), the prefix cache
reset before each pass; prints seconds per pass and the largest log-probability difference.
"""

from __future__ import annotations

import argparse
import time

from qwenharness.data import load_docs
from qwenharness.engines import open_engine
from qwenharness.presets import get_model_config
from qwenharness.tasks import TaskOptions, get_task


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("docs", type=int)
    ap.add_argument("--dataset", default="arc_easy")
    ap.add_argument("--data-dir", default=None)
    args = ap.parse_args()
    engine = open_engine(get_model_config(args.model, "balanced", gpu=None), "vllm")
    task = get_task(args.dataset)
    docs = [{**d.record, "_index": d.index} for d in load_docs(args.dataset, args.docs, 1234, data_dir=args.data_dir)]
    requests = [r for t in task.build_requests(docs, TaskOptions(chat=False)) for r in t.requests]
    engine.loglikelihood(requests[:8])  # warm-up
    runs: dict[bool, list[float]] = {}
    for share in (True, False, True):
        object.__setattr__(engine.config, "enable_prefix_caching", share)
        engine.llm.reset_prefix_cache()
        start = time.perf_counter()
        out = engine.loglikelihood(requests)
        seconds = time.perf_counter() - start
        runs[share] = [o.logprob for o in out]
        print(f"cache read {'on ' if share else 'off'}: {len(requests)} requests in {seconds:.1f} s "
              f"({seconds / len(requests):.3f} s each)", flush=True)
    print("max |dLL| on vs off:", max(abs(a - b) for a, b in zip(runs[True], runs[False])))
    engine.close()


if __name__ == "__main__":
    main()
