"""Scaling analysis over stored results: pairwise comparisons, the performance matrix, insights.

Reads `results/benchmarks/<run>/<model>/<preset>/<backend>.json` (qwenharness.bench) and
`results/evaluations/<run>/<model>/<preset>/<dataset>.json` (aggregate files with
`metrics: {name: {value, stderr, n}}`), newest file per key unless a run id is given, and writes
under `results/comparisons/`:

- `<a>_vs_<b>_comparison.json` for each adjacent pair of the selected models ordered by parameter
  count (naming rule: `comparison_name`);
- `performance_matrix.json`: every model x preset found, with throughput, latency, memory, GPU
  utilisation and accuracy per dataset;
- `scaling_insights.json`: statements computed from those numbers.

Every number in a comparison or insight is a *quantity*: a dict whose `value` is traceable —
`{"value", "source", "key"}` read from a stored file (path relative to the results folder, key path
inside its JSON), `{"value", "model", "fact"}` from the model registry, `{"value", "const"}` a named
constant, or `{"value", "op", "args"}` computed by `op` from the quantities in `args`. Anyone can
recompute every figure from the stored files; the milestone-4 gate does.

One module: comparisons, the matrix, the insights and the citations they carry all read the same
snapshot of stored results.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from .errors import HarnessError
from .models import get_model_spec
from .results_query import newest_per_key

Q = dict[str, Any]  # a quantity
Z_95 = 1.96
DEFAULT_FAMILY_PREFIX = "qwen3_"  # dropped from comparison file names (8b_vs_14b_comparison.json)
PRIMARY_METRICS = ("acc", "strict_match", "exact_match", "pass@1", "prompt_level_strict_acc", "mc2", "score")
HEADLINE_PRESET = "balanced"
HEADLINE_WORKLOAD = "random"
NAMING_RULE = ("<a>_vs_<b>_comparison.json with a the model with fewer parameters; when both names share "
               "a prefix up to an underscore it is written once in front (qwen2.5_8b_vs_14b), and dropped "
               f"when it is the suite's primary family '{DEFAULT_FAMILY_PREFIX}' (8b_vs_14b); '/' becomes '__'")


# -- quantities ---------------------------------------------------------------------------------------
def raw(value: Any, source: str, key: Sequence[str]) -> Q:
    return {"value": value, "source": source, "key": list(key)}


def fact(value: Any, model: str, name: str) -> Q:
    return {"value": value, "model": model, "fact": name}


def const(value: float, name: str) -> Q:
    return {"value": value, "const": name}


OPS = {
    "ratio": lambda a, b: a / b,
    "difference": lambda a, b: a - b,
    "product": lambda a, b: a * b,
    "se_diff": lambda a, b: math.sqrt(a * a + b * b),
    "log_ratio_elasticity": lambda a, b: math.log(a) / math.log(b),
}


def derive(op: str, *args: Q | None) -> Q | None:
    """A computed quantity, or None when an input is missing or the result is not finite."""
    if any(a is None or not isinstance(a.get("value"), (int, float)) or isinstance(a["value"], bool)
           for a in args):
        return None
    try:
        value = OPS[op](*(a["value"] for a in args))  # type: ignore[index]
    except (ZeroDivisionError, ValueError):
        return None
    if not math.isfinite(value):
        return None
    return {"value": value, "op": op, "args": list(args)}


def val(q: Q | None) -> Any:
    return None if q is None else q["value"]


# -- reading stored results -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Stored:
    path: Path  # absolute
    rel: str  # relative to the results folder: what quantities cite
    data: dict[str, Any]

    def get(self, *key: str) -> Q | None:
        node: Any = self.data
        for k in key:
            if not isinstance(node, dict) or node.get(k) is None:
                return None
            node = node[k]
        return raw(node, self.rel, key) if isinstance(node, (int, float)) and not isinstance(node, bool) else None


def _stamp(s: Stored) -> tuple[str, float]:
    d = s.data
    return (str(d.get("updated") or d.get("finished") or d.get("finished_at") or d.get("created") or ""),
            s.path.stat().st_mtime)


def _read(path: Path, root: Path) -> Stored | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return Stored(path, str(path.relative_to(root)), data) if isinstance(data, dict) else None


def _newest_per_key(results_dir: str | Path, folder: str, models: Sequence[str] | None, run_id: str | None,
                    keep: Callable[[dict[str, Any]], bool], third: str) -> dict[tuple[str, str, str], Stored]:
    """(model, preset, <third field>) -> newest file under <results>/<folder>/<run>/<model>/<preset>/
    that `keep` accepts (or the one of `run_id`); the file stem stands in for a missing third field."""
    root = Path(results_dir)
    base = root / folder
    found: list[tuple[tuple[str, str, str], Stored]] = []
    for path in sorted(base.glob("*/*/*/*.json")):
        run, model_dir, preset, _ = path.relative_to(base).parts
        if run_id is not None and run != run_id:
            continue
        s = _read(path, root)
        if s is None or not keep(s.data):
            continue
        model = str(s.data.get("model", model_dir))
        if models is not None and model not in models:
            continue
        found.append(((model, str(s.data.get("preset", preset)), str(s.data.get(third, path.stem))), s))
    newest = newest_per_key(found, lambda ks: ks[0], lambda ks: _stamp(ks[1]))
    return {k: s for k, (_, s) in newest.items()}


def load_benchmarks(results_dir: str | Path, models: Sequence[str] | None = None,
                    run_id: str | None = None) -> dict[tuple[str, str, str], Stored]:
    """(model, preset, backend) -> newest stored benchmark file (or the one of `run_id`)."""
    return _newest_per_key(results_dir, "benchmarks", models, run_id, lambda d: "model" in d, "backend")


def task_primary_metric(dataset: Any) -> str | None:
    """The first of the dataset's task metric_names (the task's headline metric), if it is known."""
    if not isinstance(dataset, str):
        return None
    try:
        from .tasks import get_task

        names = get_task(dataset).metric_names
    except Exception:  # an unknown dataset or a task module that cannot import here
        return None
    return names[0] if names else None


def primary_metric(data: dict[str, Any]) -> str | None:
    """The stored `primary_metric`, else the task's first metric name, else the first of
    PRIMARY_METRICS present, else the first metric."""
    metrics = data.get("metrics") or {}
    named = data.get("primary_metric") or task_primary_metric(data.get("dataset"))
    if isinstance(named, str) and named in metrics:
        return named
    for m in PRIMARY_METRICS:
        if m in metrics:
            return m
    return next(iter(metrics), None)


def load_evaluations(results_dir: str | Path, models: Sequence[str] | None = None,
                     run_id: str | None = None,
                     only: Collection[tuple[str, str, str]] | None = None) -> dict[tuple[str, str, str], Stored]:
    """(model, preset, dataset) -> newest aggregate evaluation file (one with a `metrics` table); with
    `only`, just those keys (the evaluations a gate verdict judged: gate_evidence.py)."""
    found = _newest_per_key(results_dir, "evaluations", models, run_id,
                            lambda d: isinstance(d.get("metrics"), dict) and bool(d["metrics"]), "dataset")
    if only is None:
        return found
    wanted = set(only)
    return {k: v for k, v in found.items() if k in wanted}


# -- naming ---------------------------------------------------------------------------------------------
def comparison_name(a: str, b: str) -> str:
    """File name of the a-vs-b comparison (see NAMING_RULE)."""
    a, b = a.replace("/", "__"), b.replace("/", "__")
    cut = 0
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            break
        if x == "_":
            cut = i + 1
    prefix = a[:cut]
    if cut and a[cut:] and b[cut:]:
        lead = "" if prefix == DEFAULT_FAMILY_PREFIX else prefix
        return f"{lead}{a[cut:]}_vs_{b[cut:]}_comparison.json"
    return f"{a}_vs_{b}_comparison.json"


# -- per model x preset figures ---------------------------------------------------------------------------
class Figures:
    """The quantities of one model x preset: benchmark (one backend) and evaluations."""

    def __init__(self, model: str, preset: str, bench: Stored | None, evals: dict[str, Stored]):
        self.model, self.preset, self.bench, self.evals = model, preset, bench, evals
        self.spec = get_model_spec(model)

    def params(self) -> Q:
        return fact(self.spec.parameter_count(), self.model, "parameter_count")

    def weight_bytes(self) -> Q | None:
        if self.bench is None:
            return None
        return self.bench.get("memory", "weight_bytes") or self.bench.get("engine", "weight_bytes")

    def throughput(self, workload: str = HEADLINE_WORKLOAD, field: str = "output_tokens_per_s") -> Q | None:
        return None if self.bench is None else self.bench.get("throughput", workload, field)

    def latency_p50(self, batch: int = 1) -> Q | None:
        return None if self.bench is None else self.bench.get("latency", f"batch_{batch}", "latency_s", "p50")

    def peak_memory(self) -> Q | None:
        return None if self.bench is None else self.bench.get("memory", "peak_bytes")

    def kv_cache_bytes(self) -> Q | None:
        return None if self.bench is None else self.bench.get("memory", "kv_cache_bytes")

    def accuracy(self, dataset: str, metric: str | None = None) -> tuple[str, Q, Q, Q] | None:
        s = self.evals.get(dataset)
        if s is None:
            return None
        metric = metric or primary_metric(s.data)
        if metric is None:
            return None
        v, se, n = (s.get("metrics", metric, k) for k in ("value", "stderr", "n"))
        if v is None or se is None or n is None:
            return None
        return metric, v, se, n


# -- comparison of two models --------------------------------------------------------------------------------
ALPHA = 0.05
MIN_PAIRED_N = 10  # below this many shared documents no accuracy difference is called significant


def per_sample_scores(s: Stored, metric: str) -> dict[str, float]:
    """doc_id -> the metric's per-sample score, from the samples file beside an aggregate."""
    path = s.path.with_name(s.path.name.removesuffix(".json") + ".samples.jsonl")
    out: dict[str, float] = {}
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return out
    for line in lines:
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        value = (rec.get("scores") or {}).get(metric) if isinstance(rec, dict) and not rec.get("error") else None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            out[str(rec.get("doc_id"))] = float(value)
    return out


