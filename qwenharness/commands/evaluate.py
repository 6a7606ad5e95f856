"""`qwenharness evaluate`: models x preset x datasets into one run directory, resumable.

Where results go:
  * default: results/evaluations/<run id>, the run id being a timestamp (or --run-id ID);
  * --output-dir DIR: DIR is the run directory itself and its name is the run id, so
    `--output-dir results/evaluations/multi_model_comprehensive` is run `multi_model_comprehensive`
    (giving --run-id too is an error unless it equals DIR's name);
  * --resume RUN: continue run RUN (a run id under results/evaluations or a run directory); options
    not given again are taken from its manifest. Rerunning with the same --run-id does the same.
Summaries (latest_summary.json, comprehensive_summary.json) go beside the `evaluations` folder
(results/), or into the folder holding the run directory when it is not named `evaluations`.

Options are checked before anything is written (bad values exit 2 with one line). Two processes
on one run share it: a dataset the other holds is skipped, then waited for and reused at the end.
Exit status: 0 when every dataset ran and not every sample errored, 1 otherwise, 2 for errors
with a fix (bad options, unwritable or full output folder).
"""

from __future__ import annotations

import argparse
import io
import logging
import sys
from pathlib import Path

from ..errors import ConfigError
from ..presets import DEFAULT_PRESET, DEFAULT_SEED
from ..results import RunPaths, read_json, resolve_run_paths
from ..selection import parse_doc_ids, parse_sample_limits
from ..tasks.fewshot import SAMPLERS
from ..options import add_to_argparse, specs
from .common import (
    add_engine_options,
    add_server_options,
    add_verbose,
    canonical_models,
    doc_ids_text,
    name_list,
    non_negative_int,
    positive_int,
    sample_limit_text,
    seed_int,
    server_endpoint,
    split_names,
)
from .common import engine_settings as parse_engine_settings


