"""`qwenharness score`: responses from elsewhere, subsets, human-eval format, malformed input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from qwenharness.cli import main
from qwenharness.data import load_docs


def _write(path: Path, rows: list[object]) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def _gsm8k_answer(doc: dict) -> str:
    return doc["answer"].split("####")[-1].strip()


def test_gsm8k_subset_with_gold_and_wrong_answers(tmp_path: Path, capsys) -> None:
    docs = load_docs("gsm8k", limit=4, seed=7)
    rows = [{"id": d.id, "response": f"The answer is {_gsm8k_answer(d.record)}."} for d in docs[:3]]
    rows.append({"id": int(docs[3].id), "response": "The answer is -123456."})  # int ids are accepted
    resp = _write(tmp_path / "resp.jsonl", rows)
    assert main(["score", "--dataset", "gsm8k", "--responses", str(resp)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["n_samples"] == 4 and out["subset"] is True and out["n_dataset"] == 1319
    assert out["metrics"]["flexible_extract"]["value"] == pytest.approx(0.75)
    assert out["metrics"]["flexible_extract"]["n"] == 4
    scored = [json.loads(line) for line in (tmp_path / "resp.scored.jsonl").read_text().splitlines()]
    assert sorted(r["doc_id"] for r in scored) == sorted(d.id for d in docs)


def test_single_sample_and_explicit_output(tmp_path: Path, capsys) -> None:
    doc = load_docs("gsm8k", limit=1)[0]
    resp = _write(tmp_path / "one.jsonl", [{"id": doc.id, "response": f"#### {_gsm8k_answer(doc.record)}"}])
    out_file = tmp_path / "deep" / "scored.jsonl"
    assert main(["score", "--dataset", "gsm8k", "--responses", str(resp), "--output", str(out_file)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["n_samples"] == 1 and out["metrics"]["strict_match"]["value"] == 1.0
    assert len(out_file.read_text().splitlines()) == 1


def test_human_eval_format_is_read(tmp_path: Path) -> None:
    from qwenharness.commands.score import read_responses

    resp = _write(tmp_path / "he.jsonl", [{"task_id": "HumanEval/0", "completion": "a"},
                                          {"task_id": "HumanEval/0", "completion": "b"},
                                          {"task_id": "HumanEval/1", "completion": "c"}])
    assert read_responses(resp) == {"HumanEval/0": ["a", "b"], "HumanEval/1": ["c"]}


@pytest.mark.parametrize("bad,what", [
    ("{not json", "not valid JSON"),
    ('["a list"]', "expected a JSON object"),
    ('{"response": "x"}', "no usable 'id'"),
    ('{"id": 3, "response": 7}', "must be a string"),
])
def test_malformed_line_exits_2_with_path_and_line(tmp_path: Path, capsys, bad: str, what: str) -> None:
    resp = _write(tmp_path / "bad.jsonl", [{"id": 0, "response": "1"}, "", bad])
    assert main(["score", "--dataset", "gsm8k", "--responses", str(resp)]) == 2
    err = capsys.readouterr().err
    assert f"{resp}:3" in err and what in err


def test_unknown_id_exits_2_naming_its_line(tmp_path: Path, capsys) -> None:
    resp = _write(tmp_path / "r.jsonl", [{"id": 0, "response": "1"}, {"id": 99999, "response": "1"}])
    assert main(["score", "--dataset", "gsm8k", "--responses", str(resp)]) == 2
    err = capsys.readouterr().err
    assert f"{resp}:2" in err and "99999" in err


def test_missing_file_and_mt_bench_are_clear_errors(tmp_path: Path, capsys) -> None:
    assert main(["score", "--dataset", "gsm8k", "--responses", str(tmp_path / "nope.jsonl")]) == 2
    assert "does not exist" in capsys.readouterr().err
    resp = _write(tmp_path / "mt.jsonl", [{"id": 81, "response": "hello"}])
    assert main(["score", "--dataset", "mt_bench", "--responses", str(resp)]) == 2
    assert "judge" in capsys.readouterr().err
