"""The session fixtures: `harness` (the run's options) and `engine_pool` (one engine alive at a time)."""

from __future__ import annotations

import pytest

from ..testing import HarnessOptions
from .session import harness_options


@pytest.fixture(scope="session")
def harness(pytestconfig: pytest.Config) -> HarnessOptions:
    return harness_options(pytestconfig)


@pytest.fixture(scope="session")
def engine_pool(harness: HarnessOptions):  # noqa: ANN201 - yields an EnginePool
    """The session's EnginePool: `engine_pool.get(model, preset, backend)`; closed at session end."""
    from ..engines.pool import EnginePool

    pool = EnginePool(gpu="auto", load_format=harness.load_format, overrides=harness.engine.overrides(),
                      server=harness.server, judge_server=harness.judge_server)
    yield pool
    pool.close()
