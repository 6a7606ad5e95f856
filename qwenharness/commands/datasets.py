"""`qwenharness datasets`: the dataset manager (the seed's manage_datasets.py).

  --summary (default)  per dataset: status (local / cached / missing), rows, size, source; every line
                       is parsed (exit 1 if a file has a malformed line; schemas: --check)
  --list               the registry: Hub id, config, splits, local files, task kind, metrics, few-shot
                       policy (source split, selection rule, seed) and subtasks/groups
  --check              read every split in full and check its schema and row count (exit 1 on a problem)
  --download           fetch from the Hub into the cache (needs network)
"""

from __future__ import annotations

import argparse
import json

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ..data import (
    cache_dir,
    download,
    get_dataset_spec,
    resolve_data_dir,
    resolve_dataset_names,
    summary,
    verify_dataset,
)
from ..errors import DataError
from ..tasks.fewshot import RULES
from .common import add_data_dir, name_list


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("datasets", help="dataset manager: what is available where, download, check")
    action = p.add_mutually_exclusive_group()
    action.add_argument("--summary", action="store_true",
                        help="per dataset: status (local/cached/missing), rows, size, source (default)")
    action.add_argument("--list", action="store_true", help="the registry: Hub ids, splits, files, schema")
    action.add_argument("--check", action="store_true",
                        help="read every split and check schema and row counts; exit 1 on a problem")
    action.add_argument("--download", action="store_true",
                        help="fetch the selected datasets from the Hugging Face Hub into the cache")
    p.add_argument("--datasets", type=name_list, help="comma-separated dataset names or 'all' (default: all 14)")
    p.add_argument("--force", action="store_true", help="with --download: fetch again what is cached")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    add_data_dir(p)
    p.set_defaults(handler=run)


