"""Training batches, drawn a chunk of steps at a time.

Sampling a batch is a dozen tiny tensor ops; done per step it costs more than a compiled
train step of a one-run group. A chunk is drawn from a generator seeded by (seed, chunk
index), so the batch at any step is a pure function of the step: a resumed run sees the
same data without saving any generator state, and a run sees the same data alone or in a
group.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from clampdsl.tasks.per_run import for_runs

CHUNK_STEPS = 100


class BatchStream:
    """Batches [B, …] shared by the group's runs, or [R, B, …] when their sources differ.

    `sources` holds the distinct (sampler, data seed) pairs (tasks/base.py); `index` says
    which one each run draws from."""

    def __init__(
        self,
        sources: Sequence[tuple[object, int]],
        index: Sequence[int],
        batch: int,
        device="cpu",
    ):
        self.sources, self.index, self.batch, self.device = sources, index, batch, device
        self._chunk_index: int | None = None
        self._chunk = None

    def at(self, step: int):
        index, offset = divmod(step, CHUNK_STEPS)
        if index != self._chunk_index:
            self._chunk = for_runs([self._sample(*s, index) for s in self.sources], self.index)
            self._chunk_index = index
        return self._chunk.rows(slice(offset * self.batch, (offset + 1) * self.batch))

    def _sample(self, task, seed: int, chunk: int):
        generator = torch.Generator().manual_seed(seed * 1_000_003 + chunk)
        return task.sample(CHUNK_STEPS * self.batch, generator).to(self.device)
