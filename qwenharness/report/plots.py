"""Report figures as PNG bytes (matplotlib's object API on the Agg canvas: no pyplot, no display).

Each builder returns a `Plot`, or None when the stored results hold nothing to draw; the caller says
so in words.
"""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass
from typing import Any

from .collect import Evaluation, bench_figures, dig, parameter_count

Z_95 = 1.96
DPI = 100


@dataclass(frozen=True)
class Plot:
    name: str
    title: str
    caption: str
    png: bytes

    def data_uri(self) -> str:
        return "data:image/png;base64," + base64.b64encode(self.png).decode("ascii")


def _figure(width: float, height: float) -> Any:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=DPI, layout="constrained")


def _png(fig: Any) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


# Chance level of the headline accuracy of multiple-choice datasets (1 / number of options; ARC has a
# few 3- and 5-option questions, 4 for almost all). Generation tasks have no chance line.
CHANCE = {"arc_easy": 0.25, "arc_challenge": 0.25, "hellaswag": 0.25, "mmlu": 0.25, "piqa": 0.5,
          "winogrande": 0.5, "boolq": 0.5}


def _interval(m: Any) -> tuple[float, float]:
    """(below, above) the value: the stored 95% interval (Wilson for 0/1 scores, inside [0, 1] by
    construction), else 1.96 s.e. cut to [0, 1] and said so in the caption."""
    if m.ci95 is not None:
        return max(0.0, m.value - m.ci95[0]), max(0.0, m.ci95[1] - m.value)
    half = Z_95 * (m.stderr or 0.0)
    return min(half, m.value), min(half, 1.0 - m.value)


def accuracy_plot(evaluations: list[Evaluation]) -> Plot | None:
    """Headline metric per dataset, one bar per model (and preset), 95% intervals, n on every bar,
    a chance line per multiple-choice dataset, and a 'missing' mark where a model has no result. Metrics
    outside [0, 1] (MT-Bench's 1-10 rating) are left out and named in the caption."""
    rows = [(e, e.primary, e.primary_metric()) for e in evaluations]
    scored = [(e, name, m) for e, name, m in rows if m is not None and m.value is not None]
    unit = [(e, n, m) for e, n, m in scored if 0.0 <= (m.value or 0.0) <= 1.0 and n != "score"]
    left_out = sorted({f"{e.dataset} ({n})" for e, n, m in scored if (e, n, m) not in unit})
    if not unit:
        return None
    presets = {e.preset for e, _, _ in unit}
    label = (lambda e: e.model) if len(presets) == 1 else (lambda e: f"{e.model}/{e.preset}")
    series = sorted({label(e) for e, _, _ in unit})
    datasets = sorted({e.dataset for e, _, _ in unit})
    fig = _figure(max(7.0, 0.9 * len(datasets) * max(1, len(series)) * 0.5 + 3), 4.6)
    ax = fig.subplots()
    width = 0.8 / len(series)
    fallback = False
    for i, s in enumerate(series):
        for j, d in enumerate(datasets):
            x = j - 0.4 + width * (i + 0.5)
            hit = next(((e, m) for e, _, m in unit if label(e) == s and e.dataset == d), None)
            if hit is None:  # no result: a hatched outline, never a zero-height bar
                ax.bar([x], [1.0], width=width, fill=False, hatch="//", edgecolor="0.7", lw=0.5)
                ax.text(x, 0.02, "missing", rotation=90, ha="center", va="bottom", fontsize=7, color="0.4")
                continue
            m = hit[1]
            fallback |= m.ci95 is None
            lo, hi = _interval(m)
            ax.bar([x], [m.value], width=width, yerr=[[lo], [hi]], capsize=2, color=f"C{i}",
                   label=s if j == datasets.index(next(e.dataset for e, _, _ in unit if label(e) == s)) else None)
            ax.text(x, min(1.0, m.value + hi) + 0.015, f"n={m.n}", ha="center", va="bottom", fontsize=6,
                    rotation=90 if len(series) * len(datasets) > 12 else 0)
    chance_drawn = False
    for j, d in enumerate(datasets):
        if d in CHANCE:
            ax.hlines(CHANCE[d], j - 0.45, j + 0.45, colors="black", linestyles="--", lw=1,
                      label=None if chance_drawn else "chance (1 / options)")
            chance_drawn = True
    ax.set_xticks(range(len(datasets)))
    ax.set_xticklabels(datasets, rotation=30, ha="right")
    ax.set_ylim(0, 1.15)
    ax.set_ylabel("headline metric (fraction)")
    ax.set_title("Accuracy by model and dataset (error bars: 95% interval)")
    fig.legend(fontsize=8, ncols=min(5, len(series) + 1), loc="outside lower center")
    metrics = sorted({f"{e.dataset}: {n}" for e, n, _ in unit})
    caption = ("Headline metric per dataset (" + "; ".join(metrics) + "). Axis from 0; n above each bar; "
               "dashed lines: chance level; hatched 'missing': no stored result for that model.")
    caption += (" Intervals: Wilson 95% for 0/1 scores" + (" (1.96 s.e. cut to [0, 1] for results stored without "
                                                           "an interval)" if fallback else "") + ".")
    random = sorted({e.model for e, _, _ in unit if _random(e.model)})
    if random:
        caption += f" {', '.join(random)}: random weights, chance-level by construction."
    if left_out:
        caption += " Not drawn (not on a 0-1 scale): " + ", ".join(left_out) + "."
    return Plot("accuracy", "Accuracy by model and dataset", caption, _png(fig))


