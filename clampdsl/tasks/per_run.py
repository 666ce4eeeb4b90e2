"""Data for a group whose runs do not all see the same task.

Runs of a group share one batched model; their data is shared too when they all draw from
the same source (task and seed), which is the common case and the cheapest. Otherwise each
distinct source is sampled once and the group's batch is stacked along a leading run
dimension, run r taking its own source's rows.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import torch


def distinct(keys: Sequence[Hashable]) -> tuple[list, list[int]]:
    """(the distinct keys in first-seen order, each key's index among them)."""
    unique = list(dict.fromkeys(keys))
    return unique, [unique.index(key) for key in keys]


def for_runs(batches: Sequence, index: Sequence[int]):
    """One batch per distinct source → the group's batch: the batch itself when there is
    one source, else [R, …] with run r holding batches[index[r]] (each task's batch type
    stacks its own fields)."""
    if len(batches) == 1:
        return batches[0]
    pick = torch.tensor(index, device=batches[0].device)
    return type(batches[0]).for_runs(batches, pick)
