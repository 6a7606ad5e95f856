"""The report's tables as plain data (headers and rows of strings), shared by the Markdown and HTML
renderers. A builder returns None when there is nothing stored; `EMPTY` holds the sentence to show
instead, with the command that produces the data."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from . import published as pub
from .collect import ResultsSnapshot, bench_figures, dig, weights_kind

MISSING = "not recorded"

EMPTY = {
    "metrics": "No stored evaluation results (run `qwenharness evaluate --models ... --datasets ...` or "
               "`pytest -m milestone3` to produce them).",
    "published": "No evaluated model maps to a published Qwen result (the embedded tiny models have no published "
                 "counterpart; evaluate qwen3_8b, qwen3_14b, qwen2.5_8b, qwen2.5_14b, qwen_8b or qwen_14b to compare).",
    "coverage": "No stored model-coverage results (run `pytest -m milestone2` to produce them).",
    "benchmarks": "No stored benchmark results (run `pytest --benchmark-only` or `qwenharness bench` to produce them).",
    "comparisons": "No stored scaling comparison (run `qwenharness compare --models a,b` or `pytest -m milestone4` "
                   "to produce it).",
    "matrix": "No stored performance matrix (run `qwenharness compare --models a,b` or `pytest -m milestone4`).",
    "gates": "No milestone gate has been recorded (run `pytest` or `pytest -m milestoneN`; the qwenharness pytest "
             "plugin writes results/gates/<milestone>.json).",
}


@dataclass
class Table:
    key: str
    title: str
    headers: list[str]
    rows: list[list[str]]
    notes: list[str] = field(default_factory=list)


# -- formatting -----------------------------------------------------------------------------------
def num(x: Any, spec: str = ".3f") -> str:
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return MISSING
    return format(x, spec)


def gb(x: Any) -> str:
    return MISSING if not isinstance(x, (int, float)) or isinstance(x, bool) else f"{x / 1e9:.2f} GB"


def params(x: int | None) -> str:
    if x is None:
        return MISSING
    return f"{x / 1e9:.2f} B" if x >= 1e8 else f"{x / 1e6:.1f} M"


def yes_no(x: Any) -> str:
    return MISSING if x is None else ("yes" if x else "no")


def quote(text: Any) -> str:
    """Free text from a stored file (error messages, reasons) as inline code: shown verbatim, never
    mistaken for report prose by the placeholder check."""
    return "`" + " ".join(str(text).replace("`", "'").split()) + "`"


def seconds(x: Any) -> str:
    if not isinstance(x, (int, float)) or isinstance(x, bool):
        return MISSING
    return f"{x * 1000:.1f} ms" if x < 1 else f"{x:.2f} s"


# -- tables ---------------------------------------------------------------------------------------
def _chance_level(e: Any) -> bool:
    return weights_kind(e.model) == "random" or e.load_format == "dummy"


def not_scored_reason(dataset: str, aggregate: dict[str, Any]) -> str | None:
    """Why a stored aggregate has no usable headline metric, or None when it is scored: the headline
    metric has no value, or (MT-Bench) the judge's verdicts were unparseable more often than
    gates.toml's [evaluation] max_judge_parse_failure_rate allows."""
    from ..gates import load_gates
    from ..scaling import task_primary_metric

    metrics = aggregate.get("metrics") if isinstance(aggregate.get("metrics"), dict) else {}
    headline = task_primary_metric(dataset)
    rate = (metrics.get("judge_parse_failure_rate") or {}).get("value")
    if isinstance(rate, (int, float)):
        limit = load_gates().max_judge_parse_failure_rate
        if rate > limit:
            return (f"the judge's verdicts were unparseable for {rate:.0%} of judgments, above the "
                    f"{limit:.0%} limit of gates.toml [evaluation] max_judge_parse_failure_rate")
    if headline and (metrics.get(headline) or {}).get("value") is None:
        return f"its headline metric {headline} has no value"
    return None


