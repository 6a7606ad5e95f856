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
    max_judge_parse_failure_rate: float = 0.5
    gpu_floors: tuple["CardFloor", ...] = ()

    def card_floor(self, gpu_name: str | None) -> "CardFloor | None":
        """The per-card floor whose `match` occurs in the GPU's name (first in the file wins)."""
        for f in self.gpu_floors:
            if gpu_name and f.match.lower() in gpu_name.lower():
                return f
        return None

    def min_output_tokens_per_s(self, device: str, gpu_name: str | None = None) -> float:
        """CPU floor; on a GPU the floor measured for that card, else the generic GPU floor."""
        if device != "cuda":
            return self.cpu_min_output_tokens_per_s
        card = self.card_floor(gpu_name)
        return card.min_output_tokens_per_s if card else self.gpu_min_output_tokens_per_s

    def floor_source(self, device: str, gpu_name: str | None = None) -> str:
        card = self.card_floor(gpu_name) if device == "cuda" else None
        return f"{self.source} [throughput.gpu.{card.match}]: {card.derivation}" if card else self.source

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class CardFloor:
    """Milestone-2 output tokens/s floor for one GPU model, derived from measured figures."""

    match: str  # a substring of the NVML name, e.g. "H100"
    min_output_tokens_per_s: float
    derivation: str  # where the measured figures are and how the floor follows from them


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
    judge = (data.get("evaluation") or {}).get("max_judge_parse_failure_rate", 0.5)
    if isinstance(judge, bool) or not isinstance(judge, (int, float)) or not 0 <= judge <= 1:
        raise ConfigError(f"gate [evaluation] max_judge_parse_failure_rate in {file} must be a fraction, got {judge!r}",
                          "use a value between 0 and 1, e.g. 0.5")
    floors = []
    for match, entry in ((data.get("throughput") or {}).get("gpu") or {}).items():
        floor = entry.get("min_output_tokens_per_s") if isinstance(entry, dict) else None
        derivation = entry.get("source") if isinstance(entry, dict) else None
        if isinstance(floor, bool) or not isinstance(floor, (int, float)) or floor <= 0 or not derivation:
            raise ConfigError(f"gate [throughput.gpu.{match}] in {file} needs a positive min_output_tokens_per_s "
                              "and a source", "state the floor and where its measured figures are")
        floors.append(CardFloor(str(match), float(floor), str(derivation)))
    return Gates(source=str(file), max_judge_parse_failure_rate=float(judge), gpu_floors=tuple(floors), **values)
