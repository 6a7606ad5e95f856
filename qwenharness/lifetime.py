"""Process lifetime: whatever a command starts (engine processes, sandboxed programs, their
helpers) dies with the command, however the command dies, and leaves no temporary folder behind.

A command that starts processes runs *supervised* (`run_supervised`): the process the user started
becomes a small *guard* that forks the *worker* doing the work, then only waits for it.

* The guard is killed (``kill -9`` included): the worker holds the read end of a pipe whose only
  write end is the guard's; a thread of the worker sees it close, stops the worker's writes
  (`results.WRITE_GUARD`, so no record is half-written and no sample is recorded as an error
  because its engine was killed) and new sandboxes (`SPAWN_GUARD`), kills the worker's whole
  process tree (frozen with SIGSTOP first, so that no child born meanwhile escapes to init), then
  any process still carrying one of its sandbox markers, and exits.
* The worker is killed: the guard is a child subreaper (``PR_SET_CHILD_SUBREAPER``), so the
  worker's orphans (vLLM's EngineCore, its resource tracker, ...) become the guard's children; the
  guard kills them and exits with the worker's status. (The guard reaps orphans as they end; the
  worker is no subreaper, since nothing there would reap the sandbox's orphaned bwrap processes.)
* The command ends normally: the guard gives leftovers a moment to exit, then kills them.
* Temporary files: the worker's ``TMPDIR`` is a private folder ``<tmp>/qwenharness-<pid>-*`` that
  the survivor removes; a command that starts sweeps the folders of guards that are gone (both
  processes killed at once, e.g. by the OOM killer).

A library user that opens engines itself (the pytest session, through the EnginePool) is not
supervised; `track_children` hands the engine's processes to a small reaper child that kills them
once its parent is gone, kill -9 included.

Signals: the worker runs in a process group of its own, so a terminal's Ctrl-C (sent to the
foreground group) reaches the guard alone, as do signals sent to the guard's group; the guard passes
SIGINT, SIGTERM, SIGHUP and SIGQUIT on to the worker, once. The engine processes the worker starts
share the worker's group and hear nothing until the worker shuts them down. A Ctrl-C during an
engine library's import is held until the import ends (`interrupts_deferred`). Linux only; elsewhere, or
with ``QWENHARNESS_SUPERVISE=0``, the command
runs unsupervised in the calling process.

One module: the guard, the worker's watch, the spawn guard, the reaper and the temporary-folder
sweep are one protocol (which process kills which, when which one dies); apart, each half would have
to restate the other's invariants.
"""

from __future__ import annotations

import contextlib
import ctypes
import getpass
import os
import re
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Collection, Iterator
from pathlib import Path

SUPERVISE_ENV = "QWENHARNESS_SUPERVISE"
TMP_PREFIX = "qwenharness-"
OWNER_FILE = ".owner"
GRACE_S = 3.0  # leftovers get this long to exit by themselves after a normal end
_PR_SET_CHILD_SUBREAPER = 36
# Held while a process is being started (the sandbox's bwrap): once the guard is gone the worker takes
# it for good before killing its tree, so that no process starts after the last sweep, too early to
# have set its own parent-death signal, and outlives the run.
SPAWN_GUARD = threading.Lock()
_FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)


def supported() -> bool:
    return sys.platform.startswith("linux") and os.environ.get(SUPERVISE_ENV, "1") != "0"


