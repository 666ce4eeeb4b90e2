"""The first pass (the unclamped pass that two-pass clamps read from) and layers computed
for a range of a group's runs, as the group's schedule says (compile/schedule.py).

A range of runs, not a gathered list: the weights of a range are views whose gradient is
dense, where a gather needs a scatter in the backward, which torch 2.13's CPU inductor
miscompiles (docs/architecture.md)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from clampdsl.model.clamps import ClampState
from clampdsl.model.context import Context, of_runs

if TYPE_CHECKING:
    from clampdsl.model.transformer import BatchedTransformer

KEYS = 3  # the key dimension of scores and patterns [R, H, Nq, N, B]


def first_pass(model: BatchedTransformer, e, labels, clamps: ClampState, weights) -> dict:
    """The first pass's records, by (layer, site), as the schedule asks: "scores" and
    "pattern" [R, H, Nq, N, B] (Nq: the rows it computes there), "q" [R, H, hd, Nq, B],
    "k" and "v" [R, H, hd, N, B].

    Only the runs that take it compute it: the schedule's contiguous range of runs, whose
    weights are views and whose records are padded back into [R, …] tensors with zeros
    (both steps pass gradient). It applies only the clamps that act in the first pass (the
    ideal previous-token input's e'), and starts at layer 2 where the schedule says layer 1
    serves none of its runs."""
    plan = clamps.schedule.first_pass
    runs, n_runs = slice(plan.start, plan.stop), e.shape[0]
    part = clamps.for_runs(runs)
    if runs != slice(0, n_runs):
        weights = {name: w[runs] for name, w in weights.items()}
    context = Context(of_runs(labels, runs), e[runs], {}, part.reads_first_pass, first_pass=True)
    wanted, records = set(plan.records), {}
    x = e[runs]
    if plan.from_layer:
        x = part.at("out", plan.from_layer - 1, x, context)
    for layer in range(plan.from_layer, plan.layers):
        # The first pass's last layer is read at the query row only, unless a clamp reads
        # every row of it.
        last = layer == plan.layers - 1
        query_only = model.query_row_only(layer) or (last and not plan.every_row_last)
        computed: dict = {}
        scores, v = model.attention_scores(
            layer,
            x,
            weights=weights,
            query_only=query_only,
            values=not last or (layer, "v") in wanted,
            keep=computed,
        )
        computed.update(scores=scores, pattern=model.softmax(scores))
        for what, value in computed.items():
            if (layer, what) in wanted:
                records[(layer, what)] = value
        if last:
            break
        x = model.mix(layer, x, computed["pattern"], v, weights=weights)
        x = part.at("out", layer, x, context)
    return {key: scatter_runs(value, runs, n_runs) for key, value in records.items()}


def scatter_runs(values: torch.Tensor, runs: slice, n_runs: int) -> torch.Tensor:
    """[R', …] values of the runs `runs` → [R, …], zeros elsewhere (never read there)."""
    before, after = (
        values.new_zeros(runs.start, *values.shape[1:]),
        values.new_zeros(n_runs - runs.stop, *values.shape[1:]),
    )
    return torch.cat([before, values, after]) if before.numel() + after.numel() else values
