"""Evaluation at one step: clamped losses on the eval sets, and measures."""

from __future__ import annotations

from collections.abc import Callable

import torch

from clampdsl.analysis.measures import MEASURES
from clampdsl.compile.plan import Measure
from clampdsl.model.clamps import ClampState
from clampdsl.model.transformer import query_loss
from clampdsl.tasks.fewshot import Batch

# Sequences per forward: a whole 1000-sequence set makes activations of tens of MB that
# stream through memory; chunks this size stay in cache and evaluate ~25% faster.
CHUNK = 250


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
    results, read = {}, bool(measures)
    for index, (name, batch) in enumerate(eval_sets.items()):
        logits, patterns = _forward_in_chunks(forward, clamps, batch, read, read and index == 0)
        targets = batch.labels[..., -1]  # [B], or [R, B] when runs have their own data
        results[f"{name}.loss"] = query_loss(logits, targets)
        results[f"{name}.acc"] = (logits.argmax(-1) == targets).float().mean(-1)
        if index == 0:
            for measure in measures:
                values = MEASURES[measure.metric](patterns[measure.layer], batch)
                for head in measure.heads:
                    results[f"{measure.metric} L{measure.layer + 1}.H{head}"] = values[:, head]
    return results


def _forward_in_chunks(
    forward: Callable, clamps: ClampState, batch: Batch, record: bool, keep_patterns: bool
):
    """Query logits [R, B, L] of a whole set, and each layer's pattern [R, B, H, Nq, N] if
    asked. Whether the forward records is the same for every set (one compiled graph serves
    them all): only when measures read the patterns (recording keeps layers a clamp bypasses)."""
    logits, patterns = [], {}
    for start in range(0, batch.labels.shape[-2], CHUNK):
        chunk, recorded = batch.rows(slice(start, start + CHUNK)), {} if record else None
        # Eval sets see few distinct feature vectors: the table embeds each one once.
        logits.append(
            forward(chunk.table, chunk.labels, clamps, record=recorded, items=chunk.items)
        )
        for layer, pattern in recorded.items() if keep_patterns else ():
            patterns.setdefault(layer, []).append(pattern)
    return torch.cat(logits, 1), {layer: torch.cat(p, 1) for layer, p in patterns.items()}
