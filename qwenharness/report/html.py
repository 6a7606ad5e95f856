"""pytest plugin: the HTML report's results section and the milestone gate records.

Registered by the suite's plugin, qwenharness.pytest_plugin (`pytest_plugins`). Works with and
without pytest-html:

- gate records (always): every test carrying a `milestoneN` marker adds its outcome to
  `<results>/gates/milestoneN.json` as the session goes (status "running"; milestones 4-5 accept that
  only from their own session), finalised at session end; a subset run (-k, deselection, named files
  or node ids) writes `<results>/gates/partial/milestoneN.json` instead, never the verdict;
- at session end, after the gates are final: the final report and tracker, written once from one read
  of the stored results, which the HTML results section shows too;
- with pytest-html installed: when no `--html` is given, the report goes to `reports/<name>.html`
  (self-contained), where <name> is the `-m` expression or "full-suite". Change it with the ini option
  `qwenharness_html` or the environment variable QWENHARNESS_HTML (a path, `{name}` is replaced;
  empty or "none" turns the default off);
- at session end, `pytest_html_results_summary` adds the stored results: metric table with standard
  errors, published references, coverage, benchmarks, scaling comparison and the PNG plots (base64).
"""

from __future__ import annotations

import html
import os
import re
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from ..gate_evidence import evidence_of
from .collect import MILESTONES, ResultsSnapshot, collect
from .tables import (EMPTY, Table, benchmark_table, comparison_tables, coverage_table, gates_table, matrix_table,
                     metric_table, published_table)

HTML_ENV = "QWENHARNESS_HTML"
HTML_INI = "qwenharness_html"
DEFAULT_HTML = "reports/{name}.html"
GATE_PLUGIN = "qwenharness-gates"
PARTIAL_DIR = "partial"

CSS = """
.qh-results { font-family: Helvetica, Arial, sans-serif; margin: 1em 0; }
.qh-results h2 { border-bottom: 2px solid #ccc; margin-top: 1.2em; }
.qh-results table { border-collapse: collapse; margin: 0.5em 0 1em 0; font-size: 12px; }
.qh-results th, .qh-results td { border: 1px solid #bbb; padding: 3px 6px; text-align: left; vertical-align: top; }
.qh-results th { background: #eef; }
.qh-results caption { font-weight: bold; text-align: left; padding: 4px 0; }
.qh-results figure { margin: 0.5em 0 1.5em 0; }
.qh-results figcaption { font-size: 12px; color: #444; max-width: 1000px; }
.qh-results img { max-width: 1000px; border: 1px solid #ddd; }
.qh-results .qh-empty { color: #a40; }
"""


# -- rendering ------------------------------------------------------------------------------------
_CODE = re.compile(r"`([^`]*)`")


def cell(text: str) -> str:
    """Escape a table cell; `inline code` becomes <code>."""
    return _CODE.sub(lambda m: f"<code>{m.group(1)}</code>", html.escape(str(text)))


