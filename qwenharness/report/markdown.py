"""The Markdown reports, built from stored results only (qwenharness.report.collect):

- `results/LARGE_SCALE_EVALUATION_FINAL_REPORT.md`: the sections of `SECTIONS`, each filled from the
  stored files; where a kind of result is missing the section says which and the command that makes it;
- `results/PROJECT_TRACKER.md` (`--tracker`): milestone status, runs and the newest results.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any
from pathlib import Path
from . import published as pub
from .collect import ResultsSnapshot, bench_figures, collect, dig, weights_kind
from .tables import (EMPTY, MISSING, Table, benchmark_table, comparison_tables, coverage_table, gates_table,
                     gate_status, matrix_table, metric_table, not_scored_reason, num, published_table)

FINAL_REPORT = "LARGE_SCALE_EVALUATION_FINAL_REPORT.md"
TRACKER = "PROJECT_TRACKER.md"
SECTIONS = ("Executive summary", "Model performance", "Scaling analysis", "Framework validation",
            "Recommendations", "Appendix: manifest and reproduction")
MANIFEST_KEYS = ("run_id", "created_at", "started_at", "ended_at", "command_line", "settings", "seeds",
                 "environment", "gpus")


def md_escape(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def md_table(t: Table) -> str:
    lines = [f"**{t.title}**", "", "| " + " | ".join(md_escape(h) for h in t.headers) + " |",
             "|" + "|".join("---" for _ in t.headers) + "|"]
    lines += ["| " + " | ".join(md_escape(c) for c in row) + " |" for row in t.rows]
    lines += [""] + [f"_{md_escape(n)}_" for n in t.notes]
    return "\n".join(lines).rstrip() + "\n"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


# -- sections -------------------------------------------------------------------------------------
def executive_summary(s: ResultsSnapshot) -> str:
    out = []
    if s.evaluations:
        samples = sum(e.n_samples or 0 for e in s.evaluations)
        errors = sum(e.n_errors or 0 for e in s.evaluations)
        presets = sorted({e.preset for e in s.evaluations})
        out.append(f"- **Evaluations:** {len(s.evaluations)} stored aggregates covering {len(s.models)} model(s) "
                   f"({', '.join(s.models)}) x {len(s.datasets)} dataset(s) x {len(presets)} preset(s) "
                   f"({', '.join(presets)}); {samples} samples scored, {errors} ended in an error "
                   f"({(errors / samples if samples else 0):.1%}).")
        chance = sorted({e.model for e in s.evaluations if weights_kind(e.model) == "random"})
        real = sorted({e.model for e in s.evaluations if weights_kind(e.model) == "real"})
        out.append("- **Which figures are what:** "
                   + (f"real-model accuracies: {', '.join(real)}; " if real else "no real-model accuracy stored; ")
                   + (f"chance-level by construction (random weights, pipeline checks only, excluded from "
                      f"'best' and recommendations): {', '.join(chance)}; " if chance else "")
                   + "speed and memory of models run with dummy weights are speed and memory only; "
                   "anything absent from the tables below was not measured.")
        best = []
        for d in s.datasets:
            cands = [(e, e.primary_metric()) for e in s.evaluations if e.dataset == d
                     and weights_kind(e.model) != "random" and e.load_format != "dummy"]
            cands = [(e, m) for e, m in cands if m is not None and m.value is not None and not not_scored_reason(
                e.dataset, {"metrics": {k: {"value": v.value} for k, v in e.metrics.items()}})]
            if cands:
                top = max(m.value for _, m in cands)
                leaders = [(e, m) for e, m in cands if m.value == top]
                e, m = leaders[0]
                who = " = ".join(f"{x.model}/{x.preset}" for x, _ in leaders) + (" (tie)" if len(leaders) > 1 else "")
                best.append(f"{d}: {who} {e.primary} {num(m.value)} ± {num(m.stderr)}")
        if best:
            out.append("- **Best headline metric per dataset:** " + "; ".join(best) + ".")
    else:
        out.append("- " + EMPTY["metrics"])
    if s.coverage:
        ok = sum(1 for c in s.coverage if c.get("ok"))
        models = sorted({str(c.get("model")) for c in s.coverage if c.get("model")})
        presets = sorted({str(c.get("preset")) for c in s.coverage if c.get("preset")})
        chance = [m for m in models if weights_kind(m) == "random"]
        out.append(f"- **Model coverage:** {ok} of {len(s.coverage)} model x preset x backend configurations loaded, "
                   f"generated and released memory; models {', '.join(models) or MISSING}"
                   + (f" ({', '.join(chance)}: random weights)" if chance else "")
                   + f", presets {', '.join(presets) or MISSING}.")
    else:
        out.append("- " + EMPTY["coverage"])
    tput = [(b, bench_figures(b)["output_tokens_per_s"]) for b in s.benchmarks]
    tput = [(b, t) for b, t in tput if t is not None]
    if tput:
        b, t = max(tput, key=lambda x: x[1])
        out.append(f"- **Throughput:** {len(s.benchmarks)} benchmarked configuration(s); the fastest is "
                   f"{b.get('model')}/{b.get('preset')}/{b.get('backend')} at {t:.1f} output tokens/s "
                   f"({dig(b, 'environment', 'gpu') or 'CPU'}).")
    else:
        out.append("- " + EMPTY["benchmarks"])
    if s.comparisons:
        pairs = ", ".join(f"{dig(c, 'models', 'a')} vs {dig(c, 'models', 'b')}" for c in s.comparisons)
        n_ins = len((s.insights or {}).get("insights") or [])
        out.append(f"- **Scaling:** {len(s.comparisons)} pairwise comparison(s) ({pairs}); {n_ins} computed insight(s).")
    else:
        out.append("- " + EMPTY["comparisons"])
    ran = {m: gate_status(g) for m, g in sorted(s.gates.items())}
    if ran:
        out.append("- **Gates:** " + ", ".join(f"{m} {st}" for m, st in ran.items()) + ".")
    else:
        out.append("- " + EMPTY["gates"])
    comps = pub.comparisons(s.evaluations)
    if comps:
        counts: dict[str, int] = {}
        for c in comps:
            counts[c.verdict] = counts.get(c.verdict, 0) + 1
        out.append("- **Published references:** " + ", ".join(f"{n} {v}" for v, n in sorted(counts.items())) + ".")
    return "\n".join(out) + "\n"


def model_performance(s: ResultsSnapshot) -> str:
    parts = []
    t = metric_table(s)
    parts.append(md_table(t) if t else EMPTY["metrics"] + "\n")
    parts.append("### Published reference numbers\n")
    pt = published_table(s)
    if pt:
        parts.append("A difference is flagged only when every checked setting (model checkpoint, dataset, metric, "
                     "shots, chat format, judge) matches and |measured - published| > 1.96 x the measured standard "
                     "error.\n")
        parts.append(md_table(pt))
    else:
        parts.append(EMPTY["published"] + "\n")
    srcs = pub.sources()
    parts.append("Sources of the published figures:\n")
    parts += [f"- {v['citation']}, {v['location']}: <{v['url']}>" for v in srcs.values()]
    missing = pub.not_found()
    if missing:
        parts.append("\nPublished figures not recorded (not found in a source):\n")
        parts += [f"- {m}" for m in missing]
    return "\n".join(parts) + "\n"


def scaling_analysis(s: ResultsSnapshot) -> str:
    parts = ["### Model coverage\n"]
    t = coverage_table(s)
    parts.append(md_table(t) if t else EMPTY["coverage"] + "\n")
    parts.append("### Benchmarks\n")
    t = benchmark_table(s)
    parts.append(md_table(t) if t else EMPTY["benchmarks"] + "\n")
    parts.append("### Pairwise comparisons\n")
    tables = comparison_tables(s)
    parts += [md_table(x) for x in tables] if tables else [EMPTY["comparisons"] + "\n"]
    parts.append("### Performance matrix\n")
    t = matrix_table(s)
    parts.append(md_table(t) if t else EMPTY["matrix"] + "\n")
    parts.append("### Insights\n")
    ins = (s.insights or {}).get("insights") or []
    if ins:
        parts += [f"- {i.get('text')} _(rule: {i.get('rule')})_" for i in ins if i.get("text")]
    else:
        parts.append("No stored scaling insights (results/comparisons/scaling_insights.json is missing or empty; "
                     "run `qwenharness compare --models a,b`).")
    return "\n".join(parts) + "\n"


def framework_validation(s: ResultsSnapshot) -> str:
    parts = [md_table(gates_table(s))]
    failed = {m: g for m, g in s.gates.items() if g.get("failures")}
    for m, g in sorted(failed.items()):
        parts.append(f"Failing checks in {m}:\n")
        parts += [f"- `{f}`" for f in g["failures"][:20]]
        parts.append("")
    if not s.gates:
        parts.append(EMPTY["gates"] + "\n")
    files = [("latest summary", s.latest_summary), ("comprehensive summary", s.comprehensive_summary),
             ("performance matrix", s.matrix), ("scaling insights", s.insights)]
    parts.append("Stored summary files: " + "; ".join(f"{n} {'present' if d is not None else 'missing'}"
                                                       for n, d in files) + ".\n")
    if s.unreadable:
        parts.append("Files that could not be read (left out of this report):\n")
        parts += [f"- {u}" for u in s.unreadable]
    else:
        parts.append("Every stored result file parsed.")
    return "\n".join(parts) + "\n"


def recommendations(s: ResultsSnapshot) -> str:
    out = []
    for c in s.comparisons:
        for r in c.get("recommendations") or []:
            if r.get("text"):
                out.append(f"- {r['text']} _(rule: {r.get('rule')})_")
    if not out:
        ins = [i for i in (s.insights or {}).get("insights") or [] if i.get("text")]
        out += [f"- {i['text']}" for i in ins]
    differs = [c for c in pub.comparisons(s.evaluations) if c.verdict == pub.DIFFERS]
    for c in differs:
        out.append(f"- {c.model} on {c.published.dataset}: the measured {c.published.metric} differs from "
                   f"{c.published.model}'s published {c.published.value:g} ({c.published.benchmark}) by "
                   f"{100 * (c.delta or 0):+.1f} points with matching settings, beyond 1.96 s.e. "
                   f"({100 * (c.threshold or 0):.1f} points): check the prompt format and answer extraction.")
    fails = [m for m, g in sorted(s.gates.items()) if g.get("status") == "failed"]
    if fails:
        out.append(f"- Gates failing: {', '.join(fails)}; fix those before relying on the figures above.")
    if not out:
        out.append("- No recommendation can be derived: no stored comparison or scaling insight (run "
                   "`qwenharness compare --models a,b` after evaluating and benchmarking both models).")
    return "\n".join(out) + "\n"


def command_of(argv: Any) -> str | None:
    """A recorded argv as a shell command: the interpreter's entry points become `python -m ...`."""
    import shlex

    if not isinstance(argv, list) or not argv:
        return None
    head, rest = str(argv[0]), [str(a) for a in argv[1:]]
    for module in ("pytest", "qwenharness"):
        if head.endswith((f"{module}/__main__.py", f"/{module}")) or head == module:
            return shlex.join([module if module == "qwenharness" else "python", *([] if module == "qwenharness" else
                                                                                  ["-m", "pytest"]), *rest])
    return shlex.join([head, *rest])


