"""The one registry of tasks and engines: built-in ones by name, outside ones by decorator or entry point.

A task or an engine is found by name in this order: registered in this process (`@register_task`,
`@register_engine`), built in (named below as "module:attribute" and imported only when asked for,
so one task's dependencies never load another's), then the entry points of installed packages:

    [project.entry-points."qwenharness.tasks"]
    my_task = "my_package.tasks:MyTask"        # a Task subclass carrying its DatasetSpec (`dataset`)
    [project.entry-points."qwenharness.engines"]
    my_engine = "my_package.engine:open_my_engine"   # (ResolvedConfig, endpoint) -> Engine

docs/extending.md shows a whole task and engine in one module each.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any, TypeVar

from .errors import UnknownNameError

T = TypeVar("T")

TASK_GROUP = "qwenharness.tasks"
ENGINE_GROUP = "qwenharness.engines"


class Registry:
    """Names to objects of one kind, resolved lazily: built-ins as import paths, then registrations,
    then entry points of the group (read at each miss, so a package installed later is found)."""

    def __init__(self, kind: str, group: str, builtin: dict[str, str]) -> None:
        self.kind, self.group = kind, group
        self._builtin = dict(builtin)
        self._registered: dict[str, Any] = {}

    def register(self, name: str, obj: Any) -> Any:
        if name in self._builtin:
            raise ValueError(f"{self.kind} '{name}' is built in; choose another name")
        self._registered[name] = obj
        return obj

    def unregister(self, name: str) -> None:
        self._registered.pop(name, None)

    def _plugins(self) -> dict[str, Any]:
        return {ep.name: ep for ep in entry_points(group=self.group)}

    def builtin_names(self) -> list[str]:
        return list(self._builtin)

    def names(self) -> list[str]:
        """Built-ins first, in their order, then registrations and installed plugins."""
        out = list(self._builtin)
        out += [n for n in self._registered if n not in out]
        out += [n for n in self._plugins() if n not in out]
        return out

    def is_builtin(self, name: str) -> bool:
        return name in self._builtin

    def get(self, name: str, *, or_all: bool = False) -> Any:
        """The object of `name`; an unknown name raises with a did-you-mean and the listing (plus
        "or 'all'" where the caller accepts it), built only then."""
        if name in self._registered:
            return self._registered[name]
        if name in self._builtin:
            module, attr = self._builtin[name].split(":")
            return getattr(importlib.import_module(module), attr)
        plugin = self._plugins().get(name)
        if plugin is not None:
            return plugin.load()
        from .console import did_you_mean

        names = self.names()
        listing = f"choose from {', '.join(names)}" + (" or 'all'" if or_all else "")
        raise UnknownNameError(f"unknown {self.kind} '{name}'", did_you_mean(name, names, listing))


TASKS = Registry("dataset", TASK_GROUP, {
    "hellaswag": "qwenharness.tasks.multiple_choice:HellaSwag",
    "arc_challenge": "qwenharness.tasks.multiple_choice:ARCChallenge",
    "arc_easy": "qwenharness.tasks.multiple_choice:ARCEasy",
    "mmlu": "qwenharness.tasks.multiple_choice:MMLU",
    "piqa": "qwenharness.tasks.multiple_choice:PIQA",
    "winogrande": "qwenharness.tasks.multiple_choice:WinoGrande",
    "boolq": "qwenharness.tasks.multiple_choice:BoolQ",
    "truthfulqa_mc": "qwenharness.tasks.multiple_choice:TruthfulQAMC",
    "gsm8k": "qwenharness.tasks.gsm8k:GSM8K",
    "math500": "qwenharness.tasks.math500:MATH500",
    "humaneval": "qwenharness.tasks.code:HumanEval",
    "mbpp": "qwenharness.tasks.code:MBPP",
    "ifeval": "qwenharness.tasks.ifeval:IFEval",
    "mt_bench": "qwenharness.tasks.mt_bench:MTBench",
})

ENGINES = Registry("backend", ENGINE_GROUP, {
    "vllm": "qwenharness.engines:open_vllm_engine",
    "hf": "qwenharness.engines:open_hf_engine",
    "openai": "qwenharness.engines:open_openai_engine",
})


def register_task(name: str) -> Callable[[T], T]:
    """Class decorator: `@register_task("my_task")` on a Task subclass whose `dataset` is its DatasetSpec."""

    def add(cls: T) -> T:
        from .data.registry import DatasetSpec

        spec = cls.dataset  # type: ignore[attr-defined]
        if not isinstance(spec, DatasetSpec) or spec.name != name:
            raise TypeError(f"task '{name}' must carry its DatasetSpec as the class attribute `dataset` "
                            f"(with name '{name}')")
        return TASKS.register(name, cls)

    return add


def register_engine(name: str) -> Callable[[T], T]:
    """Decorator for an engine factory `(config, endpoint) -> Engine` (endpoint: a server, or None).
    An in-process engine finds its model folder with `qwenharness.engines.resolve_model_dir(config)`."""

    def add(factory: T) -> T:
        return ENGINES.register(name, factory)

    return add
