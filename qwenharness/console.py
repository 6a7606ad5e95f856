"""What a person sees while a command runs, and the run's full log file.

* Engine logs: vLLM and transformers log at WARNING on the console (INFO with `-v`); everything
  at INFO, vLLM's engine-config dump included, goes to the run directory's `run.log`. vLLM is
  configured through its own settings (VLLM_CONFIGURE_LOGGING, VLLM_LOGGING_LEVEL and a
  dictConfig file named by VLLM_LOGGING_CONFIG_PATH), which its engine processes inherit.
  `quiet_engines` runs before vLLM is imported; `log_to_run_dir` once the run directory is known.
* `RunConsole`: the harness's own messages, to the terminal (rich markup) and to run.log (plain).
* `forwarding_bar`: a tqdm factory that vLLM's `use_tqdm` accepts; it moves an outer bar once per
  finished request, so a bar moves within one batch call.
* `suggest`: "did you mean ...?" for a mistyped name.
"""

from __future__ import annotations

import contextlib
import difflib
import json
import logging
import logging.config
import logging.handlers
import os
import re
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

LOG_NAME = "run.log"
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(processName)s pid=%(process)d] %(message)s"
# vLLM's engine-config dump ("Initializing a V1 LLM engine (...) with config: model=...") and the
# full argument list it logs: run.log only, even with -v.
_DUMP = re.compile(r"with config: |non-default args: |Initializing a V1 LLM engine")
_ENGINE_LOGGERS = ("vllm", "transformers", "torch", "huggingface_hub", "datasets")
_verbose = [False]
_user_level: list[str | None] = [None]


def suggest(name: str, choices: Iterable[str]) -> str | None:
    """The closest of `choices` to a mistyped `name`, or None; a name with the same letters in
    another order (`tyni`: tiny) counts as close, which difflib's ratio alone does not find."""
    choices = list(choices)
    near = difflib.get_close_matches(name, choices, n=1, cutoff=0.6)
    if near:
        return near[0]
    letters = sorted(name.lower())
    return next((c for c in choices if len(name) > 2 and sorted(c.lower()) == letters), None)


def did_you_mean(name: str, choices: Iterable[str], listing: str) -> str:
    """The fix part of an unknown-name error: the nearest name, else the listing."""
    near = suggest(name, choices)
    return f"did you mean {near}? {listing}" if near else listing


class QuietFileHandler(logging.FileHandler):
    """run.log's handler: a full or failing disk must not print logging's own tracebacks on the
    console (the results' writes report disk errors, once, with the fix)."""

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 - logging's name
        pass


class DropConfigDump(logging.Filter):
    """Keeps vLLM's multi-kilobyte engine-config dump off the console (it stays in run.log)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            return not _DUMP.search(record.getMessage())
        except Exception:  # noqa: BLE001 - a record that cannot be formatted: let it through
            return True


def console_level() -> str:
    """INFO with -v; else a VLLM_LOGGING_LEVEL the user set; else WARNING."""
    return "INFO" if _verbose[0] else (_user_level[0] or "WARNING")


def quiet_engines(verbose: bool = False) -> None:
    """Engine logs at WARNING on the console (INFO when verbose). Call before vLLM is imported;
    a level the user set in the environment wins."""
    _verbose[0] = verbose
    if os.environ.get("QWENHARNESS_VLLM_LOGGING") != "1":  # not set by an earlier call of ours
        _user_level[0] = os.environ.get("VLLM_LOGGING_LEVEL", "").upper() or None
    level = console_level()
    os.environ.setdefault("VLLM_CONFIGURE_LOGGING", "1")
    os.environ["VLLM_LOGGING_LEVEL"] = level
    os.environ["QWENHARNESS_VLLM_LOGGING"] = "1"
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", level.lower())
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # its fork warning is noise here
    logging.getLogger("vllm").setLevel(logging.INFO)  # records reach run.log; handlers filter
    for name in ("transformers", "huggingface_hub"):
        logging.getLogger(name).setLevel(getattr(logging, level))


def vllm_logging_config(log_file: Path, level: str) -> dict[str, Any]:
    """vLLM's dictConfig: its console handler at `level` without the config dump, and run.log at INFO."""
    fmt = {"format": "%(levelname)s %(asctime)s [%(filename)s:%(lineno)d] %(message)s", "datefmt": "%m-%d %H:%M:%S"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"console": fmt,
                       "file": {"format": "%(asctime)s %(levelname)s vllm [pid=%(process)d %(filename)s:%(lineno)d] "
                                "%(message)s"}},
        "filters": {"no_dump": {"()": "qwenharness.console.DropConfigDump"}},
        "handlers": {
            "console": {"class": "logging.StreamHandler", "stream": "ext://sys.stderr", "level": level,
                        "formatter": "console", "filters": ["no_dump"]},
            "file": {"class": "qwenharness.console.QuietFileHandler", "filename": str(log_file), "mode": "a",
                     "level": "INFO", "formatter": "file", "encoding": "utf-8", "delay": True},
        },
        "loggers": {"vllm": {"handlers": ["console", "file"], "level": "INFO", "propagate": False}},
    }


