"""Production-readiness checks on the stored summaries and the final report (milestone 5).

Every function returns a list of problems (empty: fine), each naming what is wrong, so a gate can
assert `== []` and print them all.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from .markdown import SECTIONS, section_text

# Placeholder text, checked outside code blocks and inline code (JSON and commands live there).
PLACEHOLDERS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("TODO", re.compile(r"\bTODO\b")),
    ("TBD", re.compile(r"\bTBD\b")),
    ("XXX", re.compile(r"\bXXX\b")),
    ("lorem ipsum", re.compile(r"lorem", re.IGNORECASE)),
    ("N/A without a reason", re.compile(r"\bN/?A\b(?!\s*\()", re.IGNORECASE)),
    ("template braces", re.compile(r"[{}]")),
    ("None where a value belongs", re.compile(r"\bNone\b")),
    ("NaN", re.compile(r"\bnan\b", re.IGNORECASE)),
    ("placeholder", re.compile(r"\bplaceholder\b", re.IGNORECASE)),
)
_FENCE = re.compile(r"```.*?```", re.DOTALL)
_INLINE = re.compile(r"`[^`\n]*`")
_URL = re.compile(r"<https?://[^>]+>")


def prose(markdown: str) -> str:
    """The text outside fenced code, inline code and autolinks."""
    return _URL.sub("", _INLINE.sub("", _FENCE.sub("", markdown)))


def find_placeholders(markdown: str) -> list[str]:
    problems = []
    for lineno, line in enumerate(prose(markdown).splitlines(), 1):
        for name, pattern in PLACEHOLDERS:
            if pattern.search(line):
                problems.append(f"placeholder text ({name}) in: {line.strip()[:160]}")
    return problems


def _table_rows(markdown: str) -> list[list[str]]:
    rows = []
    for line in markdown.splitlines():
        if line.startswith("|") and not line.startswith("|---"):
            rows.append([c.strip() for c in line.strip().strip("|").split("|")])
    return rows


def validate_final_report(markdown: str, evaluated: Iterable[tuple[str, str]]) -> list[str]:
    """Every section present and non-empty, no placeholder text, and a table row for every evaluated
    (model, dataset)."""
    problems = []
    for name in SECTIONS:
        body = section_text(markdown, name)
        if body is None:
            problems.append(f"section '## {name}' is missing")
        elif not re.sub(r"^#+ .*$", "", body, flags=re.MULTILINE).strip():
            problems.append(f"section '## {name}' is empty")
    problems += find_placeholders(markdown)
    perf = section_text(markdown, "Model performance") or ""
    rows = _table_rows(perf)
    for model, dataset in sorted(set(evaluated)):
        if not any(model in row and dataset in row for row in rows):
            problems.append(f"no table row for evaluated model {model} x dataset {dataset} in 'Model performance'")
    return problems


def validate_summary(summary: Any, aggregates: Iterable[tuple[str, str, str]]) -> list[str]:
    """The comprehensive summary parses into {models, total_evaluations, results} and lists every stored
    (model, preset, dataset) with a metrics table."""
    if not isinstance(summary, dict):
        return ["comprehensive summary is not a JSON object"]
    problems = [f"comprehensive summary lacks '{k}'" for k in ("models", "total_evaluations", "results")
                if k not in summary]
    results = summary.get("results") if isinstance(summary.get("results"), dict) else {}
    for model, preset, dataset in sorted(set(aggregates)):
        entry = ((results.get(model) or {}).get(preset) or {}).get(dataset)
        if not isinstance(entry, dict):
            problems.append(f"comprehensive summary lacks {model}/{preset}/{dataset}")
        elif not isinstance(entry.get("metrics"), dict) or not entry["metrics"]:
            problems.append(f"comprehensive summary has no metrics for {model}/{preset}/{dataset}")
    if isinstance(summary.get("total_evaluations"), int) and summary["total_evaluations"] < len(set(aggregates)):
        problems.append(f"comprehensive summary counts {summary['total_evaluations']} evaluations, "
                        f"{len(set(aggregates))} are stored")
    return problems


def validate_matrix(matrix: Any, aggregates: Iterable[tuple[str, str, str]]) -> list[str]:
    """The performance matrix has a row per evaluated model x preset, with the accuracy of each of its
    evaluated datasets."""
    if not isinstance(matrix, dict) or not isinstance(matrix.get("rows"), list):
        return ["performance matrix is not an object with a 'rows' list"]
    rows = {(r.get("model"), r.get("preset")): r for r in matrix["rows"] if isinstance(r, dict)}
    problems = []
    for model, preset, dataset in sorted(set(aggregates)):
        row = rows.get((model, preset))
        if row is None:
            problems.append(f"performance matrix has no row for {model}/{preset}")
        elif dataset not in (row.get("accuracy") or {}):
            problems.append(f"performance matrix row {model}/{preset} lacks the accuracy of {dataset}")
    return sorted(set(problems), key=problems.index)


def validate_insights(insights: Any) -> list[str]:
    if not isinstance(insights, dict) or not isinstance(insights.get("insights"), list):
        return ["scaling insights is not an object with an 'insights' list"]
    items = insights["insights"]
    if not items:
        return ["scaling insights lists no insight"]
    problems = []
    for i, item in enumerate(items):
        text = item.get("text") if isinstance(item, dict) else None
        if not isinstance(text, str) or not text.strip():
            problems.append(f"insight {i} has no text")
            continue
        if not re.search(r"\d", text):
            problems.append(f"insight {i} quotes no number: {text[:120]}")
        problems += [f"insight {i}: {p}" for p in find_placeholders(text)]
    return problems
