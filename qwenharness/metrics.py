"""Aggregation: means with standard errors, unbiased pass@k."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any


def mean_stderr(values: Sequence[float]) -> tuple[float, float]:
    """Sample mean and its standard error (sample std / sqrt(n)), as lm-evaluation-harness reports."""
    n = len(values)
    if n == 0:
        return float("nan"), float("nan")
    mean = sum(values) / n
    if n == 1:
        return mean, 0.0
    var = sum((v - mean) ** 2 for v in values) / (n - 1)
    return mean, math.sqrt(var / n)


def metric(values: Sequence[float]) -> dict[str, Any]:
    """The aggregate record every metric uses: value, stderr, n."""
    value, stderr = mean_stderr(values)
    return {"value": value, "stderr": stderr, "n": len(values)}


def aggregate_scores(scores: Iterable[dict[str, Any]], names: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Mean and stderr of each named per-sample score, over the samples that have it (not None)."""
    rows = list(scores)
    out = {}
    for name in names:
        vals = [float(r[name]) for r in rows if r.get(name) is not None]
        out[name] = metric(vals)
    return out


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k for one problem with n samples of which c pass (Chen et al., 2021)."""
    if n < k:
        raise ValueError(f"pass@{k} needs at least {k} samples per problem, got {n}")
    if n - c < k:
        return 1.0
    prod = 1.0
    for i in range(n - c + 1, n + 1):
        prod *= 1.0 - k / i
    return 1.0 - prod
