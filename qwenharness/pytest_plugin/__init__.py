"""qwenharness's pytest plugin: the suite's options, GPU gating, parametrization and engine fixtures.

Registered by the package's `pytest11` entry point (`qwenharness`), so its options are known before
pytest parses the command line, from any directory; pytest.ini also names it (`-p
qwenharness.pytest_plugin`) for checkouts that are on PYTHONPATH but not installed. Modules:
options (pytest_addoption, from the shared table in qwenharness/options.py), session
(pytest_configure: GPU pinning, markers, the session's HarnessOptions), hooks (GPU gating,
parametrization, milestone order, engine grouping), fixtures (`harness`, `engine_pool`,
`gate_evaluations`, `gate_evidence`) and rootdir (an option's value is never taken for a test path
when pytest picks its rootdir). Tests stay thin: everything they need comes from the `qwenharness`
library.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

ENTRY_POINT = "qwenharness"  # the name pyproject.toml's [project.entry-points.pytest11] registers


def _other_checkout() -> bool:
    """True where the `qwenharness` imported is another checkout's (an older worktree run with this
    checkout's editable install): that one brings its own options (its root conftest), so this
    plugin stays out of the way instead of mixing the two trees."""
    return Path(sys.modules["qwenharness"].__file__ or "").resolve().parent != Path(__file__).resolve().parent.parent


if not _other_checkout():
    from .fixtures import engine_pool, gate_evaluations, gate_evidence, harness
    from .hooks import pytest_collection_modifyitems, pytest_generate_tests, pytest_runtest_setup
    from .options import pytest_addoption
    from .rootdir import pytest_load_initial_conftests
    from .session import HARNESS_OPTIONS, MARKERS, harness_options, pytest_configure

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

    # The report plugins (issue 7). qwenharness.report.html: milestone gate records under
    # <results>/gates/, and, where pytest-html is installed, a default `--html reports/<name>.html
    # --self-contained-html` whose summary shows the stored results; its pytest-html hooks are optional.
    pytest_plugins = ["qwenharness.report.html", "qwenharness.bench_summary"]

    __all__ = ["HARNESS_OPTIONS", "MARKERS", "engine_pool", "gate_evidence", "harness", "harness_options",
               "pytest_addoption", "pytest_collection_modifyitems", "pytest_configure", "pytest_generate_tests",
               "pytest_load_initial_conftests", "pytest_plugin_registered", "pytest_runtest_setup"]


def pytest_plugin_registered(plugin: Any, plugin_name: str, manager: Any) -> None:
    """Registered once only: by its entry point and by `-p qwenharness.pytest_plugin` (pytest.ini),
    PYTEST_PLUGINS or a conftest's pytest_plugins, this module would be registered under two names
    (pluggy refuses that with an internal error), so the name not used is blocked. (`-p` comes
    before the entry points and lifts a block on its own name, so whichever comes first wins.)"""
    if plugin is not sys.modules[__name__]:
        return
    other = __name__ if plugin_name == ENTRY_POINT else ENTRY_POINT
    if manager.get_plugin(other) is None and not manager.is_blocked(other):
        manager.set_blocked(other)
