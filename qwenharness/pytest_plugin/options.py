"""The suite's pytest options: the table shared with the CLI (qwenharness/options.py) plus the two
only the gates have."""

from __future__ import annotations

import pytest

from ..options import SHARED_OPTIONS, OptionSpec, add_to_pytest

PYTEST_ONLY_OPTIONS = (
    OptionSpec("--require-gpu", "fail, instead of skip, tests that need a GPU", action="store_true"),
    OptionSpec("--validate-only", "check configurations without loading models (milestone 2)", action="store_true"),
)


def pytest_addoption(parser: pytest.Parser) -> None:
    add_to_pytest(parser.getgroup("qwenharness"), (*SHARED_OPTIONS, *PYTEST_ONLY_OPTIONS))
