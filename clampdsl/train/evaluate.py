"""Evaluation at one step: clamped losses on the eval sets, measures on the probe set."""

from __future__ import annotations

import torch

from clampdsl.analysis.measures import MEASURES
from clampdsl.compile.plan import Measure
from clampdsl.model.clamps import ClampState
from clampdsl.model.transformer import BatchedTransformer, query_loss
from clampdsl.tasks.fewshot import Batch

EVAL_CHUNK = 1024


@torch.no_grad()
def evaluate(
    model: BatchedTransformer,
    clamps: ClampState,
    eval_sets: dict[str, Batch],
    probe: Batch,
    measures: tuple[Measure, ...],
) -> dict[str, torch.Tensor]:
    """Returns {"train.loss": [R], "train.acc": [R], …, "induction-strength L2.H3": [R]}.

    Eval sets run with the clamps active at this step (as the reference: Fig. 5b losses are
    clamped losses). Measures read attention as the model runs in training, clamps active:
    a clamped pattern shows its clamp, and a run trained with layer 1 bypassed shows the
    attention its last layer actually learned to compute.
    """
    results = {}
    for name, batch in eval_sets.items():
        logits = model(batch.features, batch.labels, clamps)
        results[f"{name}.loss"] = query_loss(logits, batch.labels[:, -1])
        results[f"{name}.acc"] = (logits.argmax(-1) == batch.labels[:, -1]).float().mean(-1)
    if measures:
        patterns: dict[int, torch.Tensor] = {}
        model(probe.features, probe.labels, clamps, record=patterns)
        for measure in measures:
            values = MEASURES[measure.metric](patterns[measure.layer], probe)
            for head in measure.heads:
                results[f"{measure.metric} L{measure.layer + 1}.H{head}"] = values[:, head]
    return results
