"""GPU gating, parametrization from the options, milestone order, and grouping tests by engine."""

from __future__ import annotations

import pytest

from ..testing import engine_key_of, item_params
from .session import harness_options


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("gpu") is None:
        return
    options = harness_options(item.config)
    if options.gpu is None:
        reason = "no NVIDIA GPU visible to NVML"
        if options.require_gpu:
            pytest.fail(f"{reason}, and --require-gpu was given", pytrace=False)
        pytest.skip(f"{reason}; this test runs on a GPU machine (use --require-gpu to make this a failure)")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    options = harness_options(metafunc.config)
    params = {
        "model_name": options.models,
        "preset_name": options.presets,
        "dataset_name": options.datasets,
        "backend_name": options.backends,
    }
    for name, values in params.items():
        if name in metafunc.fixturenames:
            metafunc.parametrize(name, values, scope="session" if name != "dataset_name" else "function")


# -- milestones run in order, whatever order the paths were given in ---------------------------------
def _milestone_rank(item: pytest.Item) -> int:
    """Milestone N's tests run before milestone N+1's (a later gate reads the earlier ones' verdicts
    in the same session), and the unmarked tests after them, as in pytest.ini's testpaths."""
    from ..report.collect import MILESTONES

    return next((i for i, m in enumerate(MILESTONES) if item.get_closest_marker(m) is not None), len(MILESTONES))


# -- engines: one alive at a time, each opened once per session (issue 3) --------------------------
def _engine_key(item: pytest.Item) -> tuple[object, ...] | None:
    return engine_key_of(item_params(item))


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Group parametrized tests by (model, preset, backend) within each module, keeping their order
    otherwise, so the session's EnginePool opens each engine once; then put the milestones in order
    (`_milestone_rank`), after any reordering plugin (trylast). Under pytest-xdist each engine key
    also becomes an xdist_group, so `--dist loadgroup` keeps an engine's tests on one worker."""
    from ..engines.pool import group_stably

    items[:] = group_stably(items, _engine_key, lambda it: getattr(it, "path", None))
    items.sort(key=_milestone_rank)  # stable: the grouping above holds within each milestone
    if config.pluginmanager.hasplugin("xdist"):
        for item in items:
            key = _engine_key(item)
            if key is not None and None not in key:
                item.add_marker(pytest.mark.xdist_group(name="engine-" + "-".join(map(str, key))))