def html_table(t: Table) -> str:
    head = "".join(f"<th>{cell(h)}</th>" for h in t.headers)
    body = "".join("<tr>" + "".join(f"<td>{cell(c)}</td>" for c in row) + "</tr>" for row in t.rows)
    notes = "".join(f"<p><em>{cell(n)}</em></p>" for n in t.notes)
    return (f'<table class="qh-table" id="qh-{html.escape(t.key)}"><caption>{cell(t.title)}</caption>'
            f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{notes}")


def _empty(text: str) -> str:
    return f'<p class="qh-empty">{cell(text)}</p>'


def render_results_fragment(s: ResultsSnapshot) -> str:
    """The stored results as an HTML fragment (tables and embedded PNG plots)."""
    from .plots import all_plots

    parts = [f"<style>{CSS}</style>", '<div class="qh-results">',
             f"<h2>Stored results</h2><p>Read from <code>{html.escape(str(s.results_dir))}</code> at "
             f"{datetime.now(timezone.utc).isoformat(timespec='seconds')}; "
             + html.escape(s.scope_text()) + "</p>"]
    sections: list[tuple[str, list[Table | None], str]] = [
        ("Milestone gates", [gates_table(s)], EMPTY["gates"]),  # first: whether the figures below are gated
        ("Model performance", [metric_table(s)], EMPTY["metrics"]),
        ("Published reference numbers", [published_table(s)], EMPTY["published"]),
        ("Model coverage", [coverage_table(s)], EMPTY["coverage"]),
        ("Benchmarks", [benchmark_table(s)], EMPTY["benchmarks"]),
        ("Scaling comparison", [*comparison_tables(s), matrix_table(s)], EMPTY["comparisons"]),
    ]
    for title, tables, empty in sections:
        parts.append(f"<h2>{html.escape(title)}</h2>")
        present = [t for t in tables if t is not None]
        parts += [html_table(t) for t in present] if present else [_empty(empty)]
        skips = collapsed_skips(s) if title == "Milestone gates" else []
        if skips:
            parts.append("<h3>Skipped tests (one line per reason)</h3><ul>" + "".join(
                f"<li>{html.escape(m)}: {n} test(s): {cell(r)}</li>" for m, r, n in skips) + "</ul>")
    ins = [i for i in (s.insights or {}).get("insights") or [] if isinstance(i, dict) and i.get("text")]
    if ins:
        parts.append("<h3>Scaling insights</h3><ul>" + "".join(f"<li>{cell(i['text'])}</li>" for i in ins) + "</ul>")
    parts.append("<h2>Plots</h2>")
    plots, missing = all_plots(s)
    for p in plots:
        parts.append(f'<figure id="qh-plot-{html.escape(p.name)}"><img alt="{html.escape(p.title)}" '
                     f'src="{p.data_uri()}"/><figcaption>{cell(p.caption)}</figcaption></figure>')
    parts += [_empty(m) for m in missing]
    if s.unreadable:
        parts.append("<h2>Unreadable files</h2><ul>" + "".join(f"<li>{cell(u)}</li>" for u in s.unreadable) + "</ul>")
    parts.append("</div>")
    return "\n".join(parts)


def render_standalone(s: ResultsSnapshot, title: str = "qwenharness results") -> str:
    """A complete HTML page of the stored results (for `qwenharness report --html`)."""
    return (f"<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title></head>"
            f"<body><h1>{html.escape(title)}</h1>{render_results_fragment(s)}</body></html>\n")


# -- gate records ---------------------------------------------------------------------------------
def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class GateRecorder:
    """Outcomes of milestone-marked tests, written to <results>/gates/<milestone>.json."""

    def __init__(self, results_dir: Path, command: str):
        self.dir = Path(results_dir) / "gates"
        self.command = command
        self.session = f"{os.getpid()}-{time.time():.0f}"
        self.started_at = _now()
        self.outcomes: dict[str, dict[str, str]] = {}  # milestone -> nodeid -> outcome
        self.failures: dict[str, list[str]] = {}
        self.collected: dict[str, int] = {}  # milestone -> tests collected (after deselection)
        self.partial: dict[str, list[str]] = {}  # milestone -> why this session runs only part of it
        self.coverage: dict[str, Any] = {}  # models, presets, datasets, backends the session ran on
        self.skips: dict[str, dict[str, int]] = {}  # milestone -> skip reason -> tests
        self.run_id: str | None = None  # the run the session's gates read and write (--run-id)
        self.evidence: dict[str, dict[str, set[str]]] = {}  # milestone -> kind -> keys its tests judged

    def mark_partial(self, milestone: str, why: str) -> None:
        reasons = self.partial.setdefault(milestone, [])
        if why not in reasons:
            reasons.append(why)

    def path(self, milestone: str) -> Path:
        """gates/<m>.json holds a milestone's verdict; a subset run writes gates/partial/<m>.json instead."""
        return (self.dir / PARTIAL_DIR if milestone in self.partial else self.dir) / f"{milestone}.json"

    @staticmethod
    def outcome(report: pytest.TestReport) -> str | None:
        if report.when == "call":
            return report.outcome if not hasattr(report, "wasxfail") else "skipped"
        if report.outcome == "failed":
            return "error"
        if report.when == "setup" and report.outcome == "skipped":
            return "skipped"
        return None

    def add(self, report: pytest.TestReport) -> None:
        result = self.outcome(report)
        if result is None:
            return
        judged = evidence_of(report.user_properties)
        for m in (k for k in MILESTONES if k in report.keywords):
            for e in judged:
                self.evidence.setdefault(m, {}).setdefault(e["kind"], set()).add(e["key"])
            seen = self.outcomes.setdefault(m, {})
            if seen.get(report.nodeid) in ("failed", "error"):
                continue  # a failed call stays failed whatever teardown says
            seen[report.nodeid] = result
            if result == "skipped":
                reason = skip_reason(report)
                self.skips.setdefault(m, {})[reason] = self.skips.get(m, {}).get(reason, 0) + 1
            if result in ("failed", "error"):
                self.failures.setdefault(m, []).append(report.nodeid)
            self.write(m, final=False)

    def record(self, milestone: str, final: bool, exitstatus: int | None = None) -> dict[str, Any]:
        seen = self.outcomes.get(milestone, {})
        counts = {k: sum(1 for v in seen.values() if v == k) for k in ("passed", "failed", "error", "skipped")}
        if counts["failed"] or counts["error"]:
            status = "failed"
        elif counts["passed"]:
            status = "passed" if final else "running"
        else:
            status = "skipped"
        not_run = max(0, self.collected.get(milestone, 0) - len(seen))
        if final and status == "passed" and not_run:
            status = "incomplete"  # -x, --maxfail or a crash: some collected tests never reported
        if final and exitstatus == pytest.ExitCode.INTERRUPTED:
            status = "interrupted"
        return {"milestone": milestone, "status": status, "counts": counts, "tests": len(seen),
                "collected": self.collected.get(milestone, len(seen)), "not_run": not_run,
                "scope": "partial" if milestone in self.partial else "full",
                "partial_because": self.partial.get(milestone, []), "coverage": self.coverage,
                "run_id": self.run_id,
                "evidence": {k: sorted(v) for k, v in sorted(self.evidence.get(milestone, {}).items())},
                "skip_reasons": self.skips.get(milestone, {}),
                "failures": sorted(set(self.failures.get(milestone, []))), "command": self.command,
                "session": self.session, "started_at": self.started_at,
                "updated_at": _now(), "finished_at": _now() if final else None}

    def write(self, milestone: str, final: bool, exitstatus: int | None = None) -> None:
        from ..results import atomic_write_json

        atomic_write_json(self.path(milestone), self.record(milestone, final, exitstatus))

    def finish(self, exitstatus: int) -> None:
        for m in self.outcomes:
            self.write(m, final=True, exitstatus=exitstatus)


def skip_reason(report: pytest.TestReport) -> str:
    """A skip's reason, without pytest's 'Skipped: ' prefix and the (file, line) tuple around it."""
    lr = getattr(report, "longrepr", None)
    text = lr[2] if isinstance(lr, tuple) and len(lr) == 3 else (getattr(report, "wasxfail", "") or lr or "no reason given")
    return str(text).removeprefix("Skipped: ").strip()


def collapsed_skips(s: ResultsSnapshot) -> list[tuple[str, str, int]]:
    """(milestone, reason, tests) for the skips the gate files recorded: one line per reason."""
    return [(m, reason, n) for m, g in sorted(s.gates.items())
            for reason, n in sorted((g.get("skip_reasons") or {}).items(), key=lambda x: (-x[1], x[0]))]


def _results_dir(config: pytest.Config) -> Path:
    return Path(config.getoption("--results-dir", default=None) or "results")


def _is_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


def default_html_path(config: pytest.Config) -> str | None:
    """reports/<name>.html unless turned off; <name> is the -m expression (made file-safe) or full-suite."""
    template = os.environ.get(HTML_ENV)
    if template is None:
        try:
            template = config.getini(HTML_INI) or DEFAULT_HTML
        except ValueError:
            template = DEFAULT_HTML
    if template.strip().lower() in ("", "none", "off"):
        return None
    mark = (config.getoption("markexpr", default="") or "").strip()
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", mark).strip("_") or "full-suite"
    if config.getoption("benchmark_only", default=False):
        name = "benchmarks" if name == "full-suite" else f"benchmarks_{name}"
    return template.replace("{name}", name)


# -- hooks ----------------------------------------------------------------------------------------
def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini(HTML_INI, f"default pytest-html report path when --html is not given ({{name}}: the -m "
                  f"expression or full-suite; 'none' turns it off; env {HTML_ENV} overrides)", default=DEFAULT_HTML)


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    """Before pytest-html reads --html: point it at reports/<name>.html when none was given."""
    if _is_worker(config):
        return
    if not config.pluginmanager.has_plugin(GATE_PLUGIN):
        config.pluginmanager.register(GatePlugin(config), GATE_PLUGIN)
    if not config.pluginmanager.hasplugin("html") or config.getoption("htmlpath", default=None):
        return
    path = default_html_path(config)
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        config.option.htmlpath = path
        config.option.self_contained_html = True


def milestone_files(config: pytest.Config) -> dict[str, set[Path]]:
    """The test files under the ini testpaths that carry each milestone's marker (read, not imported)."""
    root = Path(config.rootpath)
    out: dict[str, set[Path]] = {}
    for tp in config.getini("testpaths") or ["."]:
        for f in sorted((root / tp).rglob("test_*.py")):
            try:
                text = f.read_text(encoding="utf-8", errors="ignore")
            except OSError:
                continue
            for m in MILESTONES:
                if f"mark.{m}" in text:
                    out.setdefault(m, set()).add(f.resolve())
    return out


class GatePlugin:
    """Registered per session (not on xdist workers, whose reports reach the controller anyway).

    Records each milestone's outcomes (a subset run, with -k, deselection or named files or node ids,
    goes to gates/partial/ and never replaces the milestone's verdict), then at session end, after
    every gate file holds its final status, renders the final report, the tracker and the HTML
    results section from one read of the stored results (`self.snapshot`)."""

    def __init__(self, config: pytest.Config):
        from ..verify import GATE_SESSION_ENV

        command = "pytest " + " ".join(str(a) for a in config.invocation_params.args)
        self.config = config
        self.recorder = GateRecorder(_results_dir(config), command.strip())
        self.snapshot: ResultsSnapshot | None = None
        os.environ[GATE_SESSION_ENV] = self.recorder.session  # milestones 4-5 accept this session's "running"

    def pytest_deselected(self, items: list[pytest.Item]) -> None:
        for item in items:
            for m in (k for k in MILESTONES if k in item.keywords):
                self.recorder.mark_partial(m, "tests deselected (-k, -m or --lf)")

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        files: dict[str, set[Path]] = {}
        for item in session.items:
            for m in (k for k in MILESTONES if k in item.keywords):
                self.recorder.collected[m] = self.recorder.collected.get(m, 0) + 1
                files.setdefault(m, set()).add(Path(str(item.path)).resolve())
        expected = milestone_files(self.config)
        node_ids = any("::" in str(a) for a in self.config.args)
        for m, got in files.items():
            left_out = expected.get(m, set()) - got
            if left_out:
                self.recorder.mark_partial(m, "test files not run: " + ", ".join(sorted(p.name for p in left_out)))
            if node_ids:
                self.recorder.mark_partial(m, "node ids named on the command line")
        from ..pytest_plugin import HARNESS_OPTIONS

        options = self.config.stash.get(HARNESS_OPTIONS, None)
        if options is not None:
            self.recorder.coverage = {k: list(getattr(options, k, []) or []) for k in
                                      ("models", "presets", "datasets", "backends")}
            self.recorder.run_id = options.run_id

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.recorder.add(report)

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        self.recorder.finish(int(exitstatus))
        if not self.recorder.outcomes:
            return  # no milestone ran: the stored reports stay as they are
        try:
            self.snapshot = final_snapshot(self.recorder.dir.parent, self.recorder.run_id, self.recorder.started_at)
            if self.snapshot.evaluations or self.snapshot.gates:
                from .markdown import write_reports

                write_reports(self.recorder.dir.parent, tracker=True, snapshot=self.snapshot)
        except Exception as exc:  # noqa: BLE001 - the session's own outcome must not be hidden
            session.config.get_terminal_writer().line(f"qwenharness: the reports could not be written: "
                                                      f"{type(exc).__name__}: {exc}", red=True)


def final_snapshot(results_dir: Path, run_id: str | None, started_at: str) -> ResultsSnapshot:
    """The one read of the results the session's reports come from: the session's run, narrowed to
    what its gate verdicts judged, and what the session wrote into other runs (scoped.session_snapshot),
    after comparisons whose cited files changed since they were computed (a benchmark ran after the
    analysis) are recomputed."""
    from ..scaling import refresh_if_stale
    from .scoped import session_snapshot

    refresh_if_stale(results_dir)
    return session_snapshot(results_dir, run_id, started_at) if run_id else collect(results_dir)


@pytest.hookimpl(optionalhook=True)
def pytest_html_report_title(report: Any) -> None:
    report.title = "qwenharness: validation and benchmark report"


@pytest.hookimpl(optionalhook=True)
def pytest_html_results_summary(prefix: list[str], summary: list[str], postfix: list[str],
                                session: pytest.Session) -> None:
    """Append the stored results (tables and plots) below pytest-html's pass/fail summary."""
    plugin = session.config.pluginmanager.get_plugin(GATE_PLUGIN)
    try:
        snapshot = getattr(plugin, "snapshot", None) or collect(_results_dir(session.config))
        fragment = render_results_fragment(snapshot)
    except Exception as exc:  # noqa: BLE001 - the test report must still be written
        fragment = _empty(f"The stored results could not be rendered: {type(exc).__name__}: {exc}")
    postfix.append(fragment)

