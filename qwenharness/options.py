"""The options the pytest gates share with the `qwenharness` CLI, declared once (issue 14).

Each `OptionSpec` holds a flag's type (the argparse validators of commands/common.py), help, choices,
metavar and default; `add_to_argparse` puts specs on a CLI parser, `add_to_pytest` on a pytest option
group, so a bad value (`--max-model-len -3`) is refused by both with the same argparse message.
Where the two sides legitimately differ (a default, what `--backend` accepts), the spec carries that
side's values in `cli` / `pytest`, each with the reason beside it.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from .commands.common import (
    doc_ids_text,
    name_list,
    non_negative_int,
    positive_float,
    positive_int,
    sample_limit_text,
    split_names,
    unit_float,
)
from .presets import COMPILATION_MODES, DEFAULT_PRESET


def _backends() -> list[str]:
    """The backends of the registry (built in, registered, installed), read when a value is checked."""
    from .registry import ENGINES

    return ENGINES.names()


@dataclass(frozen=True)
class OptionSpec:
    flag: str
    help: str
    type: Callable[[str], Any] | None = None
    choices: tuple[str, ...] | None = None
    metavar: str | None = None
    default: Any = None
    action: str | None = None
    dest: str | None = None
    cli: dict[str, Any] = field(default_factory=dict, hash=False)  # the CLI's own values, if any
    pytest: dict[str, Any] = field(default_factory=dict, hash=False)  # pytest's own values, if any

    @property
    def name(self) -> str:
        """The attribute pytest stores it under (config.getoption(flag) reads the same)."""
        return self.flag.lstrip("-").replace("-", "_")

    def on(self, side: str) -> OptionSpec:
        """This spec as one side ("cli" or "pytest") declares it."""
        return replace(self, **getattr(self, side), cli={}, pytest={})

    def kwargs(self) -> dict[str, Any]:
        keys = ("help", "type", "choices", "metavar", "action", "dest")
        out = {k: getattr(self, k) for k in keys if getattr(self, k) is not None}
        if self.action is None or self.default is not None:
            out["default"] = self.default
        return out


def add_to_argparse(parser: argparse.ArgumentParser | argparse._ArgumentGroup, specs: Iterable[OptionSpec]) -> None:
    for spec in specs:
        s = spec.on("cli")
        parser.add_argument(s.flag, **s.kwargs())


def add_to_pytest(group: Any, specs: Iterable[OptionSpec]) -> None:
    """`group`: a pytest OptionGroup (parser.getgroup(...))."""
    for spec in specs:
        s = spec.on("pytest")
        group.addoption(s.flag, **s.kwargs())


def backend_name(value: str) -> str:
    """The CLI's --backend: one backend of the registry (an installed package may add one)."""
    from .console import did_you_mean

    known = _backends()
    if value not in known:
        raise argparse.ArgumentTypeError(f"unknown backend '{value}' "
                                         f"({did_you_mean(value, known, 'choose from ' + ', '.join(known))})")
    return value


def backend_list(value: str) -> str:
    """pytest's --backend: 'auto' or comma-separated backends, each of which the gates run."""
    from .console import did_you_mean

    known = _backends()
    names = split_names(value) or ["auto"]
    for n in names:
        if n not in ("auto", *known):
            listing = f"choose from {', '.join(known)}, several comma-separated, or auto"
            raise argparse.ArgumentTypeError(f"unknown backend '{n}' ({did_you_mean(n, known, listing)})")
    if "auto" in names and len(names) > 1:
        raise argparse.ArgumentTypeError(f"'{value}' mixes 'auto' with backends; give 'auto' or the backends")
    return ",".join(names)


# -- what to run ---------------------------------------------------------------------------------
SELECTION_OPTIONS = (
    # defaults differ: the pytest gates cover the GPU's two suite models and all presets
    OptionSpec("--models", "comma-separated models or aliases (see qwenharness models)", type=name_list,
               metavar="M,...",
               cli={"help": "comma-separated models or aliases (default: tiny on CPU, qwen3_8b on GPU; see "
                            "qwenharness models)"},
               pytest={"help": "comma-separated models or aliases (default: tiny on CPU, qwen3_8b,qwen3_14b on "
                               "GPU; see qwenharness models)"}),
    OptionSpec("--presets", "preset(s), comma-separated", type=name_list, metavar="P,...",
               cli={"dest": "preset",  # evaluate's field, shared with its old spelling --preset
                    "help": f"preset(s), comma-separated (default: {DEFAULT_PRESET})"},
               pytest={"help": "preset(s), comma-separated (default: all three)"}),
    OptionSpec("--datasets", "comma-separated datasets, or 'all' (default: all)", type=name_list, metavar="D,..."),
    OptionSpec("--sample-limit", "samples per dataset (a reproducible seeded subset): N, or per dataset "
               "name=N,...,default=N (datasets not named get default, else all)", type=sample_limit_text,
               metavar="N|NAME=N,..."),
    OptionSpec("--doc-ids", 'exactly these documents, per dataset: \'{"arc_easy": [0, 17]}\' or a file holding '
               "that object (ids as in .samples.jsonl's doc_id); datasets not named follow --sample-limit",
               type=doc_ids_text, metavar="JSON|FILE"),
)