def log_to_run_dir(run_dir: Path) -> Path:
    """Send every log record (INFO and up) of this process and of the engines it starts to
    `run_dir/run.log`; the console keeps WARNING (INFO with -v). Returns the log file."""
    log_file = Path(run_dir) / LOG_NAME
    log_file.parent.mkdir(parents=True, exist_ok=True)
    cfg = vllm_logging_config(log_file.resolve(), console_level())
    stop_run_log()
    fd, cfg_path = tempfile.mkstemp(prefix="vllm-logging-", suffix=".json")  # the private TMPDIR when supervised
    with os.fdopen(fd, "w") as f:
        json.dump(cfg, f)
    _state["config_file"] = cfg_path
    if not os.environ.get("VLLM_LOGGING_CONFIG_PATH"):  # the user's own file, if any, wins
        _state["env"] = {k: os.environ.get(k) for k in ("VLLM_LOGGING_CONFIG_PATH", "VLLM_CONFIGURE_LOGGING")}
        os.environ["VLLM_LOGGING_CONFIG_PATH"] = cfg_path
        os.environ["VLLM_CONFIGURE_LOGGING"] = "1"
        _reconfigure_vllm_if_imported(cfg)
    target = QuietFileHandler(log_file, encoding="utf-8", delay=True)
    target.setFormatter(logging.Formatter(LOG_FORMAT))
    # Held in memory until an engine that logs into the file itself starts (flush_run_log) or the
    # command ends: a run on a nearly full disk spends no block on its log before its results.
    handler = _RunLogBuffer(target)
    handler.setLevel(logging.INFO)
    handler.set_name("qwenharness-run-log")
    _state["buffer"] = handler
    for name in ("", "qwenharness", *_ENGINE_LOGGERS[1:]):
        logger = logging.getLogger(name)
        logger.addHandler(handler)
    root = logging.getLogger()
    if not any(h.get_name() == "qwenharness-console" for h in root.handlers):
        console = logging.StreamHandler(sys.stderr)  # other libraries' warnings still reach the console
        console.set_name("qwenharness-console")
        console.setLevel(getattr(logging, console_level(), logging.WARNING))
        console.addFilter(DropConfigDump())
        root.addHandler(console)
    _state.setdefault("root_level", root.level)
    root.setLevel(logging.INFO)
    logging.getLogger("qwenharness").setLevel(logging.INFO)
    logging.getLogger("qwenharness").propagate = False
    _quiet_transformers_console()
    return log_file


_state: dict[str, Any] = {}


class _RunLogBuffer(logging.handlers.MemoryHandler):
    """Buffers run.log's records until `direct()` (then writes each at once) or close."""

    def __init__(self, target: logging.Handler):
        super().__init__(capacity=100_000, flushLevel=logging.CRITICAL + 1, target=target, flushOnClose=True)

    def direct(self) -> None:
        self.capacity = 1
        self.flush()

    def close(self) -> None:
        """Only a flush: vLLM's dictConfig shuts every existing handler down when it configures
        its own, and run.log must keep receiving the harness's lines after that."""
        self.flush()

    def finish(self) -> None:
        self.flush()
        target = self.target
        super().close()
        if target is not None:
            target.close()


