"""One engine shared by datasets evaluated at the same time, with their generation calls merged.

The runner can evaluate a model's datasets together, one thread each (Evaluator, concurrent
datasets). Each thread talks to this proxy as to an engine. Generation calls that are pending at
the same time go to the engine as one call: vLLM then decodes GSM8K's answers, HumanEval's programs
and MT-Bench's first turns in one batch, instead of each dataset waiting for the last answer of the
one before. The engine still runs one call at a time: log-likelihood calls go alone, in turn.

When the engine is free, pending calls start as soon as every thread of the group is waiting on the
engine, or `gather_s` after the oldest of them arrived (a thread busy scoring, e.g. running
HumanEval's programs, does not hold the others up for longer). A merged call that the engine rejects
(EngineError) is retried one submission at a time, so the error reaches only the thread whose
requests caused it; an engine that died fails every waiting thread.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

from ..errors import EngineDiedError, EngineError
from .base import (
    Engine,
    EngineCapabilities,
    EngineInfo,
    Generation,
    GenerationRequest,
    LoglikelihoodRequest,
    LoglikelihoodResult,
)

GATHER_S = 0.5  # the longest a pending call waits for the other threads of its group


@dataclass
class _Submission:
    requests: list[GenerationRequest]
    arrived: float = field(default_factory=time.monotonic)
    results: list[Generation] | None = None
    error: BaseException | None = None
    done: bool = False


@dataclass
class MergeStats:
    engine_calls: int = 0  # generation calls made to the engine
    submissions: int = 0  # generation calls the threads made
    merged_calls: int = 0  # engine calls that served more than one submission


class MergingEngine:
    """An Engine for the threads of one group. `open_engine` returns the engine (opening it on first
    use); it is called under this proxy's lock, so the threads never open it twice."""

    def __init__(self, open_engine: Callable[[], Engine], gather_s: float = GATHER_S):
        self._open_engine = open_engine
        self.gather_s = gather_s
        self._cv = threading.Condition()
        self._open_lock = threading.Lock()
        self._pending: list[_Submission] = []
        self._busy = False  # an engine call is in flight
        self._parties = 0  # threads of the group still evaluating
        self._waiting = 0  # of them, those inside an engine call of this proxy
        self.stats = MergeStats()

    # -- the group ------------------------------------------------------------------------------
    @contextlib.contextmanager
    def party(self) -> Iterator[None]:
        """Held by each thread of the group while it evaluates its dataset."""
        with self._cv:
            self._parties += 1
        try:
            yield
        finally:
            with self._cv:
                self._parties -= 1
                self._cv.notify_all()  # a pending call may now have every remaining thread waiting

    # -- what is not an engine call --------------------------------------------------------------
    @property
    def engine(self) -> Engine:
        with self._open_lock:
            return self._open_engine()

    @property
    def name(self) -> str:
        return self.engine.name

    @property
    def capabilities(self) -> EngineCapabilities:
        """The engine's, except streaming: answers come back per merged call."""
        return replace(self.engine.capabilities, streams_results=False)

    def apply_chat_template(self, messages: list[dict[str, str]], *, enable_thinking: bool | None = None,
                            add_generation_prompt: bool = True) -> str:
        return self.engine.apply_chat_template(messages, enable_thinking=enable_thinking,
                                               add_generation_prompt=add_generation_prompt)

    def info(self) -> EngineInfo:
        return self.engine.info()

    def close(self) -> None:
        """The pool closes the engine; the proxy holds nothing of its own."""

    # -- engine calls ----------------------------------------------------------------------------
    def generate(self, requests: list[GenerationRequest], *, progress: Any = None) -> list[Generation]:
        mine = _Submission(list(requests))
        with self._cv:
            self.stats.submissions += 1
            self._pending.append(mine)
            self._waiting += 1
            try:
                while not mine.done:
                    batch = self._take_batch()
                    if batch is not None:
                        self._cv.release()
                        try:
                            self._run_generation(batch)
                        finally:
                            self._cv.acquire()
                            self._busy = False
                            self._cv.notify_all()
                        continue
                    self._cv.wait(timeout=self._time_to_fire())
            finally:
                self._waiting -= 1
                self._cv.notify_all()
        if mine.error is not None:
            raise mine.error
        assert mine.results is not None
        return mine.results

    def loglikelihood(self, requests: list[LoglikelihoodRequest], *, progress: Any = None) -> list[LoglikelihoodResult]:
        with self._exclusive():
            return self.engine.loglikelihood(requests)

    @contextlib.contextmanager
    def _exclusive(self) -> Iterator[None]:
        """The engine to this thread alone for one call (pending generation calls keep their turn)."""
        with self._cv:
            self._waiting += 1
            try:
                while self._busy:
                    self._cv.wait()
                self._busy = True
            finally:
                self._waiting -= 1
        try:
            yield
        finally:
            with self._cv:
                self._busy = False
                self._cv.notify_all()

    def _take_batch(self) -> list[_Submission] | None:
        """Under the lock: the pending submissions, if they should start now (the caller runs them)."""
        if self._busy or not self._pending:
            return None
        if self._waiting < self._parties and time.monotonic() < self._pending[0].arrived + self.gather_s:
            return None
        batch, self._pending = self._pending, []
        self._busy = True
        return batch

    def _time_to_fire(self) -> float | None:
        if self._busy or not self._pending:
            return None
        return max(0.0, self._pending[0].arrived + self.gather_s - time.monotonic())

    def _run_generation(self, batch: list[_Submission]) -> None:
        """Outside the lock: one engine call for the batch; each submission gets its answers or error."""
        self.stats.engine_calls += 1
        self.stats.merged_calls += len(batch) > 1
        try:
            engine = self.engine
            merged = [r for s in batch for r in s.requests]
            try:
                results = engine.generate(merged)
            except EngineError as e:
                if isinstance(e, EngineDiedError) or len(batch) == 1:
                    raise
                for s in batch:  # find whose requests the engine rejects: each submission alone
                    self.stats.engine_calls += 1
                    try:
                        s.results = engine.generate(s.requests)
                    except EngineDiedError:
                        raise
                    except EngineError as own:
                        s.error = own
                return
            start = 0
            for s in batch:
                s.results = results[start:start + len(s.requests)]
                start += len(s.requests)
        except BaseException as e:  # noqa: BLE001 - every waiting thread learns of it
            for s in batch:
                if s.results is None and s.error is None:
                    s.error = e
            if not isinstance(e, Exception):
                raise
        finally:
            for s in batch:
                s.done = True
