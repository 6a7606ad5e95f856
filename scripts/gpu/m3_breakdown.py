"""Where a milestone-3 job's time went, from its result files: engine starts, inference, the rest.

    python scripts/gpu/m3_breakdown.py --run-dir RESULTS/evaluations/RUN_ID [--wall SECONDS] [--json OUT]

For the seed's milestone-3 job on the GPU machine (dummy weights, all six models, balanced):

    /usr/bin/time -f %e -o "$OUT/m3-wall.txt" python3 -m pytest -p no:cacheprovider -q tests/evaluation \
        --models qwen3_8b,qwen3_14b,qwen2.5_8b,qwen2.5_14b,qwen_8b,qwen_14b --presets balanced \
        --datasets humaneval,mbpp,gsm8k,hellaswag,mt_bench --sample-limit 30 \
        --backend vllm --load-format dummy --results-dir "$OUT/results" --run-id m3
    python3 scripts/gpu/m3_breakdown.py --run-dir "$OUT/results/evaluations/m3" --wall "$(cat $OUT/m3-wall.txt)"

Read from each `<model>/<preset>/<dataset>.json`: `engine.load_time_s` (the engine's construction,
once per engine: the datasets of one model share it), `timings.inference_s` (seconds inside engine
calls; for MT-Bench the two answer turns and the judge's calls together, since the judge is the
model's own engine and the records do not time them apart), `timings.wall_s` (the dataset end to
end, including the engine start when it fell in that dataset: when the engine was opened before the
dataset began, its start does not fit in that wall and is counted apart). "other" = wall - inference - start:
prompt building, tokenization outside the engine, scoring (code execution for HumanEval/MBPP),
records, and, in the dataset where an engine opened, what its opening costs outside the engine's own
timer (`import vllm` on first use, model folder, tokenizer; not timed apart: a tiny CPU run under load
showed 106 s of "other" in its first dataset beside 216 s on the engine's timer). With `--wall`,
"outside the datasets" = the job's wall time - the time covered by datasets (interpreter and vLLM
imports, pytest collection, engine close between models).

Datasets evaluated together (`timings.evaluated_together`, vLLM on a GPU) overlap in time, so their
walls and inference times do not add up: each model's row then gives the span its datasets covered
(first start to last finish, `timings.started_unix` / `finished_unix`), the engine start inside it,
and the rest of the span; the per-dataset rows still show each dataset's own wall and time in
engine calls (a merged call counts in the wall of every dataset it served).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def breakdown(run_dir: Path) -> dict[str, Any]:
    """Per model and dataset, and totals, from a run directory's aggregate files."""
    rows = []
    for f in sorted(run_dir.glob("*/*/*.json")):
        agg = json.loads(f.read_text())
        if "timings" not in agg or "dataset" not in agg:
            continue
        t, eng = agg["timings"], agg.get("engine") or {}
        rows.append({"model": agg["model"], "preset": agg["preset"], "dataset": agg["dataset"],
                     "started_at": agg.get("started_at"), "wall_s": t.get("wall_s", 0.0),
                     "inference_s": t.get("inference_s", 0.0), "requests": t.get("new_requests"),
                     "by_kind": {k: v.get("requests") for k, v in (t.get("by_kind") or {}).items()},
                     "load_time_s": eng.get("load_time_s"), "n_samples": agg.get("n_samples"),
                     "n_errors": agg.get("n_errors"), "started_unix": t.get("started_unix"),
                     "finished_unix": t.get("finished_unix"), "together": bool(t.get("evaluated_together"))})
    rows.sort(key=lambda r: (r["started_at"] or "", r["model"], r["dataset"]))
    seen: set[tuple[str, str, float | None]] = set()
    outside = 0.0
    for r in rows:  # the engine opens at the first cache miss: in the first dataset of each engine
        key = (r["model"], r["preset"], r["load_time_s"])
        start = (r["load_time_s"] or 0.0) if key not in seen else 0.0
        seen.add(key)
        if start > r["wall_s"] - r["inference_s"]:  # opened before this dataset began (a script's pool)
            outside += start
            start = 0.0
        r["engine_start_s"] = start
        r["other_s"] = r["wall_s"] - r["inference_s"] - start
    models: dict[str, dict[str, float]] = {}
    for r in rows:
        m = models.setdefault(f"{r['model']}/{r['preset']}", {"engine_start_s": 0.0, "inference_s": 0.0,
                                                             "other_s": 0.0, "wall_s": 0.0})
        for k in m:
            m[k] += r[k]
    for name, m in models.items():  # datasets evaluated together: the span they covered, not the sum
        mine = [r for r in rows if f"{r['model']}/{r['preset']}" == name]
        if any(r["together"] for r in mine) and all(r["started_unix"] for r in mine):
            m["wall_s"] = max(r["finished_unix"] for r in mine) - min(r["started_unix"] for r in mine)
            m["other_s"] = m["wall_s"] - m["engine_start_s"]  # after the start: engine calls, scoring, records
            m["together"] = 1.0
    total = {k: sum(m[k] for m in models.values()) for k in ("engine_start_s", "inference_s", "other_s", "wall_s")}
    total["engine_starts"] = len(seen)
    total["engine_start_outside_datasets_s"] = outside
    total["judged_inference_s"] = sum(r["inference_s"] for r in rows if "judge" in r["by_kind"])
    return {"datasets": rows, "models": models, "total": total}


