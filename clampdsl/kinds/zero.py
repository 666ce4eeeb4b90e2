"""`clamp SEL to zero` and `ablate SEL`: a site := 0 (`ablate` is zero at a head's values).

Any head site but `scores` (zeroed scores would unmask future tokens), a layer's `in` or
`out`, `embed`, `logits`. Multiplying by 0 cuts the gradient, as the reference's `where`:
an ablated head's W_Q, W_K, W_V and its rows of W_O get none (frozen at init).
"""

from __future__ import annotations

from clampdsl.kinds.base import Kind, expand

ZERO_HEAD_SITES = ("q", "k", "v", "pattern", "z")
ABLATE_SITES = ("v", "z")


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


KINDS = (Zero(), Ablate())
