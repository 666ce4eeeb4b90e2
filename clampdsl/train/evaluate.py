"""Evaluation at one step: clamped losses on the eval sets, and measures."""

from __future__ import annotations

from collections.abc import Callable

import torch

from clampdsl.analysis.measures import MEASURES
from clampdsl.compile.plan import Measure
from clampdsl.model.clamps import ClampState
from clampdsl.model.transformer import query_loss
from clampdsl.tasks.fewshot import Batch


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
    results = {}
    for index, (name, batch) in enumerate(eval_sets.items()):
        patterns: dict[int, torch.Tensor] = {}
        # Eval sets are large and see few distinct feature vectors: embed each one once.
        logits = forward(batch.table, batch.labels, clamps, record=patterns, items=batch.items)
        targets = batch.labels[..., -1]  # [B], or [R, B] when runs have their own data
        results[f"{name}.loss"] = query_loss(logits, targets)
        results[f"{name}.acc"] = (logits.argmax(-1) == targets).float().mean(-1)
        if index == 0:
            for measure in measures:
                values = MEASURES[measure.metric](patterns[measure.layer], batch)
                for head in measure.heads:
                    results[f"{measure.metric} L{measure.layer + 1}.H{head}"] = values[:, head]
    return results
