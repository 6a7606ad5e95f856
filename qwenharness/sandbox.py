"""Run untrusted generated Python (HumanEval/MBPP completions) against its tests.

Every program runs in a fresh interpreter (``python -S -s -B -c <child wrapper>``):

* its own session and process group (``start_new_session``), killed as a whole with SIGKILL when the
  sample ends, whether it passed, failed or timed out;
* a fresh temporary directory as cwd, HOME and TMPDIR, deleted afterwards;
* a wall-clock timeout, scaled from the reference solution's run time with a floor
  (``max(floor, factor * reference)``, as evalplus does: factor 4, floor 4 s), plus RLIMIT_CPU;
* rlimits on address space, file size (which also caps the captured output), open files, core dumps
  and process count (RLIMIT_NPROC = 0: no fork, no threads — but see the root caveat below);
* a minimal environment (PATH, LANG, HOME, TMPDIR, PYTHONHASHSEED, …): nothing is inherited;
* stdin closed (/dev/null), stdout+stderr captured into an anonymous file and cut at a byte cap;
* an audit hook (PEP 578) installed by the wrapper before any untrusted code runs. Any forbidden
  operation ends the process at once with status ``error``: process creation (fork, exec, spawn,
  system, subprocess), signals to other processes, tracing/profiling, ``sys._current_frames``, gc
  object walks, ctypes, new audit hooks, new code objects, sockets, rlimit changes, links/symlinks,
  writing, renaming or deleting outside the temporary directory (or via a dir_fd), opening a
  directory outside it, reading files outside it except the interpreter's own library (so no
  ``/proc/<pid>/environ`` of the harness, no ``/proc/self/mem``, no dataset files), and importing
  ``ctypes``, ``signal``, ``_posixsubprocess`` (hence ``subprocess``) and CPython's test modules.

How a pass is reported (unforgeable by the program's own means)
---------------------------------------------------------------
The harness creates two pipes: a *setup* pipe (harness → child) carrying a fresh random nonce, the
limits and the program text, and a *report* pipe (child → harness). The wrapper reads the setup pipe
to its end and closes it, so the nonce exists in the child only inside the closure of the audit hook
(never in a variable of the wrapper's frame, which the program could reach with ``sys._getframe``).
The wrapper then executes the solution and the tests as two separate code objects in a fresh
namespace (so a solution cannot swallow the tests into a string literal), and when — and only
when — both returned normally it raises the audit event ``qwenharness.pass`` from one fixed line of
its own module frame. The hook writes ``P<nonce>`` to the report pipe only if that event comes from
exactly that frame object at exactly that line, and then ``os._exit(0)``s immediately (no atexit
handlers, no lingering threads). The harness counts a pass only if the report pipe holds exactly
``P<nonce>`` and nothing else.

So: exit status 0, ``exit(0)``/``SystemExit`` (caught by the wrapper: error), ``os._exit(0)`` (no
record), printing "passed" (stdout is not the channel), writing to the report pipe (spoils the exact
match: error), raising ``qwenharness.pass`` itself (wrong frame: error), killing the parent (os.kill
is forbidden), closing the channel (no record) all count as failures.

Threat model — what this does and does not stop
-----------------------------------------------
It is built for code written by a language model: buggy, resource-hungry, or "hostile by accident"
(calls ``exit()``, spawns processes, deletes files, loops forever, prints fake results). It also
stands up to straightforward deliberate forgery as listed above. It is *not* a security boundary
against an adversary who exploits the interpreter itself: a program that crafts bytecode (e.g.
through the import system's own ``marshal`` path, which cannot be told apart from a normal import)
or triggers a memory-safety bug in CPython can read its own memory, find the nonce and bypass the
hook. Tests are not secret either: a program that walks ``sys._getframe().f_back`` can see the test
code object, and a solution may return objects whose ``__eq__`` always answers True — a weakness of
the benchmark's tests, not of the sandbox. When the harness runs as root (as in this container),
RLIMIT_NPROC does not bind (the kernel exempts root), so the audit hook is the only guard against
fork bombs, and file permissions do not protect the rest of the file system from reads outside the
hook's rules. For untrusted code from unknown sources, run the whole harness inside a disposable
container or VM (gVisor, nsjail, Firecracker) as an unprivileged user.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, replace
from typing import Any, Literal

from .errors import HarnessError

Status = Literal["passed", "failed", "timeout", "error"]

# The code that runs first in every child interpreter. It is trusted; the program comes after it.
_CHILD_SOURCE = r'''
import os, sys, builtins, resource, _thread

def _setup():
    setup_fd, report_fd = int(sys.argv[1]), int(sys.argv[2])
    pass_line = int(sys.argv[3])
    chunks = []
    while True:
        b = os.read(setup_fd, 1 << 16)
        if not b:
            break
        chunks.append(b)
    os.close(setup_fd)
    data = b"".join(chunks)
    del chunks
    header, _, body = data.partition(b"\n")
    fields = header.split()
    nonce = fields[0]
    mem, cpu, fsize, nofile, n_solution = (int(x) for x in fields[1:6])
    solution = body[:n_solution].decode("utf-8", "replace")
    test = body[n_solution:].decode("utf-8", "replace")
    del data, header, body, fields

    def setlimit(which, soft, hard):
        cur_soft, cur_hard = resource.getrlimit(which)
        if cur_hard != resource.RLIM_INFINITY:
            soft, hard = min(soft, cur_hard), min(hard, cur_hard)
        try:
            resource.setrlimit(which, (soft, hard))
        except (ValueError, OSError):
            pass

    setlimit(resource.RLIMIT_AS, mem, mem)
    setlimit(resource.RLIMIT_CPU, cpu, cpu + 1)
    setlimit(resource.RLIMIT_FSIZE, fsize, fsize)
    setlimit(resource.RLIMIT_NOFILE, nofile, nofile)
    setlimit(resource.RLIMIT_CORE, 0, 0)
    setlimit(resource.RLIMIT_NPROC, 0, 0)
    os.set_inheritable(report_fd, False)

    # No Python-level signal handlers for the program: a handler could run inside the hook's frame.
    import _signal
    _signal.signal(_signal.SIGINT, _signal.SIG_IGN)
    del _signal
    sys.modules.pop("_signal", None)
    sys.modules.pop("signal", None)
    builtins.exit = builtins.quit = sys.exit  # -S leaves them undefined; keep the usual behaviour

    root = os.path.realpath(os.getcwd())
    read_prefixes = tuple(os.path.realpath(p) + "/" for p in sys.path if p) + (
        "/usr/share/zoneinfo/", root + "/")
    guard = _make_guard(nonce, report_fd, root, read_prefixes, sys._getframe(1), pass_line)
    sys.addaudithook(guard)
    return solution, test, report_fd


def _make_guard(nonce, report_fd, root, read_prefixes, wrapper_frame, pass_line):
    record = b"P" + nonce
    write, exit_, getframe, stat, ident = os.write, os._exit, sys._getframe, os.stat, _thread.get_ident
    write_flags = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
    root_slash = root + "/"
    read_files = frozenset({"/dev/null", "/dev/zero", "/dev/urandom", "/dev/random", "/etc/localtime"})
    forbidden = frozenset({
        "os.fork", "os.forkpty", "os.posix_spawn", "os.spawn", "os.exec", "os.system",
        "subprocess.Popen", "os.kill", "os.killpg", "signal.pthread_kill", "sys.settrace",
        "sys.setprofile", "sys._current_frames", "sys.addaudithook", "gc.get_objects",
        "gc.get_referrers", "gc.get_referents", "code.__new__", "socket.__new__", "os.symlink",
        "os.link", "resource.setrlimit", "resource.prlimit",
        "os.setxattr", "os.removexattr", "os.chflags", "os.chown", "os.listdrives",
        "os.add_dll_directory", "_posixsubprocess.fork_exec", "sys.remote_exec",
    })
    blocked_modules = frozenset({
        "ctypes", "_ctypes", "_posixsubprocess", "subprocess", "signal", "_signal", "_testcapi",
        "_testinternalcapi", "_testmultiphase", "_testbuffer", "_testimportmultiple",
        "_xxsubinterpreters", "_xxinterpchannels", "_xxtestfuzz", "_testsinglephase",
        "_interpreters", "_interpchannels", "_interpqueues",
    })
    # event -> (number of leading path arguments, positions of dir_fd arguments)
    path_events = {
        "os.remove": (1, (1,)), "os.rmdir": (1, (1,)), "os.rename": (2, (2, 3)), "os.mkdir": (1, (2,)),
        "os.chmod": (1, (2,)), "os.utime": (1, (3,)), "os.truncate": (1, ()), "shutil.rmtree": (1, (1,)),
        "shutil.copyfile": (2, ()), "shutil.copymode": (2, ()), "shutil.copystat": (2, ()),
        "shutil.move": (2, ()), "os.mkfifo": (1, (2,)), "os.mknod": (1, (3,)),
    }
    try:
        raise ValueError
    except ValueError as e:
        tb_type = type(e.__traceback__)
    busy = set()
    done = []

    def die(why):
        try:
            write(report_fd, b"Ferror\nforbidden operation: " + why.encode("utf-8", "replace")[:500])
        finally:
            exit_(3)

    def inside(p):  # p is an exact str
        if ".." in p.split("/"):
            return False
        return not p.startswith("/") or p.startswith(root_slash) or p == root

    def readable(p):
        if ".." in p.split("/"):
            return False
        if not p.startswith("/") or p in read_files:
            return True
        for prefix in read_prefixes:
            if p.startswith(prefix):
                return True
        return False

    def is_dir(p):
        try:
            return (stat(p).st_mode & 0o170000) == 0o040000
        except OSError:
            return False

    def as_path(x):  # only exact str/bytes: anything else could run the program's own code here
        if type(x) is str:
            return x
        if type(x) is bytes:
            return x.decode("utf-8", "surrogateescape")
        return None

    def guard(event, args):
        me = ident()
        if me in busy:  # events raised by the guard's own work (frame access, stat)
            return
        busy.add(me)
        try:
            if type(event) is not str or type(args) is not tuple:
                die("malformed audit event")
            if event == "qwenharness.pass":
                caller = getframe(1)
                if caller is wrapper_frame and caller.f_lineno == pass_line and not done and not args:
                    done.append(True)
                    write(report_fd, record)
                    exit_(0)
                die("forged pass report")
            if event in forbidden or event.startswith("ctypes.") or event.startswith("sys.monitoring"):
                die(event)
            if event == "import":
                name = args[0] if args else None
                if type(name) is not str or name.partition(".")[0] in blocked_modules:
                    die("import of " + (name if type(name) is str else "?"))
            elif event == "open":
                path = args[0] if args else None
                flags = args[2] if len(args) > 2 else None
                if type(path) is int:
                    return
                p = as_path(path)
                if p is None:
                    die("open() of a non-str path object")
                writing = type(flags) is not int or bool(flags & write_flags)
                if writing and not inside(p):
                    die("writing outside the sandbox directory: " + p)
                if not writing and not readable(p):
                    die("reading outside the sandbox directory: " + p)
                if not inside(p) and is_dir(p):
                    die("opening a directory outside the sandbox: " + p)
            elif event == "os.chdir":
                p = as_path(args[0]) if args else None
                if p is None or not inside(p):
                    die("chdir outside the sandbox directory")
            elif event in path_events:
                n_paths, dir_fds = path_events[event]
                for i in range(min(n_paths, len(args))):
                    if type(args[i]) is int and event == "os.truncate":
                        continue  # ftruncate needs a writable fd, which only a checked open gives
                    p = as_path(args[i])
                    if p is None or not inside(p):
                        die(event + " outside the sandbox directory")
                for i in dir_fds:
                    fd = args[i] if i < len(args) else None
                    if fd is not None and (type(fd) is not int or fd != -1):
                        die(event + " with dir_fd")
            elif (event == "object.__getattr__" and len(args) == 2 and type(args[0]) is tb_type
                  and type(args[1]) is str and args[1] == "tb_frame"):
                frame = args[0].tb_frame
                if frame.f_code is guard.__code__ or frame.f_code is die.__code__:
                    die("access to the sandbox guard's frame")
        except BaseException:
            exit_(4)
        finally:
            busy.discard(me)

    return guard


_solution, _test, _rfd = _setup()
del _setup, _make_guard
_exec, _audit, _exit, _write = exec, sys.audit, os._exit, os.write


def _flush():
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:
            pass


def _fail(exc):
    _flush()
    try:
        kind = "failed" if isinstance(exc, AssertionError) else "error"
        try:
            text = str(exc)
        except BaseException:
            text = "<unprintable>"
        line = type(exc).__name__ + (": " + text if text else "")
        _write(_rfd, ("F" + kind + "\n" + line[:2000]).encode("utf-8", "replace"))
    finally:
        _exit(1)


_ns = {"__name__": "__candidate__", "__builtins__": builtins}
try:
    _code_solution = compile(_solution, "<solution>", "exec")
    _code_test = compile(_test, "<test>", "exec")
    del _solution, _test
    _exec(_code_solution, _ns)
    _exec(_code_test, _ns)
    _flush()
    _audit("qwenharness.pass")  # <pass-line>
except BaseException as _e:
    _fail(_e)
_exit(1)
'''

_PASS_LINE = next(i for i, line in enumerate(_CHILD_SOURCE.splitlines(), 1) if "# <pass-line>" in line)
_REPORT_CAP = 1 << 16


@dataclass(frozen=True)
class Limits:
    """Resource limits for one program."""

    memory_bytes: int = 2 * 1024**3  # RLIMIT_AS
    file_size_bytes: int = 16 * 1024**2  # RLIMIT_FSIZE: every file it writes, its stdout included
    open_files: int = 256  # RLIMIT_NOFILE
    output_bytes: int = 8192  # captured stdout+stderr kept in the result
    site_packages: bool = False  # True: the child may import third-party packages (drops -S)


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
    """A solution and the test code run after it in the same namespace."""

    solution: str
    test: str = ""
    timeout_s: float | None = None  # None: the sandbox policy's floor


@dataclass
class ExecutionResult:
    status: Status
    message: str  # "" when passed; the exception line or the reason otherwise
    duration_s: float
    timeout_s: float
    output: str = ""  # stdout+stderr, cut at Limits.output_bytes
    exit_code: int | None = None  # negative: killed by that signal

    @property
    def passed(self) -> bool:
        return self.status == "passed"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _child_env(tmpdir: str, instance_id: str) -> dict[str, str]:
    return {
        "QWENHARNESS_SANDBOX": instance_id,  # not a secret: lets tests (or an admin) find strays
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "HOME": tmpdir,
        "TMPDIR": tmpdir,
        "PYTHONHASHSEED": "0",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONIOENCODING": "utf-8",
    }


def _classify(report: bytes, nonce: bytes, timed_out: bool, exit_code: int | None) -> tuple[Status, str]:
    if report == b"P" + nonce:
        return "passed", ""
    if timed_out:
        return "timeout", "wall-clock time limit exceeded"
    if exit_code is not None and exit_code < 0:
        sig = -exit_code
        name = signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else str(sig)
        if sig == signal.SIGXCPU:
            return "timeout", "CPU time limit exceeded (SIGXCPU)"
        if sig == signal.SIGXFSZ:
            return "error", "file or output size limit exceeded (SIGXFSZ)"
        return "error", f"killed by signal {name}"
    if report.startswith(b"F"):
        kind, _, message = report[1:].decode("utf-8", "replace").partition("\n")
        if kind in ("failed", "error") and b"P" + nonce not in report:
            return kind, message  # type: ignore[return-value]
        return "error", "the program wrote to the result channel"
    if report:
        return "error", "the program wrote to the result channel"
    return "error", f"exited with status {exit_code} without reporting a result"


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _read_report(fd: int) -> bytes:
    os.set_blocking(fd, False)
    chunks, total = [], 0
    while total < _REPORT_CAP:
        try:
            b = os.read(fd, _REPORT_CAP)
        except BlockingIOError:
            break
        if not b:
            break
        chunks.append(b)
        total += len(b)
    return b"".join(chunks)


class Sandbox:
    """Runs programs in isolated child interpreters, `workers` at a time."""

    def __init__(self, limits: Limits | None = None, policy: TimeoutPolicy | None = None,
                 workers: int | None = None, python: str | None = None):
        self.limits = limits or Limits()
        self.policy = policy or TimeoutPolicy()
        self.workers = max(1, workers or os.cpu_count() or 1)
        self.python = python or sys.executable
        self.instance_id = secrets.token_hex(8)  # in every child's environment as QWENHARNESS_SANDBOX
        if os.name != "posix":
            raise HarnessError("the code sandbox needs a POSIX system (process groups, rlimits)",
                               "run code benchmarks on Linux")
        if not self.python or not os.access(self.python, os.X_OK):
            raise HarnessError(f"cannot run the Python interpreter '{self.python}' for the code sandbox",
                               "run the harness with a working Python (sys.executable) or pass python=")

    # -- one program -------------------------------------------------------------------------
    def run(self, program: Program) -> ExecutionResult:
        timeout = program.timeout_s if program.timeout_s is not None else self.policy.floor_s
        nonce = secrets.token_hex(16).encode()
        solution = program.solution.encode("utf-8", "surrogatepass")
        payload = b" ".join(str(x).encode() for x in (
            nonce.decode(), self.limits.memory_bytes, int(timeout) + 1, self.limits.file_size_bytes,
            self.limits.open_files, len(solution))) + b"\n" + solution + program.test.encode("utf-8", "surrogatepass")
        tmpdir = os.path.realpath(tempfile.mkdtemp(prefix="qh-sandbox-"))
        setup_r, setup_w = os.pipe()
        report_r, report_w = os.pipe()
        flags = ["-S"] if not self.limits.site_packages else []
        cmd = [self.python, *flags, "-s", "-B", "-c", _CHILD_SOURCE, str(setup_r), str(report_w), str(_PASS_LINE)]
        proc: subprocess.Popen[bytes] | None = None
        timed_out = False
        start = time.perf_counter()
        try:
            with tempfile.TemporaryFile() as out:
                try:
                    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                            cwd=tmpdir, env=_child_env(tmpdir, self.instance_id), start_new_session=True,
                                            pass_fds=(setup_r, report_w), close_fds=True)
                finally:
                    os.close(setup_r)
                    os.close(report_w)
                try:
                    _write_all(setup_w, payload)
                except (BrokenPipeError, OSError):
                    pass  # the child died before reading; its exit status tells the story
                finally:
                    os.close(setup_w)
                    setup_w = -1
                try:
                    proc.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    timed_out = True
                duration = time.perf_counter() - start
                _kill_group(proc.pid)  # the child is its group's leader: kills stragglers too
                proc.wait()
                report = _read_report(report_r)
                out.seek(0)
                output = out.read(self.limits.output_bytes).decode("utf-8", "replace")
        finally:
            if setup_w != -1:
                os.close(setup_w)
            os.close(report_r)
            if proc is not None and proc.returncode is None:
                _kill_group(proc.pid)
                proc.wait()
            shutil.rmtree(tmpdir, ignore_errors=True)
        status, message = _classify(report, nonce, timed_out, proc.returncode)
        return ExecutionResult(status=status, message=message, duration_s=duration, timeout_s=timeout,
                               output=output, exit_code=proc.returncode)

    # -- many programs -----------------------------------------------------------------------
    def run_many(self, programs: Sequence[Program],
                 on_result: Callable[[int, ExecutionResult], None] | None = None) -> list[ExecutionResult]:
        """Run programs in parallel (bounded by `workers`); results in input order."""
        results: list[ExecutionResult | None] = [None] * len(programs)
        lock = threading.Lock()

        def job(i: int) -> None:
            r = self.run(programs[i])
            results[i] = r
            if on_result is not None:
                with lock:
                    on_result(i, r)

        if len(programs) <= 1 or self.workers == 1:
            for i in range(len(programs)):
                job(i)
        else:
            with ThreadPoolExecutor(max_workers=min(self.workers, len(programs))) as pool:
                for f in [pool.submit(job, i) for i in range(len(programs))]:
                    f.result()
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
        key = hashlib.sha256(reference.solution.encode() + b"\0" + reference.test.encode()).hexdigest()
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


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]