def metric_table(s: ResultsSnapshot) -> Table | None:
    """Every stored aggregate: headline metric with its standard error; other metrics after it."""
    if not s.evaluations:
        return None
    rows = []
    for e in s.evaluations:
        name = e.primary
        m = e.primary_metric()
        others = ", ".join(f"{k} {num(v.value)} ± {num(v.stderr)}" for k, v in e.metrics.items()
                           if k != name and v.value is not None) or "none"
        if e.isolation:  # generated code: how it was isolated ("none": run with --allow-unisolated)
            others += f"; code isolation: {e.isolation}" + (" (UNISOLATED)" if e.isolation == "none" else "")
        weights = "random: chance-level" if _chance_level(e) else weights_kind(e.model)
        unscored = not_scored_reason(e.dataset, {"metrics": {k: {"value": v.value} for k, v in e.metrics.items()}})
        value = f"not scored ({unscored})" if unscored else num(m.value if m else None)
        rows.append([e.model, weights, e.preset, e.dataset, name or MISSING, value,
                     num(m.stderr if m else None), str(m.n) if m and m.n is not None else MISSING,
                     f"{e.n_errors} of {e.n_samples}" if e.n_samples is not None else MISSING,
                     str(e.n_shot) if e.n_shot is not None else MISSING, yes_no(e.chat),
                     e.backend or MISSING, e.run_id, others])
    return Table("metrics", "Metrics per model x preset x dataset (headline metric ± standard error)",
                 ["model", "weights", "preset", "dataset", "metric", "value", "s.e.", "n", "errors", "shots", "chat",
                  "backend", "run", "other metrics (value ± s.e.)"], rows)


def _verdict_note(c: pub.Comparison) -> str:
    parts = list(c.differences)
    if c.unstated:
        parts.append("not stated by the source: " + ", ".join(c.unstated))
    if c.delta is not None:
        parts.append(f"measured - published = {100 * c.delta:+.1f} points"
                     + (f" (1.96 s.e. = {100 * c.threshold:.1f})" if c.threshold is not None else ""))
    parts += c.notes
    return "; ".join(parts) or "settings match"


def describe_settings(st: dict[str, Any]) -> str:
    """Published settings in words: '4-shot, CoT, no chat format'; unstated ones say so."""
    words = []
    shots = st.get("n_shot")
    words.append("shots not stated" if shots is None else f"{shots}-shot")
    if "cot" in st:
        words.append("CoT not stated" if st["cot"] is None else ("CoT" if st["cot"] else "no CoT"))
    if "chat" in st:
        words.append("chat format not stated" if st["chat"] is None else ("chat format" if st["chat"] else "no chat format"))
    if "judge" in st:
        words.append("judge not stated" if st["judge"] is None else f"judge {st['judge']}")
    return ", ".join(words)


def published_table(s: ResultsSnapshot) -> Table | None:
    comps = pub.comparisons(s.evaluations)
    if not comps:
        return None
    rows = []
    for c in comps:
        e = c.measured
        m = e.metrics.get(c.published.metric) if e and c.published.metric else None
        measured = (f"{num(m.value)} [{num(m.ci95[0])}, {num(m.ci95[1])}] (n={m.n})" if m and m.ci95
                    else f"{num(m.value)} ± {num(m.stderr)}" if m else MISSING)
        settings = describe_settings(c.published.settings)
        rows.append([c.model, c.preset, c.published.dataset or MISSING, c.published.metric or MISSING, measured,
                     f"{c.published.harness_value:.3f}", f"{c.published.model}, {c.published.benchmark} ({settings})",
                     c.published.source.get("citation", c.published.source_key), c.verdict, _verdict_note(c)])
    unmatched = pub.unmatched(s.evaluations)
    notes = []
    if unmatched:
        notes.append("No published counterpart: " + ", ".join(unmatched)
                     + " (embedded or user models that no Qwen publication reports).")
    return Table("published", "Measured vs published (published values on the harness's scale)",
                 ["model", "preset", "dataset", "metric", "measured [95% interval]", "published", "published entry",
                  "source", "verdict", "why"], rows, notes)


def coverage_table(s: ResultsSnapshot) -> Table | None:
    if not s.coverage:
        return None
    rows = []
    for c in s.coverage:
        status = "ok" if c.get("ok") else f"failed: {quote(c.get('error') or 'no error text stored')}"
        rows.append([str(c.get("model")), str(c.get("preset")), str(c.get("backend")), str(c.get("device") or MISSING),
                     status, seconds(c.get("load_time_s")), num(c.get("output_tokens_per_s"), ".1f"),
                     gb(c.get("peak_memory_bytes")), gb(c.get("planned_memory_bytes")),
                     str(c.get("memory_source") or MISSING), str(c.get("gpu_name") or "none (CPU)")])
    ok = sum(1 for c in s.coverage if c.get("ok"))
    return Table("coverage", f"Model coverage: {ok} of {len(s.coverage)} configurations passed",
                 ["model", "preset", "backend", "device", "status", "load time", "output tok/s", "peak memory",
                  "planned memory", "memory source", "GPU"], rows)


