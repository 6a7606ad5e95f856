"""Reports from stored results: collect (read), tables, plots (PNG), markdown (final report, tracker),
html (pytest-html plugin and gate records), published (reference numbers), validate (milestone 5)."""

from .collect import ResultsSnapshot, collect, list_runs
from .markdown import FINAL_REPORT, SECTIONS, TRACKER, build_final_report, build_tracker, write_reports

__all__ = ["FINAL_REPORT", "SECTIONS", "TRACKER", "ResultsSnapshot", "build_final_report", "build_tracker",
           "collect", "list_runs", "write_reports"]
