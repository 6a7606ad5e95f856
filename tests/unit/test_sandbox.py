"""The code sandbox against hostile programs: each must be contained, scored as a failure, and leave
no process behind. Controls (a correct and a wrong program) prove the checks can tell them apart."""

from __future__ import annotations

import os
import signal
import textwrap
import time
from pathlib import Path

import psutil
import pytest

from qwenharness.sandbox import Limits, Program, Sandbox, TimeoutPolicy

FLOOR = 1.5  # seconds; hostile programs that hang are cut here


@pytest.fixture(scope="module")
def sandbox() -> Sandbox:
    return Sandbox(limits=Limits(memory_bytes=512 * 1024**2, file_size_bytes=4 * 1024**2, output_bytes=4096),
                   policy=TimeoutPolicy(floor_s=FLOOR, factor=4.0, ceiling_s=10.0), workers=2)


def strays(sb: Sandbox) -> list[psutil.Process]:
    """Every live process, anywhere on the machine, that carries this sandbox's marker."""
    found = []
    for p in psutil.process_iter(["environ", "status"]):
        try:
            env = p.info.get("environ") or {}
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        if env.get("QWENHARNESS_SANDBOX") == sb.instance_id and p.info.get("status") != psutil.STATUS_ZOMBIE:
            found.append(p)
    return found


def new_children(before: set[int]) -> list[psutil.Process]:
    """Children of this test process that were not there before (a session may hold others, such as
    multiprocessing's resource tracker started by an earlier engine)."""
    return [p for p in psutil.Process().children(recursive=True) if p.pid not in before]


def children_now() -> set[int]:
    return {p.pid for p in psutil.Process().children(recursive=True)}


def run(sb: Sandbox, solution: str, test: str = "") -> object:
    before = children_now()
    result = sb.run(Program(textwrap.dedent(solution), textwrap.dedent(test)))
    assert new_children(before) == [], "a sandboxed process outlived its sample"
    assert strays(sb) == [], "a sandboxed process escaped and outlived its sample"
    return result


# -- controls: the sandbox must tell a correct program from a wrong one -----------------------------

def test_correct_program_passes(sandbox: Sandbox) -> None:
    r = run(sandbox, "def add(a, b):\n    return a + b\n", "assert add(2, 3) == 5\n")
    assert r.status == "passed", r
    assert r.message == "" and r.exit_code == 0


def test_wrong_program_fails_with_the_assertion(sandbox: Sandbox) -> None:
    r = run(sandbox, "def add(a, b):\n    return a - b\n", "assert add(2, 3) == 5, 'add is wrong'\n")
    assert r.status == "failed"
    assert r.message == "AssertionError: add is wrong"


def test_exception_is_an_error_with_its_line(sandbox: Sandbox) -> None:
    r = run(sandbox, "def f():\n    return 1 / 0\n", "assert f() == 1\n")
    assert r.status == "error"
    assert r.message == "ZeroDivisionError: division by zero"


def test_output_is_captured_and_capped(sandbox: Sandbox) -> None:
    r = run(sandbox, "print('hello from the sandbox')\nprint('x' * 100000)\n")
    assert r.status == "passed"
    assert r.output.startswith("hello from the sandbox")
    assert len(r.output) <= sandbox.limits.output_bytes


def test_tests_cannot_be_swallowed_by_an_open_string(sandbox: Sandbox) -> None:
    r = run(sandbox, 'def f():\n    return 1\nrest = """\n', 'assert f() == 2\n"""\n')
    assert r.status == "error" and "SyntaxError" in r.message


# -- hostile programs -------------------------------------------------------------------------------

def test_infinite_loop_times_out(sandbox: Sandbox) -> None:
    start = time.perf_counter()
    r = run(sandbox, "while True:\n    pass\n")
    assert r.status == "timeout"
    assert FLOOR <= r.duration_s < FLOOR + 2.0
    assert time.perf_counter() - start < FLOOR + 5.0


def test_sleeping_forever_times_out(sandbox: Sandbox) -> None:
    r = run(sandbox, "import time\ntime.sleep(1000)\n")
    assert r.status == "timeout"


def test_memory_bomb_is_contained(sandbox: Sandbox) -> None:
    r = run(sandbox, "x = bytearray(8 * 1024 ** 3)\n")
    assert r.status == "error" and "MemoryError" in r.message


def test_growing_memory_bomb_is_contained(sandbox: Sandbox) -> None:
    r = run(sandbox, "chunks = []\nwhile True:\n    chunks.append(bytearray(50 * 1024 ** 2))\n")
    assert r.status == "error" and "MemoryError" in r.message


def test_fork_bomb_is_contained(sandbox: Sandbox) -> None:
    r = run(sandbox, "import os\nwhile True:\n    os.fork()\n")
    assert r.status == "error" and "os.fork" in r.message


