"""Training batches, drawn a chunk of steps at a time.

Sampling a batch is a dozen tiny tensor ops; done per step it costs more than a compiled
train step of a one-run group. A chunk is drawn from a generator seeded by (seed, chunk
index), so the batch at any step is a pure function of the step: a resumed run sees the
same data without saving any generator state.
"""

from __future__ import annotations

import torch

from clampdsl.tasks.fewshot import Batch, FewShotTask

CHUNK_STEPS = 100


class BatchStream:
    def __init__(self, task: FewShotTask, batch: int, seed: int, device="cpu"):
        self.task, self.batch, self.seed, self.device = task, batch, seed, device
        self._chunk_index: int | None = None
        self._chunk: Batch | None = None

    def at(self, step: int) -> Batch:
        index, offset = divmod(step, CHUNK_STEPS)
        if index != self._chunk_index:
            generator = torch.Generator().manual_seed(self.seed * 1_000_003 + index)
            self._chunk = self.task.sample(CHUNK_STEPS * self.batch, generator).to(self.device)
            self._chunk_index = index
        rows = slice(offset * self.batch, (offset + 1) * self.batch)
        chunk = self._chunk
        return Batch(chunk.features[rows], chunk.labels[rows], chunk.match[rows])
