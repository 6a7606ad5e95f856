"""`qwenharness bench`: throughput, latency, memory and harness overhead per model x preset."""

from __future__ import annotations

import argparse
import json

from rich.console import Console
from rich.table import Table

from ..bench import BenchmarkStore, BenchOptions, overhead_verdict, run_suite
from ..errors import ConfigError
from ..models import get_available_models
from ..presets import DEFAULT_PRESET, get_available_presets, get_model_config
from .common import (
    add_data_dir,
    add_engine_options,
    add_server_options,
    add_verbose,
    engine_settings,
    name_list,
    non_negative_int,
    positive_int,
    resolve_names,
    server_endpoint,
)


def _positive_ints(value: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(v) for v in value.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{value}' is not a comma-separated list of integers") from None
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"batch sizes must be positive integers, got '{value}'")
    return sizes


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="throughput/latency/memory/overhead benchmarks over an engine")
    p.add_argument("--models", type=name_list, help="comma-separated models (default: tiny)")
    p.add_argument("--presets", type=name_list, help=f"comma-separated presets or 'all' (default: {DEFAULT_PRESET})")
    p.add_argument("--backend", choices=("vllm", "hf", "openai"), default="vllm",
                   help="inference engine (default: vllm); openai: a running server (--base-url)")
    p.add_argument("--input-len", type=positive_int, default=128, help="prompt tokens per request (default 128)")
    p.add_argument("--output-len", type=positive_int, default=128, help="output tokens per request (default 128)")
    p.add_argument("--num-prompts", type=positive_int, default=64, help="requests in the throughput workload (default 64)")
    p.add_argument("--batch-sizes", type=_positive_ints, default=(1, 8),
                   help="latency batch sizes, comma-separated (default 1,8)")
    p.add_argument("--warmup", type=non_negative_int, default=2, help="latency warm-up calls (default 2)")
    p.add_argument("--iters", type=positive_int, default=5, help="timed latency calls per batch size (default 5)")
    p.add_argument("--overhead-reps", type=positive_int, default=3, help="interleaved overhead repetitions (default 3)")
    p.add_argument("--text-dataset", default="gsm8k", help="real-text workload dataset, or 'none' (default gsm8k)")
    p.add_argument("--load-format", choices=("auto", "dummy"), default="auto",
                   help="'dummy': real architecture, random weights (no text workload)")
    p.add_argument("--results-dir", default="results")
    p.add_argument("--run-id", default=None, help="run id under results/benchmarks (default: a timestamp)")
    p.add_argument("--json", action="store_true", help="print the stored results as JSON")
    add_data_dir(p)
    add_verbose(p)
    add_engine_options(p)
    add_server_options(p)
    p.add_argument("--preset", dest="presets", type=name_list, help=argparse.SUPPRESS)  # evaluate's old spelling
    p.set_defaults(handler=run)


def _options(args: argparse.Namespace) -> BenchOptions:
    for name in ("input_len", "output_len", "num_prompts", "iters"):
        if getattr(args, name) < 1:
            raise ConfigError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}",
                              "pass a positive integer")
    if args.warmup < 0 or args.overhead_reps < 1:
        raise ConfigError("--warmup must be >= 0 and --overhead-reps >= 1", "pass non-negative counts")
    text = None if args.text_dataset.lower() == "none" else args.text_dataset
    return BenchOptions(input_len=args.input_len, output_len=args.output_len, num_prompts=args.num_prompts,
                        batch_sizes=tuple(args.batch_sizes), warmup=args.warmup, iters=args.iters,
                        overhead_reps=args.overhead_reps, text_dataset=text, data_dir=args.data_dir)


def run(args: argparse.Namespace) -> int:
    from ..engines import open_engine

    import time

    from ..console import RunConsole, flush_run_log, log_to_run_dir, stop_run_log
    from ..evaluation import engine_header
    from .common import canonical_models

    models = canonical_models(resolve_names(args.models, get_available_models(), "model", ["tiny"]))
    presets = resolve_names(args.presets, get_available_presets(), "preset", [DEFAULT_PRESET])
    opts = _options(args)
    from ..engine_args import check_for_backend

    settings = engine_settings(args)
    check_for_backend(settings, args.backend)
    endpoint = server_endpoint(args)
    if args.backend == "openai" and endpoint is None:
        raise ConfigError("--backend openai needs the server's address", "pass --base-url URL")
    overrides = settings.overrides() if args.backend != "openai" else {"plan_memory": False}
    configs = [get_model_config(m, p, load_format=args.load_format, **overrides) for m in models for p in presets]
    store = BenchmarkStore(args.results_dir, args.run_id)
    console = RunConsole(Console(stderr=True))
    results = []
    try:
        log_file = log_to_run_dir(store.root / store.run_id)  # engine logs at INFO, the config dump included
    except OSError:
        log_file = None
    try:
        for config in configs:
            if args.backend == "vllm":
                flush_run_log()  # vLLM writes run.log itself: the harness's lines first
            t0 = time.perf_counter()
            engine = open_engine(config, args.backend, endpoint=endpoint)
            console.print(engine_header(engine, config.model.name, config.preset, args.backend, "model",
                                        time.perf_counter() - t0))
            try:
                results.append(run_suite(engine, config, args.backend, opts, store, log=console.print))
            finally:
                engine.close()
    finally:
        stop_run_log()
    if log_file is not None:
        console.print(f"full log: {log_file}", soft_wrap=True)
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    _print_table(results, store)
    return 0


def _fmt(x: float | None, spec: str = ".1f") -> str:
    return "n/a" if x is None else format(x, spec)


def _print_table(results: list[dict], store: BenchmarkStore) -> None:
    table = Table(title=f"qwenharness bench (run {store.run_id})")
    for col in ("model", "preset", "backend", "req/s", "out tok/s", "total tok/s", "b1 p50 ms", "b1 tok/s",
                "bound frac", "overhead", "peak mem GiB"):
        table.add_column(col)
    for r in results:
        t = r["throughput"]["random"]
        b1 = r.get("latency", {}).get("batch_1")
        ov = r["overhead"]
        peak = r["memory"]["peak_bytes"]
        table.add_row(
            r["model"], r["preset"], r["backend"], _fmt(t["requests_per_s"], ".2f"), _fmt(t["output_tokens_per_s"]),
            _fmt(t["total_tokens_per_s"]), _fmt(b1["latency_s"]["p50"] * 1000 if b1 else None),
            _fmt(b1["output_tokens_per_s"] if b1 else None), _fmt(r["physical_bound"]["fraction"], ".2f"),
            _fmt(ov["ratio"], ".3f"), _fmt(peak / 2**30 if peak else None, ".2f"))
    console = Console(width=max(Console().width, 160))
    console.print(table)
    for r in results:
        ov = r["overhead"]
        if ov["applicable"]:
            console.print(f"{r['model']}/{r['preset']}: harness overhead ratio (bare vLLM / harness) "
                          f"{ov['ratio']:.3f}, {overhead_verdict(ov['ratio'])}")
        else:
            console.print(f"{r['model']}/{r['preset']}: overhead ratio n/a ({ov['reason']})")
        if not r["physical_bound"]["applicable"]:
            console.print(f"{r['model']}/{r['preset']}: bandwidth bound n/a ({r['physical_bound']['reason']})")
    console.print(f"results: {store.root / store.run_id}")