def paired_test(a: dict[str, float], b: dict[str, float], source: str) -> dict[str, Any]:
    """b - a on the documents both models scored: exact McNemar for 0/1 scores, else a paired normal
    test on the per-document differences; "not enough samples" below MIN_PAIRED_N shared documents or
    when even a unanimous result could not reach p < ALPHA."""
    from .metrics import mcnemar_exact, mean_stderr

    shared = sorted(set(a) & set(b))
    n = len(shared)
    out: dict[str, Any] = {"n_shared": n, "source": source}
    if n == 0:
        return {**out, "test": None, "verdict": "no shared documents", "significant": False}
    diffs = [b[d] - a[d] for d in shared]
    mean, se = mean_stderr(diffs)
    out["delta"] = mean
    significant = False
    if all(a[d] in (0.0, 1.0) and b[d] in (0.0, 1.0) for d in shared):
        only_a = sum(1 for d in shared if a[d] > b[d])
        only_b = sum(1 for d in shared if b[d] > a[d])
        p = mcnemar_exact(only_a, only_b)
        out.update(test="mcnemar_exact", only_a_right=only_a, only_b_right=only_b, p_value=p)
        significant = p < ALPHA
    else:
        out.update(test="paired_normal", se=se)
        significant = bool(se and abs(mean) > Z_95 * se)
    if n < MIN_PAIRED_N:
        return {**out, "verdict": "not enough samples", "significant": False}
    return {**out, "verdict": "significant" if significant else "not significant", "significant": significant}


