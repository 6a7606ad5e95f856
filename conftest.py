"""Root conftest: the suite's command-line options, GPU gating, parametrization and engine fixtures.

Tests stay thin: everything they need comes from the `qwenharness` library.
"""

from __future__ import annotations

import os

import pytest

from qwenharness.testing import HarnessOptions, engine_key_of

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def pytest_addoption(parser: pytest.Parser) -> None:
    g = parser.getgroup("qwenharness")
    g.addoption("--models", default=None,
                help="comma-separated model names (default: tiny on CPU, qwen3_8b,qwen3_14b on GPU)")
    g.addoption("--presets", default=None, help="comma-separated presets (default: all three)")
    g.addoption("--datasets", default=None, help="comma-separated datasets or 'all' (default: all 14)")
    g.addoption("--sample-limit", default=None,
                help="samples per dataset (reproducible subset): N, or name=N,...[,default=N]")
    g.addoption("--doc-ids", default=None,
                help='exactly these documents per dataset: \'{"arc_easy": [0, 17]}\' or a file holding that object')
    g.addoption("--backend", default="auto",
                help="vllm, hf, openai (a running server: --base-url), or several comma-separated "
                "(default: vllm on GPU, vllm,hf on CPU)")
    g.addoption("--data-dir", default=None, help="folder of local dataset files (default: see README)")
    g.addoption("--results-dir", default="results", help="where results are written (default: results)")
    g.addoption("--run-id", default="pytest", help="run id under results/evaluations (default: pytest)")
    g.addoption("--require-gpu", action="store_true", help="fail, instead of skip, tests that need a GPU")
    g.addoption("--validate-only", action="store_true",
                help="check configurations without loading models (milestone 2)")
    g.addoption("--load-format", default="auto", choices=("auto", "dummy"),
                help="'dummy' runs real architectures with random weights (vLLM)")
    from qwenharness.testing import add_engine_pytest_options

    add_engine_pytest_options(g)  # --max-model-len ... --engine-args, --base-url ... --judge-base-url


def pytest_configure(config: pytest.Config) -> None:
    _pin_xdist_worker_gpu()  # first: before anything can initialise CUDA (see docs/xdist.md)
    config._harness_options = HarnessOptions.from_pytest(config)  # type: ignore[attr-defined]


@pytest.fixture(scope="session")
def harness(pytestconfig: pytest.Config) -> HarnessOptions:
    return pytestconfig._harness_options  # type: ignore[attr-defined]


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("gpu") is None:
        return
    options: HarnessOptions = item.config._harness_options  # type: ignore[attr-defined]
    if options.gpu is None:
        reason = "no NVIDIA GPU visible to NVML"
        if options.require_gpu:
            pytest.fail(f"{reason}, and --require-gpu was given", pytrace=False)
        pytest.skip(f"{reason}; this test runs on a GPU machine (use --require-gpu to make this a failure)")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    options: HarnessOptions = metafunc.config._harness_options  # type: ignore[attr-defined]
    params = {
        "model_name": options.models,
        "preset_name": options.presets,
        "dataset_name": options.datasets,
        "backend_name": options.backends,
    }
    for name, values in params.items():
        if name in metafunc.fixturenames:
            metafunc.parametrize(name, values, scope="session" if name != "dataset_name" else "function")


# -- engines: one alive at a time, each opened once per session (issue 3) --------------------------
def _pin_xdist_worker_gpu() -> None:
    """Under pytest-xdist, pin worker gwN to GPU N (CUDA_VISIBLE_DEVICES); no-op otherwise or on CPU."""
    from qwenharness.errors import HarnessError
    from qwenharness.gpu import pin_xdist_worker

    try:
        pin_xdist_worker()
    except HarnessError as exc:
        raise pytest.UsageError(str(exc)) from None


def _engine_key(item: pytest.Item) -> tuple[object, ...] | None:
    return engine_key_of(getattr(getattr(item, "callspec", None), "params", {}))


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Group parametrized tests by (model, preset, backend) within each module, keeping their order
    otherwise, so the session's EnginePool opens each engine once. Under pytest-xdist each engine key
    also becomes an xdist_group, so `--dist loadgroup` keeps an engine's tests on one worker."""
    from qwenharness.engines.pool import group_stably

    items[:] = group_stably(items, _engine_key, lambda it: getattr(it, "path", None))
    if config.pluginmanager.hasplugin("xdist"):
        for item in items:
            key = _engine_key(item)
            if key is not None and None not in key:
                item.add_marker(pytest.mark.xdist_group(name="engine-" + "-".join(map(str, key))))


@pytest.fixture(scope="session")
def engine_pool(harness: HarnessOptions):  # noqa: ANN201 - yields an EnginePool
    """The session's EnginePool: `engine_pool.get(model, preset, backend)`; closed at session end."""
    from qwenharness.engines.pool import EnginePool

    pool = EnginePool(gpu="auto", load_format=harness.load_format, overrides=harness.engine.overrides(),
                      server=harness.server, judge_server=harness.judge_server)
    yield pool
    pool.close()


# -- reports (issue 7) -----------------------------------------------------------------------------
# qwenharness.report.html: milestone gate records under <results>/gates/, and, where pytest-html is
# installed, a default `--html reports/<name>.html --self-contained-html` whose summary shows the stored
# results (tables and plots). Its pytest-html hooks are optional, so it loads without pytest-html too.
pytest_plugins = ["qwenharness.report.html", "qwenharness.bench_summary"]
