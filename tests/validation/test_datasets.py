"""Milestone 1: every selected dataset (--datasets, default all 14) loads from --data-dir /
$QWENHARNESS_DATA_DIR / ../shared/data, the cache or the Hub, in its expected schema and with the
benchmark's row counts."""

from __future__ import annotations

import pytest

from qwenharness.data import get_dataset_spec, load, registry, verify_dataset

pytestmark = pytest.mark.milestone1

# Rows per split, as published (../shared/data/README.md agrees with the Hub's split sizes).
EXPECTED_ROWS: dict[str, dict[str, int]] = {
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

PYTHON_TYPES = {"str": str, "int": int, "float": (int, float), "bool": bool, "list": list, "dict": dict}


def test_dataset_is_available(harness, dataset_name: str, record_property) -> None:
    spec = get_dataset_spec(dataset_name)
    splits = verify_dataset(dataset_name, harness.data_dir)  # raises DataError naming file and line
    assert {s: len(d.records) for s, d in splits.items()} == EXPECTED_ROWS[dataset_name]
    for split, d in splits.items():
        record_property(f"{split}_source", f"{d.status}: {d.source}")
        for field in registry.fields_for(spec, split):
            for rec in d.records:
                if field.name not in rec:
                    assert not field.required, f"{d.source} row {rec['_index']}: no '{field.name}'"
                    continue
                value = rec[field.name]
                assert isinstance(value, PYTHON_TYPES[field.type]) and not (
                    isinstance(value, bool) and field.type in ("int", "float")
                ), f"{d.source} row {rec['_index']}: '{field.name}' is {type(value).__name__}, not {field.type}"
        assert [r["_index"] for r in d.records] == list(range(len(d.records)))
    # --sample-limit takes the same subset every time
    limit = harness.sample_limits.for_dataset(dataset_name)
    if limit:
        first = load(dataset_name, limit, data_dir=harness.data_dir)
        assert len(first) == min(limit, spec.expected_rows)
        assert first == load(dataset_name, limit, data_dir=harness.data_dir)