@pytest.mark.parametrize("code, what", [
    ("import subprocess\nsubprocess.Popen(['sleep', '100'])\n", "subprocess"),
    ("import os\nos.system('sleep 100 &')\n", "os.system"),
    ("import os\nos.posix_spawn('/bin/sleep', ['sleep', '100'], {})\n", "os.posix_spawn"),
    ("import os\nos.execv('/bin/sleep', ['sleep', '100'])\n", "os.exec"),
    ("import multiprocessing\np = multiprocessing.Process(target=print)\np.start()\n", "forbidden"),
    ("import pty\npty.fork()\n", "forbidden"),
])
def test_spawning_processes_is_contained(sandbox: Sandbox, code: str, what: str) -> None:
    r = run(sandbox, code)
    assert r.status == "error" and what in r.message, r


def test_setsid_and_sleep_leaves_nothing_behind(sandbox: Sandbox) -> None:
    code = """
    import os, time
    try:
        os.setsid()
    except OSError:
        pass
    try:
        if os.fork() == 0:
            os.setsid()
            time.sleep(1000)
    except BaseException:
        pass
    time.sleep(1000)
    """
    r = run(sandbox, code)
    assert r.status in ("error", "timeout")
    assert r.status != "passed"


def test_deleting_and_writing_outside_is_contained(sandbox: Sandbox, tmp_path: Path) -> None:
    canary = tmp_path / "canary.txt"
    canary.write_text("alive")
    for code in (
        f"import os\nos.remove({str(canary)!r})\n",
        f"import shutil\nshutil.rmtree({str(tmp_path)!r})\n",
        f"open({str(canary)!r}, 'w').write('overwritten')\n",
        f"open({str(tmp_path / 'evil.txt')!r}, 'w').write('x')\n",
        f"import os\nos.rename({str(canary)!r}, 'stolen.txt')\n",
        f"import os\nos.chdir({str(tmp_path)!r})\nopen('evil.txt', 'w').write('x')\n",
        f"import os\nfd = os.open({str(tmp_path)!r}, os.O_RDONLY)\nos.remove('canary.txt', dir_fd=fd)\n",
        "open('../escaped.txt', 'w').write('x')\n",
        "import pathlib\npathlib.Path('/tmp/qh-escaped.txt').write_text('x')\n",
        "import os\nos.symlink('/', 'root')\nopen('root/tmp/qh-escaped.txt', 'w').write('x')\n",
    ):
        r = run(sandbox, code)
        assert r.status == "error" and "forbidden" in r.message, (code, r)
        assert canary.read_text() == "alive"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["canary.txt"]
    assert not Path("/tmp/qh-escaped.txt").exists()


def test_files_inside_its_own_directory_are_fine(sandbox: Sandbox) -> None:
    code = """
    import os, tempfile
    with open('data.txt', 'w') as f:
        f.write('ok')
    os.makedirs('sub/dir')
    os.rename('data.txt', 'sub/dir/data.txt')
    with tempfile.NamedTemporaryFile('w', delete=True) as t:
        t.write('scratch')
    assert open('sub/dir/data.txt').read() == 'ok'
    """
    assert run(sandbox, code).status == "passed"


