"""Per-dataset sample counts: `--sample-limit 20` for every dataset, or
`--sample-limit arc_easy=200,humaneval=164,default=20` (datasets not named get `default`, else all)."""

from __future__ import annotations

from dataclasses import dataclass, field

from .errors import ConfigError


@dataclass(frozen=True)
class SampleLimits:
    default: int | None = None  # None: every document
    per_dataset: dict[str, int] = field(default_factory=dict)

    def for_dataset(self, dataset: str) -> int | None:
        return self.per_dataset.get(dataset, self.default)

    def __str__(self) -> str:
        parts = [f"{k}={v}" for k, v in self.per_dataset.items()]
        if self.default is not None:
            parts.append(f"default={self.default}" if parts else str(self.default))
        return ",".join(parts) or "all"


def parse_sample_limits(text: str | int | None, known: list[str] | None = None) -> SampleLimits:
    """Parse the option; a count below 1 or an unknown dataset name is an error naming the fix."""
    if text is None or text == "":
        return SampleLimits()
    if isinstance(text, int):
        return SampleLimits(default=_count(str(text), "--sample-limit"))
    default: int | None = None
    per: dict[str, int] = {}
    items = [p.strip() for p in str(text).split(",")]
    if len(items) > 1 and any(i and "=" not in i for i in items):
        raise ConfigError(f"--sample-limit '{text}': a bare count must stand alone",
                          "use default=N beside name=N items")
    for item in (p.strip() for p in str(text).split(",")):
        if not item:
            raise ConfigError(f"--sample-limit '{text}' has an empty item", "write N or name=N,name=N")
        if "=" not in item:
            default = _count(item, "--sample-limit")
            continue
        name, _, value = (s.strip() for s in item.partition("="))
        if name == "default":
            default = _count(value, f"--sample-limit {name}")
            continue
        if known is not None and name not in known:
            from difflib import get_close_matches

            near = get_close_matches(name, known, n=1)
            raise ConfigError(f"--sample-limit names an unknown dataset '{name}'",
                              f"did you mean {near[0]}?" if near else f"choose from {', '.join(known)}")
        per[name] = _count(value, f"--sample-limit {name}")
    return SampleLimits(default=default, per_dataset=per)


def _count(value: str, what: str) -> int:
    try:
        n = int(value)
    except ValueError:
        raise ConfigError(f"{what} must be a whole number, got '{value}'", "use e.g. --sample-limit 20") from None
    if n < 1:
        raise ConfigError(f"{what} must be at least 1, got {n}", "use e.g. --sample-limit 20")
    return n
