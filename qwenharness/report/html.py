"""pytest plugin: the HTML report's results section and the milestone gate records.

Registered by the root conftest (`pytest_plugins`). Works with and without pytest-html:

- gate records (always): every test carrying a `milestoneN` marker adds its outcome to
  `<results>/gates/milestoneN.json` as the session goes (so milestone 5, which runs last, can report
  milestones 1-4 of the same session), finalised at session end;
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

from .collect import MILESTONES, ResultsSnapshot, collect
from .tables import (EMPTY, Table, benchmark_table, comparison_tables, coverage_table, gates_table, matrix_table,
                     metric_table, published_table)

HTML_ENV = "QWENHARNESS_HTML"
HTML_INI = "qwenharness_html"
DEFAULT_HTML = "reports/{name}.html"
GATE_PLUGIN = "qwenharness-gates"

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
             + (f"run <code>{html.escape(s.run_id)}</code>." if s.run_id else
                "the newest result per configuration over runs " + html.escape(", ".join(s.runs) or "none") + ".")
             + "</p>"]
    sections: list[tuple[str, list[Table | None], str]] = [
        ("Model performance", [metric_table(s)], EMPTY["metrics"]),
        ("Published reference numbers", [published_table(s)], EMPTY["published"]),
        ("Model coverage", [coverage_table(s)], EMPTY["coverage"]),
        ("Benchmarks", [benchmark_table(s)], EMPTY["benchmarks"]),
        ("Scaling comparison", [*comparison_tables(s), matrix_table(s)], EMPTY["comparisons"]),
        ("Milestone gates", [gates_table(s)], EMPTY["gates"]),
    ]
    for title, tables, empty in sections:
        parts.append(f"<h2>{html.escape(title)}</h2>")
        present = [t for t in tables if t is not None]
        parts += [html_table(t) for t in present] if present else [_empty(empty)]
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
        for m in (k for k in MILESTONES if k in report.keywords):
            seen = self.outcomes.setdefault(m, {})
            if seen.get(report.nodeid) in ("failed", "error"):
                continue  # a failed call stays failed whatever teardown says
            seen[report.nodeid] = result
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
        if final and exitstatus == pytest.ExitCode.INTERRUPTED:
            status = "interrupted"
        return {"milestone": milestone, "status": status, "counts": counts, "tests": len(seen),
                "failures": sorted(set(self.failures.get(milestone, []))), "command": self.command,
                "session": self.session, "started_at": self.started_at,
                "updated_at": _now(), "finished_at": _now() if final else None}

    def write(self, milestone: str, final: bool, exitstatus: int | None = None) -> None:
        from ..results import atomic_write_json

        atomic_write_json(self.dir / f"{milestone}.json", self.record(milestone, final, exitstatus))

    def finish(self, exitstatus: int) -> None:
        for m in self.outcomes:
            self.write(m, final=True, exitstatus=exitstatus)


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


class GatePlugin:
    """Registered per session (not on xdist workers, whose reports reach the controller anyway)."""

    def __init__(self, config: pytest.Config):
        command = "pytest " + " ".join(str(a) for a in config.invocation_params.args)
        self.recorder = GateRecorder(_results_dir(config), command.strip())

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.recorder.add(report)

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        self.recorder.finish(int(exitstatus))


@pytest.hookimpl(optionalhook=True)
def pytest_html_report_title(report: Any) -> None:
    report.title = "qwenharness: validation and benchmark report"


@pytest.hookimpl(optionalhook=True)
def pytest_html_results_summary(prefix: list[str], summary: list[str], postfix: list[str],
                                session: pytest.Session) -> None:
    """Append the stored results (tables and plots) below pytest-html's pass/fail summary."""
    try:
        fragment = render_results_fragment(collect(_results_dir(session.config)))
    except Exception as exc:  # noqa: BLE001 - the test report must still be written
        fragment = _empty(f"The stored results could not be rendered: {type(exc).__name__}: {exc}")
    postfix.append(fragment)

