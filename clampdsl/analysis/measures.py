"""Progress measures read off attention patterns (icl_dynamics_spec.md §5; Olsson et al.
2022's prefix-matching score). Each reads the task roles compile/toplevel.py's METRICS
names for it."""

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


def prefix_matching(pattern: torch.Tensor, induction: torch.Tensor) -> torch.Tensor:
    """Olsson et al.'s prefix-matching score: the attention from each token of a repeated
    segment to the token after its earlier copy (its induction target), averaged over
    those rows of each sequence and over the sequences: [R, H].

    pattern [R, B, H, N, N]; induction [B, N] (or [R, B, N]): each row's target position,
    -1 for rows that have none (tasks/repeated_tokens.py)."""
    targets = induction.reshape(-1, *induction.shape[-2:])[:, :, None]  # [1 or R, B, 1, N]
    has_target = (targets >= 0).to(pattern.dtype)
    index = targets.clamp(min=0).expand(*pattern.shape[:3], -1)[..., None]
    on_target = pattern.gather(-1, index)[..., 0] * has_target  # [R, B, H, N]
    per_sequence = on_target.sum(-1) / has_target.sum(-1).clamp(min=1)
    return per_sequence.mean(1)


MEASURES = {
    "induction-strength": lambda pattern, batch: induction_strength(pattern, batch.match),
    "prev-token-strength": lambda pattern, batch: prev_token_strength(pattern),
    "prefix-matching": lambda pattern, batch: prefix_matching(pattern, batch.induction),
}
