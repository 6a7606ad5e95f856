"""Options the pytest gates share with `qwenharness evaluate`: validated alike, passed on to the runner."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from qwenharness.evaluation import EvalSettings
from qwenharness.selection import SampleLimits
from qwenharness.testing import HarnessOptions

ROOT = Path(__file__).resolve().parents[2]


def _collect(tmp_path: Path, *extra: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", "-p", "no:html",
           "tests/evaluation/test_dataset_evaluation.py", "--models", "tiny", "--datasets", "mt_bench",
           "--results-dir", str(tmp_path), *extra]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_judge_max_tokens_is_a_pytest_option_validated_like_the_cli(tmp_path: Path) -> None:
    ok = _collect(tmp_path, "--judge-max-tokens", "512")
    assert ok.returncode == 0, ok.stdout[-2000:] + ok.stderr[-2000:]
    bad = _collect(tmp_path, "--judge-max-tokens", "0")
    assert bad.returncode != 0 and "--judge-max-tokens" in bad.stderr and "at least 1" in bad.stderr


def test_judge_max_tokens_reaches_the_runners_settings() -> None:
    options = HarnessOptions(models=["tiny"], presets=["balanced"], datasets=["mt_bench"], backends=["vllm"],
                             sample_limits=SampleLimits(), data_dir=None, results_dir=Path("r"), run_id="x",
                             require_gpu=False, validate_only=False, load_format="auto", judge_max_tokens=512)
    settings = EvalSettings(models=["tiny"], datasets=["mt_bench"], **options.eval_settings_fields())
    assert settings.judge_max_tokens == 512
    default = HarnessOptions(**{**options.__dict__, "judge_max_tokens": None})
    assert EvalSettings(models=["tiny"], datasets=["mt_bench"], **default.eval_settings_fields()).judge_max_tokens == 2048
