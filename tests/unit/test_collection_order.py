"""The benchmark module's tests reach pytest grouped by engine, so each engine opens once per run, and
the milestones run in order whatever order their paths are given in.

pytest 9.0.3 (the GPU machine's) interleaved them by preset, and every switch reopened an engine."""

from __future__ import annotations

import subprocess
import sys
from itertools import groupby
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_benchmark_tests_are_contiguous_per_engine(tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", "-p", "no:html",
           "tests/scaling/test_throughput.py", "--models", "tiny,tiny-2x",
           "--presets", "balanced,performance,memory_optimized", "--backend", "vllm,hf",
           "--results-dir", str(tmp_path)]
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    ids = [line.split("[", 1)[1].rstrip("]") for line in out.stdout.splitlines() if "::" in line and "[" in line]
    keys = [i.split("-batch")[0] for i in ids]  # test_latency adds -batchN to the engine key
    assert len(keys) == 2 * 3 * 2 * 5  # models x presets x backends x (4 tests, latency at 2 batch sizes)
    runs = [k for k, _ in groupby(keys)]
    assert len(runs) == len(set(keys)) == 12, f"an engine's tests are split: {runs}"


def test_milestones_run_in_order_whatever_the_order_of_the_paths(tmp_path: Path) -> None:
    """A later gate reads the verdicts of the earlier ones in the same session (gate_evidence.py)."""
    cmd = [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", "-p", "no:html",
           "tests/unit/test_gpu.py", "tests/reports/test_reports.py", "tests/scaling/test_scaling_analysis.py",
           "tests/evaluation/test_dataset_evaluation.py", "tests/validation", "--results-dir", str(tmp_path)]
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    folders = [line.split("/")[1] for line in out.stdout.splitlines() if "::" in line]
    assert [k for k, _ in groupby(folders)] == ["validation", "evaluation", "scaling", "reports", "unit"]
