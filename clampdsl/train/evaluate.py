"""Evaluation at one step: clamped losses on the eval sets, and measures."""

from __future__ import annotations

from collections.abc import Callable

import torch

from clampdsl.analysis import predictions
from clampdsl.analysis.measures import MEASURES
from clampdsl.compile.plan import Measure
from clampdsl.compile.resources import chunk_size as cpu_chunk_size
from clampdsl.model.clamps import ClampState


@torch.no_grad()
def evaluate(
    sums: tuple[Callable, Callable],
    prepare: Callable,
    clamps: ClampState,
    eval_sets: dict,
    measures: tuple[Measure, ...],
) -> dict[str, torch.Tensor]:
    """Returns {"train.loss": [R], "train.acc": [R], …, "induction-strength L2.H3": [R]}.

    `sums` is `chunk_sums` (or its compiled form) with the model bound, twice: with the
    measures, for the first eval set, and without, for the others. `prepare` is the
    model's `prepare_evals`: what every chunk would compute alike from the weights (the
    embedded feature table, the rotated projections) is computed once per eval, or once per
    set where sets have tables of their own.
    Eval sets run with the clamps active at this step (as the reference: Fig. 5b losses are
    clamped losses). Measures read the attention recorded in the same forward on the first
    eval set (`train` by default), as the model runs in training: a clamped pattern shows
    its clamp, and a run trained with layer 1 bypassed shows what its last layer learned to
    compute.
    """
    results, prepared = {}, {}
    measured, unmeasured = sums
    for index, (name, batch) in enumerate(eval_sets.items()):
        sums_of_set = measured if index == 0 else unmeasured
        if batch.preparation not in prepared:
            prepared[batch.preparation] = prepare(batch)
        inputs = prepared[batch.preparation]
        sequences = batch.sequences
        size = chunk_size(sequences, clamps.n_runs, batch.device.type)
        starts = range(0, sequences, size)
        chunks = [sums_of_set(clamps, batch.rows(slice(s, s + size)), inputs) for s in starts]
        loss, correct, *values = (sum(parts) / sequences for parts in zip(*chunks, strict=True))
        results[f"{name}.loss"], results[f"{name}.acc"] = loss, correct
        if index == 0:
            for measure, value in zip(measures, values, strict=True):
                results |= _measured(name, measure, value)
    return results


def _measured(eval_set: str, measure: Measure, value: torch.Tensor) -> dict[str, torch.Tensor]:
    """A measure's results: one per head, or the model's (a measure of its predictions)."""
    if measure.layer is None:
        return {predictions.key(eval_set, measure.metric): predictions.finish(measure, value)}
    return {
        f"{measure.metric} L{measure.layer + 1}.H{head}": value[:, head] for head in measure.heads
    }


def chunk_sums(
    model: Callable,
    measures: tuple[Measure, ...],
    clamps: ClampState,
    chunk,
    prepared: dict[str, torch.Tensor],
) -> list[torch.Tensor]:
    """Sums over a chunk's sequences, per run: query loss [R], correct answers [R], and
    each measure's value [R, H] (a measure of the predictions: [R] or [R, S],
    analysis/predictions.py); sums, so that chunks add up. This is what an eval compiles:
    losses and measures fuse into the forward instead of running eagerly after it. A group
    with measures compiles it twice, with them for the first set and without for the
    others: recording patterns keeps the whole of layer 1 (measures read it even where
    runs bypass it), and unrecorded the other sets evaluate faster."""
    record = {} if any(m.layer is not None for m in measures) else None
    features, labels, items = chunk.eval_inputs()
    logits = model(features, labels, clamps, record, items, prepared)
    sequences = chunk.sequences
    values = [
        predictions.chunk_value(m, logits, chunk)
        if m.layer is None
        else MEASURES[m.metric](record[m.layer], chunk)
        for m in measures
    ]
    return [*model.eval_sums(logits, labels), *(value * sequences for value in values)]


def chunk_size(sequences: int, runs: int, device_type: str = "cpu") -> int:
    """Sequences per forward: on a CPU, chunks sized for its caches (the policy lives in
    compile/resources.py, whose memory estimate uses it too); a GPU takes a whole set per
    forward (fewer launches)."""
    return sequences if device_type == "cuda" else cpu_chunk_size(sequences, runs)