def set_child_subreaper() -> bool:
    """Make orphaned descendants of this process its children instead of init's."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


# -- process trees ------------------------------------------------------------------------------

def live_descendants(pid: int) -> list:
    """Descendants of `pid` that are still running (zombies excluded), as psutil.Process objects."""
    import psutil

    try:
        children = psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return []
    out = []
    for child in children:
        try:
            if child.status() != psutil.STATUS_ZOMBIE:
                out.append(child)
        except psutil.Error:
            continue
    return out


def freeze_tree(pid: int, *, rounds: int = 20) -> list:
    """SIGSTOP every descendant of `pid` until a listing finds none not yet stopped: a stopped process
    can neither start a child nor die, so the tree stays whole until it is killed. (Killed while
    running, a process that had just forked -- bwrap starting its sandbox -- leaves a child that is
    handed to init before any listing sees it, and outlives the run.)"""
    import psutil

    frozen: dict[int, object] = {}
    for _ in range(rounds):
        new = [p for p in live_descendants(pid) if p.pid not in frozen]
        if not new:
            break
        for proc in new:
            with contextlib.suppress(psutil.Error):
                proc.suspend()
            frozen[proc.pid] = proc
    return list(frozen.values())


def kill_tree(pid: int, *, timeout: float = 5.0) -> int:
    """SIGKILL every descendant of `pid` (not `pid` itself) until none is left running; returns how
    many were signalled. The tree is frozen first (`freeze_tree`), then killed at once; repeats in
    case a process escaped the freeze."""
    import psutil

    killed: set[int] = set()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        procs = freeze_tree(pid)
        if not procs:
            break
        for proc in procs:
            with contextlib.suppress(psutil.Error):
                proc.kill()
                killed.add(proc.pid)
        psutil.wait_procs(procs, timeout=0.5)
    return len(killed)


# Markers of the code sandboxes this process started (sandbox/runner.py): every sandboxed process
# carries its runner's marker in its environment or, for bwrap itself, on its command line.
SANDBOX_MARKER_ENV = "QWENHARNESS_SANDBOX"
_sandbox_markers: set[str] = set()


def register_sandbox_marker(marker: str) -> None:
    _sandbox_markers.add(marker)


def marked_processes(markers: Collection[str], *, command_line: bool) -> list:
    """Live (not zombie) processes on the machine whose environment carries one of these sandbox
    markers, or, with `command_line`, whose argv sets it (bwrap itself runs with an empty environment
    and passes the marker on with --setenv)."""
    import psutil

    found = []
    for proc in psutil.process_iter(["environ", "cmdline", "status"]):
        try:
            if proc.info.get("status") == psutil.STATUS_ZOMBIE:
                continue
            argv = (proc.info.get("cmdline") or []) if command_line else []
            if (proc.info.get("environ") or {}).get(SANDBOX_MARKER_ENV) in markers or any(
                    a == SANDBOX_MARKER_ENV and b in markers for a, b in zip(argv, argv[1:])):
                found.append(proc)
        except psutil.Error:
            continue
    return found


def kill_marked_sandboxes() -> int:
    """SIGKILL every process that carries one of this process's sandbox markers, wherever it now is
    in the process tree: the last net for one that left the tree before `kill_tree` saw it (handed to
    init mid-teardown). Returns how many were signalled."""
    import psutil

    if not _sandbox_markers:
        return 0
    found = marked_processes(_sandbox_markers, command_line=True)
    for proc in found:
        with contextlib.suppress(psutil.Error):
            proc.kill()
    return len(found)


def _reap_children() -> None:
    """Collect exited children (the guard's orphans) so they do not linger as zombies."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


# -- private temporary folders --------------------------------------------------------------------

def system_tmp() -> Path:
    return Path(tempfile.gettempdir())


def _process_start(pid: int) -> float | None:
    import psutil

    try:
        return psutil.Process(pid).create_time()
    except psutil.Error:
        return None


def make_private_tmp(root: Path | None = None) -> Path:
    """A fresh folder for one command's temporary files, with an owner file for the sweep."""
    folder = Path(tempfile.mkdtemp(prefix=f"{TMP_PREFIX}{os.getpid()}-", dir=root or system_tmp()))
    (folder / OWNER_FILE).write_text(f"{os.getpid()} {_process_start(os.getpid())}\n")
    return folder


def sweep_stale_tmp(root: Path | None = None, *, min_age_s: float = 60.0) -> list[Path]:
    """Remove the private folders of commands whose guard is gone; returns what was removed."""
    removed = []
    for folder in (root or system_tmp()).glob(f"{TMP_PREFIX}*-*"):
        m = re.fullmatch(rf"{TMP_PREFIX}(\d+)-\w+", folder.name)
        if not m or not folder.is_dir():
            continue
        try:
            pid_s, start_s = (folder / OWNER_FILE).read_text().split()
            started = _process_start(int(pid_s))
            alive = started is not None and (start_s == "None" or abs(started - float(start_s)) < 1.0)
        except (OSError, ValueError):  # no owner file yet: a guard that is starting, unless old
            try:
                alive = time.time() - folder.stat().st_mtime < min_age_s
            except OSError:
                continue
        if not alive:
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


def _use_tmp(folder: Path) -> None:
    """Point this process and its children at `folder` for temporary files; caches that live in
    the temporary directory by default (TorchInductor's) keep their usual place."""
    user = re.sub(r'[\\/:*?"<>|]', "_", getpass.getuser())
    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(system_tmp() / f"torchinductor_{user}"))
    os.environ["TMPDIR"] = str(folder)
    tempfile.tempdir = str(folder)
    os.environ[GUARDED_ENV] = "1"


