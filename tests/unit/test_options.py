"""One option table for the pytest gates and the CLI (issue 14): qwenharness/options.py."""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any

import pytest

from qwenharness.cli import build_parser, main
from qwenharness.flag_audit import pytest_flags
from qwenharness.options import OPTIONS, SHARED_OPTIONS, add_to_argparse, add_to_pytest
from qwenharness.pytest_plugin import pytest_addoption

# a value each entry accepts (a new entry needs one here)
GOOD = {
    "--models": "tiny,tiny-2x", "--presets": "balanced", "--datasets": "all", "--sample-limit": "arc_easy=5,default=2",
    "--doc-ids": '{"arc_easy": [0, 17]}', "--results-dir": "r", "--run-id": "x", "--backend": "hf",
    "--data-dir": "d", "--load-format": "dummy", "--concurrent-datasets": "off", "--judge-max-tokens": "512",
    "--max-model-len": "2048",
    "--tensor-parallel-size": "2", "--gpu-memory-utilization": "0.5", "--max-num-seqs": "8", "--dtype": "float32",
    "--kv-cache-dtype": "fp8", "--compilation": "graphs", "--engine-args": "enforce_eager=true",
    "--base-url": "http://127.0.0.1:8000/v1",
    "--api-key-env": "KEY", "--served-model": "m", "--server-api": "chat", "--max-concurrency": "4",
    "--request-timeout": "2.5", "--max-retries": "0", "--judge-base-url": "http://127.0.0.1:8001/v1",
    "--judge-api-key-env": "JKEY", "--judge-served-model": "j",
}

# the same bad value, refused by both sides with the same argparse message
BAD = [
    ("--max-model-len", "-3", "must be at least 1, got -3"),
    ("--tensor-parallel-size", "two", "'two' is not an integer"),
    ("--gpu-memory-utilization", "1.5", "must be in (0, 1], got 1.5"),
    ("--max-retries", "-1", "must be at least 0, got -1"),
    ("--request-timeout", "0", "must be positive, got 0.0"),
    ("--judge-max-tokens", "0", "must be at least 1, got 0"),
    ("--models", "tiny,all", "mixes 'all' with names"),
    ("--sample-limit", "arc_easy=0", "at least 1"),
    ("--doc-ids", "{not json", "is not valid JSON"),
]


def _pytest_parser() -> Any:
    from _pytest.config.argparsing import Parser

    parser = Parser(_ispytest=True)
    add_to_pytest(parser.getgroup("qwenharness"), SHARED_OPTIONS)
    return parser


def _cli_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(exit_on_error=False)
    add_to_argparse(parser, SHARED_OPTIONS)
    return parser


def _evaluate_parser() -> argparse.ArgumentParser:
    subs = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return subs.choices["evaluate"]


def test_every_entry_is_accepted_by_both_adapters() -> None:
    assert set(GOOD) == set(OPTIONS)
    cli, pt = _cli_parser(), _pytest_parser()
    for flag, value in GOOD.items():
        spec = OPTIONS[flag]
        got_cli = getattr(cli.parse_args([flag, value]), spec.on("cli").dest or spec.name)
        got_pytest = getattr(pt.parse([flag, value]), spec.name)
        assert got_cli == got_pytest and got_cli is not None, (flag, got_cli, got_pytest)


def _argparse_message(text: str, flag: str) -> str:
    m = re.search(rf"argument {re.escape(flag)}: (.*?)(?: \(see qwenharness \w+ --help\))?$", text, re.M)
    assert m, text
    return m.group(1)


@pytest.mark.parametrize("flag,value,words", BAD, ids=[f"{f} {v}" for f, v, _ in BAD])
def test_a_bad_value_is_refused_alike(flag: str, value: str, words: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["evaluate", f"{flag}={value}"])
    assert exit_.value.code == 2
    cli = _argparse_message(capsys.readouterr().err, flag)
    with pytest.raises(pytest.UsageError) as usage:
        _pytest_parser().parse([f"{flag}={value}"])
    assert _argparse_message(str(usage.value), flag) == cli
    assert words in cli, cli


def _evaluate_flags() -> set[str]:
    return {o for a in _evaluate_parser()._actions for o in a.option_strings if o.startswith("--")}


def test_no_option_is_declared_on_one_side_only() -> None:
    """What the gates and `qwenharness evaluate` both take is exactly the table, and each entry is
    on both sides."""
    shared = pytest_flags() & _evaluate_flags()
    assert shared == set(OPTIONS), (sorted(shared - set(OPTIONS)), sorted(set(OPTIONS) - shared))


def test_both_sides_declare_the_tables_entries() -> None:
    """Each side's type, help, choices and metavar come from the table (no hand-written copy)."""
    cli = {o: a for a in _evaluate_parser()._actions for o in a.option_strings}
    recorded: dict[str, dict[str, Any]] = {}

    class Group:
        def addoption(self, *opts: str, **kwargs: Any) -> None:
            recorded.update({o: kwargs for o in opts})

    class Parser:
        def getgroup(self, *args: object, **kwargs: object) -> Group:
            return Group()

    pytest_addoption(Parser())  # type: ignore[arg-type]
    for flag, spec in OPTIONS.items():
        c, p = spec.on("cli"), spec.on("pytest")
        action = cli[flag]
        assert (action.type, action.help, action.metavar) == (c.type, c.help, c.metavar), flag
        assert (tuple(action.choices) if action.choices else None) == c.choices, flag
        assert {k: recorded[flag].get(k) for k in ("type", "help", "metavar", "choices", "default")} == \
            {k: getattr(p, k) for k in ("type", "help", "metavar", "choices", "default")}, flag


def test_engine_options_keep_the_cli_validators() -> None:
    """The CLI's argparse types (positive_int, unit_float, ...) are the pytest side's too."""
    from qwenharness.commands.common import positive_int, unit_float

    assert OPTIONS["--max-model-len"].on("pytest").type is positive_int
    assert OPTIONS["--gpu-memory-utilization"].on("pytest").type is unit_float


def test_a_misspelt_model_gets_did_you_mean_in_the_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["evaluate", "--models", "tyni", "--datasets", "arc_easy", "--results-dir", str(tmp_path / "r")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "unknown model 'tyni' (did you mean tiny?" in err[0], err
    assert not (tmp_path / "r").exists()
