"""Few-shot example selection shared by the tasks.

Two rules for seeded draws (`TaskOptions.fewshot_sampler`, `--fewshot-sampler`):
- "harness" (the default): per document. The examples for a doc depend only on the seed, the doc's
  row and the pool, never on which other docs are in the run, so `--sample-limit` subsets, resumed
  runs and reordered batches all see the same prompts. The doc itself is never among its examples.
- "lm-eval": lm-evaluation-harness 0.4.x's `ContextSampler`: one `random.Random(seed)` per task, and
  for each document of the run in split order `rnd.sample(pool, n)`, or, when the pool is the
  evaluation split, `rnd.sample(pool, n + 1)` with rows equal to the doc dropped and the first n
  kept. A doc's shots then depend on the documents before it in the run, as in lm-eval (the same
  documents, seed and pool give lm-eval's shots). `TaskOptions.fewshot_order` holds the run's rows
  in order; the draws are replayed from the first, so a resumed run gets the same shots.
Tasks with canonical examples use `first_n` instead (MMLU: the subject's five dev rows; MBPP: its
prompt split), whatever the rule.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

from ..errors import ConfigError

SAMPLERS = ("harness", "lm-eval")
RULES = {
    "harness": "seeded per document: Random(f'{seed}:{task}:{row}').sample(pool), the doc excluded",
    "lm-eval": "lm-eval ContextSampler: one Random(seed) per task, rnd.sample(pool, n) per doc in split "
               "order (n+1 less the doc when the pool is the evaluation split)",
    "first_n": "the first n rows of the pool",
    "first_n_by_subject": "the first n rows of the pool with the doc's subject (lm-eval's first_n)",
}


def _content(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k != "_index"}


def same_doc(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """True when two rows carry the same content (the `_index` key is ignored)."""
    return _content(a) == _content(b)


def sample_fewshot(pool: Sequence[dict[str, Any]], doc: dict[str, Any], n: int, seed: int,
                   task: str, *, sampler: str = "harness", order: Sequence[int] | None = None,
                   pool_is_eval_split: bool = False) -> list[dict[str, Any]]:
    """`n` examples from `pool` under a sampler rule (see the module docstring). "harness": seeded by
    (seed, doc row), rows equal to `doc` excluded. "lm-eval": replayed over `order` (the run's rows in
    split order, which must hold the doc's), excluding the doc only when `pool_is_eval_split`."""
    if n <= 0:
        return []
    if not pool:
        raise ConfigError(f"{task}: {n}-shot prompts need few-shot examples but none were given",
                          f"pass the '{task}' few-shot split to the task, or use n_shot=0")
    if sampler == "lm-eval":
        return _lm_eval_shots(pool, doc, n, seed, task, order, pool_is_eval_split)
    if sampler != "harness":
        raise ConfigError(f"unknown few-shot sampler '{sampler}'", f"choose one of {', '.join(SAMPLERS)}")
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


_PLANS: dict[tuple[Any, ...], dict[int, list[int]]] = {}


def _lm_eval_shots(pool: Sequence[dict[str, Any]], doc: dict[str, Any], n: int, seed: int, task: str,
                   order: Sequence[int] | None, exclude: bool) -> list[dict[str, Any]]:
    row = doc.get("_index")
    if order is None or row not in order:
        raise ConfigError(f"{task}: the lm-eval few-shot sampler needs the run's documents in order "
                          f"(TaskOptions.fewshot_order), and row {row} is not among them",
                          "set fewshot_order to the rows of every document of the run, in split order")
    if n + (1 if exclude else 0) > len(pool):
        raise ConfigError(f"{task}: asked for {n} few-shot examples from a pool of {len(pool)}",
                          f"use n_shot <= {len(pool) - (1 if exclude else 0)}")
    key = (id(pool), len(pool), tuple(order), n, seed, exclude)
    plan = _PLANS.get(key)
    if plan is None:  # one replay of the whole run, kept for the run's other documents
        _PLANS.clear()  # only the current run's plan is kept
        plan = _PLANS[key] = _lm_eval_plan(pool, order, n, seed, exclude)
    return [pool[i] for i in plan[row]]


def _lm_eval_plan(pool: Sequence[dict[str, Any]], order: Sequence[int], n: int, seed: int,
                  exclude: bool) -> dict[int, list[int]]:
    """Row -> pool indices, drawing as lm-eval's ContextSampler.sample does for each row in order.

    The eval doc of row r is pool[r] when the pool is the evaluation split (the rows are numbered in
    it); lm-eval compares documents by content, which `same_doc` does here too."""
    rnd = random.Random(seed)
    indices = list(range(len(pool)))
    plan: dict[int, list[int]] = {}
    for row in sorted(order):
        if not exclude:
            plan[row] = rnd.sample(indices, n)
            continue
        doc = pool[row] if 0 <= row < len(pool) else None
        drawn = [i for i in rnd.sample(indices, n + 1) if doc is None or not same_doc(pool[i], doc)][:n]
        if len(drawn) < n:  # duplicates of the doc drawn: lm-eval resamples from the pool without them
            drawn = rnd.sample([i for i in indices if doc is None or not same_doc(pool[i], doc)], n)
        plan[row] = drawn
    return plan
