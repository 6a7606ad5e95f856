"""The transformers engine: the Engine protocol over `AutoModelForCausalLM`, on CPU or one GPU.

Generation is batched with left padding and grouped by sampling parameters (one `generate` call per
group and chunk); stop strings end a sequence as soon as they appear in its decoded text and are cut
from the returned text. A sampling seed seeds each batch: a seeded request is reproducible given
the same batch (vLLM's seeds are per request; greedy decoding is the same either way). Log-likelihoods take one forward pass per batch, scoring only the last
positions (`logits_to_keep`), so long contexts never materialise full-vocabulary logits.
"""

from __future__ import annotations

import gc
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from .. import lifetime
from ..errors import EngineError
from ..presets import ResolvedConfig
from .base import IN_PROCESS, EngineInfo, Generation, GenerationRequest, LoglikelihoodRequest, LoglikelihoodResult, SamplingParams
from .common import encode_pairs, prefix_token_id, prompts_token_ids, render_chat, too_long_prompt, truncate_at_stop

_TORCH_DTYPES = {"float32": "float32", "bfloat16": "bfloat16", "float16": "float16"}


def _bar(progress: Any, total: int) -> Any:
    """The caller's bar (a tqdm factory, as vLLM's use_tqdm takes), moved once per batch; None for a bool."""
    return progress(total=total, desc="batches") if callable(progress) else None


