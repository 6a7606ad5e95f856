"""The one "newest stored result per key" rule that every reader of the result store uses.

The report (report/collect.py) and the scaling analysis (scaling.py) read the same files, so they
must agree on which file is the newest for a key: the greatest stamp wins, and on equal stamps the
file read later (paths are read in sorted order) wins.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from datetime import datetime, timezone
from typing import Any, TypeVar

T = TypeVar("T")
K = TypeVar("K", bound=Hashable)


def newest_per_key(items: Iterable[T], key: Callable[[T], K], stamp: Callable[[T], Any]) -> dict[K, T]:
    """key -> the item with the greatest `stamp` among the items of that key."""
    out: dict[K, T] = {}
    for item in items:
        k = key(item)
        if k not in out or stamp(item) >= stamp(out[k]):
            out[k] = item
    return out


def parse_stamp(stamp: Any) -> datetime | None:
    """A stored ISO time (`finished_at`, a gate's `started_at`) as an aware datetime (UTC when it names
    no zone); None when it is missing or not a time."""
    try:
        t = datetime.fromisoformat(str(stamp))
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=timezone.utc)
