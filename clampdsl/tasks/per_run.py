"""Data for a group whose runs do not all see the same task.

Runs of a group share one batched model; their data is shared too when they all draw from
the same source (task and seed), which is the common case and the cheapest. Otherwise each
distinct source is sampled once and the group's batch is stacked along a leading run
dimension, run r taking its own source's rows.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import torch

from clampdsl.tasks.fewshot import Batch


def distinct(keys: Sequence[Hashable]) -> tuple[list, list[int]]:
    """(the distinct keys in first-seen order, each key's index among them)."""
    unique = list(dict.fromkeys(keys))
    return unique, [unique.index(key) for key in keys]


def for_runs(batches: Sequence[Batch], index: Sequence[int]) -> Batch:
    """One batch per distinct source → the group's batch: the batch itself when there is
    one source, else [R, …] with run r holding batches[index[r]], over one table that
    holds every source's feature vectors."""
    if len(batches) == 1:
        return batches[0]
    pick = torch.tensor(index, device=batches[0].labels.device)
    offsets = [0]
    for batch in batches[:-1]:
        offsets.append(offsets[-1] + len(batch.table))

    def stacked(parts):
        return torch.stack(parts).index_select(0, pick)

    return Batch(
        stacked([b.items + offset for b, offset in zip(batches, offsets, strict=True)]),
        stacked([b.labels for b in batches]),
        stacked([b.match for b in batches]),
        torch.cat([b.table for b in batches]),
    )
