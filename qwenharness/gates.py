"""Gate thresholds, read from qwenharness/config/gates.toml (or the file QWENHARNESS_GATES names)."""

from __future__ import annotations

import os
import tomllib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .errors import ConfigError

DEFAULT_GATES_FILE = Path(__file__).parent / "config" / "gates.toml"


@dataclass(frozen=True)
class Gates:
    gpu_min_output_tokens_per_s: float
    cpu_min_output_tokens_per_s: float
    peak_tolerance_bytes: int
    post_close_tolerance_bytes: int
    cpu_rss_tolerance_bytes: int
    error_budget: float
    source: str

    def min_output_tokens_per_s(self, device: str) -> float:
        return self.gpu_min_output_tokens_per_s if device == "cuda" else self.cpu_min_output_tokens_per_s

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


_FIELDS: dict[str, tuple[str, str, type]] = {
    "gpu_min_output_tokens_per_s": ("throughput", "gpu_min_output_tokens_per_s", float),
    "cpu_min_output_tokens_per_s": ("throughput", "cpu_min_output_tokens_per_s", float),
    "peak_tolerance_bytes": ("memory", "peak_tolerance_bytes", int),
    "post_close_tolerance_bytes": ("memory", "post_close_tolerance_bytes", int),
    "cpu_rss_tolerance_bytes": ("memory", "cpu_rss_tolerance_bytes", int),
    "error_budget": ("evaluation", "error_budget", float),
}


def load_gates(path: str | Path | None = None) -> Gates:
    """Read the thresholds; ConfigError names the file and the missing or malformed key."""
    file = Path(path or os.environ.get("QWENHARNESS_GATES") or DEFAULT_GATES_FILE)
    try:
        data = tomllib.loads(file.read_text())
    except FileNotFoundError:
        raise ConfigError(f"gate file {file} does not exist",
                          f"restore it or point QWENHARNESS_GATES at a copy of {DEFAULT_GATES_FILE}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"gate file {file} is not valid TOML: {exc}", "fix the syntax") from None
    values: dict[str, Any] = {}
    for name, (section, key, kind) in _FIELDS.items():
        try:
            raw = data[section][key]
        except (KeyError, TypeError):
            raise ConfigError(f"gate file {file} lacks [{section}] {key}",
                              f"add it (see {DEFAULT_GATES_FILE})") from None
        if isinstance(raw, bool) or not isinstance(raw, (int, float)) or raw < 0:
            raise ConfigError(f"gate [{section}] {key} in {file} must be a non-negative number, got {raw!r}",
                              "write a number")
        values[name] = kind(raw)
    if values["error_budget"] > 1:
        raise ConfigError(f"gate [evaluation] error_budget in {file} is a fraction, got {values['error_budget']}",
                          "use a value between 0 and 1, e.g. 0.05")
    return Gates(source=str(file), **values)
