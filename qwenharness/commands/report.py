"""`qwenharness report`: regenerate the Markdown report (and tracker, and an HTML page) from stored results."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..results import atomic_write_text


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="write the final Markdown report (and tracker / HTML) from stored results")
    p.add_argument("--run-id", dest="run", default=None,
                   help="only this evaluation run (default: newest result per configuration)")
    p.add_argument("--run", dest="run", default=None, help=argparse.SUPPRESS)  # the earlier spelling
    p.add_argument("--tracker", action="store_true", help="also update results/PROJECT_TRACKER.md")
    p.add_argument("--results-dir", default="results", help="root of stored results (default: results)")
    p.add_argument("--html", default=None, metavar="PATH",
                   help="also write a standalone HTML page of the results (tables and plots), e.g. reports/report.html")
    p.add_argument("--check-numbers", action="store_true",
                   help="write nothing: re-derive every number of the stored final report, tracker and the --html "
                   "page given (e.g. reports/milestones.html) from the files they cite; exit 1 on any disagreement")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    if args.check_numbers:
        return check_numbers(args)
    from ..report.collect import collect
    from ..report.html import render_standalone
    from ..report.markdown import write_reports

    snapshot = collect(args.results_dir, args.run)
    written = write_reports(args.results_dir, args.run, tracker=args.tracker, snapshot=snapshot)
    if args.html:
        path = Path(args.html)
        atomic_write_text(path, render_standalone(snapshot))
        written["html"] = path
    print(f"{len(snapshot.evaluations)} evaluations, {len(snapshot.coverage)} coverage entries, "
          f"{len(snapshot.benchmarks)} benchmarks, {len(snapshot.comparisons)} comparisons read from {args.results_dir}")
    for name, path in written.items():
        print(f"{name}: {path}")
    for problem in snapshot.unreadable:
        print(f"unreadable (left out): {problem}")
    return 0


def check_numbers(args: argparse.Namespace) -> int:
    from ..errors import ConfigError
    from ..report.citations import check_report_numbers

    results = Path(args.results_dir)
    if not (results / "LARGE_SCALE_EVALUATION_FINAL_REPORT.md").is_file():
        raise ConfigError(f"no final report under {results}", "run the gates or `qwenharness report` first")
    if args.html and not Path(args.html).is_file():
        raise ConfigError(f"no HTML report at {args.html}", "pass the page pytest-html or `report --html` wrote")
    problems = check_report_numbers(results, args.html)
    for line in problems:
        print(line)
    where = ", ".join(["final report", "tracker", *([args.html] if args.html else [])])
    print(f"check-numbers: {len(problems)} disagreement(s) between {where} and the stored values they cite")
    return 1 if problems else 0
