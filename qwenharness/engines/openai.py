"""The OpenAI-compatible server engine: the Engine protocol over HTTP (`vllm serve`, SGLang, TGI, ...).

Where the model's tokenizer is on this machine (the built tiny models, local and converted folders,
a Hub model in the local Hugging Face cache), prompts are rendered with the model's chat template and
tokenized here, as the in-process engines do, and sent to `/v1/completions` as token ids: the server
sees the tokens vLLM in-process would, so greedy texts match. Without a tokenizer, chat requests go
to `/v1/chat/completions` and raw prompts to `/v1/completions` as text (`--server-api` forces one).

Log-likelihoods use `/v1/completions` with prompt log-probabilities: vLLM's `prompt_logprobs` (token
ids, ranks) where the server returns them, else the legacy `echo` with `logprobs` (text offsets). The
engine finds out which at open time with one one-token probe and declares it in `capabilities`; a
server with neither cannot score multiple-choice datasets and the run says so, naming the capability.

Requests go out concurrently (an asyncio httpx client, at most `max_concurrency` in flight), each with
a timeout, retried with exponential backoff on 429, 5xx, timeouts and connection errors. Results are
handed to the caller's `on_result` as they arrive (the run context appends them to the response
cache), so a run killed, or a server lost, mid-batch keeps every answer it got; the rerun sends the
rest. Errors that no retry can fix (a refused API key, a model the server does not serve, a server
gone for good) end the batch with a ServerError: a HarnessError but not an EngineError, so the run
context never records them as per-sample errors.

One module for one backend: the HTTP client, the capability probe and both API shapes (completions,
chat) of the same server.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError, EngineError, HarnessError
from ..presets import ResolvedConfig
from .base import (
    EngineCapabilities,
    EngineInfo,
    Generation,
    GenerationRequest,
    LoglikelihoodRequest,
    LoglikelihoodResult,
    SamplingParams,
)
from .common import encode_pairs, prefix_token_id, prompt_token_ids, render_chat

SERVER_APIS = ("auto", "completions", "chat")
RETRY_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})
BACKOFF_BASE_S = 0.5
BACKOFF_MAX_S = 8.0
OnResult = Callable[[list[tuple[int, Any]]], None]


class ServerError(HarnessError):
    """The server cannot answer at all (refused key, unknown model, gone after every retry). Not an
    EngineError on purpose: the run context turns EngineErrors into per-sample error records, and these
    are no sample's fault; the dataset fails instead and its finished responses stay in the cache."""


class CapabilityError(HarnessError):
    """The server lacks what a request kind needs (prompt log-probabilities)."""


@dataclass(frozen=True)
class ServerEndpoint:
    """Where and how to reach an OpenAI-compatible server (`--base-url` and friends)."""

    base_url: str
    api_key_env: str | None = None  # the environment variable holding the key (never the key itself)
    served_model: str | None = None  # the server's model name; None: the only one /v1/models lists
    max_concurrency: int = 32
    timeout_s: float = 600.0
    max_retries: int = 6
    api: str = "auto"  # "auto" | "completions" | "chat"

    def __post_init__(self) -> None:
        if not self.base_url.startswith(("http://", "https://")):
            raise ConfigError(f"--base-url '{self.base_url}' is not an http(s) URL",
                              "pass the server's address, e.g. --base-url http://127.0.0.1:8000/v1")
        if self.api not in SERVER_APIS:
            raise ConfigError(f"unknown --server-api '{self.api}'", f"choose one of {', '.join(SERVER_APIS)}")
        if self.max_concurrency < 1 or self.timeout_s <= 0 or self.max_retries < 0:
            raise ConfigError("--max-concurrency and --request-timeout must be positive, --max-retries >= 0",
                              "pass e.g. --max-concurrency 32 --request-timeout 600 --max-retries 6")

    @property
    def api_root(self) -> str:
        """The URL that /completions hangs off: the given one, with /v1 added when it is missing."""
        url = self.base_url.rstrip("/")
        return url if url.endswith("/v1") else url + "/v1"

    @property
    def server_root(self) -> str:
        return self.api_root[: -len("/v1")]

    def api_key(self) -> str | None:
        if self.api_key_env is None:
            return None
        key = os.environ.get(self.api_key_env)
        if not key:
            raise ConfigError(f"--api-key-env names {self.api_key_env}, which is not set",
                              f"export {self.api_key_env}=<the key the server was started with>")
        return key

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ServerEndpoint":
        return cls(**d)