# -- the guard and the worker ---------------------------------------------------------------------

def run_supervised(work: Callable[[], int]) -> int:
    """Run `work` in a forked worker this process guards; returns the worker's exit status
    (128 + N if a signal N ended it). Call it before any thread is started."""
    if not supported():
        return work()
    with contextlib.suppress(Exception):
        sweep_stale_tmp()
    tmp = make_private_tmp()
    set_child_subreaper()
    read_end, write_end = os.pipe()
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, {*_FORWARDED, signal.SIGCHLD})
    pid = os.fork()
    if pid == 0:  # the worker
        # Out of the terminal's foreground process group: a Ctrl-C reaches the guard alone, which
        # passes one SIGINT to the worker; the engine processes the worker starts (vLLM's EngineCore)
        # never see it, so they are shut down by the worker instead of dying mid-step with tracebacks.
        with contextlib.suppress(OSError):
            os.setpgid(0, 0)
        # Still allowed to write to (and set modes of) the terminal it no longer owns.
        signal.signal(signal.SIGTTOU, signal.SIG_IGN)
        signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
        os.close(write_end)
        code = 1
        try:
            if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
                signal.signal(signal.SIGINT, _interrupt_once)
            _use_tmp(tmp)
            _watch_guard(read_end, tmp)
            code = int(work() or 0)
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        except BaseException:  # noqa: BLE001 - report as Python would, then exit
            import traceback

            traceback.print_exc()
            code = 1
        # Never return into the guard's caller: end the interpreter here, the normal way (atexit
        # handlers, e.g. vLLM's and multiprocessing's, still run).
        raise SystemExit(code)
    os.close(read_end)
    status = 128 + signal.SIGKILL
    try:
        status = _guard(pid)
    finally:
        # after a normal end leftovers get a moment to finish; a killed worker's orphans do not
        kill_leftovers(os.getpid(), grace=GRACE_S if status < 128 else 0.0)
        _reap_children()
        shutil.rmtree(tmp, ignore_errors=True)
        os.close(write_end)
        while signal.sigtimedwait(_FORWARDED, 0) is not None:
            pass  # drop what arrived meanwhile (a Ctrl-C the worker has handled)
        signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
    return status


_last_interrupt = [float("-inf")]


@contextlib.contextmanager
def interrupts_deferred() -> "Iterator[None]":
    """Hold a Ctrl-C (SIGINT) until the block ends, then raise it as usual. For imports of torch,
    transformers and vLLM: a KeyboardInterrupt raised while a C++ extension is calling back into
    Python (triton's enums through nanobind) cannot unwind through it, and the process aborts with
    status 134 and a core instead of stopping with 130. Only in the main thread, and only where
    SIGINT has Python's handler or the worker's: anyone else's handler is left alone."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGINT)
    if previous is not signal.default_int_handler and previous is not _interrupt_once:
        yield
        return
    held: list[int] = []
    signal.signal(signal.SIGINT, lambda signum, frame: held.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if held:
        previous(signal.SIGINT, None)  # raises KeyboardInterrupt, once


def _interrupt_once(signum: int, frame: object) -> None:
    """SIGINT in the worker: one KeyboardInterrupt for the copies that arrive together (a signal
    sent to the process group and passed on by the guard as well)."""
    now = time.monotonic()
    if now - _last_interrupt[0] < 1.0:
        return
    _last_interrupt[0] = now
    raise KeyboardInterrupt


def _guard(worker: int) -> int:
    """Wait for the worker, reaping the orphans that land here meanwhile and passing on the
    signals sent to the guard alone."""
    while True:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return 1  # cannot happen while the worker is ours
            if pid == 0:
                break
            if pid == worker:
                return os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status)
        info = signal.sigtimedwait({*_FORWARDED, signal.SIGCHLD}, 0.5)
        if info is None or info.si_signo == signal.SIGCHLD:
            continue
        with contextlib.suppress(ProcessLookupError):
            os.kill(worker, info.si_signo)


def kill_leftovers(pid: int, *, grace: float) -> None:
    """After the worker ended: give its leftovers `grace` seconds, then SIGTERM, then SIGKILL."""
    import psutil

    procs = live_descendants(pid)
    if not procs:
        return
    _, alive = psutil.wait_procs(procs, timeout=grace)
    for proc in alive:
        with contextlib.suppress(psutil.Error):
            proc.terminate()
    _, alive = psutil.wait_procs(alive, timeout=1.0)
    kill_tree(pid)


def _watch_guard(read_end: int, tmp: Path) -> None:
    """In the worker: when the guard's pipe closes (the guard died), end everything."""
    def watch() -> None:
        while True:
            try:
                if not os.read(read_end, 1):
                    break
            except InterruptedError:
                continue
            except OSError:
                break
        _die(tmp)

    threading.Thread(target=watch, name="qwenharness-guard-watch", daemon=True).start()


