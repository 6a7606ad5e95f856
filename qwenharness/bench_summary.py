"""pytest plugin: the benchmark figures that matter, printed at the end of the run.

pytest-benchmark's own table shows wall times; the figures a user reads a benchmark run for (output
tokens/s, the fraction of the batch-1 bandwidth bound, the harness-overhead ratio against its goal)
live in each benchmark's `extra_info`. This plugin gathers them per engine (model/preset/backend) and
prints one line each in pytest's terminal summary, whatever the capture setting.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import pytest

from .bench import overhead_verdict
from .testing import engine_key_of, item_params

_STASH = pytest.StashKey[dict[tuple[Any, ...], dict[str, Any]]]()


def pytest_configure(config: pytest.Config) -> None:
    config.stash[_STASH] = defaultdict(dict)


def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> None:
    if call.when != "call" or call.excinfo is not None:
        return
    fixture = getattr(item, "funcargs", {}).get("benchmark")
    extra = getattr(fixture, "extra_info", None)
    params = item_params(item)
    key = engine_key_of(params)
    if not extra or key is None:
        return
    figures = item.config.stash[_STASH][key]
    name = getattr(item, "originalname", item.name)
    if name == "test_latency":
        figures[f"batch_{extra.get('batch_size')}"] = extra
    else:
        figures[name] = extra


def _num(x: Any, fmt: str) -> str:
    return format(x, fmt) if isinstance(x, (int, float)) else "n/a"


def summary_line(key: tuple[Any, ...], f: dict[str, Any]) -> str:
    parts = []
    if "test_offline_throughput" in f:
        parts.append(f"{_num(f['test_offline_throughput'].get('output_tokens_per_s'), ',.0f')} output tok/s "
                     "(throughput workload)")
    for name in sorted((k for k in f if k.startswith("batch_")), key=lambda k: int(k.split("_")[1])):
        b = f[name]
        text = f"batch {name.split('_')[1]}: {_num(b.get('output_tokens_per_s'), ',.1f')} tok/s"
        if "bandwidth_fraction" in b:
            fraction = b.get("bandwidth_fraction")
            text += (f", {fraction:.3f} of the bandwidth bound" if isinstance(fraction, (int, float))
                     else ", no bandwidth bound (no known GPU)")
        parts.append(text)
    if "test_harness_overhead" in f:
        ratio = f["test_harness_overhead"].get("overhead_ratio")
        verdict = f" ({overhead_verdict(ratio)})" if isinstance(ratio, (int, float)) else ""
        parts.append(f"harness overhead ratio {_num(ratio, '.3f')}{verdict}")
    return "/".join(str(k) for k in key) + ": " + "; ".join(parts)


@pytest.hookimpl(trylast=True)
def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    figures = config.stash.get(_STASH, {})
    if not figures:
        return
    terminalreporter.section("qwenharness benchmark figures")
    for key, f in figures.items():
        terminalreporter.write_line(summary_line(key, f))
