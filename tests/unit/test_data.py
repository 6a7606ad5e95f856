"""Dataset registry and loaders: local files (real ../shared/data), the Hub path (mocked only where it
meets the network: `datasets.load_dataset`, `huggingface_hub.hf_hub_download`, `urlopen` and the socket
probe), error messages for bad files, the summary and the `qwenharness datasets` command."""

from __future__ import annotations

import io
import json
import random
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from qwenharness import data
from qwenharness.cli import main
from qwenharness.data import hub
from qwenharness.errors import DataError, UnknownNameError

ROWS = {  # from ../shared/data/README.md (and the Hub's split sizes)
    "humaneval": {"test": 164},
    "mbpp": {"test": 257, "train": 120, "validation": 43, "prompt": 7},
    "gsm8k": {"test": 1319, "train": 7473},
    "hellaswag": {"validation": 10042},
    "mt_bench": {"question": 80, "judge_prompts": 8, "reference_answer_gpt-4": 30},
    "arc_challenge": {"test": 1172, "validation": 299},
    "arc_easy": {"test": 2376, "validation": 570},
    "mmlu": {"test": 14042, "validation": 1531, "dev": 285},
    "truthfulqa_mc": {"validation": 817},
    "winogrande": {"validation": 1267},
    "piqa": {"validation": 1838},
    "boolq": {"validation": 3270},
    "math500": {"test": 500},
    "ifeval": {"train": 541},
}


@pytest.fixture(scope="module")
def shared_data(pytestconfig: pytest.Config) -> Path:
    """The real data directory: --data-dir, $QWENHARNESS_DATA_DIR, or ../shared/data beside the checkout."""
    given = pytestconfig.getoption("--data-dir") or os.environ.get(data.DATA_DIR_ENV)
    path = Path(given) if given else data.default_data_dir()
    if path is None or not (path / "gsm8k" / "test.jsonl").is_file():
        pytest.skip("no local dataset files: pass --data-dir or set QWENHARNESS_DATA_DIR (see README)")
    return path


