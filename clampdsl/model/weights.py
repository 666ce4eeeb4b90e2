"""The initialisers and the norm every piece of the batched model shares."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

LECUN_TRUNCATION = 0.8796  # std correction for a normal truncated at ±2σ (JAX lecun_normal)


def lecun_normal(value: torch.Tensor, generator: torch.Generator) -> None:
    """JAX's lecun_normal in place: a normal truncated at ±2σ, of variance 1 / fan-in
    (the first dimension)."""
    std = math.sqrt(1.0 / value.shape[0]) / LECUN_TRUNCATION
    nn.init.trunc_normal_(value, 0.0, std, -2 * std, 2 * std, generator=generator)


def layer_norm(x: torch.Tensor, g: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Layer norm over C of a residual [R, N, B, C] (or [R, B, C]), gains and biases [R, C]."""
    shape = (g.shape[0],) + (1,) * (x.dim() - 2) + g.shape[1:]
    return F.layer_norm(x, x.shape[-1:], eps=1e-5) * g.view(shape) + b.view(shape)
