"""Parity with lm-evaluation-harness: the comparison logic on crafted samples, a small real run that CI
makes (tiny, five tasks, 3 documents each), and the issue's full configuration (slow, not in CI)."""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import pytest

from qwenharness.parity import LmEvalTask, LocalTask, TaskParity, compare, pooled
from qwenharness.tasks.base import SampleRecord

needs_lm_eval = pytest.mark.skipif(importlib.util.find_spec("lm_eval") is None,
                                   reason="lm-eval is not installed (pip install 'qwenharness[lm-eval]')")


def _record(doc_id: str, lls: list[float], contexts: str | list[str] = "Q:") -> SampleRecord:
    outputs = [{"continuation": f" {c}", "logprob": ll} for c, ll in zip("ABCD", lls)]
    return SampleRecord(doc_id, contexts, 0, outputs, {"acc": float(lls.index(max(lls)) == 0)})


def _sample(doc_id: int, lls: list[float], contexts: list[str] | None = None) -> dict:
    contexts = contexts or ["Q:"] * len(lls)
    return {"doc_id": doc_id, "arguments": [(c, f" {k}") for c, k in zip(contexts, "ABCD")],
            "filtered_resps": [(ll, False) for ll in lls], "acc": float(lls.index(max(lls)) == 0)}


def test_compare_counts_dll_argmax_and_unmatched() -> None:
    spec = LmEvalTask("t", "t.yaml", "test", {"acc": "acc"})
    local = LocalTask("qh_t", spec, "arc_easy", [{"_index": 7}, {"_index": 9}])
    records = {"7": _record("7", [-1.0, -2.0]), "9": _record("9", [-3.0, -1.0])}
    samples = [_sample(0, [-1.0005, -2.0]),  # |dLL| 5e-4, same argmax
               _sample(1, [-0.5, -1.0])]  # argmax differs: 0 for lm-eval, 1 for the harness
    out = compare(local, samples, records, lambda d: str(d["_index"]))
    assert (out.docs, out.requests, out.unmatched) == (2, 4, 0)
    assert out.max_abs_dll == pytest.approx(2.5)  # -3.0 against -0.5
    assert out.argmax_disagreements == 1
    assert out.harness == {"acc": 0.5} and out.lm_eval == {"acc": 1.0}
    assert not out.ok(1e-3)
    # a context that differs by one character is a request the harness never sent
    odd = compare(local, [_sample(0, [-1.0, -2.0], ["Q:", "Q: "])], records, lambda d: str(d["_index"]))
    assert odd.unmatched == 1 and odd.unmatched_examples[0]["continuation"] == " B" and not odd.ok(1e-3)
    agree = compare(local, [_sample(0, [-1.0, -2.0])], records, lambda d: str(d["_index"]))
    assert agree.ok(1e-3) and agree.max_abs_dll == 0.0


def test_pooled_rows_weight_by_documents() -> None:
    a = TaskParity("mmlu", "a", docs=1, requests=4, max_abs_dll=1e-5, harness={"acc": 1.0}, lm_eval={"acc": 1.0})
    b = TaskParity("mmlu", "b", docs=3, requests=12, max_abs_dll=3e-5, argmax_disagreements=1,
                   harness={"acc": 0.0}, lm_eval={"acc": 1 / 3})
    row = pooled("mmlu", [a, b], "mmlu (2)")
    assert (row.docs, row.requests, row.max_abs_dll, row.argmax_disagreements) == (4, 16, 3e-5, 1)
    assert row.harness["acc"] == pytest.approx(0.25) and row.lm_eval["acc"] == pytest.approx(0.5)


def _parity(tmp_path: Path, *args: str) -> dict:
    from qwenharness.cli import main

    out = tmp_path / "parity"
    code = main(["parity", "--with", "lm-eval", "--models", "tiny", "--output-dir", str(out), *args], supervise=False)
    payload = json.loads((out / "parity.json").read_text())
    assert code == (0 if payload["ok"] else 1)
    return payload