def _range(f: dict[str, Any], key: str, count: str, spec: str, what: str) -> str:
    """' (min-max over n rounds, spread x%)' from a benchmark's recorded spread, or '' when absent."""
    lo, hi, n, mid = f.get(f"{key}_min"), f.get(f"{key}_max"), f.get(count), f.get(key)
    if lo is None or hi is None or not n:
        return ""
    rel = f", spread {100 * (hi - lo) / mid:.1f}%" if mid else ""
    return f" ({format(lo, spec)}-{format(hi, spec)} over {n} {what}{rel})"


def benchmark_table(s: ResultsSnapshot) -> Table | None:
    if not s.benchmarks:
        return None
    rows = []
    for b in s.benchmarks:
        f = bench_figures(b)
        mem = gb(f["peak_bytes"]) if f["peak_bytes"] is not None else (
            f"{gb(f['host_rss_peak_bytes'])} (host RSS)" if f["host_rss_peak_bytes"] is not None else MISSING)
        overhead = (num(f["overhead_ratio"]) + _range(f, "overhead_ratio", "overhead_reps", ".3f", "repetitions")
                    if f["overhead_ratio"] is not None else
                    f"not applicable ({quote(dig(b, 'overhead', 'reason'))})" if dig(b, "overhead", "reason") else MISSING)
        bound = (f"{100 * f['bandwidth_fraction']:.0f}%" if f["bandwidth_fraction"] is not None else
                 (f"not applicable ({quote(dig(b, 'physical_bound', 'reason'))})" if dig(b, "physical_bound", "reason")
                  else MISSING))
        rows.append([str(b.get("model")), str(b.get("preset")), str(b.get("backend")),
                     str(dig(b, "environment", "gpu") or "none (CPU)"), num(f["output_tokens_per_s"], ".1f"),
                     _range(f, "output_tokens_per_s", "output_tokens_per_s_rounds", ".1f", "rounds").strip(" ()") or
                     "one round (no spread recorded)",
                     num(f["requests_per_s"], ".2f"), seconds(f["latency_b1_p50_s"]), seconds(f["ttft_b1_p50_s"]),
                     mem, gb(f["weight_bytes"]), overhead, bound])
    return Table("benchmarks", "Benchmarks (newest per model x preset x backend; random token-id workload)",
                 ["model", "preset", "backend", "GPU", "output tok/s", "spread over rounds", "requests/s",
                  "b1 p50 latency", "b1 p50 TTFT",
                  "peak memory", "weights", "overhead ratio (bare/harness)", "bandwidth bound reached"], rows)


def comparison_tables(s: ResultsSnapshot) -> list[Table]:
    out = []
    for c in s.comparisons:
        a, b = dig(c, "models", "a"), dig(c, "models", "b")
        rows = []
        for preset, per in sorted((c.get("presets") or {}).items()):
            r = per.get("ratios") or {}
            rows.append([preset] + [num(dig(r, k, "value")) for k in
                                    ("parameter_ratio", "throughput_ratio", "cost_per_token_ratio",
                                     "latency_ratio_batch_1", "weight_memory_ratio", "peak_memory_ratio")])
        out.append(Table(f"ratios_{a}_{b}", f"{b} / {a}: ratios per preset (b / a)",
                         ["preset", "parameters", "throughput", "cost per token", "b1 latency", "weight memory",
                          "peak memory"], rows))
        head = c.get("headline_preset")
        acc = dig(c, "presets", str(head), "accuracy") or {}
        if acc:
            arows = [[ds, str(x.get("metric")), num(dig(x, "a", "value", "value")), num(dig(x, "b", "value", "value")),
                      num(dig(x, "delta", "value"), "+.3f"), num(dig(x, "se", "value")), paired_words(x.get("paired")),
                      yes_no(x.get("significant"))]
                     for ds, x in sorted(acc.items())]
            out.append(Table(f"accuracy_{a}_{b}", f"{b} - {a}: accuracy deltas (preset {head})",
                             ["dataset", "metric", a, b, "delta", "s.e. (unpaired)", "paired test on shared documents",
                              "significant"], arows,
                             ["Significance comes from the paired test (exact McNemar for 0/1 scores) on the documents "
                              "both models scored; below 10 shared documents it is 'not enough samples', never "
                              "significant."]))
    return out