def _random(model: str) -> bool:
    from .collect import weights_kind

    return weights_kind(model) == "random"


def _perf_points(benchmarks: list[dict[str, Any]], coverage: list[dict[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
    points = []
    for b in benchmarks:
        f = bench_figures(b)
        params = parameter_count(str(b.get("model")))
        mem = f["peak_bytes"] if f["peak_bytes"] is not None else f["host_rss_peak_bytes"]
        if params and (f["output_tokens_per_s"] is not None or mem is not None):
            points.append({"label": f"{b.get('model')}/{b.get('preset')}/{b.get('backend')}", "params": params,
                           "tps": f["output_tokens_per_s"], "mem": mem,
                           "tps_range": (f["output_tokens_per_s_min"], f["output_tokens_per_s_max"]),
                           "mem_kind": "GPU peak (NVML)" if f["peak_bytes"] is not None else "host RSS peak"})
    if points:
        return "benchmarks (random token-id workload)", points
    for c in coverage:
        params = parameter_count(str(c.get("model")))
        if params and c.get("ok"):
            points.append({"label": f"{c.get('model')}/{c.get('preset')}/{c.get('backend')}", "params": params,
                           "tps": c.get("output_tokens_per_s"), "mem": c.get("peak_memory_bytes"),
                           "mem_kind": c.get("memory_source") or "peak"})
    return "model coverage (milestone 2 prompt set)", points


def scaling_plot(benchmarks: list[dict[str, Any]], coverage: list[dict[str, Any]]) -> Plot | None:
    """Output tokens/s and peak memory against parameter count, one point per configuration."""
    origin, points = _perf_points(benchmarks, coverage)
    if not points:
        return None
    fig = _figure(10, 4)
    ax1, ax2 = fig.subplots(1, 2)
    markers = "osD^vP*X<>"
    for ax, key, ylabel, scale in ((ax1, "tps", "output tokens/s", 1.0), (ax2, "mem", "peak memory (GB)", 1e9)):
        drawn = [p for p in points if p[key] is not None]
        for i, p in enumerate(drawn):
            ax.scatter(p["params"] / 1e6, p[key] / scale, s=40, marker=markers[i % len(markers)], label=p["label"])
            lo, hi = p.get("tps_range") or (None, None)
            if key == "tps" and lo is not None and hi is not None:  # min-max over the benchmark's rounds
                ax.errorbar([p["params"] / 1e6], [p[key]], yerr=[[p[key] - lo], [hi - p[key]]], fmt="none",
                            ecolor="0.3", capsize=3)
        spread = [p["params"] for p in drawn]
        if spread and max(spread) / min(spread) > 20:
            ax.set_xscale("log")
        ax.margins(0.15)
        tops = [(p.get("tps_range") or (None, None))[1] or p[key] if key == "tps" else p[key] for p in drawn]
        ax.set_ylim(0, 1.15 * max(tops) / scale if tops else 1)  # zero-based: a 0.1 GB gap must not look large
        ax.set_xlabel("parameters (millions)")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        if drawn:
            ax.legend(fontsize=7, loc="best")
    ax1.set_title("Throughput vs parameter count")
    kinds = sorted({p["mem_kind"] for p in points if p["mem"] is not None})
    ax2.set_title("Memory vs parameter count")
    caption = (f"Source: {origin}; {len(points)} configurations. Memory: " + (", ".join(kinds) or "not recorded")
               + ". Both value axes start at 0; throughput error bars: min-max over the benchmark's rounds (where "
               "recorded).")
    return Plot("scaling", "Throughput and memory vs parameter count", caption, _png(fig))


RATIO_KEYS = (("parameter_ratio", "parameters"), ("throughput_ratio", "throughput"),
              ("cost_per_token_ratio", "cost / token"), ("latency_ratio_batch_1", "b1 latency"),
              ("peak_memory_ratio", "peak memory"), ("weight_memory_ratio", "weight memory"))


def pair_plot(comparison: dict[str, Any]) -> Plot | None:
    """One pairwise comparison (b / a): ratios at the headline preset, and accuracy deltas b - a with
    95% error bars."""
    a, b = dig(comparison, "models", "a"), dig(comparison, "models", "b")
    preset = comparison.get("headline_preset")
    per = dig(comparison, "presets", str(preset)) or {}
    ratios = [(label, dig(per, "ratios", key, "value")) for key, label in RATIO_KEYS]
    if dig(comparison, "parameter_ratio", "value") is not None:
        ratios[0] = ("parameters", dig(comparison, "parameter_ratio", "value"))
    not_recorded = [lab for lab, v in ratios if not isinstance(v, (int, float))]
    ratios = [(lab, v) for lab, v in ratios if isinstance(v, (int, float))]
    acc = [(ds, dig(x, "delta", "value"), dig(x, "se", "value"), x.get("metric"))
           for ds, x in sorted((per.get("accuracy") or {}).items()) if isinstance(x, dict)]
    acc = [t for t in acc if isinstance(t[1], (int, float))]
    if not ratios and not acc:
        return None
    fig = _figure(10, 4)
    ax1, ax2 = fig.subplots(1, 2)
    if ratios:
        ax1.bar([r[0] for r in ratios], [r[1] for r in ratios], color="tab:blue")
        ax1.axhline(1.0, color="black", lw=0.8)
        ax1.tick_params(axis="x", rotation=30)
        for i, (_, v) in enumerate(ratios):
            ax1.annotate(f"{v:.2f}x", (i, v), ha="center", fontsize=8, xytext=(0, 2), textcoords="offset points")
        for j, lab in enumerate(not_recorded):  # shown as missing, not dropped
            ax1.bar([lab], [0.0])
            ax1.text(len(ratios) + j, 0.05, "not recorded", rotation=90, ha="center", va="bottom", fontsize=7,
                     color="0.4")
    else:
        ax1.text(0.5, 0.5, "no ratio could be computed\nfrom stored benchmarks", ha="center", va="center")
    ax1.set_title(f"{b} / {a} (preset {preset})")
    if acc:
        ax2.bar([t[0] for t in acc], [100 * t[1] for t in acc],
                yerr=[100 * Z_95 * (t[2] or 0.0) for t in acc], capsize=3, color="tab:green")
        ax2.axhline(0.0, color="black", lw=0.8)
        ax2.tick_params(axis="x", rotation=30)
        ax2.set_ylabel("points (b - a)")
    else:
        ax2.text(0.5, 0.5, "no dataset evaluated\nfor both models", ha="center", va="center")
    ax2.set_title(f"Accuracy delta {b} - {a} (95% interval)")
    caption = (f"Comparison {a} vs {b} at preset {preset}: ratios b/a of the stored benchmark figures (axis from 0; "
               f"'not recorded': no figure stored), and accuracy differences with 1.96 x the unpaired standard error "
               f"of the difference (significance: the paired test in the accuracy-delta table).")
    return Plot(f"pair_{a}_vs_{b}", f"{a} vs {b}", caption, _png(fig))


def all_plots(snapshot: Any) -> tuple[list[Plot], list[str]]:
    """Every figure the stored results allow, and a sentence for each one they do not."""
    plots: list[Plot] = []
    missing: list[str] = []
    p = accuracy_plot(snapshot.evaluations)
    (plots.append(p) if p else missing.append(
        "No accuracy plot: no stored evaluation has a metric on a 0-1 scale (run `qwenharness evaluate` "
        "or `pytest -m milestone3`)."))
    p = scaling_plot(snapshot.benchmarks, snapshot.coverage)
    (plots.append(p) if p else missing.append(
        "No throughput/memory plot: no stored benchmark or coverage figures (run `pytest --benchmark-only` "
        "or `pytest -m milestone2`)."))
    drawn = 0
    for c in snapshot.comparisons:
        p = pair_plot(c)
        if p:
            plots.append(p)
            drawn += 1
    if not drawn:
        missing.append("No pairwise comparison plot: no stored comparison (run `qwenharness compare --models a,b` "
                       "or `pytest -m milestone4`).")
    return plots, missing
