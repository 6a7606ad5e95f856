"""Errors that carry a fix. The CLI prints them as one line and exits with status 2."""

from __future__ import annotations


class HarnessError(Exception):
    """A user-facing error: what went wrong and how to fix it."""

    def __init__(self, problem: str, fix: str | None = None):
        self.problem = problem
        self.fix = fix
        super().__init__(f"{problem} ({fix})" if fix else problem)


class UnknownNameError(HarnessError, KeyError):
    """An unknown model, preset, dataset or backend name."""

    def __str__(self) -> str:  # KeyError would add quotes
        return Exception.__str__(self)


class ConfigError(HarnessError, ValueError):
    """A configuration that cannot run (does not fit, too long a context, too many GPUs)."""


class DataError(HarnessError, ValueError):
    """Missing, malformed or truncated dataset files, or an unreachable Hub."""


class EngineError(HarnessError, RuntimeError):
    """An inference engine failed to start or to run (missing package, out of memory)."""