def invocation_lines(run: str, manifest: dict[str, Any]) -> list[str]:
    """Every invocation that wrote into a run, once per distinct command, with what it wrote."""
    by_cmd: dict[str, list[str]] = {}
    for inv in manifest.get("invocations") or []:
        cmd = command_of(inv.get("command_line")) if isinstance(inv, dict) else None
        if cmd:
            wrote = [str(w.get("evaluation")) for w in inv.get("wrote") or [] if isinstance(w, dict)]
            by_cmd.setdefault(cmd, []).extend(wrote)
    lines = []
    for cmd, wrote in by_cmd.items():
        done = sorted(set(wrote))
        lines.append(f"# run {run}: " + (f"wrote {len(done)} evaluation(s): {', '.join(done)}" if done
                                         else "wrote nothing new (reused or waited)"))
        lines.append(cmd)
    return lines


def _reproduce(s: ResultsSnapshot) -> list[str]:
    cmds = []
    for run, m in sorted(s.manifests.items()):
        st = m.get("settings") or {}
        recorded = invocation_lines(run, m)
        if recorded:  # the manifest accumulates every invocation: those are what reproduces the run
            cmds += recorded
            continue
        if st.get("models") and st.get("datasets"):
            cmd = (f"qwenharness evaluate --models {','.join(st['models'])} --presets {','.join(st.get('presets') or [])} "
                   f"--datasets {','.join(st['datasets'])} --backend {st.get('backend')} "
                   f"--results-dir {s.results_dir} --run-id {run}")
            if st.get("sample_limit") is not None:
                cmd += f" --sample-limit {st['sample_limit']}"
            if st.get("seed") is not None:
                cmd += f" --seed {st['seed']}"
            cmds.append(cmd)
        if m.get("command_line"):
            cmds.append("# as recorded: " + " ".join(map(str, m["command_line"])))
    for g in (s.gates[k] for k in sorted(s.gates)):
        if g.get("command"):
            cmds.append(str(g["command"]))
    for c in s.comparisons:
        cmds.append(f"qwenharness compare --models {dig(c, 'models', 'a')},{dig(c, 'models', 'b')} --detailed-metrics "
                    f"--results-dir {s.results_dir}")
    run_arg = f" --run-id {s.run_id}" if s.run_id else ""
    cmds.append(f"qwenharness report --results-dir {s.results_dir}{run_arg} --tracker")
    return list(dict.fromkeys(cmds))


