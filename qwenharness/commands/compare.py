"""`qwenharness compare`: the scaling analysis of two or more models from stored results."""

from __future__ import annotations

import argparse
import json
from typing import Any

from rich.console import Console
from rich.table import Table

from ..scaling import analyze
from .common import name_list, split_names


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("compare", help="compare models from stored benchmark and evaluation results")
    p.add_argument("--models", type=name_list, default=None,
                   help="two or more comma-separated models (default: qwen3_8b,qwen3_14b on a GPU machine; on a "
                   "CPU machine the two real models with stored results, else qwen2.5_coder_1.5b,smollm2_135m)")
    p.add_argument("--detailed-metrics", action="store_true",
                   help="every workload, latency percentile and metric, not only the headline figures")
    p.add_argument("--results-dir", default="results")
    p.add_argument("--backend", choices=("vllm", "hf"), default=None,
                   help="whose benchmark figures to use (default: vllm where stored)")
    p.add_argument("--run-id", default=None, help="use only this run (default: newest result per key)")
    p.add_argument("--json", action="store_true", help="print the comparisons as JSON")
    p.set_defaults(handler=run)


def _v(q: dict[str, Any] | None, spec: str = ".3g") -> str:
    return "n/a" if q is None else format(q["value"], spec)


GPU_PAIR = ("qwen3_8b", "qwen3_14b")


def stored_models(results_dir: str) -> list[str]:
    """Models with stored evaluation aggregates, newest first (<results>/evaluations/<run>/<model>/<preset>/*.json)."""
    from pathlib import Path

    found: dict[str, float] = {}
    for f in Path(results_dir, "evaluations").glob("*/*/*/*.json"):
        if f.name.endswith(".samples.jsonl"):
            continue
        name = f.parent.parent.name
        found[name] = max(found.get(name, 0.0), f.stat().st_mtime)
    return sorted(found, key=lambda n: -found[n])


def default_models(results_dir: str) -> list[str]:
    """On a GPU machine the suite's pair; on a CPU machine the two newest real (trained) models with
    stored results, else the pair the main job evaluates there (scripts/run.sh). Smaller model first."""
    from ..hardware import detect_gpu
    from ..models import REAL_CPU_MODELS, get_model_spec

    if detect_gpu():
        return list(GPU_PAIR)
    real = []
    for name in stored_models(results_dir):
        try:
            spec = get_model_spec(name)
        except Exception:  # noqa: BLE001 - a folder that is not a model name
            continue
        if not spec.random_weights and spec.runs_on_cpu and name not in real:
            real.append(name)
    pair = real[:2] if len(real) >= 2 else list(REAL_CPU_MODELS)
    return sorted(pair, key=lambda n: get_model_spec(n).parameter_count())


def run(args: argparse.Namespace) -> int:
    if args.models is None:
        models = default_models(args.results_dir)
        Console(stderr=True).print(f"[yellow]notice:[/yellow] no --models given: comparing {','.join(models)} "
                                   "(pass --models A,B for others)")
    else:
        from .common import canonical_models

        models = canonical_models(split_names(args.models))
    out = analyze(args.results_dir, models, detailed=args.detailed_metrics,
                  backend=args.backend, run_id=args.run_id)
    if args.json:
        print(json.dumps(out["comparisons"], indent=2))
        return 0
    console = Console(width=max(Console().width, 140))
    for c in out["comparisons"]:
        a, b = c["models"]["a"], c["models"]["b"]
        table = Table(title=f"{b} / {a}  (b / a; parameter ratio {_v(c['parameter_ratio'])})")
        for col in ("preset", "throughput", "cost/token", "b1 latency", "weight mem", "peak mem", "KV cache"):
            table.add_column(col)
        for preset, cmp in c["presets"].items():
            r = cmp["ratios"]
            table.add_row(preset, _v(r["throughput_ratio"]), _v(r["cost_per_token_ratio"]),
                          _v(r["latency_ratio_batch_1"]), _v(r["weight_memory_ratio"]), _v(r["peak_memory_ratio"]),
                          _v(r.get("kv_cache_ratio")))
        console.print(table)
        headline = c["presets"][c["headline_preset"]]
        if not headline["accuracy"]:
            why = "; ".join(f"{d}: {reason}" for d, reason in headline.get("accuracy_not_compared", {}).items())
            console.print(f"accuracy under preset {c['headline_preset']}: no delta, " + (
                why if why else f"no dataset has stored results for both {a} and {b} "
                                "(run `qwenharness evaluate` for both to compare accuracy)"))
        acc = Table(title=f"accuracy, {b} - {a} (preset {c['headline_preset']})")
        for col in ("dataset", "metric", "a", "b", "delta", "se", "significant"):
            acc.add_column(col)
        for ds, x in c["presets"][c["headline_preset"]]["accuracy"].items():
            acc.add_row(ds, x["metric"], _v(x["a"]["value"]), _v(x["b"]["value"]), _v(x["delta"], "+.3f"),
                        _v(x["se"], ".3f"), "yes" if x["significant"] else "no")
            if args.detailed_metrics:
                for m, y in x.get("other_metrics", {}).items():
                    acc.add_row("", m, _v(y["a"]["value"]), _v(y["b"]["value"]), _v(y["delta"], "+.3f"),
                                _v(y["se"], ".3f"), "yes" if y["significant"] else "no")
        if headline["accuracy"]:
            console.print(acc)
        for rec in c["recommendations"]:
            console.print(f"- {rec['text']}")
    w = out["written"]
    for name, path in w["comparisons"].items():
        console.print(f"{name}: {path}")
    console.print(f"matrix: {w['matrix']}\ninsights: {w['insights']}")
    return 0