def accuracy_delta(a: tuple[str, Q, Q, Q], b: tuple[str, Q, Q, Q],
                   paired: dict[str, Any] | None = None) -> dict[str, Any]:
    """b - a with the standard error of the difference. Significance comes from the paired test on
    the shared documents where the per-sample records are there; else |delta| > 1.96 x the unpaired
    s.e., and never with fewer than MIN_PAIRED_N samples on either side."""
    delta, se = derive("difference", b[1], a[1]), derive("se_diff", b[2], a[2])
    if paired is not None:
        significant = bool(paired["significant"])
        rule = (f"paired on shared documents: {paired['test']}, p < {ALPHA}; fewer than {MIN_PAIRED_N} shared "
                "documents: not enough samples")
    else:
        small = min(a[3]["value"], b[3]["value"]) < MIN_PAIRED_N
        significant = bool(not small and delta and se and abs(delta["value"]) > Z_95 * se["value"])
        rule = f"|delta| > {Z_95} * sqrt(se_a^2 + se_b^2) (unpaired: no per-sample records); n < {MIN_PAIRED_N}: not enough samples"
    return {"metric": a[0], "a": {"value": a[1], "stderr": a[2], "n": a[3]},
            "b": {"value": b[1], "stderr": b[2], "n": b[3]}, "delta": delta, "se": se,
            "paired": paired, "significant": significant, "significance_rule": rule}