def appendix(s: ResultsSnapshot) -> str:
    parts = []
    if s.manifests:
        for run, m in sorted(s.manifests.items()):
            parts.append(f"### Run `{run}`\n")
            trimmed = {k: m[k] for k in MANIFEST_KEYS if k in m}
            trimmed["resolved_configs"] = sorted((m.get("resolved_configs") or {}).keys())
            trimmed.pop("settings", None) if m.get("invocations") else None  # the last call's only: see Reproduce
            trimmed["invocations"] = len(m.get("invocations") or [])
            parts.append("```json\n" + json.dumps(trimmed, indent=2, default=str) + "\n```\n")
    else:
        parts.append("No run manifest is stored (manifests are written by `qwenharness evaluate` and the milestone-3 "
                     "tests under results/evaluations/<run_id>/manifest.json).\n")
    parts.append("### Reproduce\n")
    parts.append("```bash\n" + "\n".join(_reproduce(s)) + "\n```\n")
    parts.append(f"Stored runs: {', '.join(s.runs) if s.runs else 'none'}. This report: {s.scope_text()}")
    return "\n".join(parts) + "\n"


BUILDERS = {
    "Executive summary": executive_summary,
    "Model performance": model_performance,
    "Scaling analysis": scaling_analysis,
    "Framework validation": framework_validation,
    "Recommendations": recommendations,
    "Appendix: manifest and reproduction": appendix,
}


