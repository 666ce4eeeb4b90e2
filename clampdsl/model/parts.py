"""What a model variant's pieces (a position scheme, MLP blocks, smeared keys) declare
besides what they compute: the weights they add and where those belong.

Their weights come after the base model's in its ParameterDict, so the weights a variant
shares with the base model (RoPE, attention only) are drawn from a run's seed exactly as
the base model's are, and the base model itself is unchanged.
"""

from __future__ import annotations

import torch
from torch import nn


class Part(nn.Module):
    """A piece that adds nothing; subclasses override what they add."""

    def shapes(self) -> dict[str, tuple[int, ...]]:
        """The weights it adds, by name, without the leading run dimension."""
        return {}

    def initialise(self, name: str, value: torch.Tensor, generator: torch.Generator) -> bool:
        """Draws one of its weights' initial value in place; False: the model's own
        initialisers (`BatchedTransformer.initialise`) draw it. Default: zeros."""
        value.zero_()
        return True

    def part_weights(self, layer: int | None, part: str) -> list[tuple]:
        """Its weights that belong to a part of the model (`BatchedTransformer.weights_of`:
        a head's q, k, v, z; a layer; embed; logits), as (name, dim, start, width)."""
        return []
