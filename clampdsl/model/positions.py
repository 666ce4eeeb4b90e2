"""How a token's position enters the model (`model pos=…`): one class per scheme, chosen by
name in SCHEMES (the names compile/plan.py's POSITION_SCHEMES declares).

* `rope` (the default): q and k turned by their positions (model/rotary.py); a forward
  without gradient takes W_QKV with the rotation folded in, one copy per position
  (`prepare`, or computed on the spot).
* `relative`: a learned bias per head and distance i−j, added to the attention logits
  (Edelman et al. 2024's relative positions, Chen et al. 2024's RPE): `rel{layer}` [R, H, P].
  Zero at init, so the model starts as `none` does (Chen's 0.01 is as flat, up to a
  constant the softmax ignores); clamps of the head site "positions" (kinds/
  relative_position.py) set a head's biases.
* `absolute`: a learned embedding per position, added to the residual stream at the input
  (before the `embed` site): `pos_embed` [R, P, C], drawn as the model's token embeddings.
* `none`: the causal mask alone.

P is the positions the model is built for (the `positions` of BatchedTransformer). The
three without RoPE project q, k and v with one plain GEMM in every forward.
"""

from __future__ import annotations

import torch

from clampdsl.compile.configs import ModelConfig
from clampdsl.kinds.base import POSITIONS_SITE
from clampdsl.model.parts import Part
from clampdsl.model.rotary import (
    project_qkv,
    qkv_from_rotated_weights,
    qkv_then_rotate,
    rope_tables,
    rotated_qkv,
    row_tables,
)


class NoPositions(Part):
    """`none`, and what the others add to: q, k, v from one GEMM; nothing else."""

    def __init__(self, config: ModelConfig, positions: int):
        super().__init__()
        self.config, self.positions = config, positions

    def embed(self, x: torch.Tensor, weights) -> torch.Tensor:
        """The residual stream at the input [R, N, B, C], with its positions."""
        return x

    def qkv(self, h: torch.Tensor, weights, layer: int, values: bool, query_only: bool):
        """q, k (and v, or None without `values` where no gradient is taken) of the normed
        residual h [R, N, B, C]: [R, H, hd, n, B] each."""
        weight = weights[f"qkv{layer}"]
        if not values and not torch.is_grad_enabled():
            weight = weight[:, :, : 2 * self.config.d_model]
        return project_qkv(h, weight, self.config.heads, query_only)

    def scores(self, scores, weights, layer: int, clamps=None, context=None):
        """The attention logits [R, H, Nq, N, B] (Nq: the last rows), with their positions."""
        return scores

    def prepare(self, weights, n: int) -> dict:
        """What a forward without gradient on n tokens would compute from the weights alike
        in every call (`BatchedTransformer.prepare_evals`)."""
        return {}


class Rope(NoPositions):
    def __init__(self, config: ModelConfig, positions: int):
        super().__init__(config, positions)
        cos, sin = rope_tables(config.head_dim, positions)
        self.register_buffer("cos", cos, persistent=False)
        self.register_buffer("sin", sin, persistent=False)
        cos_rows, sin_rows = row_tables(cos, sin, config.heads, config.d_model)
        self.register_buffer("cos_rows", cos_rows, persistent=False)
        self.register_buffer("sin_rows", sin_rows, persistent=False)

    def qkv(self, h, weights, layer, values, query_only):
        n, heads = h.shape[1], self.config.heads
        if torch.is_grad_enabled():
            cos, sin = self.cos[:, :n], self.sin[:, :n]
            return qkv_then_rotate(h, weights[f"qkv{layer}"], heads, cos, sin, query_only)
        rotated = f"rotated_qkv{layer}"
        weight = weights[rotated] if rotated in weights else self.rotated(weights, layer, n)
        parts = slice(None if values else 2 * self.config.d_model)
        return qkv_from_rotated_weights(h, weight[:, :, parts], heads, query_only)

    def prepare(self, weights, n):
        return {
            f"rotated_qkv{layer}": self.rotated(weights, layer, n)
            for layer in range(self.config.layers)
        }

    def rotated(self, weights, layer: int, n: int) -> torch.Tensor:
        """`rotary.rotated_qkv` of the layer for positions 0..n-1."""
        return rotated_qkv(weights[f"qkv{layer}"], self.cos_rows[:n], self.sin_rows[:n])


class Relative(NoPositions):
    def shapes(self):
        heads = self.config.heads
        return {f"rel{layer}": (heads, self.positions) for layer in range(self.config.layers)}

    def part_weights(self, layer, part):
        # A head's biases are read with its keys (Edelman's q·r_{i−j} is a key-side term).
        if part == "k":
            return [(f"rel{layer}", 1, 0, 1)]
        return [(f"rel{layer}", None, 0, 0)] if part == "layer" else []

    def scores(self, scores, weights, layer, clamps=None, context=None):
        table = weights[f"rel{layer}"]  # [R, H, P]
        if clamps is not None:
            table = clamps.at(POSITIONS_SITE, layer, table, context)
        rows, n = scores.shape[2:4]
        return scores + by_distance(table, n)[:, :, n - rows :, :, None]


class Absolute(NoPositions):
    def shapes(self):
        return {"pos_embed": (self.positions, self.config.d_model)}

    def part_weights(self, layer, part):
        return [("pos_embed", None, 0, 0)] if part == "embed" else []

    def embed(self, x, weights):
        return x + weights["pos_embed"][:, : x.shape[1], None]


def by_distance(table: torch.Tensor, n: int) -> torch.Tensor:
    """[..., P] biases by distance → [..., n, n]: entry (i, j) is table[i − j] for j ≤ i
    (the future keys', masked, are other entries of the table or 0).

    A skew, not a gather: the rows [t0, 0, t_{n-1}, …, t1] repeated end to end and read
    back n to a row shift by one per row, so row i starts at t_i and counts down. Its
    gradient is a sum of slices; a gather's would be a scatter, which torch 2.13's CPU
    inductor miscompiles (docs/architecture.md)."""
    head, tail = table[..., :1], table[..., 1:n].flip(-1)
    row = torch.cat([head, torch.zeros_like(head), tail], -1)  # [..., n + 1]
    skewed = row.repeat(*([1] * (row.dim() - 1)), n)[..., : n * n]
    return skewed.unflatten(-1, (n, n))


SCHEMES = {"rope": Rope, "relative": Relative, "absolute": Absolute, "none": NoPositions}


def of(config: ModelConfig, positions: int) -> NoPositions:
    """The model's position scheme, for sequences of up to `positions` tokens."""
    return SCHEMES[config.pos](config, positions)