class HFEngine:
    name = "hf"
    capabilities = IN_PROCESS

    def __init__(self, config: ResolvedConfig, model_dir: str | Path):
        try:
            with lifetime.interrupts_deferred():  # a Ctrl-C mid-import would abort the process
                import torch
                import transformers
                from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer
        except ImportError as e:
            raise EngineError(f"the transformers engine needs torch and transformers ({e})",
                              "pip install torch transformers (see README)") from e
        start = time.perf_counter()
        self.config = config
        self.spec = config.model
        self.model_dir = str(model_dir)
        self._torch = torch
        if config.dtype not in _TORCH_DTYPES:
            raise EngineError(f"the transformers engine cannot run dtype {config.dtype}",
                              "use bfloat16, float16 or float32")
        self.dtype = getattr(torch, _TORCH_DTYPES[config.dtype])
        if config.device == "cuda" and not torch.cuda.is_available():
            raise EngineError("the configuration targets a GPU but torch sees no CUDA device",
                              "install a CUDA build of torch, or resolve the configuration with gpu=None (CPU)")
        self.device = torch.device("cuda" if config.device == "cuda" else "cpu")
        remote = self.spec.trust_remote_code
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(self.model_dir, trust_remote_code=remote)
            if config.load_format == "dummy":
                hf_config = AutoConfig.from_pretrained(self.model_dir, trust_remote_code=remote)
                torch.manual_seed(config.seed)
                model = AutoModelForCausalLM.from_config(hf_config, dtype=self.dtype, trust_remote_code=remote)
            else:
                model = AutoModelForCausalLM.from_pretrained(self.model_dir, dtype=self.dtype,
                                                             trust_remote_code=remote)
            self.model = model.to(self.device).eval()
        except torch.OutOfMemoryError as e:
            raise EngineError(f"{self.spec.name} does not fit the {self.device} memory with the transformers engine",
                              "use preset memory_optimized, a smaller model, or the vllm backend") from e
        except OSError as e:
            raise EngineError(f"cannot load {self.spec.name} from {self.model_dir}: {e}",
                              "check the model folder or Hub id (and network access for a Hub download)") from e
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.pad_id = int(self.tokenizer.pad_token_id)
        self.eos_ids = self._eos_ids()
        self.prefix_id = prefix_token_id(self.tokenizer)
        self.max_len = config.max_model_len
        self.batch_tokens = max(config.max_num_batched_tokens, self.max_len)
        self.load_time_s = time.perf_counter() - start
        self._versions = {"transformers": transformers.__version__, "torch": torch.__version__}
        torch.manual_seed(config.seed)

    # -- protocol -------------------------------------------------------------------------------
    def apply_chat_template(self, messages: list[dict[str, str]], *, enable_thinking: bool | None = None,
                            add_generation_prompt: bool = True) -> str:
        return render_chat(self.tokenizer, self.spec, messages, enable_thinking=enable_thinking,
                           add_generation_prompt=add_generation_prompt)

    def generate(self, requests: list[GenerationRequest], *, progress: bool = False) -> list[Generation]:
        start = time.perf_counter()
        prompts = prompts_token_ids(self.tokenizer, self.spec, requests)
        results: list[Generation | None] = [too_long_prompt(ids, self.max_len) for ids in prompts]
        groups: dict[SamplingParams, list[int]] = defaultdict(list)
        for i, r in enumerate(requests):
            if results[i] is None:
                groups[r.sampling].append(i)
        bar = _bar(progress, len(requests))
        if bar is not None:
            bar.update(len(requests) - sum(map(len, groups.values())))
        for sampling, indices in groups.items():
            indices.sort(key=lambda i: len(prompts[i]))
            for chunk in self._chunks(indices, [len(prompts[i]) + sampling.max_tokens for i in indices]):
                for i, gen in zip(chunk, self._generate_batch([prompts[i] for i in chunk], sampling)):
                    results[i] = gen
                if bar is not None:
                    bar.update(len(chunk))
        share = (time.perf_counter() - start) / max(len(requests), 1)
        out = [g for g in results if g is not None]
        for g in out:
            if g.error is None:
                g.latency_s = share
        return out

    def loglikelihood(self, requests: list[LoglikelihoodRequest], *, progress: bool = False) -> list[LoglikelihoodResult]:
        pairs = encode_pairs(self.tokenizer, requests, self.prefix_id)
        # The same window as the vLLM engine's (which must leave room for one generated token).
        windows = [(p.window(self.max_len - 2), len(p.continuation)) for p in pairs]
        order = sorted(range(len(requests)), key=lambda i: -len(windows[i][0]))
        results: list[LoglikelihoodResult | None] = [None] * len(requests)
        bar = _bar(progress, len(requests))
        for chunk in self._chunks(order, [len(windows[i][0]) for i in order]):
            for i, res in zip(chunk, self._score_batch([windows[i] for i in chunk])):
                results[i] = res
            if bar is not None:
                bar.update(len(chunk))
        return [r for r in results if r is not None]

    def info(self) -> EngineInfo:
        weight_bytes = sum(p.numel() * p.element_size() for p in self.model.parameters())
        device = str(self.device)
        if self.device.type == "cuda":
            device = f"cuda ({self._torch.cuda.get_device_name(self.device)})"
        return EngineInfo(
            engine="hf", model=self.spec.name, preset=self.config.preset, device=device,
            dtype=self.config.dtype, versions=dict(self._versions), weight_bytes=int(weight_bytes),
            kv_cache_bytes=None, load_time_s=self.load_time_s,
            extra={"model_dir": self.model_dir, "load_format": self.config.load_format,
                   "kv_cache": "dynamic (allocated per batch)"},
        )

    def close(self) -> None:
        if getattr(self, "model", None) is None:
            return
        self.model = None
        gc.collect()
        if self._torch.cuda.is_available():
            self._torch.cuda.empty_cache()

    # -- internals ------------------------------------------------------------------------------
    def _eos_ids(self) -> list[int]:
        ids: set[int] = set()
        gen_eos = getattr(getattr(self.model, "generation_config", None), "eos_token_id", None)
        for value in (gen_eos, self.tokenizer.eos_token_id):
            if isinstance(value, int):
                ids.add(value)
            elif value:
                ids.update(int(v) for v in value)
        return sorted(ids)

    def _chunks(self, indices: list[int], lengths: list[int]) -> list[list[int]]:
        """Split (length-sorted) indices into batches within max_num_seqs and the token budget."""
        chunks: list[list[int]] = []
        current: list[int] = []
        longest = 0
        for i, n in zip(indices, lengths):
            longest_if = max(longest, n)
            if current and (len(current) >= self.config.max_num_seqs
                            or longest_if * (len(current) + 1) > self.batch_tokens):
                chunks.append(current)
                current, longest_if = [], n
            current.append(i)
            longest = longest_if
        if current:
            chunks.append(current)
        return chunks

    def _left_pad(self, rows: list[list[int]]) -> tuple[Any, Any]:
        torch = self._torch
        width = max(len(r) for r in rows)
        ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for k, r in enumerate(rows):
            ids[k, width - len(r):] = torch.tensor(r, dtype=torch.long)
            mask[k, width - len(r):] = 1
        return ids.to(self.device), mask.to(self.device)

    def _generate_batch(self, prompts: list[list[int]], sampling: SamplingParams) -> list[Generation]:
        torch = self._torch
        from transformers import GenerationConfig, StoppingCriteriaList

        ids, mask = self._left_pad(prompts)
        width = ids.shape[1]
        max_new = min(sampling.max_tokens, self.max_len - max(len(p) for p in prompts))
        sample = sampling.temperature > 0
        # Every knob explicit: transformers fills unset (None) ones from the model's
        # generation_config.json (e.g. Qwen2.5's repetition_penalty 1.05, top_k 20), which vLLM,
        # given explicit sampling parameters, does not apply. (Greedy search ignores the warpers.)
        warpers = dict(temperature=sampling.temperature, top_p=sampling.top_p,
                       top_k=sampling.top_k, min_p=0.0) if sample else {}  # top_k 0 disables top-k
        gen_config = GenerationConfig(
            max_new_tokens=max_new, do_sample=sample, repetition_penalty=1.0, **warpers,
            eos_token_id=self.eos_ids, pad_token_id=self.pad_id,
            # ignore_eos: EOS is masked until max_new tokens (vLLM instead samples past it)
            min_new_tokens=max_new if sampling.ignore_eos else 0,
        )
        criteria = StoppingCriteriaList()
        if sampling.stop:
            criteria.append(_StopStrings(self.tokenizer, sampling.stop, width))
        torch.manual_seed(sampling.seed if sampling.seed is not None else self.config.seed)
        with torch.inference_mode():
            out = self.model.generate(input_ids=ids, attention_mask=mask, generation_config=gen_config,
                                      stopping_criteria=criteria)
        gens = []
        for k, prompt in enumerate(prompts):
            new = out[k, width:].tolist()
            gens.append(self._finish(prompt, new, sampling, max_new))
        return gens

    def _finish(self, prompt: list[int], new: list[int], sampling: SamplingParams, max_new: int) -> Generation:
        eos_at = None if sampling.ignore_eos else next((j for j, t in enumerate(new) if t in self.eos_ids), None)
        if eos_at is not None:
            new = new[:eos_at + 1]
        text = self.tokenizer.decode(new, skip_special_tokens=True)
        text, stopped = truncate_at_stop(text, sampling.stop)
        n_out = len(new)
        if stopped:  # count the tokens up to the one that completed the stop string
            lo, hi = 1, len(new)
            while lo < hi:
                mid = (lo + hi) // 2
                _, hit = truncate_at_stop(self.tokenizer.decode(new[:mid], skip_special_tokens=True), sampling.stop)
                lo, hi = (lo, mid) if hit else (mid + 1, hi)
            n_out = lo
        reason = "stop" if stopped or eos_at is not None else "length"
        return Generation(text=text, prompt_tokens=len(prompt), output_tokens=n_out, finish_reason=reason,
                          latency_s=0.0, output_token_ids=new[:n_out])

    def _score_batch(self, windows: list[tuple[list[int], int]]) -> list[LoglikelihoodResult]:
        """One forward pass: each row's input is its tokens but the last; its continuation's n
        tokens are predicted by the last n input positions (left padding keeps those aligned)."""
        torch = self._torch
        keep = max(n for _, n in windows)
        ids, mask = self._left_pad([tokens[:-1] for tokens, _ in windows])
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        with torch.inference_mode():
            logits = self.model(input_ids=ids, attention_mask=mask, position_ids=positions,
                                logits_to_keep=keep, use_cache=False).logits
            logprobs = torch.log_softmax(logits.float(), dim=-1)
        results = []
        for k, (tokens, n) in enumerate(windows):
            lp = logprobs[k, keep - n:]
            target = torch.tensor(tokens[-n:], device=lp.device)
            chosen = lp.gather(-1, target[:, None])[:, 0]
            greedy = bool((lp.argmax(-1) == target).all())
            results.append(LoglikelihoodResult(logprob=float(chosen.double().sum()), is_greedy=greedy, num_tokens=n))
        return results


class _StopStrings:
    """A stopping criterion: a row is done once a stop string appears in its decoded new tokens.

    Only a tail of each row is decoded per step: a stop string of L characters spans at most
    4·L byte-level tokens (plus one for a partly decoded character).
    """

    def __init__(self, tokenizer: Any, stops: tuple[str, ...], prompt_width: int):
        self.tokenizer = tokenizer
        self.stops = tuple(s for s in stops if s)
        self.prompt_width = prompt_width
        self.window = 4 * max((len(s) for s in self.stops), default=1) + 2

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        import torch

        tails = input_ids[:, self.prompt_width:][:, -self.window:].tolist()
        texts = self.tokenizer.batch_decode(tails, skip_special_tokens=True)
        done = [any(s in t for s in self.stops) for t in texts]
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)
