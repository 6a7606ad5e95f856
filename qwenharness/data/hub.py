"""The network boundary of the dataset layer: everything that talks to the Hugging Face Hub or GitHub.

`fetch_split(spec, split)` returns a split's raw rows. Before any download it checks, within a few
seconds, that the host answers at all, so that an offline machine gets a clear DataError at once
instead of minutes of retries. Tests replace `datasets.load_dataset`, `huggingface_hub.hf_hub_download`
and `urlopen` here, and nothing else.
"""

from __future__ import annotations

import os
import socket
import time
import urllib.parse
from pathlib import Path
from typing import Any
from urllib.request import urlopen

from ..errors import DataError
from .registry import DatasetSpec

PROBE_TIMEOUT_S = 3.0
_probe_cache: dict[tuple[str, int], tuple[float, str | None]] = {}
_PROBE_TTL_S = 60.0


def hub_endpoint() -> str:
    return os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")


def _offline_env() -> bool:
    return any(os.environ.get(v, "").strip().lower() in ("1", "true", "yes", "on")
               for v in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"))


def unreachable_reason(url: str, timeout: float = PROBE_TIMEOUT_S) -> str | None:
    """None if a TCP connection to the URL's host opens within `timeout`, else why it did not."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    key = (host, port)
    now = time.monotonic()
    cached = _probe_cache.get(key)
    if cached is not None and now - cached[0] < _PROBE_TTL_S:
        return cached[1]
    reason: str | None = None
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as e:
        reason = f"{host}:{port} unreachable: {e.strerror or e.__class__.__name__}"
    _probe_cache[key] = (now, reason)
    return reason


def _offline_error(spec: DatasetSpec, split: str, why: str, context: str = "") -> DataError:
    return DataError(
        f"{context}cannot read dataset '{spec.name}' ({split}) from {spec.hub_source(split)}: {why}",
        "offline? point --data-dir or QWENHARNESS_DATA_DIR at a folder of local files "
        f"(<dir>/{spec.local_file(split)}; ../shared/data has all 14), or run "
        "`qwenharness datasets --download` once on a machine with network",
    )


def fetch_split(spec: DatasetSpec, split: str, context: str = "") -> tuple[list[dict[str, Any]], str]:
    """Raw rows of one split from the network, and a description of where they came from.

    `context` starts any error message (the loader says which folders it searched first).
    """
    remote = spec.remote_files.get(split)
    url = remote.path if remote is not None and remote.repo_id is None else hub_endpoint()
    if _offline_env():
        # Hugging Face's offline mode: its own caches may still serve the split; a plain URL cannot.
        if remote is not None and remote.repo_id is None:
            raise _offline_error(spec, split, "HF_HUB_OFFLINE/HF_DATASETS_OFFLINE is set", context)
    else:
        why = unreachable_reason(url)
        if why is not None:
            raise _offline_error(spec, split, why, context)
    if remote is not None:
        path = _download_file(spec, split, context)
        from .loader import read_jsonl  # local import: loader imports this module

        return [row for _, row in read_jsonl(path)], spec.hub_source(split)
    return _load_with_datasets(spec, split, context), spec.hub_source(split)


def _download_file(spec: DatasetSpec, split: str, context: str) -> Path:
    remote = spec.remote_files[split]
    try:
        if remote.repo_id is not None:
            from huggingface_hub import hf_hub_download

            return Path(hf_hub_download(remote.repo_id, remote.path, repo_type=remote.repo_type,
                                        revision=remote.revision, etag_timeout=10))
        from .loader import cache_dir

        target = cache_dir() / ".downloads" / spec.local_folder / f"{split}.jsonl"
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(".part")
        with urlopen(remote.path, timeout=30) as resp:  # noqa: S310 - https URL from the registry
            tmp.write_bytes(resp.read())
        os.replace(tmp, target)
        return target
    except DataError:
        raise
    except Exception as e:  # network, HTTP or Hub errors: all end here, with the source named
        raise _offline_error(spec, split, f"{type(e).__name__}: {e}", context) from e


def _load_with_datasets(spec: DatasetSpec, split: str, context: str) -> list[dict[str, Any]]:
    try:
        import datasets
    except ImportError as e:  # pragma: no cover - a dependency of the package
        raise DataError("the 'datasets' package is not installed",
                        "pip install datasets, or use local files with --data-dir") from e
    try:
        ds = datasets.load_dataset(spec.hub_id, spec.hub_config, split=spec.hub_split(split),
                                   revision=spec.hub_revision)
    except Exception as e:  # ConnectionError, DatasetNotFoundError, offline-mode errors, ...
        raise _offline_error(spec, split, f"{type(e).__name__}: {e}", context) from e
    return ds.to_list()
