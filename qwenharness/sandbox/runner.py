"""Run a generated solution against its tests: two sandboxed processes per sample, one verdict.

For each program two processes run, each in a bubblewrap sandbox of its own (bwrap.py): the
*candidate* (child/candidate.py), started afresh for the sample, executes the solution and answers
calls; the *tester* (child/tester.py), a fresh fork of the worker thread's test server, executes the
benchmark's test code, calls the candidate's functions through a pipe that carries only plain data
(child/wire.py), and writes the verdict to a pipe that only it holds (the server's descriptors come
over a unix socket). The harness reads that verdict, then kills the candidate's PID namespace and
waits until its PID 1 is gone, so no process of the sample survives it; the sample folder vanishes
with the mount namespace. A test server lives for one `run_many` batch (or one bare `run`).

The time limit is kept on the caller's side: the tester waits for each answer until the sample's
deadline at most, and the harness kills both sandboxes at the deadline plus a grace period (a test
server that overran is replaced).

One module: it is the harness's half of the candidate/tester handshake, and splitting it would
separate the steps of one protocol.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from typing import IO, Any, Literal

from .. import lifetime
from ..errors import HarnessError
from . import bwrap
from .cgroup import Cgroups
from .child import wire

Status = Literal["passed", "failed", "timeout", "error"]
Isolation = Literal["bubblewrap", "none"]

GRACE_S = 1.0  # the harness's own deadline is the sample's plus this (the tester reports first)


@dataclass(frozen=True)
class Limits:
    """Resource limits of each sandboxed process."""

    memory_bytes: int = 2 * 1024**3  # RLIMIT_AS, and the memory cgroup's limit where one can be made
    file_size_bytes: int = 16 * 1024**2  # RLIMIT_FSIZE: every file it writes, its stdout included
    open_files: int = 64  # RLIMIT_NOFILE (also bounds memory held in anonymous memory files)
    processes: int = 64  # RLIMIT_NPROC per sandbox, and the pids cgroup's limit where one can be made
    sample_folder_bytes: int = 64 * 1024**2  # size of the tmpfs that is the only writable place
    output_bytes: int = 8192  # captured stdout+stderr kept in the result
    site_packages: bool = False  # True: the child may import third-party packages (drops -S)
    allow_processes: bool = False  # True: the candidate may start processes (else seccomp: threads only)


@dataclass(frozen=True)
class TimeoutPolicy:
    """Wall-clock limit = max(floor, factor x reference run time), at most `ceiling` (evalplus defaults)."""

    floor_s: float = 4.0
    factor: float = 4.0
    ceiling_s: float = 60.0

    def limit(self, reference_s: float | None) -> float:
        if reference_s is None:
            return self.floor_s
        return min(self.ceiling_s, max(self.floor_s, self.factor * reference_s))


@dataclass(frozen=True)
class Program:
    """A solution, run in the candidate's process, and its tests, run in the tester's process.

    `prelude` is trusted code run in the tester before the tests (HumanEval's prompt, whose helpers
    such as ``poly`` the tests use; MBPP's test imports). The tests see every function the solution
    defines as a proxy, except names the prelude defines; `entry_point` is always the solution's."""

    solution: str
    test: str = ""
    timeout_s: float | None = None  # None: the sandbox policy's floor
    prelude: str = ""
    entry_point: str | None = None


@dataclass
class ExecutionResult:
    status: Status
    message: str  # "" when passed; the exception line or the reason otherwise
    duration_s: float
    timeout_s: float
    output: str = ""  # the candidate's stdout+stderr, cut at Limits.output_bytes
    exit_code: int | None = None  # the candidate's; negative: killed by that signal
    isolation: Isolation = "bubblewrap"

    @property
    def passed(self) -> bool:
        return self.status == "passed"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _signal_name(sig: int) -> str:
    try:
        return signal.Signals(sig).name
    except ValueError:
        return str(sig)


_SIGNAL_MEANING = {signal.SIGXCPU: "CPU time limit", signal.SIGXFSZ: "file or output size limit",
                   signal.SIGKILL: "killed: memory limit or the harness"}


def _ended(code: int | None, isolated: bool) -> str:
    """How the candidate's process ended, in words (bwrap passes a signal on as 128 + signal)."""
    if code is None:
        return "is still running"
    sig = -code if code < 0 else (code - 128 if isolated and 128 < code < 160 else 0)
    if sig:
        meaning = _SIGNAL_MEANING.get(sig)  # type: ignore[call-overload]
        return f"was killed by {_signal_name(sig)}" + (f" ({meaning})" if meaning else "")
    return f"exited with status {code}"


@dataclass
class _Child:
    proc: subprocess.Popen[bytes]
    out: IO[bytes]
    pidfd: int | None = None  # the sandbox's PID 1 (killing it kills every process of the namespace)
    tmpdir: str | None = None  # unisolated runs only
    cgroup: list[str] = field(default_factory=list)
    control: socket.socket | None = None  # a tester server's job socket


class Sandbox:
    """Runs programs, `workers` at a time, each in two bubblewrap sandboxes (or, when explicitly
    allowed, without isolation: ``isolation == "none"``)."""

    def __init__(self, limits: Limits | None = None, policy: TimeoutPolicy | None = None,
                 workers: int | None = None, python: str | None = None, allow_unisolated: bool | None = None):
        self.limits = limits or Limits()
        self.policy = policy or TimeoutPolicy()
        # a sample waits on the kernel (namespace set-up and teardown) more than it computes: three
        # per core keep the CPUs busy (measured on 2 cores: 3 per core beat 2, and 1.5)
        self.workers = max(1, workers or min(32, 3 * (os.cpu_count() or 1)))
        self.python = os.path.realpath(python or sys.executable)
        self.instance_id = secrets.token_hex(8)  # in every child's environment (lifetime.SANDBOX_MARKER_ENV)
        lifetime.register_sandbox_marker(self.instance_id)
        if allow_unisolated is None:
            allow_unisolated = os.environ.get(bwrap.ALLOW_UNISOLATED_ENV, "") not in ("", "0")
        if os.name != "posix" or not sys.platform.startswith("linux"):
            raise HarnessError("the code sandbox needs Linux (namespaces, rlimits)", "run code benchmarks on Linux")
        if not self.python or not os.access(self.python, os.X_OK):
            raise HarnessError(f"cannot run the Python interpreter '{self.python}' for the code sandbox",
                               "run the harness with a working Python (sys.executable) or pass python=")
        self.bwrap = bwrap.bwrap_path()
        reason = "bubblewrap (bwrap) is not installed" if self.bwrap is None else None
        if self.bwrap is not None:
            why = bwrap.probe(self.bwrap)
            if why is not None:
                reason = f"bubblewrap cannot make a sandbox here ({why})"
        if reason is not None:
            if not allow_unisolated:
                raise bwrap.SandboxUnavailable(
                    f"refusing to run generated code without isolation: {reason}",
                    f"{bwrap.INSTALL_HINT}, or pass --allow-unisolated (or set {bwrap.ALLOW_UNISOLATED_ENV}=1) "
                    "to run it unisolated, marked \"isolation\": \"none\" in every record")
            self.bwrap = None
        self.isolation: Isolation = "bubblewrap" if self.bwrap else "none"
        self.cgroups = Cgroups.detect(f"qh-{os.getpid()}-{self.instance_id}") if self.bwrap else None
        self._no_fork = bwrap.no_fork_filter() if self.bwrap and not self.limits.allow_processes else None
        bwrap.precompile()
        self._local = threading.local()  # .server: this thread's tester server; .keep: run_many is on
        self._servers: list[_Child] = []
        self._servers_lock = threading.Lock()

    # -- processes ---------------------------------------------------------------------------
    def _spawn(self, module: str, fds: list[int], limited: bool, mode: str | None = None) -> _Child:
        """Start `module` (candidate or tester) in a fresh sandbox with `fds` passed, named in argv."""
        out = tempfile.TemporaryFile()
        args = ([mode] if mode else []) + [str(fd) for fd in fds]
        pass_fds = list(fds)
        try:
            if self.bwrap is None:
                return self._spawn_unisolated(module, args, pass_fds, out)
            info_r, info_w = os.pipe()
            cgroup: list[str] = []
            seccomp_r = -1
            try:
                if limited and self.cgroups:
                    cgroup = self.cgroups.create(self.limits.memory_bytes, self.limits.processes)
                if limited and self._no_fork is not None:  # the candidate: threads, but no processes
                    seccomp_r, seccomp_w = os.pipe()
                    os.write(seccomp_w, self._no_fork)  # a few hundred bytes: fits the pipe
                    os.close(seccomp_w)
                    pass_fds.append(seccomp_r)
                cmd = bwrap.command(self.bwrap, self.python, module, args, site_packages=self.limits.site_packages,
                                    sample_bytes=self.limits.sample_folder_bytes, info_fd=info_w,
                                    marker=self.instance_id, seccomp_fd=seccomp_r if seccomp_r != -1 else None)
                env = {"PATH": "/usr/bin:/bin"}
                if cgroup:  # join the cgroups before bwrap starts anything
                    env["QH_CGROUP_PROCS"] = " ".join(p + "/cgroup.procs" for p in cgroup)
                    cmd = ["/bin/sh", "-c", 'for p in $QH_CGROUP_PROCS; do echo 0 > "$p" || exit 125; done; '
                           'exec "$@"', "sh", *cmd]
                with lifetime.SPAWN_GUARD:
                    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                            env=env, pass_fds=(*pass_fds, info_w), start_new_session=True)
                os.close(info_w)
                info_w = -1
                child = _Child(proc, out, cgroup=cgroup)
                child.pidfd = _sandbox_init(info_r, proc.pid)
                return child
            except BaseException:
                if self.cgroups:
                    self.cgroups.remove(cgroup)
                raise
            finally:
                os.close(info_r)
                if info_w != -1:
                    os.close(info_w)
                if seccomp_r != -1:
                    os.close(seccomp_r)
        except BaseException:
            out.close()
            raise

    def _spawn_unisolated(self, module: str, args: list[str], pass_fds: list[int], out: IO[bytes]) -> _Child:
        tmpdir = os.path.realpath(tempfile.mkdtemp(prefix="qh-sandbox-"))
        env = {"PATH": "/usr/bin:/bin", "HOME": tmpdir, "TMPDIR": tmpdir, "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8",
               "PYTHONHASHSEED": "0", "PYTHONDONTWRITEBYTECODE": "1", "PYTHONIOENCODING": "utf-8",
               lifetime.SANDBOX_MARKER_ENV: self.instance_id}
        flags = ["-I", "-B"] + ([] if self.limits.site_packages else ["-S"])
        cmd = [self.python, *flags, *bwrap.launcher(str(bwrap.CHILD_DIR), module, args, self.limits.site_packages)]
        try:
            with lifetime.SPAWN_GUARD:
                proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env,
                                        cwd=tmpdir, pass_fds=tuple(pass_fds), start_new_session=True)
        except BaseException:
            shutil.rmtree(tmpdir, ignore_errors=True)
            raise
        return _Child(proc, out, tmpdir=tmpdir)

    def _end(self, child: _Child) -> None:
        """Kill everything the child started and wait until it is gone."""
        if child.pidfd is not None:
            try:
                signal.pidfd_send_signal(child.pidfd, signal.SIGKILL)
            except ProcessLookupError:
                pass
            # PID 1 ends only once the kernel has killed and reaped every process of its namespace;
            # bwrap itself may exit before that, so wait for PID 1
            wire.wait_readable(child.pidfd, 10.0)
            os.close(child.pidfd)
            child.pidfd = None
        if child.proc.returncode is None:
            try:
                os.killpg(child.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        child.proc.wait()
        if child.control is not None:
            child.control.close()
        child.out.close()
        if child.tmpdir is not None:
            shutil.rmtree(child.tmpdir, ignore_errors=True)
        if child.cgroup and self.cgroups:
            self.cgroups.remove(child.cgroup)

    def _tester(self) -> _Child:
        """This thread's tester server, started on first use (or again after it was killed)."""
        server: _Child | None = getattr(self._local, "server", None)
        if server is not None and server.proc.poll() is None:
            return server
        if server is not None:
            self._stop_server(server)
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            server = self._spawn("tester", [theirs.fileno()], limited=False, mode="serve")
        finally:
            theirs.close()
        server.control = mine
        self._local.server = server
        with self._servers_lock:
            self._servers.append(server)
        batch = getattr(self._local, "batch", None)
        if batch is not None:
            batch.append(server)
        return server

    def _stop_server(self, server: _Child) -> None:
        if getattr(self._local, "server", None) is server:
            self._local.server = None
        with self._servers_lock:
            if server in self._servers:
                self._servers.remove(server)
        self._end(server)

    def close(self, servers: list[_Child] | None = None) -> None:
        """Stop `servers` (default: every tester server); run_many stops its own at its end, and a
        bare `run` keeps none."""
        if servers is None:
            with self._servers_lock:
                servers = list(self._servers)
        for server in list(servers):
            self._stop_server(server)

    def _child_limits(self, timeout: float, candidate: bool) -> dict[str, int]:
        lim = self.limits
        return {"memory": lim.memory_bytes, "cpu_s": int(timeout) + 2, "file_size": lim.file_size_bytes,
                "open_files": lim.open_files if candidate else 256, "processes": lim.processes}

    # -- one program -------------------------------------------------------------------------
    def run(self, program: Program) -> ExecutionResult:
        timeout = program.timeout_s if program.timeout_s is not None else self.policy.floor_s
        isolated = self.bwrap is not None
        keep = bool(getattr(self._local, "keep", False))
        opened: list[int] = []

        def pipe() -> tuple[int, int]:
            r, w = os.pipe()
            opened.extend((r, w))
            return r, w

        def close(fd: int) -> None:
            if fd in opened:
                opened.remove(fd)
                os.close(fd)

        candidate: _Child | None = None
        tester: _Child | None = None
        healthy = False
        start = time.perf_counter()
        try:
            c_setup, request, answer, verdict = pipe(), pipe(), pipe(), pipe()
            tester = self._tester()
            start = time.perf_counter()
            candidate = self._spawn("candidate", [c_setup[0], request[0], answer[1]], limited=True)
            for fd in (c_setup[0], request[0], answer[1]):
                close(fd)
            _send_setup(c_setup[1], {"solution": program.solution, "limits": self._child_limits(timeout, True)})
            close(c_setup[1])
            job = wire.encode({"prelude": program.prelude, "test": program.test, "entry_point": program.entry_point,
                               "timeout_s": timeout, "limits": self._child_limits(timeout, False)})
            assert tester.control is not None
            try:
                socket.send_fds(tester.control, [b"J"], [request[1], answer[0], verdict[1]])
                tester.control.sendall(job)
            except OSError:
                pass  # a dead server: no verdict comes, and the sample is an error
            for fd in (request[1], answer[0], verdict[1]):
                close(fd)
            try:
                found = wire.receive(verdict[0], deadline=time.monotonic() + timeout + GRACE_S)
                duration = time.perf_counter() - start
                status, message = _read_verdict(found)
                healthy = True
            except wire.ChannelTimeout:
                duration = time.perf_counter() - start
                status, message = "timeout", "wall-clock time limit exceeded"
            except wire.ChannelError:
                duration = time.perf_counter() - start
                code = _wait_briefly(tester.proc, 0.2)
                status, message = "error", f"the test process ended without a verdict: it {_ended(code, isolated)}"
            if status == "error" and message.startswith("the candidate process"):
                message = f"the candidate process ended: it {_ended(_wait_briefly(candidate.proc), isolated)}"
        finally:
            for fd in list(opened):
                close(fd)
            output = _read_output(candidate.out, self.limits.output_bytes) if candidate is not None else ""
            if candidate is not None:
                self._end(candidate)
            if tester is not None and (not keep or not healthy):
                self._stop_server(tester)
        assert candidate is not None
        return ExecutionResult(status=status, message=message, duration_s=duration, timeout_s=timeout,
                               output=output, exit_code=candidate.proc.returncode, isolation=self.isolation)

    # -- many programs -----------------------------------------------------------------------
    def run_many(self, programs: Sequence[Program],
                 on_result: Callable[[int, ExecutionResult], None] | None = None) -> list[ExecutionResult]:
        """Run programs in parallel (bounded by `workers`); results in input order."""
        results: list[ExecutionResult | None] = [None] * len(programs)
        lock = threading.Lock()

        batch: list[_Child] = []  # the tester servers this call starts, one per worker thread

        def job(i: int) -> None:
            self._local.keep, self._local.batch = True, batch
            r = self.run(programs[i])
            results[i] = r
            if on_result is not None:
                with lock:
                    on_result(i, r)

        try:
            if len(programs) <= 1 or self.workers == 1:
                for i in range(len(programs)):
                    job(i)
            else:
                with ThreadPoolExecutor(max_workers=min(self.workers, len(programs))) as pool:
                    for f in [pool.submit(job, i) for i in range(len(programs))]:
                        f.result()
        finally:
            self._local.keep, self._local.batch = False, None
            self.close(batch)
        return [r for r in results if r is not None]

    def run_scaled(self, programs: Sequence[Program],
                   references: Sequence[Program | None]) -> list[ExecutionResult]:
        """Run with the policy's floor first; a program that times out is rerun with
        max(floor, factor x its reference's run time) when that is longer (reference timed lazily,
        cached per process), so the references run only for problems where a sample was slow."""
        if len(references) != len(programs):
            raise ValueError("run_scaled needs one reference (or None) per program")
        first = [replace(p, timeout_s=self.policy.floor_s) if p.timeout_s is None else p for p in programs]
        results = self.run_many(first)
        redo: list[int] = []
        limits: dict[int, float] = {}
        for i, r in enumerate(results):
            ref = references[i]
            if r.status == "timeout" and ref is not None:
                limit = self.policy.limit(self.reference_time(ref))
                if limit > r.timeout_s:
                    redo.append(i)
                    limits[i] = limit
        if redo:
            again = self.run_many([replace(programs[i], timeout_s=limits[i]) for i in redo])
            for i, r in zip(redo, again):
                results[i] = r
        return results

    def reference_time(self, reference: Program) -> float | None:
        """Wall time of a reference solution in this sandbox (cached per process); None if it fails."""
        key = hashlib.sha256("\0".join((reference.prelude, reference.solution, reference.test,
                                        reference.entry_point or "")).encode()).hexdigest()
        with _REFERENCE_LOCK:
            if key in _REFERENCE_TIMES:
                return _REFERENCE_TIMES[key]
        r = self.run(replace(reference, timeout_s=self.policy.ceiling_s))
        value = r.duration_s if r.passed else None
        with _REFERENCE_LOCK:
            _REFERENCE_TIMES[key] = value
        return value


_REFERENCE_TIMES: dict[str, float | None] = {}
_REFERENCE_LOCK = threading.Lock()


def _send_setup(fd: int, setup: dict[str, Any]) -> None:
    try:
        wire.send(fd, setup)
    except (BrokenPipeError, OSError):
        pass  # the child died before reading; the verdict (or its absence) tells the story


def _read_verdict(found: Any) -> tuple[Status, str]:
    if (type(found) is dict and found.get("status") in ("passed", "failed", "timeout", "error")
            and type(found.get("message")) is str):
        return found["status"], found["message"]
    return "error", "the test process sent a malformed verdict"


def _sandbox_init(info_fd: int, bwrap_pid: int) -> int | None:
    """A pidfd of the sandbox's PID 1, read from bwrap's --info-fd; None if it is already gone."""
    data = b""
    deadline = time.monotonic() + 10.0
    while time.monotonic() < deadline:
        if not wire.wait_readable(info_fd, max(0.0, deadline - time.monotonic())):
            break
        chunk = os.read(info_fd, 4096)
        if not chunk:
            break
        data += chunk
        try:
            pid = int(json.loads(data)["child-pid"])
            break
        except (ValueError, KeyError, TypeError):
            continue
    else:
        return None
    try:
        pid = int(json.loads(data)["child-pid"])
        pidfd = os.pidfd_open(pid)
    except (ValueError, KeyError, TypeError, OSError):
        return None
    # the pid may have been reused if PID 1 already ended; it is ours only while bwrap is its parent
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            ppid = int(f.read().rsplit(b")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        ppid = -1
    if ppid != bwrap_pid:
        os.close(pidfd)
        return None
    return pidfd


def _wait_briefly(proc: subprocess.Popen[bytes], seconds: float = 0.5) -> int | None:
    try:
        return proc.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        return None


def _read_output(out: IO[bytes], cap: int) -> str:
    out.seek(0)
    return out.read(cap).decode("utf-8", "replace")
