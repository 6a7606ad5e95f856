"""Tasks by dataset name, through the one registry (qwenharness.registry): built-ins are imported
lazily, so one task's dependencies never load all; outside tasks come by decorator or entry point."""

from __future__ import annotations

from ..registry import TASKS, register_task
from .base import Task, TaskOptions


def get_available_tasks() -> list[str]:
    return TASKS.names()


def get_task(name: str) -> Task:
    """The task of a dataset; a part of one (`mmlu:stem`) is checked and gets its dataset's task."""
    if ":" in name:
        from ..data.subsets import parse_selection

        name = parse_selection(name).dataset
    return TASKS.get(name, or_all=True)()


__all__ = ["Task", "TaskOptions", "get_available_tasks", "get_task", "register_task"]
