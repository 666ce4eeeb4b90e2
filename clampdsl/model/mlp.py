"""MLP blocks (`model mlp=N`): after each layer's attention, x + W_out · GELU(W_in · LN(x) +
b_in) + b_out, pre-norm with a norm of its own, hidden width N · d_model. Per position, so the last
layer's, like its attention, is computed at the rows it keeps (the query row alone in the
few-shot model). Its weights are part of its layer (`weights_of(layer, "layer")`: frozen
with it, lent by a graft with it).
"""

from __future__ import annotations

import string

import torch
import torch.nn.functional as F

from clampdsl.compile.configs import ModelConfig
from clampdsl.model.parts import Part
from clampdsl.model.weights import layer_norm, lecun_normal

NAMES = ("mlp_ln_g", "mlp_ln_b", "mlp_in", "mlp_in_b", "mlp_out", "mlp_out_b")  # + layer


class Mlp(Part):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.layers, self.c, self.hidden = (
            config.layers,
            config.d_model,
            config.mlp * config.d_model,
        )

    def shapes(self):
        c, m = self.c, self.hidden
        shapes = dict(zip(NAMES, [(c,), (c,), (c, m), (m,), (m, c), (c,)], strict=True))
        return {
            f"{name}{layer}": shape
            for layer in range(self.layers)
            for name, shape in shapes.items()
        }

    def initialise(self, name, value, generator):
        weight = name.rstrip(string.digits)  # the name without its layer
        if weight in ("mlp_in", "mlp_out"):
            lecun_normal(value, generator)
        elif weight == "mlp_ln_g":
            value.fill_(1.0)
        else:
            value.zero_()
        return True

    def part_weights(self, layer, part):
        return [(f"{name}{layer}", None, 0, 0) for name in NAMES] if part == "layer" else []

    def block(self, layer: int, x: torch.Tensor, weights) -> torch.Tensor:
        """The residual [R, n, B, C] after the block."""
        w = {name: weights[f"{name}{layer}"] for name in NAMES}
        r, n, b, c = x.shape
        h = layer_norm(x, w["mlp_ln_g"], w["mlp_ln_b"]).view(r, n * b, c)
        hidden = F.gelu(torch.matmul(h, w["mlp_in"]) + w["mlp_in_b"][:, None])
        out = torch.matmul(hidden, w["mlp_out"]) + w["mlp_out_b"][:, None]
        return x + out.view(r, n, b, c)


class NoMlp(Part):
    """Attention only: the residual as it is."""

    def block(self, layer: int, x: torch.Tensor, weights) -> torch.Tensor:
        return x


def of(config: ModelConfig) -> Part:
    return Mlp(config) if config.mlp else NoMlp()
