"""`clamp SEL to zero` and `ablate SEL [keeping patterns|values|queries|keys]`: a site := 0
(`ablate` is zero at a head's values).

Any head site but `scores` (zeroed scores would unmask future tokens), a layer's `in` or
`out`, `embed`, `logits`. Multiplying by 0 cuts the gradient, as the reference's `where`:
an ablated head's W_Q, W_K, W_V and its rows of W_O get none (frozen at init).

`keeping X` is the reference's preserving ablation (`opto_preserve_*`): every layer's and
head's X (patterns, values, or post-RoPE queries or keys) := the unclamped first pass's,
and then the ablation. Ablating a head keeping patterns removes only what its values
carry downstream (its OV effect); keeping values, only what it gives the next layers'
queries and keys. Gradients flow through the first pass.
"""

from __future__ import annotations

from clampdsl.compile.plan import Intervention
from clampdsl.kinds.base import Kind, PassRead, Write, expand, expect_words

ZERO_HEAD_SITES = ("q", "k", "v", "pattern", "z")
ABLATE_SITES = ("v", "z")
KEPT = {"patterns": "pattern", "values": "v", "queries": "q", "keys": "k"}


class Zero(Kind):
    name = target = "zero"
    order = 100  # last: a zeroed site stays zero whatever else clamps it

    def lower_site(self, sites, model, span, errors):
        if not sites.is_heads:
            return sites.site  # a layer's in/out, embed or logits
        if (sites.site or "v") not in ZERO_HEAD_SITES:
            errors.error(
                f"{self.describe()} cannot be clamped at .{sites.site}: it would unmask "
                "future tokens",
                span,
                hint=f"zero one of .{', .'.join(ZERO_HEAD_SITES)}",
            )
            return None
        return sites.site or "v"

    def apply(self, site, x, clamp, context):
        return x * expand(1 - clamp.on, x)


class Ablate(Zero):
    """`ablate SEL`: zero at the heads' values, at every position."""

    name = statement = "ablate"
    target = None
    order = 4  # the reference's ablate-heads step
    hands_nothing = True  # an experiment that only ablates is a baseline

    def lower_site(self, sites, model, span, errors):
        if not sites.is_heads or (sites.site is not None and sites.site not in ABLATE_SITES):
            errors.error(
                f"cannot ablate {sites.describe()}: ablation zeroes heads' values",
                span,
                hint="ablate heads, as in `ablate L2.H* except H3`",
            )
            return None
        return "v"

    def read_words(self, words, span, errors):
        if not words:
            return {}
        kept = words[-1].value if len(words) == 2 else None
        if kept in KEPT and expect_words(self, ("keeping", kept), words, span, errors):
            return {f"keeping_{kept}": 1.0}
        errors.error(
            "ablate is written `ablate SEL [keeping patterns|values|queries|keys]`",
            words[0].span,
        )
        return None

    def spoken(self, item, selector):
        kept = [f"keeping {name}" for name in KEPT if item.params.get(f"keeping_{name}")]
        return " ".join([super().spoken(item, selector), *kept])

    def companions(self, item, model):
        """The preservation that `keeping X` asks for, in the same window."""
        kept = [KEPT[name] for name in KEPT if f"keeping_{name}" in item.params]
        heads = tuple(range(model.heads))  # every head of every layer (layer None)
        return tuple(
            Intervention("preserve", None, heads, site, {}, item.window, None, item.text, item.span)
            for site in kept
        )


class Preserve(Kind):
    """Every layer's and head's `site` := the first pass's (from `ablate … keeping …`)."""

    name = "preserve"
    statement = None  # written as part of an ablation
    order = 1  # the reference's first step: the others then overwrite

    def describe(self):
        return "keeping"

    def writes(self, item, model):
        heads = tuple(range(model.heads))
        return tuple(Write(layer, item.site, heads) for layer in range(model.layers))

    def first_pass_reads(self, item, model):
        return tuple(PassRead(layer, item.site, every_row=True) for layer in range(model.layers))

    def apply(self, site, x, clamp, context):
        return context.first[(clamp.layer, site)].where(expand(clamp.on, x) > 0, x)


KINDS = (Zero(), Ablate(), Preserve())
