"""Evaluation at one step: clamped losses on the eval sets, and measures."""

from __future__ import annotations

from collections.abc import Callable

import torch

from clampdsl.analysis.measures import MEASURES
from clampdsl.compile.plan import Measure
from clampdsl.model.clamps import ClampState
from clampdsl.model.transformer import query_loss
from clampdsl.tasks.fewshot import Batch

# Sequences × runs per forward. Fewer pay the per-call overhead more often; many more make
# activations of tens of MB that stream through memory instead of staying in the caches.
# Yet a chunk needs some width: the no-gradient forward's GEMMs are per run and position,
# one column per sequence. Measured on a 2-core CPU (docs/performance.md): a set of 1000
# sequences evaluates fastest whole for one run, in chunks of 500 for 6 runs and of 200-250
# for 32 (100: 18% slower).
RUN_SEQUENCES_PER_FORWARD = 3200
MIN_SEQUENCES_PER_FORWARD = 200


@torch.no_grad()
def evaluate(
    forward: Callable,
    clamps: ClampState,
    eval_sets: dict[str, Batch],
    measures: tuple[Measure, ...],
) -> dict[str, torch.Tensor]:
    """Returns {"train.loss": [R], "train.acc": [R], …, "induction-strength L2.H3": [R]}.

    `forward` is the model (or its compiled form). Eval sets run with the clamps active at
    this step (as the reference: Fig. 5b losses are clamped losses). Measures read the
    attention recorded in the same forward on the first eval set (`train` by default), as
    the model runs in training: a clamped pattern shows its clamp, and a run trained with
    layer 1 bypassed shows what its last layer learned to compute.
    """
    results, record = {}, bool(measures)
    for index, (name, batch) in enumerate(eval_sets.items()):
        measured = measures if index == 0 else ()
        logits, values = _forward_in_chunks(forward, clamps, batch, record, measured)
        targets = batch.labels[..., -1]  # [B], or [R, B] when runs have their own data
        results[f"{name}.loss"] = query_loss(logits, targets)
        results[f"{name}.acc"] = (logits.argmax(-1) == targets).float().mean(-1)
        for measure, value in zip(measured, values, strict=True):
            for head in measure.heads:
                results[f"{measure.metric} L{measure.layer + 1}.H{head}"] = value[:, head]
    return results


def _forward_in_chunks(
    forward: Callable,
    clamps: ClampState,
    batch: Batch,
    record: bool,
    measures: tuple[Measure, ...],
):
    """Query logits [R, B, L] of a whole set, and each measure's value [R, H] on it.
    Whether the forward records is the same for every set (one compiled graph serves them
    all): only when measures read the patterns (recording keeps layers a clamp bypasses).
    Measures are means over sequences, taken chunk by chunk: the patterns of a whole set
    would be tens of MB to copy together."""
    logits, values = [], [0.0] * len(measures)
    sequences = batch.labels.shape[-2]
    size = chunk_size(sequences, clamps.n_runs, batch.labels.device.type)
    for start in range(0, sequences, size):
        chunk, recorded = batch.rows(slice(start, start + size)), {} if record else None
        # Eval sets see few distinct feature vectors: the table embeds each one once.
        logits.append(
            forward(chunk.table, chunk.labels, clamps, record=recorded, items=chunk.items)
        )
        share = chunk.labels.shape[-2] / sequences
        for i, measure in enumerate(measures):
            value = MEASURES[measure.metric](recorded[measure.layer], chunk)
            values[i] = values[i] + value * share
    return torch.cat(logits, 1), values


def chunk_size(sequences: int, runs: int, device_type: str = "cpu") -> int:
    """Sequences per forward: the set in the fewest equal chunks of at most
    RUN_SEQUENCES_PER_FORWARD / runs sequences (but no fewer than
    MIN_SEQUENCES_PER_FORWARD), or a few more chunks where that divides the
    set evenly (a shorter last chunk is a second shape: a second compiled graph). The
    chunks are for a CPU's caches; a GPU takes a whole set per forward (fewer launches)."""
    if device_type == "cuda":
        return sequences
    most = max(MIN_SEQUENCES_PER_FORWARD, RUN_SEQUENCES_PER_FORWARD // runs)
    fewest = -(-sequences // most)
    for chunks in range(fewest, 2 * fewest + 1):
        if sequences % chunks == 0:
            return sequences // chunks
    return -(-sequences // fewest)
