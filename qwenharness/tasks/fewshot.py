"""Few-shot example selection shared by the tasks.

Selection is deterministic and per document: the examples for a doc depend only on the seed, the
doc's id and the pool, never on which other docs are in the run. So `--sample-limit`, resumed runs
and reordered batches all see the same prompts. (lm-evaluation-harness draws from one seeded
generator in document order, so its shots for a doc depend on the docs before it.) The doc itself
is never among its own examples, which matters when the pool is the evaluation split.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

from ..errors import ConfigError


def _content(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k != "_index"}


def same_doc(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """True when two rows carry the same content (the `_index` key is ignored)."""
    return _content(a) == _content(b)


def sample_fewshot(pool: Sequence[dict[str, Any]], doc: dict[str, Any], n: int, seed: int,
                   task: str) -> list[dict[str, Any]]:
    """`n` examples from `pool`, seeded by (seed, doc id), excluding rows equal to `doc`."""
    if n <= 0:
        return []
    if not pool:
        raise ConfigError(f"{task}: {n}-shot prompts need few-shot examples but none were given",
                          f"pass the '{task}' few-shot split to the task, or use n_shot=0")
    rng = random.Random(f"{seed}:{task}:{doc.get('_index', '')}")
    # Draw a few spare indices so that excluding the doc (and any duplicate of it) rarely needs a retry.
    order = rng.sample(range(len(pool)), min(len(pool), n + 4))
    picked = [pool[i] for i in order if not same_doc(pool[i], doc)][:n]
    if len(picked) < n:  # many duplicates of the doc in a tiny pool: walk the whole pool
        rest = [i for i in rng.sample(range(len(pool)), len(pool)) if i not in order]
        picked += [pool[i] for i in rest if not same_doc(pool[i], doc)][: n - len(picked)]
    if len(picked) < n:
        raise ConfigError(f"{task}: asked for {n} few-shot examples but the pool has only {len(picked)} "
                          "rows other than the document itself", f"use n_shot <= {len(picked)}")
    return picked


def first_n(pool: Sequence[dict[str, Any]], doc: dict[str, Any], n: int, task: str,
            key: str | None = None) -> list[dict[str, Any]]:
    """The first `n` rows of `pool` (those sharing `doc[key]` when key is given), excluding `doc`."""
    if n <= 0:
        return []
    rows = [r for r in pool if (key is None or r.get(key) == doc.get(key)) and not same_doc(r, doc)]
    if len(rows) < n:
        what = f" with {key}={doc.get(key)!r}" if key else ""
        raise ConfigError(f"{task}: asked for {n} few-shot examples but the few-shot split has only "
                          f"{len(rows)}{what}", f"use n_shot <= {len(rows)}")
    return rows[:n]
