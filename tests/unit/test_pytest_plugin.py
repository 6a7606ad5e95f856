"""The suite's pytest plugin, qwenharness.pytest_plugin (issue 14), run on small generated test files
with pytester: its options, parametrization, GPU gating, rootdir choice and single registration."""

from __future__ import annotations

import configparser
from importlib.metadata import distributions
from pathlib import Path

import pytest

from qwenharness.hardware import detect_gpu
from qwenharness.pytest_plugin import MARKERS

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[2]
QUIET = ("-p", "no:cacheprovider", "-p", "no:html")


def _run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest(*QUIET, *args)


def test_the_entry_point_names_the_plugin() -> None:
    # every distribution, as pluggy reads them (a stale qwenharness.egg-info in the checkout can come first)
    eps = {(ep.name, ep.value) for dist in distributions() for ep in dist.entry_points if ep.group == "pytest11"}
    assert ("qwenharness", "qwenharness.pytest_plugin") in eps, "reinstall: pip install -e ."


def test_options_reach_the_harness_fixture(pytester: pytest.Pytester, tmp_path: Path) -> None:
    results = tmp_path / "results"
    results.mkdir()
    pytester.makepyfile(f"""
        from pathlib import Path

        def test_options(harness):
            assert harness.models == ["tiny"]
            assert harness.results_dir == Path({str(results)!r})
            assert harness.engine.max_model_len == 512
    """)
    _run(pytester, "--models", "tiny", "--results-dir", str(results), "--max-model-len", "512").assert_outcomes(passed=1)


def test_one_test_per_model_and_preset(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("""
        def test_engine(model_name, preset_name):
            assert model_name in ("tiny", "tiny-2x") and preset_name == "balanced"
    """)
    _run(pytester, "--models", "tiny,tiny-2x", "--presets", "balanced").assert_outcomes(passed=2)


def test_gpu_tests_skip_on_cpu_and_fail_under_require_gpu(pytester: pytest.Pytester) -> None:
    if detect_gpu() is not None:
        pytest.skip("a GPU is visible: gpu tests run here")
    pytester.makepyfile("""
        import pytest

        @pytest.mark.gpu
        def test_on_gpu():
            pass
    """)
    skipped = _run(pytester, "--strict-markers", "-rs")  # the marker is the plugin's, with no ini here
    skipped.assert_outcomes(skipped=1)
    skipped.stdout.fnmatch_lines(["*no NVIDIA GPU visible to NVML*--require-gpu*"])
    failed = _run(pytester, "--strict-markers", "--require-gpu")
    failed.assert_outcomes(errors=1)
    failed.stdout.fnmatch_lines(["*no NVIDIA GPU visible to NVML, and --require-gpu was given*"])


def test_an_existing_results_dir_is_not_the_rootdir(pytester: pytest.Pytester, tmp_path: Path) -> None:
    """`--results-dir DIR` with DIR existing: pytest's first look at the command line took DIR for a
    test path, so DIR became the rootdir and the ini file (with its testpaths) was lost."""
    results = tmp_path / "results"
    results.mkdir()
    pytester.makeini("[pytest]\ntestpaths = tests\n")
    pytester.makepyfile(test_outside_testpaths="def test_not_collected():\n    raise AssertionError\n")
    (pytester.path / "tests").mkdir()
    (pytester.path / "tests" / "test_in.py").write_text(
        "def test_results(harness):\n"
        f"    assert str(harness.results_dir) == {str(results)!r}\n")
    result = _run(pytester, "--results-dir", str(results))
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines([f"rootdir: {pytester.path}", "configfile: tox.ini"])


def test_registered_once_with_the_entry_point_and_dash_p(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_options(harness):\n    assert harness.models\n")
    _run(pytester, "-p", "qwenharness.pytest_plugin").assert_outcomes(passed=1)


def test_bad_values_are_usage_errors(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_nothing():\n    pass\n")
    typo = _run(pytester, "--models", "tyni")
    assert typo.ret == pytest.ExitCode.USAGE_ERROR
    typo.stderr.fnmatch_lines(["*unknown model 'tyni' (did you mean tiny?*"])
    negative = _run(pytester, "--max-model-len", "-3")
    assert negative.ret == pytest.ExitCode.USAGE_ERROR
    negative.stderr.fnmatch_lines(["*argument --max-model-len: must be at least 1, got -3*"])


def test_the_plugins_markers_are_pytest_ini_s() -> None:
    ini = configparser.ConfigParser()
    ini.read(ROOT / "pytest.ini")
    lines = [line.strip() for line in ini["pytest"]["markers"].strip().splitlines()]
    assert dict(line.split(": ", 1) for line in lines) == MARKERS
