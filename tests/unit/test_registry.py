"""The one registry of tasks and engines: an outside package adds a task and an engine through entry
points (tests/plugin_example: one module plus its dist-info), and they run end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from qwenharness.errors import UnknownNameError
from qwenharness.registry import ENGINES, TASKS, register_engine, register_task

PLUGIN_DIR = Path(__file__).resolve().parents[1] / "plugin_example"
BUILTIN_TASKS = ["hellaswag", "arc_challenge", "arc_easy", "mmlu", "piqa", "winogrande", "boolq", "truthfulqa_mc",
                 "gsm8k", "math500", "humaneval", "mbpp", "ifeval", "mt_bench"]
ROWS = [{"sentence": "the cat sat on the mat.", "answer": "mat"},
        {"sentence": "we walked to the river", "answer": "river"},
        {"sentence": "she read a long book.", "answer": "book"},
        {"sentence": "nothing matches here", "answer": "there"}]


@pytest.fixture
def plugin(monkeypatch: pytest.MonkeyPatch) -> None:
    """The example package on sys.path, as if installed: its entry points become visible."""
    monkeypatch.syspath_prepend(str(PLUGIN_DIR))


def test_without_the_plugin_only_the_builtins_are_known() -> None:
    assert TASKS.names() == BUILTIN_TASKS
    assert ENGINES.names() == ["vllm", "hf", "openai"]


def test_entry_points_add_a_task_and_an_engine(plugin: None) -> None:
    from qwenharness.data import get_available_datasets, get_dataset_spec
    from qwenharness.engines import available_backends
    from qwenharness.tasks import get_available_tasks, get_task

    assert get_available_tasks() == [*BUILTIN_TASKS, "last_word"]
    assert get_available_datasets()[-1] == "last_word" and "echo" in available_backends()
    task = get_task("last_word")
    assert task.fewshot_split() is None and get_dataset_spec("last_word") is type(task).dataset


def test_an_outside_task_and_engine_run_end_to_end(plugin: None, tmp_path: Path) -> None:
    from qwenharness.evaluation import EvalSettings, Evaluator
    from qwenharness.results import read_jsonl, resolve_run_paths

    folder = tmp_path / "data" / "last_word"
    folder.mkdir(parents=True)
    (folder / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    settings = EvalSettings(models=["tiny"], datasets=["last_word"], backend="echo", data_dir=str(tmp_path / "data"),
                            chat=False, progress=False)
    (result,) = Evaluator(settings, resolve_run_paths(tmp_path / "results", "ext")).run()
    assert result.ok, result.error
    metric = result.aggregate["metrics"]["exact_match"]
    assert (metric["value"], metric["n"]) == (0.75, 4)
    records = read_jsonl(result.path.with_name("last_word.samples.jsonl"))
    assert [r["outputs"] for r in records] == [["mat"], ["river"], ["book"], ["here"]]


def test_a_misspelt_name_gets_a_suggestion(plugin: None) -> None:
    from qwenharness.engines import open_engine
    from qwenharness.tasks import get_task

    with pytest.raises(UnknownNameError, match="did you mean last_word"):
        get_task("last_wrd")
    with pytest.raises(UnknownNameError, match="did you mean echo"):
        open_engine(None, "ecko")  # type: ignore[arg-type]


def test_decorators_register_in_process_and_check_the_dataset_spec() -> None:
    from qwenharness.data.registry import DatasetSpec

    class NoSpec:  # a task without its DatasetSpec is refused at registration, not at first use
        dataset = None

    with pytest.raises(TypeError, match="DatasetSpec"):
        register_task("no_spec")(NoSpec)
    with pytest.raises(ValueError, match="built in"):
        register_engine("vllm")(lambda config, endpoint=None: None)

    class Tiny:
        dataset = DatasetSpec(name="tiny_task", title="t", task="generate", hub_id="x/y", hub_config=None,
                              eval_split="test", splits={"test": 1}, fields=(), license="CC0-1.0")

    try:
        assert register_task("tiny_task")(Tiny) is Tiny
        assert TASKS.get("tiny_task") is Tiny and TASKS.names()[-1] == "tiny_task"
    finally:
        TASKS.unregister("tiny_task")
    assert "tiny_task" not in TASKS.names()


def test_the_command_line_runs_the_outside_task_and_engine(tmp_path: Path) -> None:
    """What docs/extending.md promises after `pip install` of the package: both names work in the CLI."""
    import os
    import subprocess
    import sys

    folder = tmp_path / "data" / "last_word"
    folder.mkdir(parents=True)
    (folder / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(PLUGIN_DIR), os.environ.get("PYTHONPATH", "")])}
    cmd = [sys.executable, "-m", "qwenharness", "evaluate", "--models", "tiny", "--datasets", "last_word",
           "--backend", "echo", "--data-dir", str(tmp_path / "data"), "--results-dir", str(tmp_path / "results"),
           "--run-id", "cli", "--no-chat-template", "--no-progress"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    agg = json.loads((tmp_path / "results" / "evaluations" / "cli" / "tiny" / "balanced" / "last_word.json").read_text())
    assert agg["metrics"]["exact_match"]["value"] == 0.75
    bad = subprocess.run([*cmd[:9], "ecko"], capture_output=True, text=True, env=env, timeout=300)
    assert bad.returncode == 2 and "did you mean echo" in bad.stderr, bad.stderr[-2000:]