def flush_run_log() -> None:
    """An engine that writes run.log itself (vLLM) is starting: the harness's lines go in first,
    and from now on as they come."""
    buffer = _state.get("buffer")
    if buffer is not None:
        buffer.direct()


def stop_run_log() -> None:
    """Undo `log_to_run_dir` (for callers that run several commands in one process, e.g. tests):
    the run.log handlers go, vLLM's logging settings are restored."""
    for name in ("", "qwenharness", *_ENGINE_LOGGERS[1:]):
        logger = logging.getLogger(name)
        for old in [h for h in logger.handlers if h.get_name() in ("qwenharness-run-log", "qwenharness-console")]:
            logger.removeHandler(old)
    buffer = _state.pop("buffer", None)
    if buffer is not None:
        buffer.finish()  # writes what it holds
    if "root_level" in _state:
        logging.getLogger().setLevel(_state.pop("root_level"))
    env = _state.pop("env", None)
    if env is not None:
        for key, value in env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    cfg_path = _state.pop("config_file", None)
    if cfg_path:
        with contextlib.suppress(OSError):
            os.unlink(cfg_path)
    if "vllm.logger" in sys.modules and env is not None:
        with contextlib.suppress(Exception):  # back to vLLM's own console configuration
            sys.modules["vllm.logger"]._configure_vllm_root_logger()


def _reconfigure_vllm_if_imported(cfg: dict[str, Any]) -> None:
    if "vllm.logger" in sys.modules:  # imported already (in-process callers): apply now
        logging.config.dictConfig(cfg)


def _quiet_transformers_console() -> None:
    """transformers at the console level (WARNING, or INFO with -v), in run.log too: its INFO lines
    (every file it opens, whole configs) would be most of the log and say little."""
    try:
        from transformers.utils import logging as tlog
    except Exception:  # noqa: BLE001 - transformers missing or broken: nothing to configure
        return
    tlog.set_verbosity(getattr(logging, console_level(), logging.WARNING))


class RunConsole:
    """The harness's messages: to a rich console (markup) and to run.log as plain text."""

    def __init__(self, console: Any | None = None):
        if console is None:
            from rich.console import Console

            console = Console(stderr=True)
        self.rich = console
        self.log = logging.getLogger("qwenharness.run")

    def print(self, text: Any = "", *args: Any, **kwargs: Any) -> None:
        self.rich.print(text, *args, **kwargs)
        if isinstance(text, str):
            from rich.text import Text

            self.log.info(Text.from_markup(text).plain)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.rich, name)


class _Forward:
    """The tqdm-like object vLLM updates once per finished request; it moves the outer bar."""

    def __init__(self, outer: Any, total: int | None = None):
        self.outer = outer
        self.total = total
        self.n = 0
        self.postfix = ""
        self._t0 = time.monotonic()

    @property
    def format_dict(self) -> dict[str, Any]:
        """vLLM reads only `elapsed` (for a speed postfix this bar does not show): cheap on purpose."""
        return {"elapsed": max(time.monotonic() - self._t0, 1e-9)}

    def update(self, n: int = 1) -> None:
        self.n += n
        self.outer.update(n)

    def refresh(self) -> None:
        pass

    def close(self) -> None:
        pass

    def set_postfix_str(self, *args: Any, **kwargs: Any) -> None:
        pass


def forwarding_bar(outer: Any, moved: list[int] | None = None) -> Callable[..., Any]:
    """A tqdm factory for vLLM's `use_tqdm`: per-request updates go to `outer`. vLLM also wraps its
    prompt iterator in the factory ("Rendering prompts"): that one is passed through unchanged.
    `moved` (a one-item list) counts the requests forwarded, so the caller updates only the rest."""

    def factory(iterable: Any = None, *args: Any, **kwargs: Any) -> Any:
        if iterable is not None:
            return iterable
        fwd = _Forward(outer, kwargs.get("total"))
        if moved is not None:
            orig = fwd.update

            def update(n: int = 1) -> None:
                moved[0] += n
                orig(n)
            fwd.update = update  # type: ignore[method-assign]
        return fwd
    return factory
