"""Task registry: dataset name -> Task class, imported lazily so one task's deps don't load all."""

from __future__ import annotations

import importlib

from ..errors import UnknownNameError
from .base import Task, TaskOptions

_TASKS: dict[str, str] = {
    "hellaswag": "multiple_choice:HellaSwag",
    "arc_challenge": "multiple_choice:ARCChallenge",
    "arc_easy": "multiple_choice:ARCEasy",
    "mmlu": "multiple_choice:MMLU",
    "piqa": "multiple_choice:PIQA",
    "winogrande": "multiple_choice:WinoGrande",
    "boolq": "multiple_choice:BoolQ",
    "truthfulqa_mc": "multiple_choice:TruthfulQAMC",
    "gsm8k": "gsm8k:GSM8K",
    "math500": "math500:MATH500",
    "humaneval": "code:HumanEval",
    "mbpp": "code:MBPP",
    "ifeval": "ifeval:IFEval",
    "mt_bench": "mt_bench:MTBench",
}


def get_available_tasks() -> list[str]:
    return list(_TASKS)


def get_task(name: str) -> Task:
    """The task of a dataset; a part of one (`mmlu:stem`) is checked and gets its dataset's task."""
    if ":" in name:
        from ..data.subsets import parse_selection

        name = parse_selection(name).dataset
    try:
        target = _TASKS[name]
    except KeyError:
        from ..console import did_you_mean

        raise UnknownNameError(f"unknown dataset '{name}'",
                               did_you_mean(name, _TASKS, f"choose from {', '.join(_TASKS)} or 'all'")) from None
    module, cls = target.split(":")
    return getattr(importlib.import_module(f"{__name__}.{module}"), cls)()


__all__ = ["Task", "TaskOptions", "get_available_tasks", "get_task"]
