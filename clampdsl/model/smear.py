"""Smeared keys (`model smear=on`), Olsson et al. 2022's: each head's key at position j
becomes σ(α) k_j + (1 − σ(α)) k_{j−1} (k_0 as it is), one trainable α per head and layer
(`smear{layer}` [R, H]; 0 at init: half of each key is its predecessor's, the point where
the gradient for α is largest). It applies to the keys as the scores read them (after
RoPE), before any clamp of `k`: the `k` site is the smeared keys. A head's α belongs to
its keys (`weights_of(layer, "k")`).
"""

from __future__ import annotations

import torch

from clampdsl.compile.configs import ModelConfig
from clampdsl.model.parts import Part


class SmearedKeys(Part):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.layers, self.heads = config.layers, config.heads

    def shapes(self):
        return {f"smear{layer}": (self.heads,) for layer in range(self.layers)}

    def part_weights(self, layer, part):
        if part == "k":
            return [(f"smear{layer}", 1, 0, 1)]
        return [(f"smear{layer}", None, 0, 0)] if part == "layer" else []

    def smear(self, k: torch.Tensor, weights, layer: int) -> torch.Tensor:
        """Keys [R, H, hd, N, B], smeared along N."""
        keep = torch.sigmoid(weights[f"smear{layer}"])[:, :, None, None, None]
        previous = torch.cat([k[..., :1, :], k[..., :-1, :]], -2)
        return keep * k + (1 - keep) * previous


class PlainKeys(Part):
    def smear(self, k: torch.Tensor, weights, layer: int) -> torch.Tensor:
        return k


def of(config: ModelConfig) -> Part:
    return SmearedKeys(config) if config.smear == "on" else PlainKeys()
