"""The evaluation path against bare vLLM on the same token ids, one engine, one process.

On the GPU machine (vLLM installed, see ../shared/gpu/README.md), with the real tokenizer for dummy
folders (QWENHARNESS_DUMMY_TOKENIZER, scripts/gpu/make_dummy_tokenizer.py) and the data carried:

    python scripts/gpu/eval_vs_bare.py --model qwen3_8b --preset balanced \
        --datasets hellaswag,gsm8k,mmlu --limit mmlu=2000 --data-dir .data \
        --results-dir "$OUT/eval" --out "$OUT/eval_vs_bare.json"

The engine is opened once (its start time is recorded: a second start of a configuration measured
earlier in the same machine shows what the compile cache saves). Then, per dataset:

- bare: the dataset's requests are built with the task's own `build_requests` and tokenized with the
  engine's own functions (the same token ids the harness sends); untimed. Then the vLLM calls over
  all of them are timed: `--bare waves` (default) makes the engine's own calls (for log-likelihoods
  with prefix caching: the first request of each context, then the others; none reads the cache
  once the engine's check has found wrong cache-read scores), `--bare plain` one call
  with vLLM's default prompt-log-prob parameters (no prefix-cache reads, what lm-evaluation-harness
  sends).
- harness: `Evaluator.run()` for that dataset (what `qwenharness evaluate` runs: prompts, chat
  template, tokenization, chunked engine calls through the response cache, scoring, records,
  aggregates), in a fresh run directory, timed end to end.

ratio = bare seconds / harness seconds (1.0: the harness adds nothing; the goal is >= 0.95). The
JSON holds both times, the harness's own split (inference_s = time inside engine calls), request
and token counts. Dummy weights: scores are meaningless and not reported here.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def _limits(items: list[str]) -> dict[str, int]:
    out = {}
    for item in items:
        name, _, n = item.partition("=")
        out[name] = int(n)
    return out


def bare_inputs(engine: Any, task: Any, docs: list[dict[str, Any]], options: Any,
                fewshot: list[dict[str, Any]] | None, mode: str) -> tuple[list[tuple[list[dict[str, Any]], Any]], int]:
    """The vLLM calls to time, as (prompts, params) pairs, built untimed: the token ids the harness's
    engine sends. `mode` "waves": the same calls as VLLMEngine.loglikelihood (with prefix caching, the
    first request of each context, then the others reading its cached blocks); "plain": one call with
    vLLM's defaults for prompt log-probs (no prefix-cache reads), as lm-evaluation-harness sends them."""
    from qwenharness.engines.common import encode_pairs, prompt_token_ids
    from qwenharness.engines.vllm import context_waves

    treqs = task.build_requests(docs, options, fewshot)
    flat = [r for t in treqs for r in t.requests]
    if task.output_type != "loglikelihood":
        ids = [prompt_token_ids(engine.tokenizer, engine.spec, r) for r in flat]
        params = [engine.to_vllm_sampling(r.sampling, len(x)) for r, x in zip(flat, ids)]
        return [([{"prompt_token_ids": x} for x in ids], params)], len(flat)
    pairs = encode_pairs(engine.tokenizer, flat, engine.prefix_id)
    windows = [(p.window(engine.max_len - 2), len(p.continuation)) for p in pairs]
    share = (mode == "waves" and bool(engine.config.enable_prefix_caching)
             and getattr(engine, "_cached_prompt_logprobs", False) and engine.cache_scores_trusted)
    if mode == "plain" or not hasattr(engine, "_prompt_logprob_params"):
        params = engine._vllm.SamplingParams(max_tokens=1, temperature=0.0, prompt_logprobs=1, detokenize=False)
    else:
        params = engine._prompt_logprob_params(read_cache=share)
    waves = context_waves(windows) if share else [list(range(len(windows)))]
    return [([{"prompt_token_ids": windows[i][0]} for i in w], params) for w in waves], len(flat)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="qwen3_8b")
    ap.add_argument("--preset", default="balanced")
    ap.add_argument("--datasets", default="hellaswag,gsm8k,mmlu")
    ap.add_argument("--limit", action="append", default=[], help="DATASET=N docs (default: all)")
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--load-format", default="dummy", choices=("auto", "dummy"))
    ap.add_argument("--results-dir", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--order", choices=("bare-first", "harness-first"), default="bare-first")
    ap.add_argument("--bare", choices=("waves", "plain"), default="waves",
                    help="waves: the engine's own vLLM calls (prefix-cache waves); plain: one call, vLLM defaults")
    ap.add_argument("--no-chat-template", dest="chat", action="store_false", default=None,
                    help="raw prompts for generation tasks too (GSM8K 5-shot 'Question: ... Answer:', "
                         "lm-eval's gsm8k YAML; what lmeval_compare.py runs)")
    ap.add_argument("--compilation", choices=("full", "graphs", "eager"), default="full",
                    help="the engine's compilation mode, for both sides (default full: lm-eval's vLLM compiles too)")
    ap.add_argument("--fewshot-sampler", choices=("harness", "lm-eval"), default="harness",
                    help="lm-eval: lm-evaluation-harness's few-shot draws (what lmeval_compare.py compares with)")
    args = ap.parse_args()

    from qwenharness.data import load, load_docs
    from qwenharness.engines.pool import EnginePool
    from qwenharness.evaluation import EvalSettings, Evaluator, task_options
    from qwenharness.results import resolve_run_paths
    from qwenharness.tasks import get_task

    limits = _limits(args.limit)
    out: dict[str, Any] = {"model": args.model, "preset": args.preset, "order": args.order, "bare": args.bare,
                           "compilation": args.compilation,
                           "chat": args.chat, "load_format": args.load_format, "fewshot_sampler": args.fewshot_sampler,
                           "datasets": {}}
    pool = EnginePool(load_format=args.load_format)
    t0 = time.perf_counter()
    engine = pool.get(args.model, args.preset, "vllm", compilation=args.compilation)
    out["engine_start_s"] = time.perf_counter() - t0
    out["engine"] = engine.info().to_dict()
    print(f"engine start {out['engine_start_s']:.1f} s ({engine.model_dir})", flush=True)
    llm = engine.llm
    # warm-up of both paths (generation, and prompt log-probs, whose first call sets up more)
    sp = engine._vllm.SamplingParams
    t0 = time.perf_counter()
    llm.generate([{"prompt_token_ids": list(range(100 + i, 164 + i))} for i in range(8)],
                 sp(max_tokens=8, temperature=0.0), use_tqdm=False)
    llm.generate([{"prompt_token_ids": list(range(200 + i, 264 + i))} for i in range(8)],
                 sp(max_tokens=1, temperature=0.0, prompt_logprobs=1, detokenize=False), use_tqdm=False)
    # the engine's own check of cache-read scores (engines/vllm.py) runs once here, before any bare
    # call, so that both sides start from its verdict. It can miss the bug: on the H200 this warm-up
    # passed and the first HellaSwag call then failed 12 of 16 checks (docs/benchmarks.md)
    from qwenharness.engines.base import LoglikelihoodRequest

    engine.loglikelihood([LoglikelihoodRequest(f"Warm-up question {q}: " + "which of the answers is right? " * 8,
                                               f" answer {c} to question {q}") for q in range(100) for c in "ABCD"])
    out["warmup_s"] = time.perf_counter() - t0
    out["cache_scores_trusted"] = engine.cache_scores_trusted
    print(f"prefix-cache scores trusted after the warm-up check: {engine.cache_scores_trusted}", flush=True)

    for ds in [d for d in args.datasets.split(",") if d]:
        limit = limits.get(ds)
        settings = EvalSettings(models=[args.model], datasets=[ds], presets=[args.preset], backend="vllm",
                                sample_limit=limit, data_dir=args.data_dir, load_format=args.load_format, progress=False,
                                chat=args.chat, fewshot_sampler=args.fewshot_sampler,
                                engine={"compilation": args.compilation})  # the engine opened above
        task = get_task(ds)
        if hasattr(task, "data_dir"):
            task.data_dir = args.data_dir
        options = task_options(task, args.model, settings)
        docs = [{**d.record, "_index": d.index} for d in load_docs(ds, limit, settings.seed, data_dir=args.data_dir)]
        if options.fewshot_sampler == "lm-eval":  # as Evaluator: the draws follow the run's documents in order
            options = replace(options, fewshot_order=tuple(d["_index"] for d in docs))
        n_shot = options.n_shot if options.n_shot is not None else task.default_n_shot
        split = task.fewshot_split()
        fewshot = ([{**r, "_index": i} for i, r in enumerate(load(ds, split=split, data_dir=args.data_dir))]
                   if split and n_shot > 0 else None)
        row: dict[str, Any] = {"docs": len(docs), "sample_limit": limit}

        def run_bare() -> None:
            t = time.perf_counter()
            calls, n = bare_inputs(engine, task, docs, options, fewshot, args.bare)
            row["bare_prepare_s"] = time.perf_counter() - t
            t = time.perf_counter()
            outs = [o for prompts, params in calls for o in llm.generate(prompts, params, use_tqdm=False)]
            row["bare_s"] = time.perf_counter() - t
            row["bare_calls"] = len(calls)
            row["requests"] = n
            row["prompt_tokens"] = sum(len(p["prompt_token_ids"]) for prompts, _ in calls for p in prompts)
            row["output_tokens"] = sum(len(o.outputs[0].token_ids) for o in outs)

        def run_harness() -> None:
            # a fresh run id: an earlier run in the same results folder would answer from its response cache
            paths = resolve_run_paths(args.results_dir, run_id=f"{args.model}-{args.preset}-{ds}-{time.strftime('%Y%m%dT%H%M%S')}")
            t = time.perf_counter()
            results = Evaluator(settings, paths, pool=pool, argv=["eval_vs_bare.py", ds]).run()
            row["harness_s"] = time.perf_counter() - t
            agg = results[0].aggregate or {}
            row["harness_ok"] = results[0].ok
            row["harness_error"] = results[0].error
            row["harness_timings"] = agg.get("timings")
            row["harness_errors"] = agg.get("n_errors", agg.get("errors"))

        for step in ((run_bare, run_harness) if args.order == "bare-first" else (run_harness, run_bare)):
            step()
        if row.get("harness_s"):
            row["ratio_bare_over_harness"] = row["bare_s"] / row["harness_s"]
            inf = (row.get("harness_timings") or {}).get("inference_s")
            if inf is not None:
                row["harness_outside_engine_s"] = row["harness_s"] - inf
        row["cache_scores_trusted_after"] = engine.cache_scores_trusted
        out["datasets"][ds] = row
        print(f"{ds}: {row['docs']} docs, {row['requests']} requests, {row['prompt_tokens']:,} prompt tokens, "
              f"{row['output_tokens']:,} output tokens | bare {row['bare_s']:.1f} s | harness {row['harness_s']:.1f} s"
              f" (engine {((row.get('harness_timings') or {}).get('inference_s') or 0):.1f} s) | ratio "
              f"{row.get('ratio_bare_over_harness', float('nan')):.3f}", flush=True)
        Path(args.out).write_text(json.dumps(out, indent=2, default=str))
    pool.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
