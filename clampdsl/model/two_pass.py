"""The two-pass clamps' machinery: pass 1 (the unclamped pass that shifted-embedding and
copy-scores read from), the copy readout, and layers computed for a range of a group's runs.

A range of runs, not a gathered list: the weights of a range are views whose gradient is
dense, where a gather needs a scatter in the backward, which torch 2.13's CPU inductor
miscompiles (docs/architecture.md)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from clampdsl.model.clamps import ClampState, shifted_embedding

if TYPE_CHECKING:
    from clampdsl.model.transformer import BatchedTransformer

KEYS = 3  # the key dimension of scores and patterns [R, H, Nq, N, B]
COPY_FILL = -1e9  # the reference's fill for non-context logits under copy-scores


def first_pass(model: BatchedTransformer, e, clamps: ClampState, weights) -> dict:
    """The unclamped pass that two-pass clamps read from (shifted runs: L1.out := e',
    and layer 1 is not computed when it serves no run of the pass).

    Only the runs that use it take it: a contiguous range of runs (see
    `ClampState.first_pass_runs`), whose weights are views and whose results are padded
    back into [R, …] tensors with zeros (both steps pass gradient)."""
    runs = clamps.first_pass_runs
    every_run = runs == slice(0, e.shape[0])
    weights = weights if every_run else {name: w[runs] for name, w in weights.items()}
    shifted = clamps.run_mask["shifted-embedding"]
    out, layers, all_scores = {}, clamps.first_pass_layers, []
    start = 1 if clamps.first_pass_skips_layer_one else 0
    x = shifted_embedding(e[runs]) if start else e[runs]
    for layer in range(start, layers):
        # Pass 1 is read at the query row only (copy readout, last-layer pattern).
        last = layer == layers - 1
        query_only = model.is_last(layer) or last
        scores, v = model.attention_scores(
            layer, x, weights=weights, query_only=query_only, values=not last
        )
        all_scores.append(scores)
        if last:
            break
        x = model.mix(layer, x, torch.softmax(scores, KEYS), v, weights=weights)
        if layer == 0 and shifted is not None:
            mask = shifted[runs][:, None, None, None]
            x = torch.where(mask > 0, shifted_embedding(e[runs]), x)
    if shifted is not None:
        out["pattern"] = scatter_runs(torch.softmax(all_scores[-1], KEYS), runs, e.shape[0])
    if clamps.run_mask["copy-scores"] is not None:
        query_rows = [s[:, :, -1] for s in all_scores]
        scores = pick_source(query_rows, clamps.copy_source[runs], start)
        out["scores"] = scatter_runs(scores, runs, e.shape[0])
    return out


def copy_scores(logits, scores, labels, clamps: ClampState):
    """Query logits := COPY_FILL except the context labels, which get the source head's
    query-row scores [R, N, B], in the runs whose copy clamp is on."""
    query_row = scores[:, 1::2].transpose(1, 2)  # the query row on the context labels
    context = labels[..., :-1].expand(logits.shape[0], -1, -1)
    target = torch.full_like(logits, COPY_FILL).scatter(-1, context, query_row)
    mask = clamps.run_mask["copy-scores"][:, None, None]
    return torch.where(mask > 0, target, logits)


def pick_source(
    query_scores: list[torch.Tensor], copy_source: torch.Tensor, first_layer: int
) -> torch.Tensor:
    """Each run's copy source head's query row [R, N, B], from the query rows [R, H, N, B]
    of consecutive layers from `first_layer` on (zeros where the source is in none). Picked
    with `where`, not by indexing: the gradient of an index is a scatter, which torch 2.13's
    CPU inductor miscompiles."""
    stacked = torch.stack(query_scores, 1)  # [R, L', H, N, B]
    source = copy_source[:, first_layer : first_layer + len(query_scores), :, None, None]
    return torch.where(source, stacked, 0.0).sum((1, 2))


def scatter_runs(values: torch.Tensor, runs: slice, n_runs: int) -> torch.Tensor:
    """[R', …] values of the runs `runs` → [R, …], zeros elsewhere (never read there)."""
    before, after = (
        values.new_zeros(runs.start, *values.shape[1:]),
        values.new_zeros(n_runs - runs.stop, *values.shape[1:]),
    )
    return torch.cat([before, values, after]) if before.numel() + after.numel() else values


def of_runs(runs: slice, labels, clamps: ClampState, first: dict, weights: dict) -> tuple:
    """A layer's per-run arguments (labels, clamps, pass-1 results, no record, weights)
    for a range of the runs: views, whose gradient is dense."""
    return (
        labels if labels.shape[0] == 1 else labels[runs],
        clamps.for_runs(runs),
        {name: value[runs] for name, value in first.items()},
        None,
        {name: w[runs] for name, w in weights.items()},
    )