def compare_preset(fa: Figures, fb: Figures, detailed: bool) -> dict[str, Any]:
    gb = const(1e9, "bytes per GB")
    billion = const(1e9, "parameters per billion")
    out: dict[str, Any] = {"backend": fa.bench.data.get("backend") if fa.bench else None}
    ratios: dict[str, Q | None] = {
        "parameter_ratio": derive("ratio", fb.params(), fa.params()),
        "throughput_ratio": derive("ratio", fb.throughput(), fa.throughput()),
        "cost_per_token_ratio": derive("ratio", fa.throughput(), fb.throughput()),
        "latency_ratio_batch_1": derive("ratio", fb.latency_p50(1), fa.latency_p50(1)),
        "weight_memory_ratio": derive("ratio", fb.weight_bytes(), fa.weight_bytes()),
        "peak_memory_ratio": derive("ratio", fb.peak_memory(), fa.peak_memory()),
        "kv_cache_ratio": derive("ratio", fb.kv_cache_bytes(), fa.kv_cache_bytes()),
    }
    out["ratios"] = ratios
    out["missing"] = sorted(k for k, v in ratios.items() if v is None)
    efficiency = {}
    for side, f in (("a", fa), ("b", fb)):
        tput = f.throughput()
        efficiency[side] = {
            "output_tokens_per_s": tput,
            "tokens_per_s_per_billion_params": derive("ratio", tput, derive("ratio", f.params(), billion)),
            "tokens_per_s_per_weight_gb": derive("ratio", tput, derive("ratio", f.weight_bytes(), gb)),
            "tokens_per_s_per_peak_gb": derive("ratio", tput, derive("ratio", f.peak_memory(), gb)),
        }
    out["efficiency"] = efficiency
    if detailed:
        workloads = sorted(set((fa.bench.data.get("throughput") or {}) if fa.bench else {})
                           & set((fb.bench.data.get("throughput") or {}) if fb.bench else {}))
        out["throughput_ratios"] = {
            w: {f: derive("ratio", fb.throughput(w, f), fa.throughput(w, f))
                for f in ("requests_per_s", "output_tokens_per_s", "total_tokens_per_s")} for w in workloads}
        batches = sorted({k for f in (fa, fb) if f.bench for k in (f.bench.data.get("latency") or {})})
        out["latency_ratios"] = {
            k: {p: derive("ratio", *(f.bench.get("latency", k, "latency_s", p) if f.bench else None
                                     for f in (fb, fa))) for p in ("p50", "p90", "p99")} for k in batches}
    accuracy, not_compared = {}, {}
    for ds in sorted(set(fa.evals) & set(fb.evals)):
        acc_a, acc_b = fa.accuracy(ds), fb.accuracy(ds)
        if acc_a is None or acc_b is None or acc_a[0] != acc_b[0]:
            not_compared[ds] = ("a headline metric has no stored value" if acc_a is None or acc_b is None
                                else f"headline metrics differ ({acc_a[0]} vs {acc_b[0]})")
            continue
        paired_a = per_sample_scores(fa.evals[ds], acc_a[0])
        paired_b = per_sample_scores(fb.evals[ds], acc_b[0])
        paired = (paired_test(paired_a, paired_b, f"{fa.evals[ds].rel} vs {fb.evals[ds].rel}")
                  if paired_a and paired_b else None)
        accuracy[ds] = accuracy_delta(acc_a, acc_b, paired)
        if detailed:
            others = sorted(set(fa.evals[ds].data["metrics"]) & set(fb.evals[ds].data["metrics"]) - {acc_a[0]})
            accuracy[ds]["other_metrics"] = {}
            for m in others:
                ma, mb = fa.accuracy(ds, m), fb.accuracy(ds, m)
                if ma is not None and mb is not None:
                    accuracy[ds]["other_metrics"][m] = accuracy_delta(ma, mb)
    out["accuracy"] = accuracy
    out["accuracy_not_compared"] = not_compared
    return out


# vLLM reserves gpu_memory_utilization up front: equal presets give peak ratios this close to 1.
RESERVATION_TOLERANCE = 0.05


def _test_words(x: dict[str, Any]) -> str:
    p = x.get("paired")
    if p is None:
        return "significant at 95%, unpaired" if x["significant"] else "not significant, unpaired"
    if p["verdict"] == "not enough samples":
        return f"not enough samples ({p['n_shared']} shared documents)"
    pv = f", p = {p['p_value']:.3g}" if p.get("p_value") is not None else ""
    return f"{p['verdict']} ({p['test']} on {p['n_shared']} shared documents{pv})"


def _fmt(x: float) -> str:
    return f"{x:.3g}" if abs(x) < 1000 else f"{x:,.0f}"