# -- where and how -------------------------------------------------------------------------------
RUN_OPTIONS = (
    OptionSpec("--results-dir", "root of results (default: results)", default="results"),
    # the CLI names each run by its start time; the gates' results accumulate under one id
    OptionSpec("--run-id", "run id under <results-dir>/evaluations",
               cli={"help": "run id under <results-dir>/evaluations (default: a timestamp)"},
               pytest={"default": "pytest", "help": "run id under <results-dir>/evaluations (default: pytest)"}),
    # the CLI runs one backend (None: a resumed run keeps its manifest's, else vllm); the gates run
    # several in one session, and 'auto' picks vllm on GPU, vllm,hf on CPU
    OptionSpec("--backend", "inference engine: vllm, hf, openai (a running server: --base-url) or one an "
               "installed package registers (default: vllm)", type=backend_name, metavar="NAME",
               pytest={"type": backend_list, "default": "auto",
                       "help": "vllm, hf, openai (a running server: --base-url), or several comma-separated "
                               "(default: vllm on GPU, vllm,hf on CPU)"}),
    OptionSpec("--data-dir", "folder of local dataset files (default: $QWENHARNESS_DATA_DIR, else "
               "../shared/data beside the checkout if present, else the Hugging Face Hub)"),
    # CLI default None: a resumed run keeps its manifest's load format
    OptionSpec("--load-format", "'dummy': random weights, real architecture (vLLM)", choices=("auto", "dummy"),
               pytest={"default": "auto"}),
)

SCHEDULE_OPTIONS = (
    # CLI default None: a resumed run keeps its manifest's
    OptionSpec("--concurrent-datasets", "evaluate a model's datasets at once, their generation calls merged into "
               "shared engine calls: auto (on for vLLM on a GPU), on or off", choices=("auto", "on", "off"),
               pytest={"default": "auto"}),
)

JUDGE_OPTIONS = (
    OptionSpec("--judge-max-tokens", "MT-Bench judge generation length (default: 2048, FastChat's)",
               type=positive_int),
)

# -- engine settings (in-process engines; default: the preset's) ---------------------------------
ENGINE_OPTIONS = (
    OptionSpec("--max-model-len", "context length in tokens", type=positive_int, metavar="N"),
    OptionSpec("--tensor-parallel-size", "GPUs one model is split over", type=positive_int, metavar="N"),
    OptionSpec("--gpu-memory-utilization", "fraction of GPU memory vLLM may take", type=unit_float, metavar="F"),
    OptionSpec("--max-num-seqs", "sequences vLLM schedules at once", type=positive_int, metavar="N"),
    OptionSpec("--dtype", "weights and activations (default: the model's; float32 for a bf16 model on a CPU "
               "without a fast bf16 path)", choices=("bfloat16", "float16", "float32")),
    OptionSpec("--kv-cache-dtype", "KV cache dtype", choices=("auto", "fp8", "fp8_e4m3", "fp8_e5m2")),
    OptionSpec("--compilation", "how vLLM prepares the model at start: full (torch.compile and CUDA graphs), graphs "
               "(CUDA graphs of decode steps, no compilation: a shorter start) or eager (neither). Default: "
               "graphs for an evaluation that generates text, eager for one of log-likelihoods only, full for "
               "benchmarks and milestone 2; always eager on a CPU", choices=COMPILATION_MODES),
    OptionSpec("--engine-args", "further vllm.LLM arguments, checked against vLLM's EngineArgs (e.g. "
               "enforce_eager=true)", metavar="K=V,..."),
)

# -- backend openai: the server's address and how to talk to it ----------------------------------
SERVER_OPTIONS = (
    OptionSpec("--base-url", "the server, e.g. http://127.0.0.1:8000/v1", metavar="URL"),
    OptionSpec("--api-key-env", "environment variable holding the server's API key", metavar="VAR"),
    OptionSpec("--served-model", "the model name the server knows (default: the only one GET /v1/models lists)",
               metavar="NAME"),
    OptionSpec("--server-api", "auto (default): /v1/completions with prompts tokenized here where the tokenizer "
               "is local, else /v1/chat/completions", choices=("auto", "completions", "chat")),
    OptionSpec("--max-concurrency", "requests in flight (default 32)", type=positive_int, metavar="N"),
    OptionSpec("--request-timeout", "seconds per request (default 600)", type=positive_float, metavar="S"),
    OptionSpec("--max-retries", "retries of a request after 429/5xx/timeouts/connection errors, with backoff "
               "(default 6)", type=non_negative_int, metavar="N"),
)
JUDGE_SERVER_OPTIONS = (
    OptionSpec("--judge-base-url", "a server for the MT-Bench judge (backend openai)", metavar="URL"),
    OptionSpec("--judge-api-key-env", "environment variable holding the judge server's key", metavar="VAR"),
    OptionSpec("--judge-served-model", "the judge's name on its server", metavar="NAME"),
)

# Every option the pytest gates and `qwenharness evaluate` both take.
SHARED_OPTIONS = (*SELECTION_OPTIONS, *RUN_OPTIONS, *SCHEDULE_OPTIONS, *JUDGE_OPTIONS, *ENGINE_OPTIONS,
                  *SERVER_OPTIONS, *JUDGE_SERVER_OPTIONS)
OPTIONS = {s.flag: s for s in SHARED_OPTIONS}


def specs(*flags: str) -> tuple[OptionSpec, ...]:
    """The table's entries for these flags, in this order."""
    return tuple(OPTIONS[f] for f in flags)