def paired_words(p: Any) -> str:
    """A stored paired test in words: verdict, test, shared documents and p-value."""
    if not isinstance(p, dict):
        return "no per-sample records: not tested"
    bits = [str(p.get("verdict")), f"n = {p.get('n_shared')} shared"]
    if p.get("test"):
        bits.append(str(p["test"]))
    if isinstance(p.get("p_value"), (int, float)):
        bits.append(f"p = {p['p_value']:.3g}")
    return ", ".join(bits)


def matrix_table(s: ResultsSnapshot) -> Table | None:
    rows_in = (s.matrix or {}).get("rows") or []
    if not rows_in:
        return None
    rows = []
    for r in rows_in:
        tput = dig(r, "throughput", "random", "output_tokens_per_s")
        mem = r.get("memory") or {}
        acc = r.get("accuracy") or {}
        acc_txt = ", ".join(f"{ds} {num(x.get('value')) if x.get('value') is not None else 'no value: ' + str(x.get('reason'))}"
                            for ds, x in sorted(acc.items())) or "none evaluated"
        rows.append([str(r.get("model")), str(r.get("preset")), params(r.get("parameter_count")),
                     str(r.get("backend") or MISSING), num(tput, ".1f"),
                     gb(mem.get("peak_bytes") if mem.get("peak_bytes") is not None else mem.get("host_rss_peak_bytes")),
                     num(r.get("gpu_utilization_pct"), ".0f") if r.get("gpu_utilization_pct") is not None
                     else f"not measured ({quote(r.get('gpu_utilization_reason') or 'no GPU samples')})", acc_txt])
    return Table("matrix", "Performance matrix (results/comparisons/performance_matrix.json)",
                 ["model", "preset", "parameters", "backend", "output tok/s", "peak memory", "GPU util %",
                  "accuracy (headline metric)"], rows)


MILESTONE_NAMES = {
    "milestone1": "environment, configurations, datasets",
    "milestone2": "model coverage",
    "milestone3": "dataset evaluation",
    "milestone4": "scaling analysis",
    "milestone5": "reports and production readiness",
}


def gates_table(s: ResultsSnapshot) -> Table:
    rows = []
    for m, what in MILESTONE_NAMES.items():
        g = s.gates.get(m)
        if g is None:
            rows.append([m, what, "not run", "0", "0", "0", "no results/gates record", quote(f"pytest -m {m}")])
            continue
        c = g.get("counts") or {}
        rows.append([m, what, gate_status(g), str(c.get("passed", 0)), str(c.get("failed", 0) + c.get("error", 0)),
                     str(c.get("skipped", 0)), gate_coverage(g), str(g.get("finished_at") or g.get("updated_at") or MISSING),
                     quote(g.get("command")) if g.get("command") else MISSING])
    notes = [f"Subset run of {m} (gates/partial/{m}.json, not the verdict): {g.get('status')}, "
             f"{(g.get('counts') or {}).get('passed', 0)} passed, "
             f"{(g.get('counts') or {}).get('failed', 0) + (g.get('counts') or {}).get('error', 0)} failed; "
             f"partial because {'; '.join(g.get('partial_because') or ['of its selection'])}."
             for m, g in sorted(s.partial_gates.items())]
    return Table("gates", "Milestone gates (results/gates/<milestone>.json)",
                 ["milestone", "checks", "status", "passed", "failed", "skipped", "ran on", "recorded", "command"], rows,
                 notes)


def gate_status(g: dict[str, Any]) -> str:
    """A gate's status; 'running' only while its pytest session is alive (the session id starts with its
    pid), else 'unfinished' (the session ended without a verdict)."""
    import os

    status = str(g.get("status"))
    if status != "running":
        return status
    pid = str(g.get("session") or "").split("-")[0]
    try:
        os.kill(int(pid), 0)
    except (ValueError, ProcessLookupError):
        return "unfinished (its session ended without a verdict)"
    except PermissionError:
        pass
    return status


def gate_coverage(g: dict[str, Any]) -> str:
    """Which models, presets and backends a gate's tests ran on (recorded by the gate plugin)."""
    cov = g.get("coverage") if isinstance(g.get("coverage"), dict) else {}
    parts = [f"{k}: {', '.join(map(str, cov[k]))}" for k in ("models", "presets", "backends") if cov.get(k)]
    return "; ".join(parts) if parts else MISSING