def markdown(b: dict[str, Any], wall: float | None) -> str:
    lines = []
    if any(m.get("together") for m in b["models"].values()):
        lines += ["| model | engine start | datasets evaluated together, after the start | span |",
                  "|---|---|---|---|"]
        for name, m in b["models"].items():
            lines.append(f"| {name} | {m['engine_start_s']:.1f} s | {m['other_s']:.1f} s | {m['wall_s']:.1f} s |")
        t = b["total"]
        lines += [f"| **all** | **{t['engine_start_s']:.1f} s** | **{t['other_s']:.1f} s** | **{t['wall_s']:.1f} s** |",
                  "", "Per dataset (the walls of datasets evaluated together overlap):", ""]
    lines += ["| model | dataset | samples | errors | engine start | inference | other | dataset wall |",
             "|---|---|---|---|---|---|---|---|"]
    for r in b["datasets"]:
        judged = " (2 turns + judge)" if "judge" in r["by_kind"] else ""
        lines.append(f"| {r['model']} | {r['dataset']}{judged} | {r['n_samples']} | {r['n_errors']} | "
                     f"{r['engine_start_s']:.1f} s | {r['inference_s']:.1f} s | {r['other_s']:.1f} s | "
                     f"{r['wall_s']:.1f} s |")
    t = b["total"]
    if not any(m.get("together") for m in b["models"].values()):
        lines.append(f"| **all** | | | | **{t['engine_start_s']:.1f} s** ({t['engine_starts']} starts) | "
                     f"**{t['inference_s']:.1f} s** (judged datasets {t['judged_inference_s']:.1f} s) | "
                     f"**{t['other_s']:.1f} s** | **{t['wall_s']:.1f} s** |")
    if t["engine_start_outside_datasets_s"]:
        lines.append("")
        lines.append(f"Engine starts before any dataset began (not in the dataset walls): "
                     f"{t['engine_start_outside_datasets_s']:.1f} s.")
    if wall is not None:
        lines.append("")
        lines.append(f"Job wall time {wall:.1f} s; outside the datasets (imports, collection, engine "
                     f"closes): {wall - t['wall_s'] - t['engine_start_outside_datasets_s']:.1f} s.")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run-dir", required=True, type=Path, help="RESULTS/evaluations/RUN_ID")
    ap.add_argument("--wall", type=float, help="the whole job's wall time in seconds")
    ap.add_argument("--json", type=Path, help="write the breakdown here too")
    args = ap.parse_args()
    if not args.run_dir.is_dir():
        raise SystemExit(f"{args.run_dir} is not a run directory: pass RESULTS/evaluations/RUN_ID")
    b = breakdown(args.run_dir)
    if not b["datasets"]:
        raise SystemExit(f"no aggregate files under {args.run_dir}/<model>/<preset>/: did the run finish a dataset?")
    b["job_wall_s"] = args.wall
    if args.json:
        args.json.write_text(json.dumps(b, indent=2))
    print(markdown(b, args.wall))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
