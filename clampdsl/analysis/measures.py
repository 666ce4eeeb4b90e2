"""Progress measures read off attention patterns (icl_dynamics_spec.md §5)."""

from __future__ import annotations

import torch


def induction_strength(pattern: torch.Tensor, match: torch.Tensor) -> torch.Tensor:
    """Query attention on the matching label minus on the other one, averaged: [R, H].

    pattern [R, B, H, N, N]; match [B] (or [R, B] when runs have their own data) says which
    context item (0 or 1) matches the query, so its label sits at position 2·match + 1.
    """
    query = pattern[:, :, :, -1, :]  # [R, B, H, N]
    match = match.reshape(-1, match.shape[-1])[:, :, None, None]  # [1 or R, B, 1, 1]
    right = (2 * match + 1).expand(*query.shape[:3], 1)
    wrong = (2 * (1 - match) + 1).expand(*query.shape[:3], 1)
    return (query.gather(-1, right) - query.gather(-1, wrong))[..., 0].mean(1)


def prev_token_strength(pattern: torch.Tensor) -> torch.Tensor:
    """Mean attention from each token i ≥ 1 to token i-1: [R, H]."""
    return pattern.diagonal(offset=-1, dim1=-2, dim2=-1).mean(-1).mean(1)


MEASURES = {
    "induction-strength": lambda pattern, batch: induction_strength(pattern, batch.match),
    "prev-token-strength": lambda pattern, batch: prev_token_strength(pattern),
}
