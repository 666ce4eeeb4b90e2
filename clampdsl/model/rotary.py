"""Rotary position embedding (RoPE, interleaved GPT-J pairs), and the q/k/v projections it
enters: RoPE on q and k after one GEMM (training), or folded into the projection weights,
one copy per position (a forward without gradient: evals).

Layouts as in transformer.py: normed residuals h [R, N, B, C]; q, k, v [R, H, hd, n, B]."""

from __future__ import annotations

import torch


def rope_tables(head_dim: int, max_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Interleaved (GPT-J) rotary tables [hd/2, max_len, 1]: pair (2i, 2i+1) turns at
    10000^(-2i/head_dim) per position (the trailing 1 broadcasts over the batch)."""
    freqs = 10000.0 ** (-torch.arange(0, head_dim, 2).float() / head_dim)
    angles = freqs[:, None, None] * torch.arange(max_len).float()[None, :, None]
    return angles.cos(), angles.sin()


def rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """[..., hd, n, M] turned by the tables' rows for its n positions ([hd/2, n, 1])."""
    even, odd = x[..., 0::2, :, :], x[..., 1::2, :, :]
    return torch.stack((even * cos - odd * sin, even * sin + odd * cos), -3).flatten(-4, -3)


def rotated_qkv(weight: torch.Tensor, cos_rows: torch.Tensor, sin_rows: torch.Tensor):
    """W_QKV [R, C, 3C] → its transpose per position [R, N, 3C, C] (N: the `row_tables`'
    positions), with RoPE folded into the q and k rows: row block p turns a normed token at
    position p into its rotated q and k and its v. Contiguous: the GEMMs take runs and
    positions as one batch dimension.

    As `rotate` does to q and k, each row of a pair (2i, 2i+1) becomes cos · itself ∓
    sin · its partner, the same products and sums (so the same floats); written as two
    broadcast products over whole [R, N, 3C, C] blocks, with the v rows turned by 0, it is
    a few eager ops instead of dozens (this runs eagerly, once per eval)."""
    rows = weight.transpose(1, 2).contiguous()  # [R, 3C, C]: W^T, a row per output feature
    pairs = rows.unflatten(1, (-1, 2))
    partners = torch.stack((-pairs[:, :, 1], pairs[:, :, 0]), 2).flatten(1, 2)
    return rows[:, None] * cos_rows + partners[:, None] * sin_rows


def row_tables(cos, sin, heads: int, c: int) -> tuple[torch.Tensor, torch.Tensor]:
    """`rope_tables` [hd/2, N, 1] per row of W_QKV^T, for `rotated_qkv`: [N, 3C, 1], each
    q and k row with its pair's angle, the v rows at angle 0."""

    def per_row(table, v_value):
        per_head = table[:, :, 0].repeat_interleave(2, 0).repeat(heads, 1)  # [C, N]
        v_rows = torch.full_like(per_head, v_value)
        return torch.cat([per_head, per_head, v_rows]).T.contiguous()[:, :, None]

    return per_row(cos, 1.0), per_row(sin, 0.0)


def qkv_then_rotate(
    h: torch.Tensor,
    weight: torch.Tensor,
    heads: int,
    cos: torch.Tensor,
    sin: torch.Tensor,
    query_only: bool,
):
    """q, k, v of h, q and k rotated by tables for its N positions (q at the query row
    alone with `query_only`). One GEMM for q, k and v at every position, then RoPE on q
    and k: in a training step this beats any split of it, and the savings of `query_only`
    are in the attention and the output projection. As W^T · h^T, the GEMM's result comes
    out per head with the batch innermost."""
    n = h.shape[1]
    q, k, v = project_qkv(h, weight, heads, query_only)
    return rotate(q, cos[:, n - q.shape[3] :], sin[:, n - q.shape[3] :]), rotate(k, cos, sin), v


def project_qkv(h: torch.Tensor, weight: torch.Tensor, heads: int, query_only: bool):
    """q, k and v of h (unrotated), per head with the batch innermost, as W^T · h^T: one
    GEMM; the columns of W_Q and W_K alone (weight [R, C, 2C]) give v None."""
    r, n, b, c = h.shape
    qkv = torch.matmul(weight.transpose(1, 2), h.view(r, n * b, c).transpose(1, 2))
    q, k, *v = qkv.view(r, -1, heads, c // heads, n, b).unbind(1)
    if query_only:
        q = q[:, :, :, -1:]
    return q, k, (v[0] if v else None)


def qkv_from_rotated_weights(h: torch.Tensor, rotated: torch.Tensor, heads: int, query_only: bool):
    """`qkv_then_rotate` for a forward without gradient (evals), equal to float rounding,
    from the weights with RoPE folded in (`rotated_qkv`, or its q and k rows alone: v is
    then None): one GEMM per run and position gives q and k already rotated, and with
    `query_only` q comes from the query row alone.
    Rotating weights of N × C × 2C instead of q and k of an eval chunk (2C × N × hundreds
    of sequences) saves a pass over them. A training step is slower this way (32
    sequences make narrow GEMMs, and the backward goes through the rotation), so it keeps
    `qkv_then_rotate` (docs/performance.md)."""
    r, n, b, c = h.shape
    size = c // heads
    if query_only:
        query = torch.matmul(rotated[:, -1, :c], h[:, -1].transpose(1, 2))
        rotated = rotated[:, :, c:]
    parts = rotated.shape[2] // c
    out = torch.matmul(rotated.reshape(r * n, -1, c), h.reshape(r * n, b, c).transpose(1, 2))
    out = out.view(r, n, parts, heads, size, b).permute(2, 0, 3, 4, 1, 5).unbind(0)
    q, k, *v = (query.view(r, heads, size, 1, b), *out) if query_only else out
    return q, k, (v[0] if v else None)
