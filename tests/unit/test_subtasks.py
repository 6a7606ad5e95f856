"""Subtasks and groups (mmlu:abstract_algebra, mmlu:stem), subset files, and --doc-ids, end to end
through the Evaluator with a fake engine whose answer is always " A": every expected mean below is
counted straight from the data file (the share of questions whose answer is A)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from qwenharness import data
from qwenharness.data.mmlu_categories import SUBJECTS, subjects_of
from qwenharness.engines.base import IN_PROCESS, EngineInfo, LoglikelihoodRequest, LoglikelihoodResult
from qwenharness.errors import ConfigError, DataError, UnknownNameError
from qwenharness.evaluation import EvalSettings, Evaluator
from qwenharness.grouping import group_aggregates
from qwenharness.results import read_jsonl, resolve_run_paths
from qwenharness.selection import parse_doc_ids, select_docs
from qwenharness.tasks import get_task
from qwenharness.tasks.base import SampleRecord


@pytest.fixture(scope="module")
def shared_data() -> Path:
    root = Path(os.environ.get("QWENHARNESS_DATA_DIR") or Path(__file__).resolve().parents[3] / "shared" / "data")
    if not (root / "mmlu" / "test.jsonl").is_file():
        pytest.skip(f"no MMLU test file under {root}")
    return root


@pytest.fixture(scope="module")
def mmlu_rows(shared_data: Path) -> list[dict[str, Any]]:
    with open(shared_data / "mmlu" / "test.jsonl", "rb") as fh:  # bytes: rows hold U+2028, which splitlines cuts at
        return [json.loads(line) for line in fh if line.strip()]


class AlwaysA:
    """Log-likelihood 0 for the continuation " A", -1 for any other: the prediction is always A."""

    capabilities = IN_PROCESS

    def loglikelihood(self, requests: list[LoglikelihoodRequest], *, progress: bool = False) -> list[LoglikelihoodResult]:
        return [LoglikelihoodResult(logprob=0.0 if r.continuation == " A" else -1.0, is_greedy=False, num_tokens=1)
                for r in requests]

    def info(self) -> EngineInfo:
        return EngineInfo("fake", "tiny", "balanced", "cpu", "float32", {}, None, None, 0.0)

    def close(self) -> None:
        pass


class Pool:
    current_key = ("fake",)  # constant: the runner prints no engine header for a fake

    def resolve(self, model: str, preset: str):  # noqa: ANN201
        from qwenharness.presets import get_model_config

        return get_model_config("tiny", preset, gpu=None)

    def get(self, model: str, preset: str, backend: str) -> AlwaysA:
        return AlwaysA()

    def close(self) -> None:
        pass


def evaluate(tmp_path: Path, data_dir: Path, dataset: str, **settings: Any) -> dict[str, Any]:
    s = EvalSettings(models=["tiny"], datasets=[dataset], backend="hf", progress=False, data_dir=str(data_dir),
                     **settings)
    (res,) = Evaluator(s, resolve_run_paths(tmp_path, "t"), pool=Pool(), argv=["test"]).run()
    assert res.ok, res.error
    return res.aggregate


def share_of_a(rows: list[dict[str, Any]]) -> float:
    return sum(r["answer"] == 0 for r in rows) / len(rows)


# -- selections ---------------------------------------------------------------------------------

def test_selection_names() -> None:
    assert data.parse_selection("mmlu").subtasks is None
    assert data.parse_selection("mmlu:abstract_algebra").subtasks == ("abstract_algebra",)
    assert data.parse_selection("mmlu:stem").subtasks == subjects_of("stem")
    assert len(subjects_of("stem")) == 19 and len(SUBJECTS) == 57
    assert get_task("mmlu:stem").name == "mmlu"
    with pytest.raises(UnknownNameError, match="did you mean stem"):
        data.parse_selection("mmlu:stme")
    with pytest.raises(UnknownNameError, match="has no subtasks"):
        data.parse_selection("arc_easy:stem")


def test_parts_load_their_rows_numbered_as_in_the_full_split(shared_data: Path, mmlu_rows: list[dict]) -> None:
    algebra = data.load_docs("mmlu:abstract_algebra", data_dir=shared_data)
    assert [d.index for d in algebra] == [i for i, r in enumerate(mmlu_rows) if r["subject"] == "abstract_algebra"]
    stem = data.load_docs("mmlu:stem", data_dir=shared_data)
    assert len(stem) == sum(SUBJECTS[s][1] for s in subjects_of("stem"))
    assert {d.record["subject"] for d in stem} == set(subjects_of("stem"))
    assert len(data.load("mmlu:stem", split="dev", data_dir=shared_data)) == 285  # few-shot pool: whole


def test_subset_file_accepted_for_a_part_only(tmp_path: Path, shared_data: Path, mmlu_rows: list[dict]) -> None:
    folder = tmp_path / "mmlu"
    folder.mkdir()
    algebra = [r for r in mmlu_rows if r["subject"] == "abstract_algebra"]
    (folder / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in algebra))
    (folder / "dev.jsonl").write_text((shared_data / "mmlu" / "dev.jsonl").read_text())
    assert len(data.load_docs("mmlu:abstract_algebra", data_dir=tmp_path)) == 100
    with pytest.raises(DataError, match="100 rows, expected 14042"):
        data.load_docs("mmlu", data_dir=tmp_path)  # the full dataset keeps the strict row count
    with pytest.raises(DataError, match="subtask 'anatomy', expected 135"):
        data.load_docs("mmlu:stem", data_dir=tmp_path)
    (folder / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in algebra[:-1]))
    with pytest.raises(DataError, match="99 rows of mmlu subtask 'abstract_algebra', expected 100"):
        data.load_docs("mmlu:abstract_algebra", data_dir=tmp_path)


# -- aggregates -----------------------------------------------------------------------------------

def test_one_subject_aggregates_to_its_share_of_a(tmp_path: Path, shared_data: Path, mmlu_rows: list[dict]) -> None:
    agg = evaluate(tmp_path, shared_data, "mmlu:abstract_algebra")
    expected = share_of_a([r for r in mmlu_rows if r["subject"] == "abstract_algebra"])
    assert agg["n_samples"] == 100
    assert agg["metrics"]["acc"]["value"] == pytest.approx(expected)
    assert set(agg["metrics"]) == {"acc"}  # MMLU declares acc only
    assert agg["subtasks"]["abstract_algebra"]["metrics"]["acc"]["value"] == pytest.approx(expected)
    assert agg["groups"] == {}
    assert agg["selection"]["subtasks"] == ["abstract_algebra"]
    assert agg["task"]["fewshot"] == {"n_shot": 5, "split": "dev", "rule": "first_n_by_subject", "seed": None,
                                      "description": agg["task"]["fewshot"]["description"]}


def test_stem_group_with_doc_ids_size_weighted_and_macro(tmp_path: Path, shared_data: Path,
                                                         mmlu_rows: list[dict]) -> None:
    picks = {"abstract_algebra": 4, "anatomy": 10, "astronomy": 26}  # unequal sizes: the two means differ
    by_subject: dict[str, list[int]] = {}
    for i, r in enumerate(mmlu_rows):
        by_subject.setdefault(r["subject"], []).append(i)
    ids = sorted(i for s, n in picks.items() for i in by_subject[s][:n])
    agg = evaluate(tmp_path, shared_data, "mmlu:stem", doc_ids={"mmlu:stem": [str(i) for i in ids]})
    samples = read_jsonl(tmp_path / "evaluations" / "t" / "tiny" / "balanced" / "mmlu:stem.samples.jsonl")
    assert sorted(int(s["doc_id"]) for s in samples) == ids  # exactly those documents
    shares = {s: share_of_a([mmlu_rows[i] for i in by_subject[s][:n]]) for s, n in picks.items()}
    for s, share in shares.items():
        assert agg["subtasks"][s]["n"] == picks[s]
        assert agg["subtasks"][s]["metrics"]["acc"]["value"] == pytest.approx(share)
    stem = agg["groups"]["stem"]
    assert list(agg["groups"]) == ["stem"] and stem["complete"] is False and stem["n"] == len(ids)
    weighted = sum(shares[s] * n for s, n in picks.items()) / sum(picks.values())
    assert stem["metrics"]["acc"]["size_weighted"]["value"] == pytest.approx(weighted)
    assert stem["metrics"]["acc"]["macro"] == {"value": pytest.approx(sum(shares.values()) / 3), "n_subtasks": 3}
    assert agg["metrics"]["acc"]["value"] == pytest.approx(weighted)  # the headline is lm-eval's weighted mean
    assert agg["selection"]["doc_ids"] == [str(i) for i in ids]
    # verify.py recomputes the subtask and group means from the records, and names a forged one
    from qwenharness.verify import verify_aggregate

    path = tmp_path / "evaluations" / "t" / "tiny" / "balanced" / "mmlu:stem.json"
    assert verify_aggregate(path) == []
    forged = json.loads(path.read_text())
    forged["groups"]["stem"]["metrics"]["acc"]["macro"]["value"] = 0.99
    path.write_text(json.dumps(forged))
    (problem,) = verify_aggregate(path)
    assert "groups.stem.metrics.acc.macro.value = 0.99" in problem


def test_whole_dataset_groups_are_its_categories_and_itself() -> None:
    task = get_task("mmlu")
    docs = [{"subject": s, "_index": i} for i, s in enumerate(["anatomy", "anatomy", "virology", "sociology"])]
    records = [SampleRecord(str(i), None, 0, [], {"acc": v}) for i, v in enumerate([1.0, 0.0, 1.0, 0.0])]
    out = group_aggregates(task, data.parse_selection("mmlu"), records, [d["subject"] for d in docs])
    assert set(out["groups"]) == {"stem", "other", "social_sciences", "mmlu"}
    whole = out["groups"]["mmlu"]["metrics"]["acc"]
    assert whole["size_weighted"]["value"] == pytest.approx(0.5)
    assert whole["macro"]["value"] == pytest.approx((0.5 + 1.0 + 0.0) / 3)


# -- --doc-ids --------------------------------------------------------------------------------------

def test_doc_ids_errors_name_the_problem(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not being evaluated"):
        parse_doc_ids('{"arc_esy": [1]}', ["arc_easy"])
    with pytest.raises(ConfigError, match="listed more than once"):
        parse_doc_ids('{"arc_easy": [1, "1"]}')
    with pytest.raises(ConfigError, match="not valid JSON"):
        parse_doc_ids("{arc_easy: [1]}")
    f = tmp_path / "ids.json"
    f.write_text('{"arc_easy": [3, 1]}')
    assert parse_doc_ids(str(f)).for_dataset("arc_easy") == ("3", "1")
    docs = [data.Doc(i, str(i), {}) for i in range(5)]
    assert [d.id for d in select_docs(docs, ("3", "1"), "arc_easy")] == ["1", "3"]  # split order
    with pytest.raises(ConfigError, match=r"2 id\(s\) not in the dataset: '7', 'x'"):
        select_docs(docs, ("1", "7", "x"), "arc_easy")


def test_doc_ids_on_the_command_line(tmp_path: Path, shared_data: Path) -> None:
    from qwenharness.cli import main

    run = tmp_path / "run"
    code = main(["evaluate", "--models", "tiny", "--datasets", "arc_easy", "--sample-limit", "arc_easy=3",
                 "--doc-ids", '{"arc_easy": [0]}', "--output-dir", str(run)], supervise=False)
    assert code == 2  # both for one dataset: refused before anything is written
    assert not run.exists()


# -- few-shot policy ------------------------------------------------------------------------------

def test_lm_eval_sampler_run_states_its_policy_and_resumes_with_the_same_shots(tmp_path: Path,
                                                                                shared_data: Path) -> None:
    ids = {"arc_easy": ["2", "11", "40"]}
    agg = evaluate(tmp_path, shared_data, "arc_easy", doc_ids=ids, n_shot=2, fewshot_sampler="lm-eval")
    assert agg["task"]["fewshot"]["rule"] == "lm-eval" and agg["task"]["fewshot"]["split"] == "validation"
    assert agg["options"]["fewshot_sampler"] == "lm-eval"
    samples = tmp_path / "evaluations" / "t" / "tiny" / "balanced" / "arc_easy.samples.jsonl"
    prompts = {s["doc_id"]: s["prompt"] for s in read_jsonl(samples)}
    # drop the last record: the resumed run builds only that document's prompt, from the replayed draws
    lines = samples.read_text().splitlines(keepends=True)
    samples.write_text("".join(lines[:-1]))
    evaluate(tmp_path, shared_data, "arc_easy", doc_ids=ids, n_shot=2, fewshot_sampler="lm-eval")
    assert {s["doc_id"]: s["prompt"] for s in read_jsonl(samples)} == prompts
    harness_rule = evaluate(tmp_path / "other", shared_data, "arc_easy", doc_ids=ids, n_shot=2)
    assert harness_rule["task"]["fewshot"]["rule"] == "harness"


def test_datasets_list_states_metrics_and_fewshot_policy(capsys: pytest.CaptureFixture[str]) -> None:
    from qwenharness.cli import main

    assert main(["datasets", "--list", "--json", "--datasets", "mmlu,boolq,gsm8k"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["boolq"]["metrics"] == ["acc"]
    assert rows["mmlu"]["fewshot"]["rule"] == "first_n_by_subject" and rows["mmlu"]["fewshot"]["split"] == "dev"
    assert (rows["gsm8k"]["fewshot"]["split"], rows["gsm8k"]["fewshot"]["rule"],
            rows["gsm8k"]["fewshot"]["seed"]) == ("train", "harness", 1234)
    assert rows["mmlu"]["subtasks"]["groups"]["stem"][0] == "abstract_algebra"


class Answers42(AlwaysA):
    """Generates the same short answer for every prompt (GSM8K's and MBPP's shots are what is tested)."""

    def generate(self, requests: list[Any], *, progress: bool = False) -> list[Any]:
        from qwenharness.engines.base import Generation

        return [Generation(text="The final answer is 42", prompt_tokens=1, output_tokens=5, finish_reason="stop",
                           latency_s=0.0) for _ in requests]


class AnswersPool(Pool):
    def get(self, model: str, preset: str, backend: str) -> Answers42:  # type: ignore[override]
        return Answers42()


@pytest.mark.parametrize("dataset, example_marker", [("gsm8k", "Question:"), ("mbpp", "[BEGIN]")])
def test_aggregates_record_the_shots_actually_in_the_prompt(tmp_path: Path, shared_data: Path, dataset: str,
                                                           example_marker: str) -> None:
    """Issue 12: the aggregate states the shots the prompts held, not the task's default: change the
    shot count and the record changes with the prompt."""
    seen = {}
    for n in (0, 2):
        s = EvalSettings(models=["tiny"], datasets=[dataset], backend="hf", progress=False, chat=False,
                         data_dir=str(shared_data), sample_limit=2, n_shot=n)
        (res,) = Evaluator(s, resolve_run_paths(tmp_path / f"shots{n}", "t"), pool=AnswersPool(), argv=["test"]).run()
        assert res.ok, res.error
        prompt = read_jsonl(res.path.with_name(f"{dataset}.samples.jsonl"))[0]["prompt"]
        seen[n] = (res.aggregate["task"]["n_shot"], res.aggregate["task"]["fewshot"]["n_shot"],
                   str(prompt).count(example_marker))
    assert seen[0][:2] == (0, 0) and seen[2][:2] == (2, 2), seen
    assert seen[2][2] > seen[0][2], seen  # the two examples are in the prompt, and only then
