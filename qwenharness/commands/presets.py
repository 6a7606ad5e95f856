"""`qwenharness presets`: the presets and, for a model, the resolved and validated configuration."""

from __future__ import annotations

import argparse
import json

from rich.console import Console
from rich.table import Table

from ..hardware import GiB, H100_80GB
from ..models import get_available_models, is_tiny
from ..presets import get_available_presets, get_model_config, get_preset
from .common import name_list, split_names


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("presets", help="list presets and each model's resolved configuration")
    p.add_argument("--models", type=name_list, help="comma-separated models (default: all registered)")
    p.add_argument("--gpu", choices=("h100", "detect", "cpu"), default="h100",
                   help="plan against an 80 GB H100 (default), the detected GPU, or the CPU")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    models = split_names(args.models) or get_available_models()
    gpu = {"h100": H100_80GB, "detect": "auto", "cpu": None}[args.gpu]
    rows = []
    for m in models:
        for p in get_available_presets():
            target = None if is_tiny(m) and args.gpu == "h100" else gpu
            rows.append(get_model_config(m, p, target))
    if args.json:
        print(json.dumps([r.to_dict() for r in rows], indent=2))
        return 0
    console = Console(width=max(Console().width, 160))
    presets = Table(title="presets")
    for col in ("preset", "GPU mem", "max len", "max seqs", "CUDA graphs", "KV dtype", "description"):
        presets.add_column(col)
    for name in get_available_presets():
        p = get_preset(name)
        presets.add_row(name, f"{p.gpu_memory_utilization:.0%}", str(p.max_model_len), str(p.max_num_seqs),
                        "on" if p.cuda_graphs else "off", p.kv_cache_dtype, p.description)
    console.print(presets)
    table = Table(title="resolved configurations (weights + KV plan per card)")
    for col in ("model", "preset", "device", "dtype", "max len", "weights", "KV cache", "KV tokens",
                "full seqs", "planned"):
        table.add_column(col)
    for r in rows:
        mem = r.memory
        table.add_row(r.model.name, r.preset, r.gpu.name if r.gpu else "cpu", r.dtype, str(r.max_model_len),
                      f"{mem.weight_bytes / GiB:.2f} GiB", f"{mem.kv_cache_bytes / GiB:.1f} GiB",
                      f"{mem.kv_capacity_tokens:,}", str(mem.max_concurrent_full_sequences),
                      f"{mem.planned_fraction:.0%}")
    console.print(table)
    return 0
