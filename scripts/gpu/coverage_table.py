"""Print milestone-2 coverage entries as a Markdown table (one row per model x preset).

    python scripts/gpu/coverage_table.py RESULTS_DIR_OR_RUN_JSON [...]

Reads `<results>/evaluations/model_coverage/<run_id>.json` files (or the files themselves, or the
results-*.tgz that scripts/gpu/device_run.sh packs) and prints load time, output tok/s, NVML peak
against the plan (both as reported: the peak includes the baseline), memory after close() and the
baseline, and the error of a failed row.
"""

from __future__ import annotations

import io
import json
import sys
import tarfile
from pathlib import Path
from typing import Any

GIB = 2**30


def entries(paths: list[str]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for raw in paths:
        p = Path(raw)
        if p.suffix == ".tgz":
            with tarfile.open(p) as tar:
                for m in tar.getmembers():
                    if "model_coverage/" in m.name and m.name.endswith(".json") and "latest_summary" not in m.name:
                        out += json.load(io.TextIOWrapper(tar.extractfile(m)))["entries"]  # type: ignore[arg-type]
        elif p.is_dir():
            for f in sorted(p.rglob("model_coverage/*.json")):
                if f.name != "latest_summary.json":
                    out += json.loads(f.read_text())["entries"]
        else:
            out += json.loads(p.read_text())["entries"]
    return out


def gib(n: int | None) -> str:
    return "n/a" if n is None else f"{n / GIB:.2f} GiB"


def row(e: dict[str, Any]) -> str:
    info = e.get("engine_info") or {}
    kv = (info.get("extra") or {}).get("kv_cache_tokens")
    plan_kv = ((e.get("config") or {}).get("memory") or {}).get("kv_capacity_tokens")
    status = "ok" if e.get("ok") else f"FAILED at {e.get('stage')}: {e.get('error')}"
    load = f"{e['load_time_s']:.1f} s" if e.get("load_time_s") else "n/a"
    tps = f"{e['output_tokens_per_s']:,.0f}" if e.get("output_tokens_per_s") else "n/a"
    grown = (e["peak_memory_bytes"] - e["baseline_memory_bytes"]
             if e.get("peak_memory_bytes") is not None and e.get("baseline_memory_bytes") is not None else None)
    return (f"| {e['model']} | {e['preset']} | {load} | {tps} | {gib(e.get('peak_memory_bytes'))} | "
            f"{gib(grown)} | {gib(e.get('planned_memory_bytes'))} | {gib(e.get('post_close_memory_bytes'))} | "
            f"{gib(e.get('baseline_memory_bytes'))} | {f'{kv:,}' if kv else 'n/a'} | {f'{plan_kv:,}' if plan_kv else 'n/a'} | {status} |")


def main(argv: list[str]) -> int:
    es = entries(argv)
    print("| model | preset | engine load | output tok/s (batch 8) | NVML peak | peak - baseline | plan | "
          "after close() | baseline | KV tokens (vLLM) | KV tokens (plan) | status |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for e in es:
        print(row(e))
    return 0 if es else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
