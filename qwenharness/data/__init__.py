"""Dataset registry and loaders for the 14 benchmarks (registry.py: the specs; loader.py: where data is
read from; hub.py: the network). The API other modules use:

    load(name, limit=None, seed=1234, split=None, data_dir=None) -> list[dict]
        rows of the evaluation split (or `split`) in the Hub schema, each with "_index" (its row in
        the split); `limit` takes a seeded reproducible subset, in row order
    load_docs(...) -> list[Doc]                              the same rows as Doc(index, id, record)
    load_split(name, split, data_dir=None) -> list[dict]     every row of another split
    get_dataset_spec(name) -> DatasetSpec                    .split, .local_dir, .fewshot_split,
        .family, .expected_rows, .required_fields, .doc_id(row)
    available_datasets() -> list[str]                        the 14 names
    default_data_dir() -> Path | None                        $QWENHARNESS_DATA_DIR, else ../shared/data
    summary(data_dir=None) -> list[dict]                     what `qwenharness datasets --summary` shows
    download(names=None)                                     Hub -> cache, on a machine with network
    verify_dataset(name, data_dir=None)                      every split read and checked
    parse_selection("mmlu:stem") -> Selection                a part of a dataset (subsets.py); load()
        and load_docs() take such names too
"""

from .loader import (
    CACHE_DIR_ENV,
    DATA_DIR_ENV,
    DEFAULT_SEED,
    DatasetStatus,
    Doc,
    SplitData,
    cache_dir,
    dataset_status,
    default_data_dir,
    doc_id,
    download,
    find_split_file,
    load,
    load_docs,
    load_split,
    read_jsonl,
    read_split,
    resolve_data_dir,
    select_indices,
    summary,
    verify_dataset,
)
from .registry import (
    DATASETS,
    DatasetSpec,
    FieldSpec,
    RemoteFile,
    Subtasks,
    available_datasets,
    get_available_datasets,
    get_dataset_spec,
    resolve_dataset_names,
)
from .subsets import Selection, base_name, parse_selection

__all__ = [
    "CACHE_DIR_ENV", "DATASETS", "DATA_DIR_ENV", "DEFAULT_SEED", "DatasetSpec", "DatasetStatus", "Doc", "FieldSpec",
    "RemoteFile", "SplitData", "available_datasets", "cache_dir", "dataset_status", "default_data_dir",
    "doc_id", "download", "find_split_file", "get_available_datasets", "get_dataset_spec", "load",
    "load_docs", "load_split", "read_jsonl", "read_split", "resolve_data_dir", "resolve_dataset_names",
    "select_indices", "summary", "verify_dataset", "Selection", "Subtasks", "base_name", "parse_selection",
]
