"""`qwenharness parity --with lm-eval`: the same documents through the harness and lm-evaluation-harness.

    qwenharness parity --with lm-eval --models tiny --datasets arc_easy,mmlu --sample-limit 50

The harness evaluates first (a normal run, written under <output-dir>, default
results/parity/<timestamp>), then lm-eval's `hf` model scores the same documents with its own task
YAMLs (qwenharness/parity.py says how they are fed offline). Printed per lm-eval task: documents,
requests, requests whose strings differ, max |dLL|, argmax disagreements and both metrics;
<output-dir>/parity.json holds the same. Exit 0 when every task has identical requests, no argmax
disagreement and max |dLL| <= --tolerance; 1 otherwise; 2 for bad options or a missing lm-eval.
"""

from __future__ import annotations

import argparse
import json
import math
from datetime import datetime
from pathlib import Path

from ..errors import ConfigError
from .common import (add_data_dir, add_verbose, doc_ids_text, name_list, positive_int, sample_limit_text, seed_int,
                     split_names)

DEFAULT_DATASETS = "arc_easy,arc_challenge,hellaswag,piqa,winogrande,boolq,truthfulqa_mc,mmlu"


def _tolerance(value: str) -> float:
    try:
        x = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{value}' is not a number") from None
    if not math.isfinite(x) or x < 0:
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {value}")
    return x


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("parity", help="the same documents through the harness and lm-evaluation-harness, compared")
    p.add_argument("--with", dest="reference", choices=("lm-eval",), required=True,
                   help="the reference implementation (lm-eval: pip install 'qwenharness[lm-eval]')")
    p.add_argument("--models", metavar="M,...", type=name_list, default="tiny", help="models (default: tiny)")
    p.add_argument("--datasets", metavar="D,...", type=name_list, default=DEFAULT_DATASETS,
                   help=f"log-likelihood datasets, MMLU parts too (default: {DEFAULT_DATASETS})")
    p.add_argument("--sample-limit", metavar="N|NAME=N,...", type=sample_limit_text, default="50",
                   help="documents per dataset, the harness's seeded subset (default: 50)")
    p.add_argument("--doc-ids", metavar="JSON|FILE", type=doc_ids_text, help="exactly these documents (as evaluate)")
    p.add_argument("--presets", dest="preset", default="balanced", help="the harness's preset (default: balanced)")
    p.add_argument("--backend", choices=("hf", "vllm"), default="hf",
                   help="the harness's engine (default: hf, transformers like lm-eval's hf model)")
    p.add_argument("--seed", type=seed_int, help="the harness's selection seed (default: 1234)")
    p.add_argument("--batch-size", type=positive_int, default=8, help="lm-eval's batch size (default: 8)")
    p.add_argument("--tolerance", type=_tolerance, default=1e-3, help="largest |dLL| accepted (default: 1e-3)")
    p.add_argument("--output-dir", help="where both runs go (default: results/parity/<timestamp>)")
    p.add_argument("--json", action="store_true", help="print the comparison as JSON")
    add_data_dir(p)
    add_verbose(p)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from ..data import resolve_data_dir
    from ..evaluation import EvalSettings
    from ..parity import check_datasets, run_parity
    from ..presets import DEFAULT_SEED
    from ..selection import parse_doc_ids, parse_sample_limits
    from .common import canonical_models

    datasets = split_names(args.datasets)
    check_datasets(datasets)
    models = canonical_models(split_names(args.models))
    limits = parse_sample_limits(args.sample_limit, datasets)
    doc_ids = parse_doc_ids(args.doc_ids, datasets)
    both = [d for d in doc_ids.per_dataset if d in limits.per_dataset]
    if both:
        raise ConfigError(f"{both[0]} is given both --doc-ids and a --sample-limit count",
                          f"drop {both[0]}=N from --sample-limit, or drop it from --doc-ids")
    resolve_data_dir(args.data_dir)
    out_dir = Path(args.output_dir or Path("results") / "parity" / datetime.now().strftime("%Y%m%d-%H%M%S"))
    settings = EvalSettings(models=models, datasets=datasets, presets=[args.preset], backend=args.backend,
                            sample_limit=str(limits) if limits.per_dataset else limits.default,
                            doc_ids=doc_ids.to_dict() or None, data_dir=args.data_dir,
                            seed=DEFAULT_SEED if args.seed is None else args.seed, progress=False)
    console = Console(stderr=True)
    report = run_parity(settings, out_dir, batch_size=args.batch_size, console=console, verbose=args.verbose)
    ok = all(r.ok(args.tolerance) for rows in report.values() for r in rows)
    payload = {"tolerance": args.tolerance, "ok": ok, "output_dir": str(out_dir),
               "models": {m: [r.to_dict() for r in rows] for m, rows in report.items()}}
    (out_dir / "parity.json").write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    if args.json:
        print(json.dumps(payload, indent=2))
    else:
        Console(width=max(Console().width, 140)).print(parity_table(report, args.tolerance))
        console.print(f"{'every task agrees' if ok else 'DISAGREEMENT'} (max |dLL| tolerance {args.tolerance:g}); "
                      f"both runs and parity.json in {out_dir}", soft_wrap=True)
    return 0 if ok else 1


def parity_table(report: dict, tolerance: float):  # noqa: ANN201 - a rich Table
    from rich.table import Table

    table = Table(title="parity with lm-evaluation-harness (same documents, same model folder)")
    for col in ("model", "task", "docs", "requests", "unmatched", "max |dLL|", "argmax disagree",
                "harness", "lm-eval"):
        table.add_column(col, justify="left" if col in ("model", "task", "harness", "lm-eval") else "right")
    for model, rows in report.items():
        for r in rows:
            def fmt(m: dict) -> str:
                return ", ".join(f"{k} {v:.4f}" for k, v in sorted(m.items()))
            mark = "" if r.ok(tolerance) else " [red]x[/red]"
            table.add_row(model, r.task + mark, str(r.docs), str(r.requests), str(r.unmatched),
                          f"{r.max_abs_dll:.2e}", "-" if r.argmax_disagreements is None else str(r.argmax_disagreements),
                          fmt(r.harness), fmt(r.lm_eval))
    return table
