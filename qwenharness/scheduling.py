"""How an evaluation uses its engine: the compilation mode it starts vLLM with, and whether a model's
datasets are evaluated together (their generation calls merged, engines/merging.py)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from .errors import ConfigError, HarnessError

if TYPE_CHECKING:
    from .tasks.base import Task


def evaluation_compilation(datasets: list[str], task_factory: Callable[[str], Task] | None = None) -> str:
    """How an evaluation starts vLLM unless --compilation says: "graphs" (CUDA graphs, no torch.compile)
    when a dataset generates text, "eager" when every one is scored by log-likelihoods.

    torch.compile cost 20-47 s of each engine start on the H200 and CUDA-graph capture 2-8 s
    (docs/benchmarks.md, 2026-12-01); an evaluation pays them once per model, where a benchmark
    amortises them. Decoding needs the graphs (eager steps measured 3-4x slower), log-likelihoods
    decode nothing."""
    from .tasks import get_task

    factory = task_factory or get_task

    def generates(name: str) -> bool:
        try:
            return factory(name).output_type != "loglikelihood"
        except HarnessError:  # the dataset fails on its own later; graphs suit any task
            return True
    return "graphs" if any(generates(d) for d in datasets) else "eager"


def concurrent_datasets_apply(mode: str, backend: str, on_gpu: bool) -> bool:
    """Whether a model's datasets are evaluated together: `mode` "on", or "auto" for vLLM on a GPU,
    where merged generation calls decode several datasets' answers in one batch (on a CPU the cores
    are busy with one dataset already)."""
    if mode not in ("auto", "on", "off"):
        raise ConfigError(f"concurrent_datasets must be auto, on or off, not {mode!r}",
                          "use --concurrent-datasets auto, on or off")
    return mode == "on" or (mode == "auto" and backend == "vllm" and on_gpu)