def recommendations(a: str, b: str, cmp: dict[str, Any], preset: str) -> list[dict[str, Any]]:
    """Recommendations derived from one preset's comparison by the stated rules; each carries its
    rule and the quantities it used."""
    r = cmp["ratios"]
    recs: list[dict[str, Any]] = []
    cost = r["cost_per_token_ratio"]
    params = r["parameter_ratio"]
    acc = cmp["accuracy"]
    gains = {d: x for d, x in acc.items() if x["significant"] and x["delta"]["value"] > 0}
    losses = {d: x for d, x in acc.items() if x["significant"] and x["delta"]["value"] < 0}
    cost_txt = f"{_fmt(cost['value'])}x the cost per output token" if cost else "an unmeasured cost per token"
    for d, x in sorted(gains.items()):
        recs.append({
            "rule": "a significant accuracy gain of b on a dataset: use b for that kind of task when the gain is "
                    "worth the cost-per-token ratio (a's throughput / b's throughput)",
            "text": f"{b} gains {_fmt(100 * x['delta']['value'])} points of {x['metric']} on {d} "
                    f"(se {_fmt(100 * x['se']['value'])}; {_test_words(x)}) at {cost_txt} (preset {preset}): "
                    f"use {b} for {d}-like tasks when that gain is worth {cost_txt}.",
            "numbers": {"delta": x["delta"], "se": x["se"], "cost_per_token_ratio": cost},
        })
    for d, x in sorted(losses.items()):
        recs.append({
            "rule": "a significant accuracy loss of b on a dataset: prefer a for that kind of task",
            "text": f"{b} loses {_fmt(-100 * x['delta']['value'])} points of {x['metric']} on {d} against {a} "
                    f"(se {_fmt(100 * x['se']['value'])}; {_test_words(x)}): prefer {a} for {d}-like tasks.",
            "numbers": {"delta": x["delta"], "se": x["se"]},
        })
    if acc and not gains and cost:
        d, x = max(acc.items(), key=lambda kv: abs(kv[1]["delta"]["value"]) if kv[1]["delta"] else 0)
        if x["delta"] is not None and x["se"] is not None:
            cheaper = a if cost["value"] > 1 else b
            recs.append({
                "rule": "no dataset shows a significant gain of b: prefer the model with the lower cost per "
                        "output token (a when the cost-per-token ratio b/a exceeds 1, else b)",
                "text": f"No evaluated dataset shows a significant gain of {b} over {a} (largest difference "
                        f"{_fmt(100 * x['delta']['value'])} points on {d}, se {_fmt(100 * x['se']['value'])}); "
                        f"{b} costs {_fmt(cost['value'])}x per output token (preset {preset}): prefer {cheaper}.",
                "numbers": {"delta": x["delta"], "se": x["se"], "cost_per_token_ratio": cost},
            })
    if cost and params:
        sub = cost["value"] < params["value"]
        recs.append({
            "rule": "cost per token vs parameter ratio: below it, the larger model's throughput falls less than "
                    "its size grows (sub-linear cost); above it, more than proportionally",
            "text": f"{b} has {_fmt(params['value'])}x the parameters of {a} and {cost_txt} (preset {preset}): "
                    + ("its cost grows less than its size." if sub else "its cost grows at least as fast as its size."),
            "numbers": {"parameter_ratio": params, "cost_per_token_ratio": cost},
        })
    lat = r["latency_ratio_batch_1"]
    if lat:
        recs.append({
            "rule": "batch-1 p50 latency ratio above 1: for interactive single requests the smaller model answers "
                    "faster by that factor",
            "text": f"At batch 1, {b}'s p50 end-to-end latency is {_fmt(lat['value'])}x {a}'s (preset {preset})"
                    + (f": for latency-bound interactive use prefer {a}." if lat["value"] > 1
                       else f": {b} is not slower at batch 1."),
            "numbers": {"latency_ratio_batch_1": lat},
        })
    peak, kv = r["peak_memory_ratio"], r.get("kv_cache_ratio")
    if peak and kv and abs(peak["value"] - 1) <= RESERVATION_TOLERANCE:
        recs.append({
            "rule": f"peak memory ratios within {RESERVATION_TOLERANCE:.0%} of 1 mean both engines took the preset's "
                    "up-front reservation; the larger model's cost is then the KV cache left after its weights "
                    "(fewer tokens in flight), given by the KV-cache ratio",
            "text": f"Both models take the same reservation under preset {preset} (peak memory ratio "
                    f"{_fmt(peak['value'])}); {b}'s larger weights leave it {_fmt(kv['value'])}x the KV cache of {a}, "
                    f"so {'fewer' if kv['value'] < 1 else 'no fewer'} tokens can be in flight at once.",
            "numbers": {"peak_memory_ratio": peak, "kv_cache_ratio": kv},
        })
    elif peak or r["weight_memory_ratio"]:
        mem = peak or r["weight_memory_ratio"]
        which = "peak GPU memory" if peak else "weight memory"
        recs.append({
            "rule": "memory ratio: the larger model needs this factor of memory, the headroom lost to KV cache",
            "text": f"{b} needs {_fmt(mem['value'])}x the {which} of {a} (preset {preset}).",
            "numbers": {"memory_ratio": mem},
        })
    return recs


