"""Every number a report prints, re-derived from the stored file it cites.

`check_report_numbers(results_dir, html)` reads the final report, the tracker and (if given) a
pytest-html or `qwenharness report --html` page, and compares:
- each row of the metrics table (value, standard error, n) with the aggregate of its run;
- each benchmark row's output tok/s with the benchmark file the index names;
- each pairwise comparison's ratios and accuracy deltas with its comparison JSON;
- each figure the comparison files cite with the file it came from (`scaling.stale_citations`).
It returns the disagreements, each naming the report, the row and the file (empty: all agree).
`qwenharness report --check-numbers` runs it after `make run` and `make test`.
"""

from __future__ import annotations

import html as html_lib
import json
import re
from pathlib import Path
from typing import Any

METRICS_TITLE = "Metrics per model x preset x dataset"
RATIO_KEYS = ("parameter_ratio", "throughput_ratio", "cost_per_token_ratio", "latency_ratio_batch_1",
              "weight_memory_ratio", "peak_memory_ratio")


def md_rows(text: str, title: str) -> list[list[str]]:
    """The body rows of the Markdown table under the bold caption starting with `title`."""
    if f"**{title}" not in text:
        return []
    block = text.split(f"**{title}", 1)[1].split("\n\n", 2)[1]
    return [[c.strip() for c in line.strip().strip("|").split("|")] for line in block.splitlines()
            if line.startswith("|") and not line.startswith("|---")][1:]


def md_captions(text: str, pattern: str) -> list[re.Match[str]]:
    return list(re.finditer(r"^\*\*(" + pattern + r")", text, re.MULTILINE))


def html_rows(page: str, table_id: str) -> list[list[str]]:
    page = html_lib.unescape(html_lib.unescape(page))  # pytest-html embeds the summary escaped
    if f'id="{table_id}"' not in page:
        return []
    start = page.index(f'id="{table_id}"')
    body = page[start:page.index("</table>", start)].split("<tbody>", 1)[1]
    return [[re.sub(r"<[^>]+>", "", c) for c in re.findall(r"<td>(.*?)</td>", row)]
            for row in re.findall(r"<tr>(.*?)</tr>", body)]


def _metric_rows(rows: list[list[str]], results: Path, where: str) -> list[str]:
    from .tables import num

    problems = []
    for row in rows:
        model, _, preset, dataset, metric, value, se, n = row[:8]
        run = row[12] if len(row) > 12 else row[8]  # the tracker keeps model .. n and the run
        path = results / "evaluations" / run / model / preset / f"{dataset}.json"
        try:
            m = json.loads(path.read_text())["metrics"][metric]
        except (OSError, ValueError, KeyError) as e:
            problems.append(f"{where}: {model}/{preset}/{dataset} {metric} cites {path}, unreadable ({e})")
            continue
        if m.get("value") is None:
            continue  # "not scored": the row says why instead of a number
        stored = (num(m["value"]), num(m["stderr"]), str(m["n"]))
        if (value, se, n) != stored:
            problems.append(f"{where}: {model}/{preset}/{dataset} {metric} shows {(value, se, n)}, "
                            f"{path} holds {stored}")
    return problems


def check_report_numbers(results_dir: str | Path, html: str | Path | None = None,
                         expect_rows: int | None = None) -> list[str]:
    """The disagreements between the reports and the stored values they cite; `expect_rows`: how
    many metric rows each report must have (None: as many as the final report has, at least one)."""
    from .. import scaling
    from .tables import num

    results = Path(results_dir)
    problems: list[str] = []
    report = (results / "LARGE_SCALE_EVALUATION_FINAL_REPORT.md").read_text()
    tables: dict[str, list[list[str]]] = {"final report": md_rows(report, METRICS_TITLE)}
    tracker = results / "PROJECT_TRACKER.md"
    if tracker.exists():
        tables["tracker"] = md_rows(tracker.read_text(), METRICS_TITLE)
    if html is not None:
        tables[str(html)] = html_rows(Path(html).read_text(), "qh-metrics")
    want = expect_rows if expect_rows is not None else max(1, len(tables["final report"]))
    for where, rows in tables.items():
        if len(rows) != want:
            problems.append(f"{where}: {len(rows)} metric rows, expected {want}")
        problems += _metric_rows(rows, results, where)
    problems += _benchmark_rows(report, results, num)
    problems += _comparison_rows(report, results, num)
    problems += [f"comparison files: {s}" for s in scaling.stale_citations(results)]
    return problems


def _benchmark_rows(report: str, results: Path, num: Any) -> list[str]:
    rows = md_rows(report, "Benchmarks")
    if not rows:
        return []
    index = json.loads((results / "benchmarks" / "latest.json").read_text())["entries"]
    problems = []
    for row in rows:
        path = results / "benchmarks" / index[f"{row[0]}/{row[1]}/{row[2]}"]["path"]
        stored = num(json.loads(path.read_text())["throughput"]["random"]["output_tokens_per_s"], ".1f")
        if row[4] != stored:
            problems.append(f"final report: benchmark {'/'.join(row[:3])} shows {row[4]} tok/s, {path} holds {stored}")
    return problems


def _comparison_rows(report: str, results: Path, num: Any) -> list[str]:
    problems = []
    for caption in md_captions(report, r"(\S+) / (\S+): ratios per preset"):
        b, a = caption.group(2), caption.group(3)
        path = results / "comparisons" / f"{a}_vs_{b}_comparison.json"
        comparison = json.loads(path.read_text())
        for row in md_rows(report, caption.group(1)):
            ratios = comparison["presets"][row[0]]["ratios"]
            stored = [num((ratios.get(k) or {}).get("value")) for k in RATIO_KEYS]
            if row[1:7] != stored:
                problems.append(f"final report: {b}/{a} ratios ({row[0]}) show {row[1:7]}, {path} holds {stored}")
    for caption in md_captions(report, r"(\S+) - (\S+): accuracy deltas \(preset (\S+)\)"):
        b, a, preset = caption.group(2), caption.group(3), caption.group(4)
        path = results / "comparisons" / f"{a}_vs_{b}_comparison.json"
        accuracy = json.loads(path.read_text())["presets"][preset]["accuracy"]
        for row in md_rows(report, caption.group(1)):
            x = accuracy[row[0]]
            shown = (row[4], row[6].split(" shared")[0].rsplit("n = ", 1)[-1])
            stored = (num(x["delta"]["value"], "+.3f"), str(x["paired"]["n_shared"]))
            if shown != stored:
                problems.append(f"final report: {b}-{a} delta {row[0]} shows {shown}, {path} holds {stored}")
    return problems
