"""The CLI's registry commands and its one-line errors."""

from __future__ import annotations

import subprocess
import sys

import pytest

from qwenharness.cli import main


def test_models_lists_suite_and_caveats(capsys) -> None:
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    for name in ("qwen3_8b", "qwen2.5_8b", "qwen_14b", "tiny", "Qwen/Qwen2.5-7B-Instruct"):
        assert name in out
    assert "There is no 8B Qwen2.5" in out


def test_presets_table(capsys) -> None:
    assert main(["presets", "--models", "qwen3_8b"]) == 0
    out = capsys.readouterr().out
    assert "memory_optimized" in out and "qwen3_8b" in out


@pytest.mark.parametrize("argv", [["presets", "--models", "qwen9"], ["models", "--bogus"]])
def test_errors_are_one_line_exit_2(argv) -> None:
    proc = subprocess.run([sys.executable, "-m", "qwenharness", *argv], capture_output=True, text=True)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