def _backoff(attempt: int, retry_after: str | None = None) -> float:
    if retry_after:
        try:
            return min(float(retry_after), BACKOFF_MAX_S)
        except ValueError:
            pass
    return min(BACKOFF_BASE_S * 2 ** attempt, BACKOFF_MAX_S) * (0.75 + 0.5 * random.random())


def _error_text(response: Any) -> str:
    try:
        body = response.json()
        msg = body.get("error", body) if isinstance(body, dict) else body
        if isinstance(msg, dict):
            msg = msg.get("message", msg)
        text = str(msg)
    except Exception:  # noqa: BLE001 - a non-JSON body
        text = response.text
    return " ".join(text.split())[:300]


class RequestRejected(Exception):
    """A 4xx answer that is about this request (too long a prompt, a bad parameter)."""

    def __init__(self, status: int, message: str):
        self.status = status
        super().__init__(f"HTTP {status}: {message}")


def local_tokenizer(config: ResolvedConfig) -> tuple[Any, str] | None:
    """The model's tokenizer and its folder where it is on this machine (no download), else None."""
    from transformers import AutoTokenizer

    from . import resolve_model_dir

    spec = config.model
    try:
        where = resolve_model_dir(config)
    except HarnessError:
        return None
    local = Path(where).is_dir()
    try:
        tok = AutoTokenizer.from_pretrained(where, trust_remote_code=spec.trust_remote_code,
                                            local_files_only=not local)
    except Exception:  # noqa: BLE001 - not on this machine: the server renders and tokenizes
        return None
    return tok, where


