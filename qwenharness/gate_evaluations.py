"""Milestone 3's evaluations for a pytest session: one test per model x dataset, one engine per model.

Where a model's datasets are evaluated together (`EvalSettings.concurrent_datasets`: vLLM on a GPU
by default), its first test evaluates every dataset of that model the session collected, at once,
and each test then judges its own dataset's result; elsewhere each test evaluates its own dataset.
The stored results, and what each test asserts, are the same either way.
"""

from __future__ import annotations

from typing import Any

from .evaluation import DatasetResult, EvalSettings, Evaluator
from .scheduling import concurrent_datasets_apply
from .results import resolve_run_paths
from .selection import SampleLimits
from .testing import HarnessOptions

DEFAULT_SAMPLE_LIMIT = 5  # samples per dataset when neither --sample-limit nor --doc-ids says


class GateEvaluations:
    """`evaluate(model, dataset)` -> (the settings it ran with, its DatasetResult)."""

    def __init__(self, harness: HarnessOptions, pool: Any, collected: dict[str, list[str]]):
        """`collected`: model -> the datasets whose tests the session collected, in test order."""
        self.harness = harness
        self.pool = pool
        self.collected = collected
        self._groups: dict[str, dict[str, DatasetResult]] = {}

    def _limit(self, dataset: str) -> int | None:
        if self.harness.doc_ids.for_dataset(dataset):  # --doc-ids: exactly those documents
            return None
        return self.harness.sample_limits.for_dataset(dataset) or DEFAULT_SAMPLE_LIMIT

    def settings(self, model: str, datasets: list[str]) -> EvalSettings:
        h = self.harness
        per = {d: n for d in datasets if (n := self._limit(d)) is not None}
        limits = SampleLimits(default=None, per_dataset=per)
        preset = "balanced" if "balanced" in h.presets else h.presets[0]
        return EvalSettings(models=[model], datasets=list(datasets), presets=[preset], backend=h.backends[0],
                            sample_limit=limits if len(datasets) > 1 else self._limit(datasets[0]),
                            doc_ids=h.doc_ids.to_dict() or None, data_dir=h.data_dir,
                            load_format=h.load_format, progress=False, **h.eval_settings_fields())

    def evaluate(self, model: str, dataset: str) -> tuple[EvalSettings, DatasetResult]:
        own = self.settings(model, [dataset])
        group = self.collected.get(model, [])
        if dataset in group and len(group) > 1 and concurrent_datasets_apply(
                own.concurrent_datasets, own.backend, self.harness.gpu is not None):
            if model not in self._groups:
                results = self._run(self.settings(model, group))
                self._groups[model] = {r.dataset: r for r in results}
            found = self._groups[model].get(dataset)
            if found is not None:
                return own, found
        results = self._run(own)
        assert len(results) == 1, f"one result for {model}/{dataset}, got {len(results)}"
        return own, results[0]

    def _run(self, settings: EvalSettings) -> list[DatasetResult]:
        paths = resolve_run_paths(self.harness.results_dir, self.harness.run_id)
        return Evaluator(settings, paths, pool=self.pool, replace_stale=True).run()
