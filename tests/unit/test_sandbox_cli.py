"""`qwenharness score` on code benchmarks: isolated by bubblewrap, refused without it, and marked
``isolation: none`` in every record, the summary and the report when run with --allow-unisolated."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from qwenharness.cli import main
from qwenharness.data import load


@pytest.fixture()
def responses(tmp_path: Path) -> Path:
    docs = {d["task_id"]: d for d in load("humaneval")}
    rows = [{"task_id": "HumanEval/0", "completion": docs["HumanEval/0"]["canonical_solution"]},
            {"task_id": "HumanEval/2", "completion": "    return 0.0\n"}]  # wrong
    path = tmp_path / "he.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def scored(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.with_name(f"{path.stem}.scored.jsonl").read_text().splitlines()]


def test_score_is_isolated_by_bubblewrap(responses: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["score", "--dataset", "humaneval", "--responses", str(responses)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["isolation"] == "bubblewrap" and out["metrics"]["pass@1"]["value"] == 0.5
    assert [r["extra"]["isolation"] for r in scored(responses)] == ["bubblewrap", "bubblewrap"]


def test_score_refuses_without_bubblewrap(responses: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("QWENHARNESS_BWRAP", str(tmp_path / "no-bwrap-here"))
    monkeypatch.delenv("QWENHARNESS_ALLOW_UNISOLATED", raising=False)
    assert main(["score", "--dataset", "humaneval", "--responses", str(responses)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "bubblewrap" in err and "--allow-unisolated" in err
    assert not responses.with_name(f"{responses.stem}.scored.jsonl").exists()


def test_score_with_the_flag_marks_everything_unisolated(responses: Path, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("QWENHARNESS_BWRAP", str(tmp_path / "no-bwrap-here"))
    assert main(["score", "--dataset", "humaneval", "--responses", str(responses), "--allow-unisolated"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["isolation"] == "none" and out["metrics"]["pass@1"]["value"] == 0.5
    assert [r["extra"]["isolation"] for r in scored(responses)] == ["none", "none"]


def test_the_report_shows_unisolated_runs(tmp_path: Path) -> None:
    from qwenharness.report.collect import _evaluation
    from qwenharness.report.tables import metric_table

    data = {"dataset": "humaneval", "model": "m", "preset": "p", "metrics": {"pass@1": {"value": 0.5, "n": 2}},
            "task": {"name": "humaneval", "n_shot": 0, "isolation": "none"}}
    ev = _evaluation(data, tmp_path / "m" / "p" / "humaneval.json", "run")
    assert ev is not None and ev.isolation == "none"

    class Snapshot:
        evaluations = [ev]

    table = metric_table(Snapshot())  # type: ignore[arg-type]
    assert table is not None and "code isolation: none (UNISOLATED)" in table.rows[0][-1]