def _size(n: int) -> str:
    if n <= 0:
        return "-"
    for unit, scale in (("MiB", 1024**2), ("KiB", 1024)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


def _console() -> Console:
    return Console(width=max(Console().width, 140))


def run(args: argparse.Namespace) -> int:
    names = resolve_dataset_names(args.datasets)
    if args.list:
        return _list(names, args.json)
    if args.download:
        return _download(names, args.force, args.json)
    if args.check:
        return _check(names, args.data_dir, args.json)
    return _summary(names, args.data_dir, args.json)


def _summary(names: list[str], data_dir: str | None, as_json: bool) -> int:
    rows = summary(data_dir, names)
    code = 0 if all(r["parses"] for r in rows) else 1
    if as_json:
        print(json.dumps(rows, indent=2))
        return code
    local = resolve_data_dir(data_dir)
    table = Table(title="qwenharness datasets")
    for col in ("dataset", "status", "split", "rows", "size", "other splits", "source"):
        table.add_column(col, justify="right" if col in ("rows", "size") else "left",
                         overflow="fold", no_wrap=col in ("dataset", "status", "rows", "size"))
    style = {"local": "green", "cached": "cyan", "missing": "yellow"}
    for r in rows:
        rows_text = "-" if r["rows"] is None else f"{r['rows']:,}"
        if r["rows"] is not None and r["rows"] != r["expected_rows"]:
            rows_text += f" (expected {r['expected_rows']:,})"
        others = ", ".join(f"{s} {'-' if n is None else n}" for s, n in r["split_rows"].items()
                           if s != r["eval_split"])
        source = r["source"] if r["status"] != "missing" else f"Hub: {r['source']}"
        status = f"[{style[r['status']]}]{r['status']}[/]" if r["parses"] else f"[red]{r['status']}, malformed[/]"
        table.add_row(r["name"], status, escape(r["eval_split"]), rows_text,
                      _size(r["size_bytes"]), escape(others or "-"), escape(source))
    console = _console()
    console.print(table)
    console.print(escape(f"data directory: {local or 'none'}   cache: {cache_dir()}"))
    counts = {s: sum(r["status"] == s for r in rows) for s in ("local", "cached", "missing")}
    console.print(", ".join(f"{n} {s}" for s, n in counts.items()))
    for r in rows:
        for problem in r["problems"]:
            console.print(f"[yellow]{r['name']}[/]: {escape(problem)}")
    if counts["missing"]:
        console.print("missing datasets load from the Hub when the machine is online; offline, pass "
                      "--data-dir or set QWENHARNESS_DATA_DIR to a folder of local files")
    bad = [r["name"] for r in rows if not r["parses"]]
    console.print(f"[red]malformed lines in {', '.join(bad)}: re-copy or re-download those files[/red]" if bad
                  else "every line of every local file parses as JSON (schemas and row counts: --check)")
    return code


def fewshot_text(policy: dict, pool: str | None, seed_default: int) -> str:
    """One line of few-shot policy: how many, from which split, chosen how, with which seed."""
    if policy["n_shot"] == 0:
        base = policy["description"]
        if pool:
            base += f" (--n-shot N draws from {pool}, harness rule, seed {seed_default})"
        return base
    seed = f", seed {policy['seed']}" if policy["seed"] is not None else ""
    return f"{policy['n_shot']}-shot from {policy['split']}: {policy['rule']}{seed}"


def _list(names: list[str], as_json: bool) -> int:
    from ..tasks import TaskOptions, get_task

    specs = [get_dataset_spec(n) for n in names]
    tasks = {s.name: get_task(s.name) for s in specs}
    options = TaskOptions()  # the defaults: completion prompts, harness sampler, seed 1234
    policies = {n: t.fewshot_policy(options) for n, t in tasks.items()}
    if as_json:
        print(json.dumps([{**s.to_dict(), "metrics": list(tasks[s.name].metric_names),
                           "fewshot": {**policies[s.name], "pool": tasks[s.name].fewshot_split()}}
                          for s in specs], indent=2))
        return 0
    table = Table(title="dataset registry")
    for col in ("dataset", "task", "Hub source (eval split)", "splits (rows)", "local file", "license"):
        table.add_column(col, overflow="fold")
    for s in specs:
        splits = ", ".join(f"{k} {v}" for k, v in s.splits.items())
        table.add_row(s.name, s.task, escape(s.hub_source()), escape(splits), escape(s.local_file(s.eval_split)),
                      s.license)
    protocol = Table(title="metrics and few-shot policy (defaults: completion prompts, seed 1234)")
    for col in ("dataset", "metrics", "few-shot: count, source split, selection rule, seed"):
        protocol.add_column(col, overflow="fold")
    for s in specs:
        task = tasks[s.name]
        protocol.add_row(s.name, ", ".join(task.metric_names),
                         escape(fewshot_text(policies[s.name], task.fewshot_split(), options.seed)))
    console = _console()
    console.print(table)
    console.print(protocol)
    console.print("few-shot rules: " + "; ".join(f"{k}: {escape(v)}" for k, v in RULES.items())
                  + " (--fewshot-sampler lm-eval draws seeded shots as lm-evaluation-harness does). lm-eval's "
                  "ARC, HellaSwag, PIQA, WinoGrande and BoolQ draw shots from train, which these datasets do not "
                  "carry here; their pool is validation, so for them even the lm-eval rule draws other "
                  "examples than lm-eval's.")
    for s in specs:
        if s.notes:
            console.print(f"[bold]{s.name}[/bold]: {escape(s.notes)}")
        if s.subtasks is not None:
            groups = "; ".join(f"{g} ({len(m)}): {', '.join(m)}" for g, m in s.subtasks.groups.items())
            console.print(f"[bold]{s.name}[/bold] groups (--datasets {s.name}:<group> or {s.name}:<subtask>): "
                          f"{escape(groups)}")
    return 0


def _check(names: list[str], data_dir: str | None, as_json: bool) -> int:
    resolve_data_dir(data_dir)
    results = []
    for name in names:
        try:
            splits = verify_dataset(name, data_dir)
            results.append({"dataset": name, "ok": True,
                            "splits": {s: {"rows": len(d.records), "status": d.status, "source": d.source}
                                       for s, d in splits.items()}})
        except DataError as e:
            results.append({"dataset": name, "ok": False, "error": str(e)})
    if as_json:
        print(json.dumps(results, indent=2))
    else:
        for r in results:
            if r["ok"]:
                detail = ", ".join(f"{s} {v['rows']}" for s, v in r["splits"].items())
                print(f"ok      {r['dataset']}: {detail}")
            else:
                print(f"FAILED  {r['dataset']}: {r['error']}")
        print(f"{sum(r['ok'] for r in results)} of {len(results)} datasets passed the check")
    return 0 if all(r["ok"] for r in results) else 1


def _download(names: list[str], force: bool, as_json: bool) -> int:
    written = download(names, force=force)
    if as_json:
        print(json.dumps([str(p) for p in written], indent=2))
    else:
        for p in written:
            print(f"wrote {p}")
        print(f"{len(written)} file(s) written to {cache_dir()}" if written
              else f"nothing to do: the selected datasets are already in {cache_dir()} (--force fetches again)")
    return 0
