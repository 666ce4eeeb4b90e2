"""The models `model arch=` names, each declared once: which clamp sites it has, what
`freeze` may hold of it, and what its numbers must satisfy together. The transformer
(model/transformer.py, tokens.py) has every site the language names; Chen et al. 2024's
two-layer model (model/chen.py) only those its structure has."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import attrs

if TYPE_CHECKING:
    from clampdsl.compile.configs import ModelConfig
    from clampdsl.compile.errors import Collector

Site = tuple[int | None, str]  # (layer index or None, site name), as kinds' Writes name them


@attrs.frozen
class Architecture:
    name: str
    check: Callable[[ModelConfig, object, Collector], None]  # (model, span, errors)
    sites: frozenset[Site] | None = None  # what a clamp may set; None: every site, any freeze
    frozen: frozenset[Site] = frozenset()  # where `sites` is given: what `freeze` may hold
    sites_hint: str = ""  # the sites, in words, for an error's hint


def _check_transformer(model: ModelConfig, span, errors: Collector) -> None:
    """Heads split the width evenly, into head sizes RoPE can rotate (pairs of dimensions)
    where it has RoPE."""
    if model.d_model % model.heads:
        errors.error(
            f"heads={model.heads} does not divide d_model={model.d_model}: each head takes "
            "d_model / heads dimensions",
            span,
        )
    elif model.pos == "rope" and model.head_dim % 2:
        errors.error(
            f"the head size d_model / heads = {model.head_dim} is odd: RoPE rotates pairs "
            "of dimensions",
            span,
            hint=f"use d_model={model.d_model + model.heads}, another number of heads, or "
            "another pos",
        )


def _check_chen(model: ModelConfig, span, errors: Collector) -> None:
    """Two layers, the first's heads positional (learned relative positions), and subsets
    of no more components than there are (the token and each head's output). It has no
    width of its own: it reads one-hot tokens."""
    if model.layers != 2 or model.pos != "relative":
        errors.error(
            f"arch=chen is two layers whose first learns relative positions; this model has "
            f"layers={model.layers} pos={model.pos}",
            span,
            hint="set `model arch=chen layers=2 pos=relative`",
        )
    if model.degree > model.heads + 1:
        errors.error(
            f"degree={model.degree} is more than the {model.heads + 1} components (the token "
            "and each layer-1 head's output) a feature multiplies",
            span,
        )


TRANSFORMER = Architecture("transformer", _check_transformer)
CHEN = Architecture(
    "chen",
    _check_chen,
    sites=frozenset({(0, "scores"), (0, "pattern"), (0, "positions"), (None, "logits")}),
    frozen=frozenset({(0, "layer"), (1, "layer")}),
    sites_hint="layer 1's relative positions, scores and pattern; logits",
)
BY_NAME = {arch.name: arch for arch in (TRANSFORMER, CHEN)}


def of(model: ModelConfig) -> Architecture:
    return BY_NAME[model.arch]