def compare_pair(a: str, b: str, figures: dict[tuple[str, str], Figures], detailed: bool = False) -> dict[str, Any]:
    presets = sorted({p for (m, p) in figures if m == a} & {p for (m, p) in figures if m == b})
    if not presets:
        raise HarnessError(f"no preset has stored results for both {a} and {b}",
                           "run `qwenharness bench` (and `qwenharness evaluate`) for both with the same preset")
    per = {p: compare_preset(figures[(a, p)], figures[(b, p)], detailed) for p in presets}
    headline = HEADLINE_PRESET if HEADLINE_PRESET in per else presets[0]
    fa, fb = figures[(a, headline)], figures[(b, headline)]
    return {
        "models": {"a": a, "b": b},
        "naming_rule": NAMING_RULE,
        "parameters": {"a": fa.params(), "b": fb.params()},
        "parameter_ratio": derive("ratio", fb.params(), fa.params()),
        "headline_preset": headline,
        "presets": per,
        "recommendations": recommendations(a, b, per[headline], headline),
        "sources": sorted({s.rel for f in (figures[(m, p)] for m in (a, b) for p in presets)
                           for s in ([f.bench] if f.bench else []) + list(f.evals.values())}),
    }


# -- matrix and insights --------------------------------------------------------------------------------------
def matrix_row(f: Figures) -> dict[str, Any]:
    b = f.bench
    mem = (b.data.get("memory") or {}) if b else {}
    row: dict[str, Any] = {
        "model": f.model, "preset": f.preset, "parameter_count": f.spec.parameter_count(),
        "backend": b.data.get("backend") if b else None, "benchmark_source": b.rel if b else None,
        "throughput": {w: {k: t.get(k) for k in ("requests_per_s", "output_tokens_per_s", "total_tokens_per_s")}
                       for w, t in ((b.data.get("throughput") or {}) if b else {}).items()
                       if isinstance(t, dict) and "output_tokens_per_s" in t},
        "latency_p50_s": {k: (v.get("latency_s") or {}).get("p50")
                          for k, v in ((b.data.get("latency") or {}) if b else {}).items()},
        "memory": {k: mem.get(k) for k in ("weight_bytes", "kv_cache_bytes", "peak_bytes", "mean_bytes",
                                           "host_rss_peak_bytes")},
        "gpu_utilization_pct": mem.get("gpu_util_mean"),
        "gpu_utilization_reason": mem.get("reason") if mem.get("gpu_util_mean") is None else None,
        "overhead_ratio": ((b.data.get("overhead") or {}).get("ratio")) if b else None,
        "bandwidth_fraction": ((b.data.get("physical_bound") or {}).get("fraction")) if b else None,
        "accuracy": {},
    }
    for ds, s in sorted(f.evals.items()):
        acc = f.accuracy(ds)
        if acc:
            row["accuracy"][ds] = {"metric": acc[0], "value": acc[1]["value"], "stderr": acc[2]["value"],
                                   "n": acc[3]["value"], "source": s.rel}
        else:  # evaluated, but its headline metric has no value (e.g. every MT-Bench judgment unparseable)
            metric = primary_metric(s.data)
            stored = (s.data.get("metrics") or {}).get(metric) or {}
            row["accuracy"][ds] = {"metric": metric, "value": stored.get("value"), "stderr": stored.get("stderr"),
                                   "n": stored.get("n"), "source": s.rel,
                                   "reason": f"stored {metric} has no value (n={stored.get('n')})"}
    return row