def _die(tmp: Path) -> None:
    """The guard is gone: let a write in progress end, block further writes, kill every descendant,
    remove the temporary folder and exit (status 137, as the guard's kill -9)."""
    from .results import WRITE_GUARD

    WRITE_GUARD.acquire(timeout=10.0)  # held until exit: no record after this point
    SPAWN_GUARD.acquire(timeout=10.0)  # and no process started after the sweep below
    with contextlib.suppress(Exception):
        sys.stderr.write("qwenharness: the supervising process died; stopping the run and its engine "
                         "(finished samples are saved; rerun with the same run id to continue)\n")
        sys.stderr.flush()
        devnull = os.open(os.devnull, os.O_WRONLY)  # what the main thread prints while it dies is noise
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
    with contextlib.suppress(Exception):
        kill_tree(os.getpid())
    with contextlib.suppress(Exception):
        kill_marked_sandboxes()
    shutil.rmtree(tmp, ignore_errors=True)
    os._exit(137)


# -- the reaper: the same promise for a library user (the pytest session) ---------------------------

GUARDED_ENV = "QWENHARNESS_GUARDED"  # set in a supervised worker: the guard covers it already
_reaper: "subprocess.Popen[bytes] | None" = None
_reaper_lock = threading.Lock()


def track_children() -> None:
    """Have a reaper process kill this process's current descendants (engine processes) if this
    process dies without ending them, kill -9 included. Called by the EnginePool after it opens an
    engine; a no-op in a supervised worker and where unsupported."""
    global _reaper
    import subprocess

    if not supported() or os.environ.get(GUARDED_ENV):
        return
    with _reaper_lock:
        if _reaper is None or _reaper.poll() is not None:
            _reaper = subprocess.Popen(
                [sys.executable, "-c", f"from qwenharness.lifetime import reaper_main; reaper_main({os.getpid()})"],
                stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, close_fds=True)
        lines = []
        for proc in live_descendants(os.getpid()):
            if proc.pid == _reaper.pid:
                continue
            try:
                lines.append(f"{proc.pid} {proc.create_time()}\n")
            except Exception:  # noqa: BLE001 - gone meanwhile
                continue
        try:
            assert _reaper.stdin is not None
            _reaper.stdin.write("".join(lines).encode())
            _reaper.stdin.flush()
        except OSError:
            _reaper = None


def reaper_main(parent: int) -> None:
    """The reaper: remember the (pid, start time) pairs the parent sends; once the parent is gone
    (its pipe closed or this process reparented), kill those still running, with their trees."""
    import select

    import psutil

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C is the parent's to handle
    tracked: dict[int, float] = {}
    buf = b""

    def read(timeout: float) -> bool:
        """Take what the parent sent; False at end of input."""
        nonlocal buf
        ready, _, _ = select.select([0], [], [], timeout)
        if not ready:
            return True
        chunk = os.read(0, 4096)
        buf += chunk
        *lines, buf = buf.split(b"\n")
        for line in lines:
            with contextlib.suppress(ValueError):
                pid_s, start_s = line.split()
                tracked[int(pid_s)] = float(start_s)
        return bool(chunk)

    while os.getppid() == parent and read(0.5):
        pass
    deadline = time.monotonic() + 1.0  # the parent died before this process read all it sent
    while time.monotonic() < deadline and read(0.05):
        pass
    time.sleep(GRACE_S if os.getppid() == parent else 0.0)  # a normal exit: leftovers may still end
    for pid, start in tracked.items():
        try:
            proc = psutil.Process(pid)
            if abs(proc.create_time() - start) > 1.0:
                continue  # the pid was reused
        except psutil.Error:
            continue
        kill_tree(pid)
        with contextlib.suppress(psutil.Error):
            proc.kill()
