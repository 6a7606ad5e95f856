"""What per-request progress costs: the vLLM engine called with and without the run's tqdm factory
(interleaved repetitions on one engine), and the factory's own cost per finished request as vLLM
drives it (an update plus a read of `format_dict["elapsed"]`).

    .venv/bin/python scripts/progress_overhead.py [model]     # default: tiny (CPU)
"""

from __future__ import annotations

import io
import statistics
import sys
import time

from tqdm import tqdm

from qwenharness.console import forwarding_bar, quiet_engines


def per_update_us(n: int = 200_000) -> float:
    bar = tqdm(total=n, file=io.StringIO())
    fwd = forwarding_bar(bar)(total=n)
    t = time.perf_counter()
    for _ in range(n):
        fwd.update(1)
        fwd.format_dict["elapsed"]  # what vLLM's loop reads per finished request
    bar.close()
    return (time.perf_counter() - t) / n * 1e6


def main(model: str = "tiny") -> None:
    quiet_engines()
    from qwenharness.engines import GenerationRequest, LoglikelihoodRequest, SamplingParams, open_engine
    from qwenharness.presets import get_model_config

    engine = open_engine(get_model_config(model, "balanced", None), "vllm")
    gen = [GenerationRequest(prompt=f"Question {i}: what is {i}+{i}?",
                             sampling=SamplingParams(max_tokens=16, ignore_eos=True)) for i in range(512)]
    ll = [LoglikelihoodRequest(f"Context number {i} says", f" answer {i % 4}") for i in range(2048)]
    times: dict[str, list[float]] = {k: [] for k in ("generate off", "generate on", "loglikelihood off",
                                                      "loglikelihood on")}
    engine.generate(gen[:32])
    engine.loglikelihood(ll[:32])  # warm-up
    for _ in range(3):
        for mode in ("off", "on"):
            for kind, reqs, fn in (("generate", gen, engine.generate), ("loglikelihood", ll, engine.loglikelihood)):
                bar = tqdm(total=len(reqs), file=io.StringIO()) if mode == "on" else None
                t = time.perf_counter()
                fn(reqs, progress=forwarding_bar(bar) if bar is not None else False)
                times[f"{kind} {mode}"].append(time.perf_counter() - t)
                if bar is not None:
                    bar.close()
    engine.close()
    for key, values in times.items():
        print(f"{key:18s} {[round(v, 3) for v in values]} median {statistics.median(values):.3f}s")
    for kind in ("generate", "loglikelihood"):
        ratio = statistics.median(times[f"{kind} on"]) / statistics.median(times[f"{kind} off"])
        print(f"{kind}: with/without progress, median ratio {ratio:.3f}")
    print(f"factory cost per finished request: {per_update_us():.2f} us")


if __name__ == "__main__":
    main(*sys.argv[1:2])
