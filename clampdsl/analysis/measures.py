"""Progress measures read off attention patterns (icl_dynamics_spec.md §5)."""

from __future__ import annotations

import torch


def induction_strength(pattern: torch.Tensor, match: torch.Tensor) -> torch.Tensor:
    """Query attention on the matching label minus on the others (their mean), averaged:
    [R, H] (the paper's measure, for two context items).

    pattern [R, B, H, N, N]; match [B] (or [R, B] when runs have their own data) says which
    context item matches the query, so its label sits at position 2·match + 1.
    """
    on_labels = pattern[:, :, :, -1, 1::2]  # [R, B, H, K]: the query row at the labels
    items = on_labels.shape[-1]
    match = match.reshape(-1, match.shape[-1])[:, :, None, None]  # [1 or R, B, 1, 1]
    matching = torch.arange(items, device=match.device) == match  # [1 or R, B, 1, K]
    right = torch.where(matching, on_labels, 0.0).sum(-1)
    others = torch.where(matching, 0.0, on_labels).sum(-1) / (items - 1)
    return (right - others).mean(1)


def prev_token_strength(pattern: torch.Tensor) -> torch.Tensor:
    """Mean attention from each token i ≥ 1 to token i-1: [R, H]."""
    return pattern.diagonal(offset=-1, dim1=-2, dim2=-1).mean(-1).mean(1)


MEASURES = {
    "induction-strength": lambda pattern, batch: induction_strength(pattern, batch.match),
    "prev-token-strength": lambda pattern, batch: prev_token_strength(pattern),
}
