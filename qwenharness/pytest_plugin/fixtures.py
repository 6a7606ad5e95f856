"""The fixtures: `harness` (the run's options), `engine_pool` (one engine alive at a time),
`gate_evaluations` (milestone 3's evaluations, a model's datasets together where that applies) and
`gate_evidence` (what a gate test judged, recorded in its milestone's gate file)."""

from __future__ import annotations

import pytest

from ..gate_evidence import GateEvidence
from ..testing import HarnessOptions, item_params
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


@pytest.fixture(scope="session")
def gate_evaluations(request: pytest.FixtureRequest, harness: HarnessOptions, engine_pool):  # noqa: ANN001, ANN201
    """`gate_evaluations.evaluate(model, dataset)` -> (EvalSettings, DatasetResult), from the tests
    the session collected with both `model_name` and `dataset_name` parameters."""
    from ..gate_evaluations import GateEvaluations

    collected: dict[str, list[str]] = {}
    for item in request.session.items:
        params = item_params(item)
        if "model_name" in params and "dataset_name" in params:
            datasets = collected.setdefault(params["model_name"], [])
            if params["dataset_name"] not in datasets:
                datasets.append(params["dataset_name"])
    return GateEvaluations(harness, engine_pool, collected)


@pytest.fixture
def gate_evidence(request: pytest.FixtureRequest, harness: HarnessOptions) -> GateEvidence:
    """`gate_evidence.add("evaluations", model, preset, dataset)`: the stored result this test judged
    (qwenharness/gate_evidence.py); later gates and the reports read only what a verdict judged."""
    return GateEvidence(request.node, harness.run_id)
