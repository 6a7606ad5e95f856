"""Aggregation: means with standard errors and 95% intervals (Wilson for 0/1 scores, so they do not
collapse at 0 or 1), unbiased pass@k, and the exact McNemar test for paired 0/1 scores."""

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


Z_95 = 1.959963984540054


def wilson_interval(successes: float, n: int, z: float = Z_95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion (successes of n)."""
    if n <= 0:
        return float("nan"), float("nan")
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    lo, hi = max(0.0, centre - half), min(1.0, centre + half)
    return (0.0 if p == 0 else lo), (1.0 if p == 1 else hi)  # exact at the ends, not 1 - 1e-16


def interval(values: Sequence[float]) -> tuple[tuple[float, float], str]:
    """95% interval of the mean: Wilson for 0/1 scores, else mean +- 1.96 s.e."""
    n = len(values)
    if n == 0:
        return (float("nan"), float("nan")), "none"
    if all(v in (0.0, 1.0) for v in values):
        return wilson_interval(sum(values), n), "wilson"
    mean, se = mean_stderr(values)
    return (mean - Z_95 * se, mean + Z_95 * se), "normal"


def metric(values: Sequence[float]) -> dict[str, Any]:
    """The aggregate record every metric uses: value, stderr, n and the 95% interval."""
    value, stderr = mean_stderr(values)
    (lo, hi), method = interval(values)
    return {"value": value, "stderr": stderr, "n": len(values), "ci95": [lo, hi], "ci_method": method}


def mcnemar_exact(only_a: int, only_b: int) -> float:
    """Two-sided exact McNemar p-value from the discordant pairs (a right and b wrong, and the reverse)."""
    n = only_a + only_b
    if n == 0:
        return 1.0
    k = min(only_a, only_b)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n
    return min(1.0, 2 * tail)


def smallest_detectable_p(n_discordant: int) -> float:
    """The smallest p-value an exact McNemar test can reach with this many discordant pairs."""
    return mcnemar_exact(0, n_discordant) if n_discordant else 1.0


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