def test_parent_environment_is_not_visible(sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QH_TEST_SECRET_TOKEN", "hunter2-very-secret")
    r = run(sandbox, "import os\nprint(dict(os.environ))\nassert 'QH_TEST_SECRET_TOKEN' not in os.environ\n")
    assert r.status == "passed"  # it looked, and the secret was not there
    assert "hunter2" not in r.output and "QH_TEST_SECRET_TOKEN" not in r.output
    r = run(sandbox, "import os\nprint(open(f'/proc/{os.getppid()}/environ').read())\n")
    assert r.status == "error" and "hunter2" not in r.output


def test_reading_outside_files_is_contained(sandbox: Sandbox) -> None:
    for path in ("/etc/passwd", "/proc/self/mem", "/proc/1/environ"):
        r = run(sandbox, f"print(open({path!r}, 'rb').read(100))\n")
        assert r.status == "error" and "forbidden" in r.message, (path, r)


@pytest.mark.parametrize("code", [
    "exit(0)\n",
    "import sys\nsys.exit(0)\n",
    "raise SystemExit(0)\n",
    "import os\nos._exit(0)\n",
    "import os, sys\nsys.stdout.flush()\nos._exit(0)\n",
    "raise KeyboardInterrupt\n",
])
def test_early_exit_is_a_failure(sandbox: Sandbox, code: str) -> None:
    r = run(sandbox, code, "assert False, 'the tests must run'\n")
    assert r.status == "error", r


def test_early_exit_even_with_passing_tests_after_it(sandbox: Sandbox) -> None:
    # the tests would pass, but the program never lets them run
    r = run(sandbox, "import os\ndef f():\n    return 1\nos._exit(0)\n", "assert f() == 1\n")
    assert r.status == "error"


def test_fake_passed_output_is_a_failure(sandbox: Sandbox) -> None:
    code = """
    import os, sys
    print('passed')
    print('PASSED all tests: P' + '0' * 32)
    for fd in range(3, 64):
        try:
            os.write(fd, b'P' + b'0' * 32)
        except OSError:
            pass
    os._exit(0)
    """
    r = run(sandbox, code)
    assert r.status == "error"


def test_forging_the_pass_event_is_a_failure(sandbox: Sandbox) -> None:
    r = run(sandbox, "import sys\nsys.audit('qwenharness.pass')\n", "assert False\n")
    assert r.status == "error" and "forged" in r.message
    r = run(sandbox, "import sys\nf = lambda: sys.audit('qwenharness.pass')\nf()\n", "assert False\n")
    assert r.status == "error"


def test_rewriting_wrapper_globals_is_a_failure(sandbox: Sandbox) -> None:
    code = """
    import sys, functools
    g = sys._getframe(1).f_globals
    g['_fail'] = functools.partial(sys.audit, 'qwenharness.pass')
    g['_exec'] = lambda *a: None
    raise ValueError('make the wrapper take its failure path')
    """
    r = run(sandbox, code)
    assert r.status == "error"


def test_the_nonce_is_not_reachable_from_frames(sandbox: Sandbox) -> None:
    code = """
    import sys, os
    seen = []
    f = sys._getframe()
    while f is not None:
        for space in (f.f_locals, f.f_globals):
            for v in list(space.values()):
                seen.append(v)
                if callable(v) and getattr(v, '__closure__', None):
                    seen.extend(c.cell_contents for c in v.__closure__)
        f = f.f_back
    candidates = [v for v in seen if isinstance(v, (bytes, str)) and len(v) in (32, 33)]
    for c in candidates:
        data = c if isinstance(c, bytes) else c.encode()
        for fd in range(3, 64):
            try:
                os.write(fd, (b'P' + data[-32:]))
            except OSError:
                pass
    os._exit(0)
    """
    r = run(sandbox, code)
    assert r.status == "error"


def test_killing_the_parent_is_contained(sandbox: Sandbox) -> None:
    me = os.getpid()
    kill = int(signal.SIGKILL)  # the program cannot import `signal` (forbidden), so it uses the number
    for code in (f"import os\nos.kill(os.getppid(), {kill})\n",
                 f"import os\nos.kill({me}, {kill})\n",
                 f"import os\nos.killpg(os.getpgid(os.getppid()), {kill})\n",
                 "import signal\n"):
        r = run(sandbox, code)
        assert r.status == "error" and ("os.kill" in r.message or "import of signal" in r.message), (code, r)
    assert psutil.pid_exists(me)


def test_closing_all_fds_is_a_failure(sandbox: Sandbox) -> None:
    r = run(sandbox, "import os\nos.closerange(0, 4096)\n", "assert True\n")
    assert r.status == "error"


def test_introspection_escapes_are_blocked(sandbox: Sandbox) -> None:
    for code in ("import gc\ngc.get_objects()\n", "import sys\nsys._current_frames()\n",
                 "import sys\nsys.settrace(lambda *a: None)\n", "import ctypes\n",
                 "import sys\nsys.addaudithook(lambda *a: None)\n", "import signal\n",
                 "import socket\nsocket.socket()\n"):
        r = run(sandbox, code)
        assert r.status == "error" and "forbidden" in r.message, (code, r)


def test_file_size_bomb_is_contained(sandbox: Sandbox) -> None:
    r = run(sandbox, "with open('big.bin', 'wb') as f:\n    while True:\n        f.write(b'x' * 1024 * 1024)\n")
    assert r.status == "error"
    assert r.exit_code == -signal.SIGXFSZ or "File too large" in r.message or "SIGXFSZ" in r.message


def test_many_programs_run_in_parallel_in_order(sandbox: Sandbox) -> None:
    programs = [Program(f"def f():\n    return {i}\n", f"assert f() == {i if i % 3 else -1}\n") for i in range(8)]
    before = children_now()
    results = sandbox.run_many(programs)
    assert [r.status for r in results] == ["failed" if i % 3 == 0 else "passed" for i in range(8)]
    assert new_children(before) == [] and strays(sandbox) == []


def test_timeout_is_scaled_from_the_reference(sandbox: Sandbox) -> None:
    policy = sandbox.policy
    assert policy.limit(None) == FLOOR
    assert policy.limit(0.01) == FLOOR
    assert policy.limit(1.0) == 4.0
    assert policy.limit(100.0) == policy.ceiling_s
    # a slow but correct program that exceeds the floor is rerun with the reference's scaled limit
    slow = Program("import time\ntime.sleep(2.0)\ndef f():\n    return 1\n", "assert f() == 1\n")
    [r] = sandbox.run_scaled([slow], [slow])
    assert r.status == "passed" and r.timeout_s > FLOOR
    # a program that hangs where its reference is quick stays a timeout at the floor
    quick = Program("def f():\n    return 1\n", "assert f() == 1\n")
    [r] = sandbox.run_scaled([Program("while True:\n    pass\n", quick.test)], [quick])
    assert r.status == "timeout" and r.timeout_s == FLOOR
