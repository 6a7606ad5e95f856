"""Published Qwen results (qwenharness/config/published_results.json) beside the measured ones.

Each published figure carries its source and the settings the source states (shots, chain of
thought, chat format, judge). A measured aggregate is compared with a published figure of the same
benchmark when the published model is the measured model itself or a sibling of it (e.g. the base
model of the post-trained checkpoint that was measured). The verdict:

- "consistent" / "outside the measured 95% interval": every checked setting matches (model variant,
  dataset, metric, shots, chat format); differs when the published value lies outside the measured
  95% interval (Wilson for 0/1 scores; results stored without one: 1.96 x the standard error);
- "settings differ": at least one checked setting is different (listed);
- "settings not stated by the source": nothing differs, but the source leaves a checked setting open;
- models without a published counterpart (the embedded tiny models) map to no entry.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .collect import Evaluation

DEFAULT_FILE = Path(__file__).resolve().parent.parent / "config" / "published_results.json"
Z_95 = 1.96
CONSISTENT = "consistent"
DIFFERS = "outside the measured 95% interval"
SETTINGS_DIFFER = "settings differ"
NOT_STATED = "settings not stated by the source"


@dataclass(frozen=True)
class PublishedResult:
    model: str  # as the source names it, e.g. Qwen3-8B-Base
    hub_id: str
    variant: str  # base | instruct | chat
    siblings: tuple[str, ...]  # Hub ids of the related checkpoints this figure may be shown beside
    benchmark: str  # as the source names it
    dataset: str | None  # harness dataset, None where the harness has no equivalent
    metric: str | None  # harness metric name
    value: float  # as printed in the source
    scale: float  # value / scale is on the harness's metric scale
    settings: dict[str, Any]
    source_key: str
    source: dict[str, Any]
    why_no_dataset: str | None = None

    @property
    def harness_value(self) -> float:
        return self.value / self.scale


@dataclass
class Comparison:
    model: str  # harness model
    preset: str
    published: PublishedResult
    measured: Evaluation | None
    verdict: str
    differences: list[str] = field(default_factory=list)
    unstated: list[str] = field(default_factory=list)
    delta: float | None = None  # measured - published, harness scale
    threshold: float | None = None  # 1.96 x measured stderr
    interval: tuple[float, float] | None = None  # the measured 95% interval, where stored
    notes: list[str] = field(default_factory=list)  # known sources of difference (quantised weights)


@functools.lru_cache(maxsize=4)
def _load_cached(path: str) -> tuple[PublishedResult, ...]:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"published results file {path} does not exist",
                          f"restore it from the repository ({DEFAULT_FILE.name})") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"published results file {path} is not valid JSON: {exc}", "fix the syntax") from None
    out = []
    for i, r in enumerate(data.get("results", [])):
        try:
            model = data["models"][r["model"]]
            bench = data["benchmarks"][r["benchmark"]]
            source = data["sources"][r["source"]]
            value = float(r["value"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"published results file {path}: entry {i} is incomplete ({exc!r})",
                              "every entry needs a known model, benchmark and source, and a numeric value") from None
        out.append(PublishedResult(
            model=r["model"], hub_id=model["hub_id"], variant=model["variant"],
            siblings=tuple(model.get("siblings", [])), benchmark=r["benchmark"], dataset=bench.get("dataset"),
            metric=bench.get("metric"), value=value, scale=float(bench.get("scale", 1)),
            settings=dict(r.get("settings", {})), source_key=r["source"], source=source,
            why_no_dataset=bench.get("why_no_dataset"),
        ))
    return tuple(out)


def load_published(path: str | Path | None = None) -> list[PublishedResult]:
    return list(_load_cached(str(Path(path) if path else DEFAULT_FILE)))


def sources(path: str | Path | None = None) -> dict[str, dict[str, Any]]:
    file = Path(path) if path else DEFAULT_FILE
    return json.loads(file.read_text(encoding="utf-8")).get("sources", {})


def not_found(path: str | Path | None = None) -> list[str]:
    file = Path(path) if path else DEFAULT_FILE
    return list(json.loads(file.read_text(encoding="utf-8")).get("not_found", []))


_HUB_ID = re.compile(r"(hf:)?[\w.-]+/[\w.-]+")


def hub_id_of(model: str) -> str | None:
    """The Hugging Face id a harness model name stands for, without touching the network."""
    try:
        from ..models import get_available_models, get_model_spec

        if model in get_available_models():
            hub = get_model_spec(model).hub_id
            return None if hub.startswith("builtin:") else hub
    except Exception:  # noqa: BLE001 - a broken user registry must not break the report
        pass
    if _HUB_ID.fullmatch(model) and not Path(model).exists():
        return model.removeprefix("hf:")
    return None


def related(model: str, published: list[PublishedResult]) -> list[tuple[PublishedResult, bool]]:
    """Published figures for a harness model: (figure, same checkpoint?)."""
    hub = hub_id_of(model)
    if hub is None:
        return []
    return [(p, p.hub_id == hub) for p in published if p.hub_id == hub or hub in p.siblings]


def compare(ev: Evaluation, pub: PublishedResult, same_checkpoint: bool) -> Comparison:
    """The verdict for one measured aggregate against one published figure (see module doc)."""
    diffs: list[str] = []
    unstated: list[str] = []
    if not same_checkpoint:
        diffs.append(f"model: measured {hub_id_of(ev.model) or ev.model}, published {pub.hub_id} ({pub.variant})")
    if pub.metric is None or pub.metric not in ev.metrics:
        have = ", ".join(sorted(ev.metrics)) or "none"
        diffs.append(f"metric: published {pub.benchmark} has no stored counterpart (stored metrics: {have})")
    for key, measured in (("n_shot", ev.n_shot), ("chat", ev.chat)):
        stated = pub.settings.get(key, None)
        if stated is None:
            unstated.append(key)
        elif measured is None:
            diffs.append(f"{key}: published {stated}, not recorded in the stored result")
        elif stated != measured:
            diffs.append(f"{key}: measured {measured}, published {stated}")
    if "judge" in pub.settings:
        if pub.settings["judge"] is None:
            unstated.append("judge")
        elif pub.settings["judge"] != ev.judge:
            diffs.append(f"judge: measured {ev.judge}, published {pub.settings['judge']}")
    cmp = Comparison(ev.model, ev.preset, pub, ev, SETTINGS_DIFFER, diffs, unstated, notes=_notes(ev.model))
    m = ev.metrics.get(pub.metric) if pub.metric else None
    if m is not None and m.value is not None:
        cmp.delta = m.value - pub.harness_value
        cmp.interval = m.ci95
        if m.stderr is not None:
            cmp.threshold = Z_95 * m.stderr
    if diffs:
        return cmp
    if unstated:
        cmp.verdict = NOT_STATED
        return cmp
    if cmp.delta is None or cmp.threshold is None:
        cmp.verdict = SETTINGS_DIFFER
        cmp.differences.append("the stored result has no value or standard error for the metric")
        return cmp
    if cmp.interval is not None:
        lo, hi = cmp.interval
        cmp.verdict = CONSISTENT if lo <= pub.harness_value <= hi else DIFFERS
    else:
        cmp.verdict = DIFFERS if abs(cmp.delta) > cmp.threshold else CONSISTENT
    return cmp


def _notes(model: str) -> list[str]:
    try:
        from ..models import get_model_spec

        spec = get_model_spec(model)
    except Exception:  # noqa: BLE001 - a model that no longer resolves still gets its comparison
        return []
    if spec.quantization:
        return [f"measured on {spec.quantization} weights; published figures are for the unquantised model "
                "(a known source of difference)"]
    return []


def comparisons(evaluations: list[Evaluation], published: list[PublishedResult] | None = None) -> list[Comparison]:
    """Every measured aggregate beside every published figure of its model family and dataset."""
    published = load_published() if published is None else published
    out = []
    for ev in evaluations:
        for pub, same in related(ev.model, published):
            if pub.dataset == ev.dataset:
                out.append(compare(ev, pub, same))
    return out


def unmatched(evaluations: list[Evaluation], published: list[PublishedResult] | None = None) -> list[str]:
    """Harness models that were evaluated but map to no published entry."""
    published = load_published() if published is None else published
    return sorted({ev.model for ev in evaluations if not related(ev.model, published)})