@needs_lm_eval
def test_parity_small_subset(tmp_path: Path) -> None:
    """CI's parity run: tiny (fp32, transformers on both sides), 3 documents of five tasks, MMLU 5-shot."""
    payload = _parity(tmp_path, "--datasets", "arc_easy,winogrande,boolq,truthfulqa_mc,mmlu:abstract_algebra",
                      "--sample-limit", "3")
    rows = {r["task"]: r for r in payload["models"]["tiny"]}
    assert set(rows) == {"arc_easy", "winogrande", "boolq", "truthfulqa_mc1", "truthfulqa_mc2",
                         "mmlu:abstract_algebra (1 lm-eval subject tasks)"}
    for name, r in rows.items():
        assert r["docs"] == 3 and r["requests"] > 0, name
        assert r["unmatched"] == 0, f"{name}: request strings differ: {r['unmatched_examples']}"
        assert r["max_abs_dll"] <= 1e-3, name
        assert r["argmax_disagreements"] in (0, None), name
        assert r["harness"] == pytest.approx(r["lm_eval"]), name
    assert payload["ok"]


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("CI") == "true",
                    reason="the issue's full parity run takes minutes on two cores; CI runs test_parity_small_subset")
@needs_lm_eval
def test_parity_acceptance(tmp_path: Path) -> None:
    """Issue 20's acceptance: tiny fp32, the nine lm-eval MC tasks, 50 documents each, 0-shot, MMLU 5-shot."""
    payload = _parity(tmp_path, "--sample-limit", "50")
    rows = payload["models"]["tiny"]
    assert len(rows) == 9
    assert all(r["docs"] == 50 and r["unmatched"] == 0 for r in rows)
    assert max(r["max_abs_dll"] for r in rows) <= 1e-3
    assert sum(r["argmax_disagreements"] or 0 for r in rows) == 0
    assert payload["ok"]


@needs_lm_eval
def test_written_tasks_point_lm_evals_yamls_at_the_documents(tmp_path: Path) -> None:
    from qwenharness.parity import write_tasks

    docs = [{"_index": 4, "question": "q", "subject": "anatomy", "choices": ["a", "b", "c", "d"], "answer": 1}]
    dev = [{**docs[0], "_index": i, "question": f"dev {i}"} for i in range(6)]
    whole = write_tasks(tmp_path, "mmlu", docs, dev, 5)
    part = write_tasks(tmp_path, "mmlu:stem", docs, dev, 5)  # one run may hold both: no name is shared
    assert [t.local_name for t in whole] == ["qhparity_mmlu_anatomy"]
    assert [t.local_name for t in part] == ["qhparity_stem_mmlu_anatomy"]
    cfg = json.loads((tmp_path / "tasks" / "qhparity_mmlu_anatomy.yaml").read_text())
    assert cfg["include"].endswith("mmlu/default/mmlu_anatomy.yaml") and Path(cfg["include"]).is_file()
    assert (cfg["dataset_path"], cfg["num_fewshot"], cfg["test_split"], cfg["training_split"]) == ("json", 5, "test", None)
    rows = [json.loads(line) for line in Path(cfg["dataset_kwargs"]["data_files"]["test"]).read_text().splitlines()]
    assert rows == [{k: v for k, v in docs[0].items() if k != "_index"}]
    (boolq,) = write_tasks(tmp_path, "boolq", [{"_index": 0, "passage": "p", "question": "q", "answer": True}], None, 0)
    cfg = json.loads((tmp_path / "tasks" / f"{boolq.local_name}.yaml").read_text())
    (row,) = [json.loads(line) for line in Path(cfg["dataset_kwargs"]["data_files"]["validation"]).read_text().splitlines()]
    assert row["label"] == 1 and cfg["validation_split"] == "validation" and cfg["test_split"] is None
