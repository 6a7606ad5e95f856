"""`qwenharness models`: the registry with architecture facts."""

from __future__ import annotations

import argparse
import json

from rich.console import Console
from rich.table import Table

from ..models import aliases_of, get_available_models, get_model_spec


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="list the registered models and their architecture facts")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    specs = [get_model_spec(n) for n in get_available_models()]
    if args.json:
        print(json.dumps([s.to_dict() for s in specs], indent=2))
        return 0
    table = Table(title="qwenharness models", show_lines=False)
    for col in ("name", "also", "hub id", "params", "layers", "hidden", "heads/kv", "head dim", "vocab", "context",
                "KV/token", "chat", "thinking"):
        table.add_column(col, justify="right" if col in ("params", "layers", "hidden", "vocab", "context") else "left")
    for s in specs:
        params = s.parameter_count()
        table.add_row(
            s.name, ", ".join(aliases_of(s.name)) or "-", s.hub_id, f"{params / 1e9:.2f}B" if params > 1e8 else f"{params / 1e6:.2f}M",
            str(s.num_layers), str(s.hidden_size), f"{s.num_heads}/{s.num_kv_heads}", str(s.head_dim),
            str(s.vocab_size), str(s.context_length), f"{s.kv_bytes_per_token() / 1024:.0f} KiB",
            s.chat_template, "switchable" if s.thinking_mode else "no",
        )
    console = Console(width=max(Console().width, 190))
    console.print(table)
    for s in specs:
        if s.note:
            console.print(f"[bold]{s.name}[/bold]: {s.note}")
    console.print("'also': other names accepted for a model (qwen2.5_7b is qwen2.5_8b, i.e. "
                  "Qwen2.5-7B-Instruct; qwen_7b is qwen_8b, i.e. Qwen-7B-Chat); results are stored under 'name'.")
    return 0
