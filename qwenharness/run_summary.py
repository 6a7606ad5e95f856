"""The console summary of an evaluation run: one line per engine start, one table row per dataset."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .evaluation import DatasetResult


def engine_header(engine: Any, model: str, preset: str, backend: str, role: str, waited_s: float) -> str:
    """One line per engine start: model, preset, backend, device, load time."""
    try:
        info = engine.info()
        device, dtype, load_s = info.device, info.dtype, info.load_time_s
    except Exception:  # noqa: BLE001 - a test fake or an engine without info()
        device, dtype, load_s = "?", "?", waited_s
    what = "judge engine" if role == "judge" else "engine"
    return (f"[cyan]{what}[/cyan] [bold]{model}[/bold] preset={preset} backend={backend} device={device} "
            f"dtype={dtype} loaded in {load_s:.1f}s")


def summary_table(results: list[DatasetResult]) -> Any:
    from rich.table import Table

    table = Table(title="evaluation summary (metric: value ±half the 95% interval \\[interval] n=values scored)")
    for col in ("model", "preset", "dataset", "samples", "errors", "metrics", "new req", "time"):
        table.add_column(col, justify="right" if col in ("samples", "errors", "new req", "time") else "left")
    for r in results:
        if not r.ok or r.aggregate is None:
            table.add_row(r.model, r.preset, r.dataset, "-", "-", f"[red]failed: {r.error}[/red]", "-", "-")
            continue
        a = r.aggregate
        metrics = "\n".join(format_metric(k, v) for k, v in list(a["metrics"].items())[:4]) or "-"
        t = a.get("timings", {})
        table.add_row(r.model, r.preset, r.dataset, str(a["n_samples"]),
                      f"{a['n_errors']} ({a['error_rate']:.0%})", metrics, str(t.get("new_requests", "-")),
                      f"{t.get('wall_s', 0):.1f}s")
    return table


def format_metric(name: str, m: dict[str, Any]) -> str:
    """`acc 0.400 ±0.259 [0.168, 0.687] n=10`: the value, half the 95% interval's width, the
    interval, and the number of values the metric was computed from."""
    v, se, ci, n = m.get("value"), m.get("stderr"), m.get("ci95"), m.get("n")
    n_text = f" n={n}" if n is not None else ""
    if v is None or v != v:
        return f"{name} n/a{n_text}"
    if ci and len(ci) == 2 and None not in ci and ci[0] == ci[0] and ci[1] == ci[1]:
        return f"{name} {v:.3f} ±{(ci[1] - ci[0]) / 2:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]{n_text}"
    if se:
        return f"{name} {v:.3f} ±{1.96 * se:.3f}{n_text}"
    return f"{name} {v:.3f}{n_text}"


_fmt_metric = format_metric  # the earlier name
