"""EnginePool with a fake engine factory: one engine alive at a time, reuse on the same key."""

from __future__ import annotations

from typing import Any

import pytest

from qwenharness.engines.pool import EnginePool, group_stably
from qwenharness.errors import ConfigError
from qwenharness.presets import ResolvedConfig
from qwenharness.engines.base import IN_PROCESS


class FakeEngine:
    name = "fake"
    capabilities = IN_PROCESS
    alive: set[int] = set()  # ids of engines opened and not yet closed, across all instances

    def __init__(self, config: ResolvedConfig, backend: str) -> None:
        self.config, self.backend, self.closed = config, backend, False
        FakeEngine.alive.add(id(self))
        self.alive_at_open = len(FakeEngine.alive)

    def close(self) -> None:
        self.closed = True
        FakeEngine.alive.discard(id(self))


@pytest.fixture
def pool() -> Any:
    FakeEngine.alive.clear()
    opened: list[FakeEngine] = []

    def opener(config: ResolvedConfig, backend: str) -> FakeEngine:
        engine = FakeEngine(config, backend)
        opened.append(engine)
        return engine

    p = EnginePool(opener=opener, gpu=None)
    p.opened_engines = opened  # type: ignore[attr-defined]
    yield p
    p.close()


def test_reuses_the_engine_for_the_same_key(pool: EnginePool) -> None:
    a = pool.get("tiny", "balanced", "hf")
    b = pool.get("tiny", "balanced", "hf")
    assert a is b
    assert (pool.opened, pool.closed, pool.alive) == (1, 0, 1)
    assert len(pool.load_times) == 1


def test_one_engine_alive_at_a_time(pool: EnginePool) -> None:
    keys = [("tiny", "performance", "hf"), ("tiny", "balanced", "vllm"), ("tiny-2x", "balanced", "hf"),
            ("tiny", "performance", "hf")]
    engines = [pool.get(*k) for k in keys]
    opened: list[FakeEngine] = pool.opened_engines  # type: ignore[attr-defined]
    assert [e.alive_at_open for e in opened] == [1, 1, 1, 1]  # the previous one was closed first
    assert all(e.closed for e in engines[:-1]) and not engines[-1].closed
    assert (pool.opened, pool.closed, pool.max_alive, pool.alive) == (4, 3, 1, 1)
    assert engines[0] is not engines[-1]  # reopened after being closed
    assert engines[1].backend == "vllm" and engines[2].config.model.name == "tiny-2x"
    pool.close()
    assert FakeEngine.alive == set() and pool.alive == 0 and pool.closed == 4
    assert pool.engine_released() is False  # this test still holds it
    del engines, opened
    pool.opened_engines.clear()  # type: ignore[attr-defined]
    assert pool.engine_released() is True
    pool.close()  # idempotent
    assert pool.closed == 4


def test_overrides_are_part_of_the_key_and_reach_the_config(pool: EnginePool) -> None:
    a = pool.get("tiny", "balanced", "hf", max_model_len=512)
    b = pool.get("tiny", "balanced", "hf", max_model_len=512, max_num_seqs=4)
    assert a is not b and a.closed
    assert b.config.max_model_len == 512 and b.config.max_num_seqs == 4
    assert pool.current_key == EnginePool.make_key("tiny", "balanced", "hf", max_num_seqs=4, max_model_len=512)
    assert pool.get("tiny", "balanced", "hf", max_num_seqs=4, max_model_len=512) is b


def test_load_format_comes_from_the_pool() -> None:
    seen: list[ResolvedConfig] = []
    pool = EnginePool(opener=lambda c, b: seen.append(c) or FakeEngine(c, b), gpu=None, load_format="dummy")
    pool.get("tiny", "balanced", "hf")
    pool.close()
    assert seen[0].load_format == "dummy" and seen[0].device == "cpu"


def test_an_invalid_config_leaves_the_open_engine_alone(pool: EnginePool) -> None:
    a = pool.get("tiny", "balanced", "hf")
    with pytest.raises(ConfigError, match="unknown engine setting"):
        pool.get("tiny", "balanced", "hf", no_such_setting=1)
    with pytest.raises(ConfigError, match="context length"):
        pool.get("tiny", "balanced", "hf", max_model_len=10**6)
    assert not a.closed and pool.alive == 1


def test_a_failing_open_leaves_nothing_alive() -> None:
    def boom(config: ResolvedConfig, backend: str) -> FakeEngine:
        raise RuntimeError("engine failed to start")

    pool = EnginePool(opener=boom, gpu=None)
    with pytest.raises(RuntimeError):
        pool.get("tiny", "balanced", "hf")
    assert (pool.opened, pool.alive, pool.max_alive) == (0, 0, 0)


def test_group_stably_keeps_unkeyed_items_as_barriers() -> None:
    items = [("m", None), ("m", "a"), ("m", "b"), ("m", "a"), ("m", "b"), ("m", None), ("n", "b"), ("n", "a"),
             ("n", "b")]
    out = group_stably(list(enumerate(items)), key=lambda it: it[1][1], scope=lambda it: it[1][0])
    assert [i for i, _ in out] == [0, 1, 3, 2, 4, 5, 6, 8, 7]


def test_engine_key_tests_are_grouped_whatever_order_pytest_collects_them_in() -> None:
    from qwenharness.testing import engine_key_of

    # Interleaved as one pytest version ordered the GPU benchmarks: each switch reloaded a 14B engine.
    order = ["perf", "mem", "perf", "mem", "bal"]
    params = [{"engine_key": ("qwen3_14b", p, "vllm"), "batch_size": 1} for p in order]
    out = group_stably(list(enumerate(params)), key=lambda it: engine_key_of(it[1]), scope=lambda it: "module")
    assert [i for i, _ in out] == [0, 2, 1, 3, 4]
    assert engine_key_of({"model_name": "tiny", "preset_name": "balanced"}) == ("tiny", "balanced", None)
    assert engine_key_of({"dataset_name": "gsm8k"}) is None