class OpenAIEngine:
    name = "openai"

    def __init__(self, config: ResolvedConfig, endpoint: ServerEndpoint, *, tokenizer: Any = "auto"):
        import httpx

        logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per request otherwise
        self._httpx = httpx
        self.config = config
        self.spec = config.model
        self.endpoint = endpoint
        start = time.perf_counter()
        headers = {"Content-Type": "application/json"}
        key = endpoint.api_key()
        if key:
            headers["Authorization"] = f"Bearer {key}"
        self._headers = headers
        self.server = self._identify()  # first: a wrong address, key or model fails before any loading
        self.served_model: str = self.server["served_model"]
        self.max_len = int(self.server.get("max_model_len") or config.max_model_len)
        found = local_tokenizer(config) if tokenizer == "auto" else (tokenizer, "given") if tokenizer else None
        self.tokenizer = found[0] if found else None
        self.tokenizer_source = found[1] if found else None
        self.prefix_id = prefix_token_id(self.tokenizer) if self.tokenizer is not None else None
        self.api = endpoint.api
        if self.api == "auto":
            self.api = "completions" if self.tokenizer is not None else "chat"
        self.logprob_mode = self._probe_logprobs()
        self.capabilities = EngineCapabilities(
            loglikelihood=self.logprob_mode is not None, streams_results=True, in_process=False)
        self.load_time_s = time.perf_counter() - start
        self.closed = False

    # -- opening --------------------------------------------------------------------------------
    def _sync_get(self, path: str) -> Any:
        url = self.endpoint.api_root + path if path.startswith("/models") else self.endpoint.server_root + path
        try:
            return self._httpx.get(url, headers=self._headers, timeout=min(self.endpoint.timeout_s, 30.0))
        except self._httpx.HTTPError as e:
            raise ServerError(f"cannot reach the server at {url} ({type(e).__name__}: {e})",
                              "start it (see docs/scale-out.md) or fix --base-url") from e

    def _identify(self) -> dict[str, Any]:
        """The server's models and version (GET /v1/models, /version), and the model to ask for."""
        url = self.endpoint.api_root + "/models"
        r = self._sync_get("/models")
        self._raise_fatal(r, url)
        if r.status_code != 200:
            raise ServerError(f"GET {url} answered HTTP {r.status_code}: {_error_text(r)}",
                              "is --base-url an OpenAI-compatible server (vllm serve)?")
        models = r.json().get("data") or []
        names = [str(m.get("id")) for m in models]
        wanted = self.endpoint.served_model
        if wanted is None:
            if len(names) != 1:
                raise ServerError(f"the server at {self.endpoint.base_url} serves {len(names)} models "
                                  f"({', '.join(names) or 'none'})",
                                  "name one with --served-model" if names else "start it with a model")
            wanted = names[0]
        elif wanted not in names:
            from ..console import did_you_mean

            raise ServerError(f"the server at {self.endpoint.base_url} does not serve '{wanted}'",
                              did_you_mean(wanted, names, f"it serves {', '.join(names) or 'nothing'}; "
                                           "pass that name with --served-model"))
        card = next(m for m in models if str(m.get("id")) == wanted)
        version = None
        v = self._sync_get("/version")
        if v.status_code == 200:
            try:
                version = v.json().get("version")
            except ValueError:
                version = None
        return {"base_url": self.endpoint.base_url, "served_model": wanted, "models": names,
                "max_model_len": card.get("max_model_len"), "root": card.get("root"),
                "owned_by": card.get("owned_by"), "version": version}

    def _raise_fatal(self, response: Any, url: str) -> None:
        status = response.status_code
        if status in (401, 403):
            who = f"the key in ${self.endpoint.api_key_env}" if self.endpoint.api_key_env else "no API key"
            raise ServerError(f"the server at {self.endpoint.base_url} refused {who} (HTTP {status}: "
                              f"{_error_text(response)})",
                              "pass --api-key-env VAR with VAR holding the key the server was started with "
                              "(vllm serve --api-key)")
        if status == 404 and "/models" not in url:
            text = _error_text(response)
            if "model" in text.lower():
                raise ServerError(f"the server at {self.endpoint.base_url} does not serve "
                                  f"'{self.served_model}' ({text})", "check --served-model against GET /v1/models")
            raise ServerError(f"{url} does not exist on the server (HTTP 404: {text})",
                              "the server is not OpenAI-compatible there; check --base-url")

    def _probe_logprobs(self) -> str | None:
        """Which prompt log-probability protocol the server speaks: "prompt_logprobs" (vLLM),
        "echo" (legacy OpenAI), or None. One request of a two-token prompt."""
        prompt: Any = [self.prefix_id, self.prefix_id] if self.prefix_id is not None else "Hello world"
        body = {"model": self.served_model, "prompt": prompt, "max_tokens": 1, "temperature": 0.0,
                "prompt_logprobs": 1}
        try:
            out = asyncio.run(self._one_off("/completions", body))
        except RequestRejected:
            out = None
        choice = (out or {}).get("choices", [{}])[0]
        if isinstance(choice.get("prompt_logprobs"), list) and self.tokenizer is not None:
            return "prompt_logprobs"
        body = {"model": self.served_model, "prompt": prompt, "max_tokens": 0, "temperature": 0.0,
                "echo": True, "logprobs": 1}
        try:
            out = asyncio.run(self._one_off("/completions", body))
        except RequestRejected:
            return None
        lp = (out or {}).get("choices", [{}])[0].get("logprobs") or {}
        return "echo" if len(lp.get("token_logprobs") or []) >= 2 and lp.get("text_offset") else None

    async def _one_off(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        async with self._client() as client:
            return await self._post(client, path, body)

    # -- the protocol ---------------------------------------------------------------------------
    def apply_chat_template(self, messages: list[dict[str, str]], *, enable_thinking: bool | None = None,
                            add_generation_prompt: bool = True) -> str:
        if self.tokenizer is None:
            raise EngineError(f"{self.spec.name}'s tokenizer is not on this machine, so the harness cannot "
                              "render its chat template", "put the model folder (or its Hub cache) here")
        return render_chat(self.tokenizer, self.spec, messages, enable_thinking=enable_thinking,
                           add_generation_prompt=add_generation_prompt)

    def generate(self, requests: list[GenerationRequest], *, progress: Any = False,
                 on_result: OnResult | None = None) -> list[Generation]:
        bodies: list[tuple[str, dict[str, Any]] | Generation] = [self._generation_body(r) for r in requests]
        return self._run(bodies, self._parse_generation, progress, on_result, rejected=_error_generation)

    def loglikelihood(self, requests: list[LoglikelihoodRequest], *, progress: Any = False,
                      on_result: OnResult | None = None) -> list[LoglikelihoodResult]:
        if self.logprob_mode is None:
            raise CapabilityError(
                f"the server at {self.endpoint.base_url} returns no prompt log-probabilities (neither vLLM's "
                "prompt_logprobs nor echo with logprobs on /v1/completions), which log-likelihood datasets need",
                "serve the model with vLLM (vllm serve), or evaluate generation datasets only")
        if self.logprob_mode == "prompt_logprobs":
            pairs = encode_pairs(self.tokenizer, requests, self.prefix_id)
            windows = [(p.window(self.max_len - 2), len(p.continuation)) for p in pairs]
            bodies: list[Any] = [("/completions", {"model": self.served_model, "prompt": w, "max_tokens": 1,
                                                   "temperature": 0.0, "prompt_logprobs": 1}) for w, _ in windows]
            parse = lambda i, out: _score_prompt_logprobs(*windows[i], out)  # noqa: E731
        else:
            texts = [(r.context, r.context + r.continuation) for r in requests]
            bodies = [("/completions", {"model": self.served_model, "prompt": whole, "max_tokens": 0,
                                        "temperature": 0.0, "echo": True, "logprobs": 1}) for _, whole in texts]
            parse = lambda i, out: _score_echo(len(texts[i][0]), out)  # noqa: E731
        results = self._run(bodies, parse, progress, on_result, rejected=str)
        bad = next((r for r in results if isinstance(r, str)), None)
        if bad is not None:  # the run context splits the batch to find the requests at fault
            raise EngineError(f"the server rejected a log-likelihood request ({bad})",
                              "see the per-sample errors")
        return results

    def info(self) -> EngineInfo:
        import httpx

        from ..environment import package_version

        versions = {"httpx": httpx.__version__, "server": str(self.server.get("version"))}
        tv = package_version("transformers")
        if tv:
            versions["transformers"] = tv
        return EngineInfo(
            engine="openai", model=self.spec.name, preset=self.config.preset,
            device=f"server {self.endpoint.base_url}", dtype="server's", versions=versions,
            weight_bytes=None, kv_cache_bytes=None, load_time_s=self.load_time_s,
            extra={"server": dict(self.server), "api": self.api, "logprobs": self.logprob_mode,
                   "tokenizer": self.tokenizer_source, "max_model_len": self.max_len,
                   "max_concurrency": self.endpoint.max_concurrency, "timeout_s": self.endpoint.timeout_s,
                   "max_retries": self.endpoint.max_retries},
        )

    def close(self) -> None:
        self.closed = True  # nothing held: every batch opens and closes its own connections

    # -- requests -------------------------------------------------------------------------------
    def _generation_body(self, r: GenerationRequest) -> tuple[str, dict[str, Any]] | Generation:
        sp = r.sampling
        body: dict[str, Any] = {"model": self.served_model, "temperature": sp.temperature, "top_p": sp.top_p}
        if sp.stop:
            body["stop"] = list(sp.stop)
        if sp.seed is not None:
            body["seed"] = sp.seed
        if sp.top_k > 0:
            body["top_k"] = sp.top_k  # vLLM's extension, sent only when asked for
        if sp.ignore_eos:
            body["ignore_eos"] = True
        ids: list[int] | None = None
        if r.prompt_token_ids is not None:
            ids = list(r.prompt_token_ids)
        elif self.tokenizer is not None and self.api == "completions":
            ids = prompt_token_ids(self.tokenizer, self.spec, r)  # rendered and tokenized as in-process
        if ids is not None:
            if len(ids) >= self.max_len:
                return _error_generation(f"prompt of {len(ids)} tokens does not fit the server's "
                                         f"max_model_len {self.max_len}")
            body["prompt"] = ids
            body["max_tokens"] = max(1, min(sp.max_tokens, self.max_len - len(ids)))
            return "/completions", body
        if r.messages is None:  # a text prompt the server tokenizes
            body["prompt"] = r.prompt
            body["max_tokens"] = sp.max_tokens
            return "/completions", body
        messages = [dict(m) for m in r.messages]
        if r.assistant_prefix:
            messages.append({"role": "assistant", "content": r.assistant_prefix})
            body.update(add_generation_prompt=False, continue_final_message=True)
        flag = None
        if self.spec.thinking_mode:
            flag = self.spec.thinking_default if r.enable_thinking is None else r.enable_thinking
            body["chat_template_kwargs"] = {"enable_thinking": flag}
        body["messages"] = messages
        body["max_tokens"] = sp.max_tokens
        return "/chat/completions", body

    @staticmethod
    def _parse_generation(_: int, out: dict[str, Any]) -> Generation:
        choice = out["choices"][0]
        text = choice.get("text")
        if text is None:
            text = (choice.get("message") or {}).get("content") or ""
        usage = out.get("usage") or {}
        reason = choice.get("finish_reason")
        reason = reason if reason in ("stop", "length") else "error"
        ids = choice.get("token_ids")
        return Generation(text=text, prompt_tokens=int(usage.get("prompt_tokens") or 0),
                          output_tokens=int(usage.get("completion_tokens") or 0), finish_reason=reason,
                          latency_s=float(out.get("_latency_s", 0.0)), output_token_ids=ids,
                          error=None if reason != "error" else f"server finish reason {choice.get('finish_reason')}")

    def _run(self, bodies: Sequence[Any], parse: Callable[[int, dict[str, Any]], Any], progress: Any,
             on_result: OnResult | None, rejected: Callable[[str], Any]) -> list[Any]:
        """Send every body (a Generation is an answer made here already), `parse` each answer; a
        request the server rejects (a 4xx about it) becomes `rejected(message)`."""
        if self.closed:
            raise EngineError(f"the server engine for {self.spec.name} is closed", "open a new engine")
        bar = progress(total=len(bodies)) if callable(progress) else None
        try:
            return asyncio.run(self._gather(bodies, parse, bar, on_result, rejected))
        finally:
            if bar is not None:
                bar.close()

    def _client(self) -> Any:
        limits = self._httpx.Limits(max_connections=self.endpoint.max_concurrency,
                                    max_keepalive_connections=self.endpoint.max_concurrency)
        return self._httpx.AsyncClient(base_url=self.endpoint.api_root, headers=self._headers, limits=limits,
                                       timeout=self._httpx.Timeout(self.endpoint.timeout_s, connect=10.0))

    async def _gather(self, bodies: Sequence[Any], parse: Callable[[int, dict[str, Any]], Any], bar: Any,
                      on_result: OnResult | None, rejected: Callable[[str], Any]) -> list[Any]:
        results: list[Any] = [None] * len(bodies)
        ready: list[tuple[int, Any]] = []
        for i, b in enumerate(bodies):
            if isinstance(b, Generation):  # refused before sending (too long a prompt)
                results[i] = b
                ready.append((i, b))
        if ready and on_result is not None:
            on_result(ready)
        gate = asyncio.Semaphore(self.endpoint.max_concurrency)
        async with self._client() as client:
            async def one(i: int, path: str, body: dict[str, Any]) -> tuple[int, Any]:
                async with gate:
                    t0 = time.perf_counter()
                    try:
                        out = await self._post(client, path, body)
                    except RequestRejected as e:
                        return i, rejected(str(e))
                    out["_latency_s"] = time.perf_counter() - t0
                    return i, parse(i, out)

            pending = {asyncio.create_task(one(i, *b)) for i, b in enumerate(bodies) if not isinstance(b, Generation)}
            try:
                while pending:
                    done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                    batch = [t.result() for t in done]  # raises the first fatal error
                    for i, value in batch:
                        results[i] = value
                    if on_result is not None:
                        on_result(batch)
                    if bar is not None:
                        bar.update(len(batch))
            finally:
                for t in pending:
                    t.cancel()
                if pending:
                    await asyncio.gather(*pending, return_exceptions=True)
        return results

    async def _post(self, client: Any, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """One request with retries: 429/5xx/timeouts/connection errors back off and retry; 401/403 and
        an unknown model raise ServerError; another 4xx raises RequestRejected (this request's fault)."""
        httpx = self._httpx
        url = self.endpoint.api_root + path
        last, retry_after = "", None
        for attempt in range(self.endpoint.max_retries + 1):
            if attempt:
                await asyncio.sleep(_backoff(attempt - 1, retry_after))
            retry_after = None
            try:
                r = await client.post(path, json=body)
            except httpx.TimeoutException as e:
                last = f"no answer within {self.endpoint.timeout_s:g} s ({type(e).__name__})"
                continue
            except httpx.TransportError as e:
                last = f"{type(e).__name__}: {e}"
                continue
            if r.status_code == 200:
                return r.json()
            self._raise_fatal(r, url)
            if r.status_code in RETRY_STATUS:
                last = f"HTTP {r.status_code}: {_error_text(r)}"
                retry_after = r.headers.get("retry-after")
                continue
            raise RequestRejected(r.status_code, _error_text(r))
        raise ServerError(f"the server at {self.endpoint.base_url} failed {self.endpoint.max_retries + 1} "
                          f"attempts at {path} (last: {last})",
                          "check or restart the server, then rerun the same command: the responses already "
                          "received are saved and reused (--request-timeout and --max-retries tune the waiting)")


def _error_generation(message: str) -> Generation:
    return Generation(text="", prompt_tokens=0, output_tokens=0, finish_reason="error", latency_s=0.0,
                      error=message)


def _score_prompt_logprobs(tokens: list[int], n: int, out: dict[str, Any]) -> LoglikelihoodResult | str:
    """The continuation's summed log-probability from vLLM's prompt_logprobs ({token id: {logprob, rank}})."""
    entries = out["choices"][0].get("prompt_logprobs")
    if not isinstance(entries, list) or len(entries) != len(tokens):
        return f"the server returned {len(entries or [])} prompt log-probabilities for {len(tokens)} tokens"
    total, greedy = 0.0, True
    for token, entry in zip(tokens[len(tokens) - n:], entries[len(tokens) - n:]):
        lp = (entry or {}).get(str(token))
        if lp is None:
            return f"the server returned no log-probability for prompt token {token}"
        total += float(lp["logprob"])
        greedy = greedy and lp.get("rank") == 1
    return LoglikelihoodResult(logprob=total, is_greedy=greedy, num_tokens=n)


def _score_echo(context_chars: int, out: dict[str, Any]) -> LoglikelihoodResult | str:
    """The continuation's log-probability from a legacy echo answer: the tokens whose text starts at or
    after the context's end (lm-evaluation-harness's OpenAI completions scoring)."""
    lp = out["choices"][0].get("logprobs") or {}
    offsets, logprobs = lp.get("text_offset") or [], lp.get("token_logprobs") or []
    tokens, tops = lp.get("tokens") or [], lp.get("top_logprobs") or []
    start = next((i for i, off in enumerate(offsets) if off >= context_chars), len(offsets))
    start = max(start, 1)
    if start >= len(logprobs):
        return "the server's echo covered no continuation token"
    total, greedy = 0.0, True
    for i in range(start, len(logprobs)):
        total += float(logprobs[i])
        top = tops[i] if i < len(tops) else None
        if top:
            greedy = greedy and max(top, key=top.get) == tokens[i]
    return LoglikelihoodResult(logprob=total, is_greedy=greedy, num_tokens=len(logprobs) - start)