def build_final_report(s: ResultsSnapshot) -> str:
    scope = f"run `{s.run_id}`" if s.run_id else "the newest stored result per configuration"
    head = ["# Large-scale evaluation: final report\n",
            f"Generated {_now()} from `{s.results_dir}` ({scope}) by `qwenharness report`. Every figure below is read "
            "from the stored result files named in each section.\n"]
    body = [f"## {name}\n\n{BUILDERS[name](s)}" for name in SECTIONS]
    return "\n".join(head + body)


def build_tracker(s: ResultsSnapshot) -> str:
    lines = ["# Project tracker\n", f"Updated {_now()} from `{s.results_dir}` by `qwenharness report --tracker`.\n",
             "## Milestones\n", md_table(gates_table(s)), "## Runs\n"]
    if s.runs:
        lines += ["| run | evaluations | models | datasets |", "|---|---|---|---|"]
        for r in s.runs:
            evs = [e for e in s.evaluations if e.run_id == r]
            lines.append(f"| {r} | {len(evs)} | {', '.join(sorted({e.model for e in evs})) or 'superseded by newer runs'} "
                         f"| {len({e.dataset for e in evs})} |")
        lines.append("")
    else:
        lines.append(EMPTY["metrics"] + "\n")
    lines.append("## Newest results\n")
    t = metric_table(s)
    if t:
        keep = [*range(8), t.headers.index("run")]  # model .. n, and the run whose file each row cites
        t = Table(t.key, t.title, [t.headers[i] for i in keep], [[r[i] for i in keep] for r in t.rows])
    lines.append(md_table(t) if t else EMPTY["metrics"] + "\n")
    lines.append("## Open items\n")
    items = [f"- {m}: {gate_status(g)} ({len(g.get('failures') or [])} failing check(s))"
             for m, g in sorted(s.gates.items()) if g.get("status") != "passed"]
    items += [f"- milestone {m[-1]} not run yet (`pytest -m {m}`)" for m in
              ("milestone1", "milestone2", "milestone3", "milestone4", "milestone5") if m not in s.gates]
    items += [f"- unreadable result file: {u}" for u in s.unreadable]
    lines.append("\n".join(items) if items else "- none: every milestone gate passed on its last run.")
    return "\n".join(lines) + "\n"


def write_reports(results_dir: str | Path = "results", run_id: str | None = None, tracker: bool = False,
                  snapshot: ResultsSnapshot | None = None) -> dict[str, Path]:
    """Write the final report (and the tracker) under `results_dir`; returns their paths."""
    from ..results import atomic_write_text

    s = snapshot or collect(results_dir, run_id)
    out = {"final_report": Path(results_dir) / FINAL_REPORT}
    atomic_write_text(out["final_report"], build_final_report(s))
    if tracker:
        out["tracker"] = Path(results_dir) / TRACKER
        atomic_write_text(out["tracker"], build_tracker(s))
    return out


def section_text(markdown: str, name: str) -> str | None:
    """The body of `## name` (up to the next `## `), or None when the heading is absent."""
    marker = f"## {name}\n"
    start = markdown.find(marker)
    if start < 0:
        return None
    rest = markdown[start + len(marker):]
    end = rest.find("\n## ")
    return rest if end < 0 else rest[:end]
