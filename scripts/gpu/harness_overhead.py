"""What the evaluation path costs around the engine's own work, measured without a GPU.

    python scripts/gpu/harness_overhead.py --tokenizer .data/tokenizer-qwen2.5 --data-dir DATA \
        --limit hellaswag=2000 --limit mmlu=300 --limit gsm8k=100 [--profile 25]

`Evaluator.run()` (what `qwenharness evaluate` runs) drives the real VLLMEngine code (tokenization,
`encode_pairs`, windows, sampling parameters, result parsing) over a stand-in `vllm.LLM` whose
`generate` answers at once (every prompt token gets log-prob -1, rank 1; a generation is 64 fixed
tokens), or, with `--gpu-tokens-per-s R`, after sleeping as long as a GPU of R prompt tokens/s would
compute (the GIL is free meanwhile, as while vLLM's engine core works). The time spent inside that
stand-in is subtracted: what is left is what the harness adds to a bare `LLM.generate` call on
pre-tokenized ids, per dataset; "stand-in / wall" is then the bare/harness ratio such a GPU would
see. `--no-overlap` hides the engine's `prepare_loglikelihood`, for the tokenize-ahead experiment in
docs/gpu-runs/2026-12-01-h200/prefetch-experiment.patch (without that patch it changes nothing). `--profile N` prints the N largest
cumulative entries of cProfile for each dataset.

Dummy-weight folder with the real tokenizer: qwen3_8b's (QWENHARNESS_DUMMY_TOKENIZER or --tokenizer).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


@dataclass
class _Logprob:
    logprob: float
    rank: int


@dataclass
class _Completion:
    text: str
    token_ids: list[int]
    finish_reason: str


@dataclass
class _Output:
    prompt_logprobs: list[Any] | None
    outputs: list[_Completion]
    metrics: Any = None


class _SamplingParams:
    def __init__(self, **kw: Any) -> None:
        self.__dict__.update(kw)


class _FakeVLLM:
    SamplingParams = _SamplingParams
    __version__ = "stand-in"


class _FakeLLM:
    """Answers at once; counts its own time so it can be taken out."""

    def __init__(self, tokens_per_s: float = 0.0) -> None:
        self.seconds = 0.0
        self.calls = 0
        self.tokens_per_s = tokens_per_s  # > 0: sleep as a GPU of this prompt-token rate would take

    def generate(self, prompts: list[dict[str, Any]], params: Any, use_tqdm: bool = False) -> list[_Output]:
        t = time.perf_counter()
        self.calls += 1
        one = not isinstance(params, list)
        out = []
        for i, p in enumerate(prompts):
            sp = params if one else params[i]
            ids = p["prompt_token_ids"]
            if getattr(sp, "prompt_logprobs", None):
                lps = [None] + [{tok: _Logprob(-1.0, 1)} for tok in ids[1:]]
                out.append(_Output(lps, [_Completion("", [0], "length")]))
            else:
                out.append(_Output(None, [_Completion(" The answer is 4.", list(range(100, 164)), "length")]))
        if self.tokens_per_s > 0:  # the GIL is free meanwhile, as while vLLM's engine core computes
            time.sleep(sum(len(p["prompt_token_ids"]) for p in prompts) / self.tokens_per_s)
        self.seconds += time.perf_counter() - t
        return out


class _WithoutPrefetch:
    """The engine without `prepare_loglikelihood`, so the runner does not tokenize ahead."""

    def __init__(self, engine: Any) -> None:
        self._engine = engine

    def __getattr__(self, name: str) -> Any:
        if name == "prepare_loglikelihood":
            raise AttributeError(name)
        return getattr(self._engine, name)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokenizer", default=None)
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--model", default="qwen3_8b")
    ap.add_argument("--limit", action="append", default=[], help="DATASET=N (datasets run in this order)")
    ap.add_argument("--profile", type=int, default=0)
    ap.add_argument("--gpu-tokens-per-s", type=float, default=0.0,
                    help="make the stand-in take as long as a GPU of this prompt-token rate (sleeping)")
    ap.add_argument("--no-overlap", action="store_true", help="no tokenizing of the next chunk ahead")
    args = ap.parse_args()
    if args.tokenizer:
        os.environ["QWENHARNESS_DUMMY_TOKENIZER"] = str(Path(args.tokenizer).resolve())

    from transformers import AutoTokenizer

    from qwenharness.engines.common import prefix_token_id
    from qwenharness.engines.pool import EnginePool
    from qwenharness.engines.vllm import VLLMEngine
    from qwenharness.evaluation import EvalSettings, Evaluator
    from qwenharness.hardware import H100_80GB
    from qwenharness.presets import get_model_config
    from qwenharness.results import resolve_run_paths
    from qwenharness.tiny import dummy_model_dir

    fake = _FakeLLM(args.gpu_tokens_per_s)

    def opener(config: Any, backend: str) -> Any:
        engine = VLLMEngine.__new__(VLLMEngine)
        engine.config, engine.spec = config, config.model
        engine.model_dir = str(dummy_model_dir(config.model))
        engine.max_len = config.max_model_len
        engine.tokenizer = AutoTokenizer.from_pretrained(engine.model_dir)
        engine.prefix_id = prefix_token_id(engine.tokenizer)
        engine._vllm, engine.llm, engine.load_time_s = _FakeVLLM(), fake, 0.0
        engine.info = lambda: None  # type: ignore[method-assign]
        engine.close = lambda: None  # type: ignore[method-assign]
        return _WithoutPrefetch(engine) if args.no_overlap else engine

    def resolver(model: str, preset: str, **kw: Any) -> Any:
        return get_model_config(model, preset, gpu=H100_80GB, load_format="dummy")

    pool = EnginePool(opener=opener, resolver=resolver, load_format="dummy")
    pool.get(args.model, "balanced", "vllm", compilation="full")
    results_dir = tempfile.mkdtemp(prefix="harness-overhead-")
    print(f"cpu_count {os.cpu_count()}, load {os.getloadavg()[0]:.1f}; results in {results_dir}")
    print(f"stand-in GPU rate {args.gpu_tokens_per_s or 'none'} tokens/s, overlap {'off' if args.no_overlap else 'on'}")
    print("| dataset | docs | engine calls | wall | inside the stand-in vLLM | harness overhead | per 1k requests | "
          "stand-in / wall |")
    print("|---|---|---|---|---|---|---|---|")
    for item in args.limit:
        ds, _, n = item.partition("=")
        settings = EvalSettings(models=[args.model], datasets=[ds], presets=["balanced"], backend="vllm",
                                sample_limit=int(n), data_dir=args.data_dir, load_format="dummy", progress=False,
                                engine={"compilation": "full"})  # the engine opened above
        paths = resolve_run_paths(results_dir, run_id=f"overhead-{ds}")
        before_s, before_calls = fake.seconds, fake.calls
        prof = cProfile.Profile() if args.profile else None
        t = time.perf_counter()
        if prof:
            prof.enable()
        res = Evaluator(settings, paths, pool=pool, argv=["harness_overhead.py"]).run()
        if prof:
            prof.disable()
        wall = time.perf_counter() - t
        inside = fake.seconds - before_s
        reqs = ((res[0].aggregate or {}).get("timings") or {}).get("requests") or 0
        print(f"| {ds} | {n} | {fake.calls - before_calls} | {wall:.2f} s | {inside:.2f} s | {wall - inside:.2f} s | "
              f"{(wall - inside) / max(reqs, 1) * 1000:.2f} s ({reqs} requests) | {inside / wall:.3f} |", flush=True)
        if prof:
            s = io.StringIO()
            pstats.Stats(prof, stream=s).sort_stats("cumulative").print_stats(args.profile)
            print(s.getvalue()[-6000:])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
