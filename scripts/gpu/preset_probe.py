"""Isolate what makes a preset slow: one engine setting changed at a time, measured side by side.

Run on the GPU machine (vLLM installed, see ../shared/gpu/README.md), one process per variant so each
engine starts on a clean card:

    python scripts/gpu/preset_probe.py --model qwen3_8b --preset memory_optimized \
        --variant eager-fp8:compile=eager,kv=fp8 --variant eager-bf16:compile=eager,kv=auto \
        --variant graphs-fp8:compile=full,kv=fp8 --out "$OUT/probe.json"

Each variant is the preset's resolved configuration with its compilation mode (full, graphs, eager;
`eager=1` is `compile=eager`, `eager=0` `compile=full`) and `kv_cache_dtype` replaced; dummy weights,
token-id prompts. For each it records the engine's start time, the batch-1 and batch-N latency
(qwenharness.bench.measure_latency: TTFT, inter-token latency, output tok/s) and, with
`--prefill-batch N`, the time of one batch of N prompts of `--prefill-len` tokens with one output
token each (prefill tok/s). The JSON lines of all variants land in --out, and a table is printed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any


def _parse_variant(text: str) -> tuple[str, dict[str, Any]]:
    name, _, spec = text.partition(":")
    changes: dict[str, Any] = {}
    for item in filter(None, spec.split(",")):
        key, _, value = item.partition("=")
        if key == "eager":
            changes["compilation"] = "eager" if value == "1" else "full"
        elif key == "compile":
            changes["compilation"] = value
        elif key == "kv":
            changes["kv_cache_dtype"] = value
        else:
            raise SystemExit(f"unknown variant setting '{key}' in '{text}': use compile=full|graphs|eager "
                             "(or eager=0|1) and kv=auto|fp8")
    return name, changes


def measure_one(model: str, preset: str, name: str, changes: dict[str, Any], batch: int, input_len: int,
                output_len: int, iters: int, prefill_batch: int = 0, prefill_len: int = 2048) -> dict[str, Any]:
    from qwenharness import bench
    from qwenharness.engines import open_engine
    from qwenharness.presets import get_model_config

    changes = dict(changes)
    config = get_model_config(model, preset, load_format="dummy",
                              compilation=changes.pop("compilation", None)).with_overrides(**changes)
    start = time.perf_counter()
    engine = open_engine(config, "vllm")
    load_s = time.perf_counter() - start
    vocab = bench.vocab_for(engine, config)
    try:
        runs = {f"batch_{b}": bench.measure_latency(engine, batch_size=b, input_len=input_len, output_len=output_len,
                                                    vocab_size=vocab, warmup=1, iters=iters)
                for b in (1, batch)}
        if prefill_batch:
            run = bench.measure_latency(engine, batch_size=prefill_batch, input_len=prefill_len, output_len=1,
                                        vocab_size=vocab, warmup=1, iters=iters)
            run["prefill_tokens_per_s"] = prefill_batch * prefill_len / run["latency_s"]["p50"]
            runs["prefill"] = run
    finally:
        engine.close()
    return {"variant": name, "model": model, "preset": preset, "compilation": config.compilation,
            "enforce_eager": config.enforce_eager,
            "kv_cache_dtype": config.kv_cache_dtype, "max_num_seqs": config.max_num_seqs,
            "gpu_memory_utilization": config.gpu_memory_utilization, "load_s": load_s,
            "gpu": bench.environment()["gpu"], **runs}


def _row(r: dict[str, Any], batch: int) -> str:
    def ms(x: dict[str, Any] | None) -> str:
        return f"{1000 * x['p50']:.2f}" if x else "n/a"

    b1, bn = r["batch_1"], r[f"batch_{batch}"]
    prefill = r.get("prefill")
    return (f"{r['variant']:<14} {r['compilation']:<6} kv={r['kv_cache_dtype']:<5} load {r['load_s']:6.1f} s | "
            f"b1 {b1['output_tokens_per_s']:8.1f} tok/s ITL {ms(b1['itl_s'])} ms | "
            f"b{batch} {bn['output_tokens_per_s']:8.1f} tok/s ITL {ms(bn['itl_s'])} ms"
            + (f" | prefill {prefill['prefill_tokens_per_s']:9.0f} tok/s" if prefill else ""))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--preset", required=True)
    ap.add_argument("--variant", action="append", required=True,
                    help="NAME:compile=full|graphs|eager,kv=auto|fp8 (repeatable)")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--input-len", type=int, default=128)
    ap.add_argument("--output-len", type=int, default=128)
    ap.add_argument("--iters", type=int, default=3)
    ap.add_argument("--prefill-batch", type=int, default=0, help="also time N prompts of --prefill-len tokens")
    ap.add_argument("--prefill-len", type=int, default=2048)
    ap.add_argument("--out", required=True)
    ap.add_argument("--one", help=argparse.SUPPRESS)  # internal: measure this variant in this process
    args = ap.parse_args()

    if args.one:
        name, changes = _parse_variant(args.one)
        result = measure_one(args.model, args.preset, name, changes, args.batch, args.input_len, args.output_len,
                             args.iters, args.prefill_batch, args.prefill_len)
        with open(args.out, "a") as f:
            f.write(json.dumps(result) + "\n")
        return 0

    out = Path(args.out)
    out.unlink(missing_ok=True)
    failed = 0
    for text in args.variant:
        _parse_variant(text)  # fail on a typo before any engine starts
        cmd = [sys.executable, __file__, "--model", args.model, "--preset", args.preset, "--variant", text,
               "--batch", str(args.batch), "--input-len", str(args.input_len), "--output-len",
               str(args.output_len), "--iters", str(args.iters), "--prefill-batch", str(args.prefill_batch),
               "--prefill-len", str(args.prefill_len), "--out", str(out), "--one", text]
        rc = subprocess.call(cmd, env=os.environ.copy())
        if rc:
            print(f"variant {text} failed with exit status {rc}", flush=True)
            failed += 1
    results = [json.loads(line) for line in out.read_text().splitlines()] if out.exists() else []
    print(f"\n{args.model} / {args.preset}, {args.input_len} in / {args.output_len} out, p50 of {args.iters} calls")
    for r in results:
        print(_row(r, args.batch))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