@pytest.fixture(autouse=True)
def isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Each test gets its own empty cache; no Hugging Face offline switches; no probe results carried over."""
    cache = tmp_path / "cache"
    monkeypatch.setenv(data.CACHE_DIR_ENV, str(cache))
    monkeypatch.delenv(data.DATA_DIR_ENV, raising=False)
    for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "HF_ENDPOINT"):
        monkeypatch.delenv(var, raising=False)
    hub._probe_cache.clear()
    yield cache
    hub._probe_cache.clear()


@pytest.fixture
def empty_dir(tmp_path: Path) -> Path:
    d = tmp_path / "empty_data"
    d.mkdir()
    return d


# -- registry ----------------------------------------------------------------------------------------
def test_registry_has_the_14_datasets_of_the_task_registry():
    from qwenharness.tasks import get_available_tasks

    assert set(data.get_available_datasets()) == set(get_available_tasks()) == set(ROWS)
    assert len(data.get_available_datasets()) == 14


@pytest.mark.parametrize("name", list(ROWS))
def test_spec_is_complete(name: str):
    spec = data.get_dataset_spec(name)
    assert spec.splits == ROWS[name]
    assert spec.eval_split in spec.splits
    assert spec.fewshot_split is None or spec.fewshot_split in spec.splits
    assert "/" in spec.hub_id and spec.hub_source()
    assert spec.local_file(spec.eval_split) == f"{name}/{spec.eval_split}.jsonl"
    assert spec.fields and all(f.type in ("str", "int", "float", "bool", "list", "dict") for f in spec.fields)
    for split in spec.splits:  # every split is reachable from the Hub path: a dataset or a file
        assert split in spec.remote_files or not spec.remote_files
    json.dumps(spec.to_dict())


def test_unknown_dataset_name_names_the_valid_ones():
    with pytest.raises(UnknownNameError, match="gsm8k"):
        data.get_dataset_spec("gsm9k")
    with pytest.raises(UnknownNameError):
        data.resolve_dataset_names("gsm8k,nope")
    assert data.resolve_dataset_names("all") == data.get_available_datasets()
    assert data.resolve_dataset_names(" gsm8k, mmlu ,gsm8k") == ["gsm8k", "mmlu"]


def test_unknown_split_is_a_data_error(shared_data: Path):
    with pytest.raises(DataError, match="choose one of test, train"):
        data.load("gsm8k", split="dev", data_dir=shared_data)


# -- local files -------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", list(ROWS))
def test_local_files_load_with_schema_and_rows(name: str, shared_data: Path):
    splits = data.verify_dataset(name, shared_data)
    assert {s: len(d.records) for s, d in splits.items()} == ROWS[name]
    for split, d in splits.items():
        assert d.status == "local" and d.source == str(shared_data / name / f"{split}.jsonl")
        declared = {f.name for f in data.registry.fields_for(data.get_dataset_spec(name), split)}
        required = {f.name for f in data.registry.fields_for(data.get_dataset_spec(name), split) if f.required}
        for i, rec in enumerate(d.records):
            assert required <= rec.keys() - {"_index"} <= declared and rec["_index"] == i


def test_records_are_the_files_rows(shared_data: Path):
    first = json.loads((shared_data / "humaneval" / "test.jsonl").read_text(encoding="utf-8").split("\n")[0])
    assert data.load("humaneval", data_dir=shared_data)[0] == {**first, "_index": 0}
    gsm = data.load("gsm8k", split="train", data_dir=shared_data)
    assert gsm[0]["question"].startswith("Natalia sold clips")


def test_default_data_dir_is_used_when_nothing_is_named(shared_data: Path):
    if data.default_data_dir() is None:
        pytest.skip("this checkout has no ../shared/data beside it")
    assert len(data.load("humaneval")) == 164


def test_environment_variable_selects_the_data_dir(shared_data: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv(data.DATA_DIR_ENV, str(shared_data))
    assert data.default_data_dir() == data.resolve_data_dir() == shared_data
    assert data.read_split("piqa").source.startswith(str(shared_data))


@pytest.mark.parametrize("origin", ["argument", "environment"])
def test_missing_data_dir_is_an_error(origin: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    missing = tmp_path / "nope"
    if origin == "environment":
        monkeypatch.setenv(data.DATA_DIR_ENV, str(missing))
        call = lambda: data.load("gsm8k")  # noqa: E731
    else:
        call = lambda: data.load("gsm8k", data_dir=missing)  # noqa: E731
    with pytest.raises(DataError, match="does not exist") as e:
        call()
    assert str(missing) in str(e.value) and "--data-dir" in str(e.value)


# -- subsets and ids ---------------------------------------------------------------------------------
def test_select_indices_is_reproducible_and_ordered():
    a = data.select_indices(1000, 30, seed=7)
    assert a == data.select_indices(1000, 30, seed=7) == sorted(random.Random(7).sample(range(1000), 30))
    assert a == sorted(a) and len(set(a)) == 30
    assert a != data.select_indices(1000, 30, seed=8)
    assert data.select_indices(5, 10) == [0, 1, 2, 3, 4]
    assert data.select_indices(5, None) == [0, 1, 2, 3, 4]
    with pytest.raises(DataError, match="positive"):
        data.select_indices(5, 0)


def test_load_limit_takes_the_seeded_subset(shared_data: Path):
    full = data.load("gsm8k", data_dir=shared_data)
    sub = data.load("gsm8k", limit=20, seed=3, data_dir=shared_data)
    assert sub == [full[i] for i in data.select_indices(len(full), 20, 3)]
    assert sub == data.load("gsm8k", 20, 3, None, shared_data)  # the positional order of the contract
    assert [r["_index"] for r in sub] == data.select_indices(len(full), 20, 3)
    assert len(data.load("gsm8k", limit=5000, data_dir=shared_data)) == 1319


def test_doc_ids_use_the_datasets_own_ids(shared_data: Path):
    spec = data.get_dataset_spec
    assert [spec("humaneval").doc_id(r) for r in data.load("humaneval", data_dir=shared_data)[:2]] == \
        ["HumanEval/0", "HumanEval/1"]
    assert spec("mbpp").doc_id(data.load("mbpp", data_dir=shared_data)[0]) == "11"
    rows = data.load("boolq", limit=3, seed=1, data_dir=shared_data)
    assert [spec("boolq").doc_id(r) for r in rows] == [str(r["_index"]) for r in rows]
    assert data.doc_id("mt_bench", data.load("mt_bench", data_dir=shared_data)[5]) == "5"
    with pytest.raises(DataError, match="_index"):
        spec("gsm8k").doc_id({"question": "q", "answer": "a"})


def test_spec_exposes_the_names_other_modules_use():
    s = data.get_dataset_spec("gsm8k")
    assert (s.split, s.local_dir, s.fewshot_split, s.family, s.expected_rows) == \
        ("test", "gsm8k", "train", "generate", 1319)
    assert s.required_fields == ("question", "answer")
    assert data.get_dataset_spec("mmlu").fewshot_split == "dev"
    assert data.get_dataset_spec("mbpp").fewshot_split == "prompt"
    assert data.available_datasets() == data.get_available_datasets()


def test_load_split_reads_other_splits(shared_data: Path):
    dev = data.load_split("mmlu", "dev", shared_data)
    assert len(dev) == 285 and dev[0]["_index"] == 0
    assert set(dev[0]) == {"question", "subject", "choices", "answer", "_index"}
    judges = data.load_split("mt_bench", "judge_prompts", shared_data)
    assert [j["name"] for j in judges][:2] == ["pair-v2", "pair-v2-multi-turn"]
    refs = data.load_split("mt_bench", "reference_answer_gpt-4", shared_data)
    assert len(refs) == 30 and refs[0]["choices"][0]["turns"]


# -- malformed and truncated files -------------------------------------------------------------------
def _write(dirpath: Path, name: str, split: str, lines: list[str], newline_at_end: bool = True) -> Path:
    path = dirpath / name / f"{split}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + ("\n" if newline_at_end else ""), encoding="utf-8")
    return path


def _gsm_lines(n: int) -> list[str]:
    return [json.dumps({"question": f"q{i}", "answer": f"a #### {i}"}) for i in range(n)]


def test_malformed_line_names_path_and_line(empty_dir: Path):
    lines = _gsm_lines(5)
    lines[2] = '{"question": "q2", "answer": '  # broken in the middle of the file
    path = _write(empty_dir, "gsm8k", "test", lines)
    with pytest.raises(DataError, match="malformed JSON") as e:
        data.load("gsm8k", data_dir=empty_dir)
    assert f"{path}:3:" in str(e.value)


def test_file_cut_inside_a_record_is_reported_as_truncated(empty_dir: Path):
    lines = _gsm_lines(4)
    lines[-1] = lines[-1][:15]
    path = _write(empty_dir, "gsm8k", "test", lines, newline_at_end=False)
    with pytest.raises(DataError, match="truncated") as e:
        data.load("gsm8k", data_dir=empty_dir)
    assert f"{path}:4:" in str(e.value)


def test_file_cut_at_a_line_boundary_fails_the_row_count(shared_data: Path, empty_dir: Path):
    src = (shared_data / "gsm8k" / "test.jsonl").read_text(encoding="utf-8").split("\n")[:1000]
    path = _write(empty_dir, "gsm8k", "test", src)
    with pytest.raises(DataError, match="1000 rows, expected 1319") as e:
        data.load("gsm8k", data_dir=empty_dir)
    assert f"{path}:1000:" in str(e.value)
    assert len(data.load("gsm8k", data_dir=empty_dir, strict=False)) == 1000


def test_schema_errors_name_path_line_and_field(empty_dir: Path):
    lines = _gsm_lines(3)
    lines[1] = json.dumps({"question": "q1"})
    path = _write(empty_dir, "gsm8k", "test", lines)
    with pytest.raises(DataError, match="missing field 'answer'") as e:
        data.load("gsm8k", data_dir=empty_dir, strict=False)
    assert f"{path}:2:" in str(e.value)
    lines[1] = json.dumps({"question": "q1", "answer": 7})
    _write(empty_dir, "gsm8k", "test", lines)
    with pytest.raises(DataError, match=r"field 'answer' is int, expected str"):
        data.load("gsm8k", data_dir=empty_dir, strict=False)
    lines[1] = json.dumps(["not", "an", "object"])
    _write(empty_dir, "gsm8k", "test", lines)
    with pytest.raises(DataError, match=r":2: expected a JSON object"):
        data.load("gsm8k", data_dir=empty_dir, strict=False)


def test_bool_is_not_an_int(empty_dir: Path):
    _write(empty_dir, "piqa", "validation", [json.dumps({"goal": "g", "sol1": "a", "sol2": "b", "label": True})])
    with pytest.raises(DataError, match="field 'label' is bool, expected int"):
        data.load("piqa", data_dir=empty_dir, strict=False)


def test_non_utf8_bytes_name_the_line(empty_dir: Path):
    path = empty_dir / "gsm8k" / "test.jsonl"
    path.parent.mkdir(parents=True)
    path.write_bytes(b'{"question": "q", "answer": "a"}\n{"question": "\xff", "answer": "a"}\n')
    with pytest.raises(DataError, match="not UTF-8") as e:
        data.load("gsm8k", data_dir=empty_dir, strict=False)
    assert f"{path}:2:" in str(e.value)


def test_blank_lines_and_bom_are_tolerated(empty_dir: Path):
    path = empty_dir / "gsm8k" / "test.jsonl"
    path.parent.mkdir(parents=True)
    path.write_bytes(b'\xef\xbb\xbf{"question": "q", "answer": "a"}\n\n{"question": "r", "answer": "b"}\n\n')
    assert [r["question"] for r in data.load("gsm8k", data_dir=empty_dir, strict=False)] == ["q", "r"]


# -- the Hub path, mocked at the network boundary ----------------------------------------------------
class _Socket:
    def close(self) -> None:
        pass


class FakeNetwork:
    """Serves Hub requests from local files, shaped as the Hub gives them (Arrow tables, extra columns)."""

    HUB_EXTRA_COLUMNS = {"math500": lambda i: {"subject": "Algebra", "unique_id": f"test/algebra/{i}.json"}}

    def __init__(self, monkeypatch: pytest.MonkeyPatch, root: Path):
        import datasets
        import huggingface_hub

        self.root = root
        self.calls: list[tuple] = []
        monkeypatch.setattr(hub.socket, "create_connection", lambda addr, timeout=None: _Socket())
        monkeypatch.setattr(datasets, "load_dataset", self.load_dataset)
        monkeypatch.setattr(huggingface_hub, "hf_hub_download", self.hf_hub_download)
        monkeypatch.setattr(hub, "urlopen", self.urlopen)

    def _spec_for(self, **match) -> data.DatasetSpec:
        for spec in data.DATASETS.values():
            if all(getattr(spec, k) == v for k, v in match.items()):
                return spec
        raise AssertionError(f"no dataset spec matches {match}")

    def load_dataset(self, path, name=None, split=None, revision=None, **kw):
        import datasets

        spec = self._spec_for(hub_id=path, hub_config=name, hub_revision=revision)
        self.calls.append(("load_dataset", path, name, split, revision))
        text = (self.root / spec.local_file(split)).read_text(encoding="utf-8")
        rows = [json.loads(line) for line in text.split("\n") if line.strip()]  # not splitlines(): U+2028
        extra = self.HUB_EXTRA_COLUMNS.get(spec.name)
        if extra:
            rows = [{**r, **extra(i)} for i, r in enumerate(rows)]
        return datasets.Dataset.from_list(rows)  # Arrow unifies struct fields, as on the Hub

    def hf_hub_download(self, repo_id, filename, repo_type=None, revision=None, **kw):
        self.calls.append(("hf_hub_download", repo_id, filename, repo_type))
        for spec in data.DATASETS.values():
            for split, remote in spec.remote_files.items():
                if remote.repo_id == repo_id and remote.path == filename and remote.repo_type == repo_type:
                    return str(self.root / spec.local_file(split))
        raise AssertionError(f"unexpected download {repo_id}/{filename}")

    def urlopen(self, url, timeout=None):
        self.calls.append(("urlopen", url))
        for spec in data.DATASETS.values():
            for split, remote in spec.remote_files.items():
                if remote.repo_id is None and remote.path == url:
                    return io.BytesIO((self.root / spec.local_file(split)).read_bytes())
        raise AssertionError(f"unexpected URL {url}")


@pytest.mark.parametrize("name", list(ROWS))
def test_hub_and_local_files_give_the_same_records(name: str, shared_data: Path, empty_dir: Path,
                                                   monkeypatch: pytest.MonkeyPatch):
    net = FakeNetwork(monkeypatch, shared_data)
    for split in ROWS[name]:
        from_hub = data.read_split(name, split, data_dir=empty_dir)
        from_disk = data.read_split(name, split, data_dir=shared_data)
        assert from_hub.status == "hub" and from_disk.status == "local"
        assert from_hub.records == from_disk.records, f"{name} {split}"
    assert net.calls, "the Hub path was not taken"


def test_hub_request_uses_the_spec_ids(shared_data: Path, empty_dir: Path, monkeypatch: pytest.MonkeyPatch):
    net = FakeNetwork(monkeypatch, shared_data)
    data.load("mbpp", limit=5, data_dir=empty_dir)
    data.load("piqa", limit=5, data_dir=empty_dir)
    data.load("mt_bench", data_dir=empty_dir)
    data.load("mt_bench", split="judge_prompts", data_dir=empty_dir)
    assert ("load_dataset", "google-research-datasets/mbpp", "sanitized", "test", None) in net.calls
    assert ("load_dataset", "ybisk/piqa", "default", "validation", "refs/convert/parquet") in net.calls
    assert ("hf_hub_download", "lmsys/mt-bench", "data/mt_bench/question.jsonl", "space") in net.calls
    assert any(c[0] == "urlopen" and c[1].endswith("judge_prompts.jsonl") for c in net.calls)


def test_ifeval_hub_nulls_are_dropped(shared_data: Path, empty_dir: Path, monkeypatch: pytest.MonkeyPatch):
    FakeNetwork(monkeypatch, shared_data)
    import datasets

    raw = datasets.load_dataset("google/IFEval", None, split="train").to_list()
    assert any(v is None for kw in raw[0]["kwargs"] for v in kw.values())  # what the Hub gives
    rec = data.load("ifeval", data_dir=empty_dir)[0]
    assert rec["kwargs"] == [{}, {"num_highlights": 3}, {"relation": "at least", "num_words": 300}]


def test_math500_hub_only_columns_are_dropped(shared_data: Path, empty_dir: Path, monkeypatch: pytest.MonkeyPatch):
    FakeNetwork(monkeypatch, shared_data)
    rec = data.load("math500", limit=1, data_dir=empty_dir)[0]
    assert set(rec) == {"problem", "solution", "answer", "level", "_index"}


def test_download_fills_the_cache_and_the_cache_is_read_next(shared_data: Path, empty_dir: Path,
                                                             monkeypatch: pytest.MonkeyPatch, isolated_env: Path):
    net = FakeNetwork(monkeypatch, shared_data)
    written = data.download("gsm8k,mt_bench")
    assert sorted(p.relative_to(data.cache_dir()).as_posix() for p in written) == sorted(
        ["gsm8k/test.jsonl", "gsm8k/train.jsonl", "mt_bench/question.jsonl", "mt_bench/judge_prompts.jsonl",
         "mt_bench/reference_answer_gpt-4.jsonl"])
    assert data.download("gsm8k") == []  # already cached
    n_calls = len(net.calls)
    cached = data.read_split("gsm8k", data_dir=empty_dir)
    assert cached.status == "cached" and len(net.calls) == n_calls
    assert cached.records == data.load("gsm8k", data_dir=shared_data)
    status = {s["name"]: s for s in data.summary(empty_dir, "gsm8k,mt_bench,humaneval")}
    assert status["gsm8k"]["status"] == "cached" and status["gsm8k"]["rows"] == 1319
    assert status["mt_bench"]["split_rows"] == ROWS["mt_bench"]
    assert status["humaneval"]["status"] == "missing" and status["humaneval"]["rows"] is None
    assert status["humaneval"]["source"] == "openai/openai_humaneval:test"


# -- offline -----------------------------------------------------------------------------------------
def test_offline_hub_load_fails_fast_with_the_fix(empty_dir: Path, monkeypatch: pytest.MonkeyPatch):
    import datasets

    def never(*a, **k):
        raise AssertionError("load_dataset must not be reached when the Hub is unreachable")

    monkeypatch.setattr(datasets, "load_dataset", never)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # a closed local port: a real, instant refusal
    start = time.monotonic()
    with pytest.raises(DataError) as e:
        data.load("gsm8k", data_dir=empty_dir)
    assert time.monotonic() - start < 10
    msg = str(e.value)
    assert "--data-dir" in msg and "QWENHARNESS_DATA_DIR" in msg and "openai/gsm8k" in msg
    assert str(empty_dir / "gsm8k" / "test.jsonl") in msg  # says where it looked


def test_offline_plain_url_fails_fast(empty_dir: Path, monkeypatch: pytest.MonkeyPatch):
    def refuse(addr, timeout=None):
        raise ConnectionRefusedError(111, "Connection refused")

    monkeypatch.setattr(hub.socket, "create_connection", refuse)
    with pytest.raises(DataError, match="raw.githubusercontent.com:443 unreachable"):
        data.load("mt_bench", split="judge_prompts", data_dir=empty_dir)


def test_hf_offline_mode_errors_become_data_errors(empty_dir: Path, monkeypatch: pytest.MonkeyPatch):
    import datasets

    def offline(*a, **k):
        raise ConnectionError("Couldn't reach 'openai/gsm8k' on the Hub (OfflineModeIsEnabled)")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(DataError, match="OfflineModeIsEnabled.*--data-dir"):
        data.load("gsm8k", data_dir=empty_dir)
    with pytest.raises(DataError, match="HF_HUB_OFFLINE"):
        data.load("mt_bench", split="judge_prompts", data_dir=empty_dir)


# -- summary -----------------------------------------------------------------------------------------
def test_summary_of_the_shared_data(shared_data: Path):
    rows = data.summary(data_dir=shared_data)
    assert [r["name"] for r in rows] == data.get_available_datasets()
    for r in rows:
        assert r["status"] == "local" and not r["problems"]
        assert r["rows"] == ROWS[r["name"]][r["eval_split"]] and r["split_rows"] == ROWS[r["name"]]
        assert r["size_bytes"] == sum((shared_data / r["name"] / f"{s}.jsonl").stat().st_size
                                      for s in ROWS[r["name"]])
        assert r["source"] == str(shared_data / r["name"])


def test_summary_reports_short_files_and_missing_splits(shared_data: Path, empty_dir: Path):
    shutil.copy(shared_data / "gsm8k" / "test.jsonl", empty_dir / "x.jsonl")
    _write(empty_dir, "gsm8k", "test", (empty_dir / "x.jsonl").read_text(encoding="utf-8").split("\n")[:10])
    (r,) = data.summary(empty_dir, ["gsm8k"])
    assert r["status"] == "local" and r["rows"] == 10 and r["split_rows"]["train"] is None
    assert any("split train missing" in p for p in r["problems"])
    assert any("10 rows, expected 1319" in p for p in r["problems"])


# -- the command line --------------------------------------------------------------------------------
def test_cli_summary(shared_data: Path, capsys: pytest.CaptureFixture[str]):
    assert main(["datasets", "--summary", "--data-dir", str(shared_data)]) == 0
    out = capsys.readouterr().out
    for name in ROWS:
        assert name in out
    assert "14 local, 0 cached, 0 missing" in out


def test_cli_summary_json_and_list(shared_data: Path, capsys: pytest.CaptureFixture[str]):
    assert main(["datasets", "--json", "--datasets", "gsm8k", "--data-dir", str(shared_data)]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["status"] == "local" and row["rows"] == 1319
    assert main(["datasets", "--list", "--json"]) == 0
    specs = json.loads(capsys.readouterr().out)
    assert {s["name"] for s in specs} == set(ROWS)
    assert main(["datasets", "--list"]) == 0
    assert "openai/gsm8k[main]:test" in capsys.readouterr().out  # brackets survive the table markup


def test_cli_check(shared_data: Path, empty_dir: Path, capsys: pytest.CaptureFixture[str]):
    assert main(["datasets", "--check", "--datasets", "humaneval,mbpp", "--data-dir", str(shared_data)]) == 0
    assert "2 of 2 datasets passed" in capsys.readouterr().out
    _write(empty_dir, "humaneval", "test", ['{"task_id": "HumanEval/0"'], newline_at_end=False)
    assert main(["datasets", "--check", "--datasets", "humaneval", "--data-dir", str(empty_dir)]) == 1
    out = capsys.readouterr().out
    assert "FAILED" in out and "humaneval/test.jsonl:1:" in out


@pytest.mark.parametrize("argv, needle", [
    (["datasets", "--summary", "--data-dir", "/nonexistent"],
     "data directory /nonexistent (--data-dir) does not exist"),
    (["datasets", "--datasets", "gsm9k"], "unknown dataset 'gsm9k'"),
])
def test_cli_errors_are_one_line_with_status_2(argv: list[str], needle: str, capsys: pytest.CaptureFixture[str]):
    assert main(argv) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("qwenharness: error: ") and needle in lines[0]
    assert captured.out == ""


def test_cli_error_in_a_fresh_process_has_no_traceback():
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.run([sys.executable, "-m", "qwenharness", "datasets", "--summary", "--data-dir", "/nonexistent"],
                          cwd=root, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_cli_download_offline_is_a_clean_error(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    assert main(["datasets", "--download", "--datasets", "gsm8k"]) == 2
    err = capsys.readouterr().err
    assert "cannot read dataset 'gsm8k'" in err and "Traceback" not in err


def test_load_docs_pairs_rows_with_index_and_id(shared_data: Path):
    docs = data.load_docs("humaneval", limit=5, seed=2, data_dir=shared_data)
    assert [d.record for d in docs] == data.load("humaneval", limit=5, seed=2, data_dir=shared_data)
    assert all(d.index == d.record["_index"] and d.id == d.record["task_id"] for d in docs)
    assert [d.id for d in data.load_docs("piqa", limit=3, seed=2, data_dir=shared_data)] == \
        [str(r["_index"]) for r in data.load("piqa", limit=3, seed=2, data_dir=shared_data)]