LM_EVAL_EPILOG = """\
lm-evaluation-harness spellings are accepted where the meaning is the same:
  --tasks = --datasets, --limit = --sample-limit, --num-fewshot = --n-shot, --output-path = --output-dir,
  --samples = --doc-ids (dataset names as here: mmlu:abstract_algebra, not mmlu_abstract_algebra),
  --apply-chat-template = use the chat template (already the default for instruct models),
  --log-samples = nothing to do (per-sample records are always written).
  --model / --model-args have no counterpart: use --models and --presets.
Old spellings still accepted: --preset (--presets), --num-samples (--samples-per-problem).
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="run benchmarks and write per-sample and aggregate results",
                       epilog=LM_EVAL_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_to_argparse(p, specs("--models", "--presets", "--datasets", "--sample-limit", "--doc-ids"))
    p.add_argument("--fewshot-sampler", choices=SAMPLERS,
                   help="how seeded few-shot examples are drawn: harness (per document, the default) or lm-eval "
                   "(lm-evaluation-harness's rule, for identical shots from the same pool)")
    p.add_argument("--output-dir", help="the run directory itself (its name is the run id)")
    add_to_argparse(p, specs("--results-dir", "--run-id"))
    p.add_argument("--resume", metavar="RUN", help="continue a run: its id or its directory")
    add_to_argparse(p, specs("--backend", "--data-dir"))
    p.add_argument("--samples-per-problem", metavar="N", dest="num_samples", type=positive_int,
                   help="generations per problem, for pass@k (default: 1)")
    p.add_argument("--n-shot", type=non_negative_int, help="few-shot examples (default: each task's convention)")
    p.add_argument("--thinking", action="store_true", default=None, help="Qwen3 thinking mode on (default: off)")
    p.add_argument("--no-chat-template", dest="chat", action="store_false", default=None,
                   help="never wrap prompts in the chat template (default: on for instruct models' generation tasks)")
    p.add_argument("--max-tokens", type=positive_int, help="override every task's generation length")
    p.add_argument("--judge-model", help="MT-Bench judge (default: the model under test; on GPU use a strong "
                   "instruct model such as qwen2.5_14b)")
    add_to_argparse(p, specs("--judge-max-tokens", "--concurrent-datasets"))
    p.add_argument("--seed", type=seed_int, help=f"seed for sample selection, few-shot and sampling (default: {DEFAULT_SEED})")
    add_to_argparse(p, specs("--load-format"))
    p.add_argument("--detailed-analysis", action="store_true", default=None,
                   help="add per-group breakdowns (MMLU subject, MT-Bench category) and all error samples")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    add_verbose(p)
    add_engine_options(p)
    add_server_options(p, judge=True)
    # hidden aliases: the seed's spellings and lm-evaluation-harness's (listed in the epilog)
    hidden = argparse.SUPPRESS
    p.add_argument("--preset", dest="preset", type=name_list, help=hidden)
    p.add_argument("--num-samples", dest="num_samples", type=positive_int, help=hidden)
    p.add_argument("--tasks", dest="datasets", type=name_list, help=hidden)
    p.add_argument("--limit", dest="sample_limit", type=sample_limit_text, help=hidden)
    p.add_argument("--samples", dest="doc_ids", type=doc_ids_text, help=hidden)
    p.add_argument("--num-fewshot", dest="n_shot", type=non_negative_int, help=hidden)
    p.add_argument("--output-path", dest="output_dir", help=hidden)
    p.add_argument("--apply-chat-template", dest="chat", action="store_true", help=hidden)
    p.add_argument("--log-samples", action="store_true", help=hidden)
    p.set_defaults(handler=run)


def _resume_paths(value: str, results_dir: str) -> RunPaths:
    path = Path(value)
    if path.is_dir() and (path / "manifest.json").exists():
        return RunPaths(path.parent, path.name)
    fix = "pass a run id under <results-dir>/evaluations or a run directory"
    if "/" in value or path.exists():  # a path, not a run id
        if not path.exists():
            raise ConfigError(f"no run to resume at {path}: it does not exist", fix)
        if not path.is_dir():
            raise ConfigError(f"no run to resume at {path}: it is a file, not a run directory", fix)
        raise ConfigError(f"no run to resume at {path}: the folder has no manifest.json", fix)
    paths = resolve_run_paths(results_dir, value)
    if not (paths.run_dir / "manifest.json").exists():
        raise ConfigError(f"no run '{value}' to resume (looked for {paths.run_dir / 'manifest.json'})",
                          "pass a run id under <results-dir>/evaluations or a run directory")
    return paths


def build_settings(args: argparse.Namespace, previous: dict | None) -> "EvalSettings":  # noqa: F821
    from ..data import get_available_datasets, resolve_data_dir
    from ..engine_args import check_for_backend
    from ..evaluation import EvalSettings
    from ..hardware import detect_gpu
    from ..models import get_model_spec
    from ..presets import get_preset
    from ..tasks import get_task

    prev = previous or {}

    def pick(arg: object, key: str, default: object) -> object:
        return arg if arg is not None else prev.get(key, default)

    models = canonical_models(split_names(args.models)) or prev.get("models")
    if not models:
        models = ["qwen3_8b"] if detect_gpu() else ["tiny"]
        what = "a random-weight model" if models == ["tiny"] else "the default GPU model"
        _notice(f"no --models given: evaluating {models[0]}, {what}; see `qwenharness models`")
    datasets = split_names(args.datasets) or prev.get("datasets") or ["all"]
    if datasets == ["all"]:
        datasets = list(get_available_datasets())
    presets = split_names(args.preset) or prev.get("presets") or [DEFAULT_PRESET]
    for m in models:
        get_model_spec(m)
    for d in datasets:
        get_task(d)  # checks a part too (mmlu:stem)
    for p in presets:
        get_preset(p)
    judge = pick(args.judge_model, "judge_model", None)
    if judge:
        get_model_spec(str(judge))
    # the parser checks the options given; values taken from a manifest are checked again here
    limit_text = pick(args.sample_limit, "sample_limit", None)
    limits = parse_sample_limits(limit_text if limit_text is None else str(limit_text),
                                 list(dict.fromkeys([*get_available_datasets(), *datasets])))
    sample_limit: int | str | None = str(limits) if limits.per_dataset else limits.default
    doc_ids = parse_doc_ids(pick(args.doc_ids, "doc_ids", None), datasets)  # type: ignore[arg-type]
    both = [d for d in doc_ids.per_dataset if d in limits.per_dataset]
    if both:
        raise ConfigError(f"{both[0]} is given both --doc-ids and a --sample-limit count",
                          f"drop {both[0]}=N from --sample-limit, or drop it from --doc-ids")
    num_samples = pick(args.num_samples, "num_samples", 1)
    if int(num_samples) < 1:  # type: ignore[arg-type]
        raise ConfigError(f"--samples-per-problem must be at least 1, got {num_samples}",
                          "use --samples-per-problem 1")
    for flag, key, least in (("--n-shot", "n_shot", 0), ("--max-tokens", "max_tokens", 1),
                             ("--judge-max-tokens", "judge_max_tokens", 1), ("--seed", "seed", 0)):
        value = pick(getattr(args, key), key, None)
        if value is not None and int(value) < least:  # type: ignore[call-overload]
            raise ConfigError(f"{flag} must be at least {least}, got {value}", f"pass {flag} {max(least, 1)} or more")
    resolve_data_dir(pick(args.data_dir, "data_dir", None))  # a named folder that is missing: before any file is written
    backend = str(pick(args.backend, "backend", "vllm"))
    engine = parse_engine_settings(args, prev.get("engine"))
    check_for_backend(engine, backend)
    server = server_endpoint(args, prev.get("server"))
    judge_server = server_endpoint(args, prev.get("judge_server"), judge=True)
    if backend == "openai" and server is None:
        raise ConfigError("--backend openai needs the server's address",
                          "pass --base-url URL (e.g. http://127.0.0.1:8000/v1); docs/scale-out.md shows how to start one")
    if backend != "openai" and server is not None:
        raise ConfigError(f"--base-url is the server of --backend openai, and the backend is {backend}",
                          "add --backend openai, or drop --base-url")
    return EvalSettings(
        engine=engine.to_dict(), server=server.to_dict() if server else None,
        judge_server=judge_server.to_dict() if judge_server else None,
        models=models, datasets=datasets, presets=presets,
        backend=backend,
        sample_limit=sample_limit, doc_ids=doc_ids.to_dict() or None,
        fewshot_sampler=str(pick(args.fewshot_sampler, "fewshot_sampler", "harness")),
        seed=int(pick(args.seed, "seed", DEFAULT_SEED)),  # type: ignore[arg-type]
        data_dir=pick(args.data_dir, "data_dir", None),  # type: ignore[arg-type]
        n_shot=pick(args.n_shot, "n_shot", None),  # type: ignore[arg-type]
        num_samples=int(num_samples),  # type: ignore[arg-type]
        thinking=bool(pick(args.thinking, "thinking", False)),
        chat=pick(args.chat, "chat", None),  # type: ignore[arg-type]
        max_tokens=pick(args.max_tokens, "max_tokens", None),  # type: ignore[arg-type]
        judge_model=pick(args.judge_model, "judge_model", None),  # type: ignore[arg-type]
        judge_max_tokens=int(pick(args.judge_max_tokens, "judge_max_tokens", 2048)),  # type: ignore[arg-type]
        concurrent_datasets=str(pick(args.concurrent_datasets, "concurrent_datasets", "auto")),
        load_format=str(pick(args.load_format, "load_format", "auto")),
        detailed=bool(pick(args.detailed_analysis, "detailed", False)),
        progress=False if args.no_progress else None,
    )


def _notice(text: str) -> None:
    from rich.console import Console

    Console(stderr=True).print(f"[yellow]notice:[/yellow] {text}")


def resume_command(paths: RunPaths, results_dir: str) -> str:
    """The exact command that continues this run."""
    import shlex

    results_dir = results_dir or "results"
    if paths.runs_dir.resolve() == (Path(results_dir) / "evaluations").resolve():
        cmd = f"qwenharness evaluate --resume {shlex.quote(paths.run_id)}"
        return cmd if results_dir == "results" else f"{cmd} --results-dir {shlex.quote(results_dir)}"
    return f"qwenharness evaluate --resume {shlex.quote(str(paths.run_dir))}"


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from ..console import RunConsole, log_to_run_dir, stop_run_log
    from ..evaluation import Evaluator, summary_table

    if args.resume:
        if args.output_dir or (args.run_id and args.run_id != Path(args.resume).name):
            raise ConfigError("--resume names the run already", "drop --output-dir / --run-id, or drop --resume")
        paths = _resume_paths(args.resume, args.results_dir)
    else:
        paths = resolve_run_paths(args.results_dir, args.run_id, args.output_dir)
    manifest_path = paths.run_dir / "manifest.json"
    previous = read_json(manifest_path).get("settings") if manifest_path.exists() else None
    settings = build_settings(args, previous)
    console = RunConsole(Console(stderr=True))
    evaluator = Evaluator(settings, paths, console=console)  # says "run ID -> DIR" once its manifest is written
    resume = resume_command(paths, args.results_dir)
    log_file = paths.run_dir / "run.log"
    evaluator.on_start = lambda run_dir: log_to_run_dir(run_dir)  # once its manifest exists
    try:
        try:
            results = evaluator.run()
        except KeyboardInterrupt:
            # one unwrapped line, so the command can be copied as it is
            print(f"qwenharness: interrupted; run {paths.run_id} is marked interrupted and its finished samples "
                  f"are saved; continue with: {resume}", file=sys.stderr, flush=True)
            return 130
        table = summary_table(results)
        Console(width=max(Console().width, 140)).print(table)
        text = io.StringIO()
        Console(file=text, width=160, no_color=True).print(table)
        logging.getLogger("qwenharness.run").info("summary\n%s", text.getvalue().rstrip())  # into run.log
        console.print(f"run [bold]{paths.run_id}[/bold]: results in {paths.run_dir}"
                      + f", full log in {log_file}", soft_wrap=True)
        console.print(f"summaries: {paths.summary_dir / 'latest_summary.json'}, "
                      f"{paths.summary_dir / 'comprehensive_summary.json'}", soft_wrap=True)
        console.print(f"to rerun or continue it (finished samples are reused): {resume}", soft_wrap=True,
                      markup=False, highlight=False)
        if not all(r.ok for r in results):
            return 1
        return 1 if _every_sample_errored(results, console) else 0
    finally:
        stop_run_log()


def _every_sample_errored(results: list, console: "Console") -> bool:  # noqa: F821
    """A run that produced no usable sample failed, even though every dataset ran to its end."""
    aggs = [r.aggregate for r in results if r.aggregate]
    total = sum(int(a.get("n_samples") or 0) for a in aggs)
    if not total or sum(int(a.get("n_errors") or 0) for a in aggs) < total:
        return False
    first = next((e["error"] for a in aggs for e in a.get("error_examples", [])), "unknown")
    console.print(f"[red]every one of the {total} samples errored (first: {first}); the run failed[/red]")
    return True