def insights(models: Sequence[str], figures: dict[tuple[str, str], Figures],
             comparisons: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Statements computed from the numbers; each carries the rule and its quantities."""
    out: list[dict[str, Any]] = []
    for cmp in comparisons:
        a, b = cmp["models"]["a"], cmp["models"]["b"]
        for preset, c in cmp["presets"].items():
            r = c["ratios"]
            params, tput = r["parameter_ratio"], r["throughput_ratio"]
            el = derive("log_ratio_elasticity", tput, params)
            if el:
                out.append({
                    "id": f"throughput_scaling:{a}:{b}:{preset}",
                    "rule": "elasticity = ln(throughput ratio) / ln(parameter ratio); -1 means throughput "
                            "inversely proportional to size, 0 means size costs nothing",
                    "text": f"{preset}: {b} has {_fmt(params['value'])}x the parameters of {a} and "
                            f"{_fmt(tput['value'])}x its output throughput, an elasticity of {el['value']:.2f}.",
                    "numbers": {"parameter_ratio": params, "throughput_ratio": tput, "elasticity": el},
                })
            lat = r["latency_ratio_batch_1"]
            if lat and params:
                out.append({
                    "id": f"latency_scaling:{a}:{b}:{preset}",
                    "rule": "batch-1 latency ratio compared with the parameter ratio (memory-bound decoding "
                            "predicts them equal)",
                    "text": f"{preset}: batch-1 p50 latency grows {_fmt(lat['value'])}x for "
                            f"{_fmt(params['value'])}x the parameters.",
                    "numbers": {"latency_ratio_batch_1": lat, "parameter_ratio": params},
                })
            for ds, x in c["accuracy"].items():
                if x["delta"] is None or x["se"] is None:
                    continue
                out.append({
                    "id": f"accuracy:{a}:{b}:{preset}:{ds}",
                    "rule": x["significance_rule"],
                    "text": f"{preset}, {ds}: {b} - {a} = {_fmt(100 * x['delta']['value'])} points of "
                            f"{x['metric']} (se {_fmt(100 * x['se']['value'])}): {_test_words(x)}.",
                    "numbers": {"delta": x["delta"], "se": x["se"]},
                })
    for m in models:
        tputs = {p: f.throughput() for (mm, p), f in figures.items() if mm == m and f.throughput()}
        if len(tputs) >= 2:
            best = max(tputs, key=lambda p: tputs[p]["value"])  # type: ignore[index]
            worst = min(tputs, key=lambda p: tputs[p]["value"])  # type: ignore[index]
            ratio = derive("ratio", tputs[best], tputs[worst])
            if ratio:
                out.append({
                    "id": f"preset_spread:{m}",
                    "rule": "throughput of the fastest preset divided by that of the slowest",
                    "text": f"{m}: preset {best} gives {_fmt(ratio['value'])}x the output throughput of {worst}.",
                    "numbers": {"best": tputs[best], "worst": tputs[worst], "ratio": ratio},
                })
        for (mm, p), f in sorted(figures.items()):
            if mm != m or f.bench is None:
                continue
            frac = f.bench.get("physical_bound", "fraction")
            if frac:
                out.append({
                    "id": f"bandwidth_fraction:{m}:{p}",
                    "rule": "measured batch-1 decode rate / (HBM bandwidth / weight bytes)",
                    "text": f"{m} ({p}): batch-1 decoding reaches {100 * frac['value']:.0f}% of the "
                            "bandwidth bound.",
                    "numbers": {"fraction": frac,
                                "bound_tokens_per_s": f.bench.get("physical_bound", "bound_tokens_per_s")},
                })
    return out


# -- the whole analysis ------------------------------------------------------------------------------------------
def order_by_size(models: Sequence[str]) -> list[str]:
    return sorted(dict.fromkeys(models), key=lambda m: (get_model_spec(m).parameter_count(), m))


def collect(results_dir: str | Path, models: Sequence[str] | None = None, *, backend: str | None = None,
            run_id: str | None = None,
            evaluations: Collection[tuple[str, str, str]] | None = None) -> dict[tuple[str, str], Figures]:
    """Figures for every (model, preset) with stored benchmark or evaluation results (of `evaluations`
    only, where given). The benchmark of `backend` is used (default: vllm where stored, else any)."""
    benches = load_benchmarks(results_dir, models, run_id)
    evals = load_evaluations(results_dir, models, run_id, evaluations)
    keys = {(m, p) for (m, p, _) in benches} | {(m, p) for (m, p, _) in evals}
    figures = {}
    for m, p in sorted(keys):
        have = {bk: s for (mm, pp, bk), s in benches.items() if (mm, pp) == (m, p)}
        choice = backend if backend else ("vllm" if "vllm" in have else (sorted(have)[0] if have else None))
        figures[(m, p)] = Figures(m, p, have.get(choice) if choice else None,
                                  {d: s for (mm, pp, d), s in evals.items() if (mm, pp) == (m, p)})
    return figures


def analyze(results_dir: str | Path, models: Sequence[str], *, detailed: bool = False, backend: str | None = None,
            run_id: str | None = None, write: bool = True,
            evaluations: Collection[tuple[str, str, str]] | None = None) -> dict[str, Any]:
    """Compare each adjacent pair of `models` (ordered by size), build the matrix and insights, and write
    the three kinds of files under <results_dir>/comparisons/. Returns what was written, with paths."""
    from .results import atomic_write_json

    if len(models) < 2:
        raise HarnessError(f"a comparison needs at least two models, got {list(models)}",
                           "pass two or more with --models a,b")
    ordered = order_by_size(models)
    figures = collect(results_dir, ordered, backend=backend, run_id=run_id, evaluations=evaluations)
    missing = [m for m in ordered if not any(mm == m for (mm, _) in figures)]
    if missing:
        raise HarnessError(f"no stored benchmark or evaluation results for {', '.join(missing)} under "
                           f"{Path(results_dir).resolve()}",
                           "run `qwenharness bench --models ...` and `qwenharness evaluate --models ...` first, "
                           "or pass --results-dir")
    comparisons = [compare_pair(a, b, figures, detailed) for a, b in zip(ordered, ordered[1:])]
    matrix = {"models": ordered, "analysis": {"backend": backend, "detailed": detailed, "run_id": run_id,
                                                "evaluations": None if evaluations is None else
                                                [list(k) for k in sorted(evaluations)]},
              "rows": [matrix_row(f) for _, f in sorted(figures.items())]}
    ins = {"models": ordered, "insights": insights(ordered, figures, comparisons)}
    out_dir = Path(results_dir) / "comparisons"
    written: dict[str, Any] = {"comparisons": {}, "matrix": None, "insights": None}
    if write:
        for c in comparisons:
            p = out_dir / comparison_name(c["models"]["a"], c["models"]["b"])
            atomic_write_json(p, c)
            written["comparisons"][f"{c['models']['a']} vs {c['models']['b']}"] = str(p)
        atomic_write_json(out_dir / "performance_matrix.json", matrix)
        atomic_write_json(out_dir / "scaling_insights.json", ins)
        written["matrix"] = str(out_dir / "performance_matrix.json")
        written["insights"] = str(out_dir / "scaling_insights.json")
    return {"comparisons": comparisons, "matrix": matrix, "insights": ins, "written": written}


# -- citations that still hold ---------------------------------------------------------------------------
def _cited(node: Any) -> Iterator[Q]:
    if isinstance(node, dict):
        if "source" in node and "key" in node and "value" in node:
            yield node
        for v in node.values():
            yield from _cited(v)
    elif isinstance(node, list):
        for v in node:
            yield from _cited(v)


def stale_citations(results_dir: str | Path) -> list[str]:
    """Quantities in the stored comparison files whose cited file no longer holds the cited value
    (e.g. a benchmark rerun after the analysis): one line each, naming the file and key."""
    root = Path(results_dir)
    out: list[str] = []
    files = sorted((root / "comparisons").glob("*.json")) if (root / "comparisons").is_dir() else []
    cache: dict[str, Any] = {}
    for path in files:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        for q in _cited(data):
            src = str(q["source"])
            if src not in cache:
                try:
                    cache[src] = json.loads((root / src).read_text(encoding="utf-8"))
                except (OSError, ValueError):
                    cache[src] = None
            node: Any = cache[src]
            for k in q["key"]:
                node = node.get(k) if isinstance(node, dict) else None
            if node != q["value"]:
                out.append(f"{path.name}: {src}:{'.'.join(map(str, q['key']))} holds {node!r}, cited as {q['value']!r}")
    return list(dict.fromkeys(out))


def refresh_if_stale(results_dir: str | Path) -> bool:
    """Recompute the stored analysis (same models and settings) when one of its citations went stale."""
    root = Path(results_dir)
    if not stale_citations(root):
        return False
    try:
        matrix = json.loads((root / "comparisons" / "performance_matrix.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    models, settings = matrix.get("models") or [], matrix.get("analysis") or {}
    if len(models) < 2:
        return False
    analyze(root, models, detailed=bool(settings.get("detailed")), backend=settings.get("backend"),
            run_id=settings.get("run_id"),
            evaluations=None if settings.get("evaluations") is None else [tuple(k) for k in settings["evaluations"]])
    return True
