"""`clamp L1.out to shifted-embedding`: the ideal previous-token input (subcircuit A), as
the reference's `perfect_prev_token_input`, whose code (not its docstring) this follows.

Three passes in the reference, two here: the first pass sets L1.out := e' = [e0, e0, y0,
e1, …, eq] (each middle token carries only its predecessor's embedding, no residual) and
records the last layer's patterns; the final pass sets L1.out := e (layer 1 bypassed) and
the last layer's patterns := the first pass's. Layer 1 gets no gradient; the last layer's
W_Q and W_K learn through the first pass, its W_V and W_O through the final pass;
`detached`: W_Q and W_K get no gradient through the first pass's patterns.

The reference runs this as a separate forward that honours only the last layer's
ablations and the copy readout and silently drops everything else; here anything else
is refused.
"""

from __future__ import annotations

from clampdsl.kinds.base import Kind, PassRead, Write, detached_where, expand


class ShiftedEmbedding(Kind):
    name = target = "shifted-embedding"
    roles = ("labels",)  # a label token takes its exemplar's embedding
    detachable = True
    order = 10  # after the pattern clamps: the reference's separate forward replaces them

    def lower_site(self, sites, model, span, errors):
        if sites.is_heads or sites.layers != (0,) or sites.site != "out":
            errors.error(
                f"{self.target} can only be clamped at L1.out, not {sites.describe()}", span
            )
            return None
        if model.layers != 2:
            errors.error(
                f"{self.target} is defined for 2-layer models (this one has {model.layers})", span
            )
            return None
        return "out"

    def writes(self, item, model):
        last = model.layers - 1
        return (Write(0, "out"), Write(last, "pattern", tuple(range(model.heads))))

    def check(self, item, others, model, errors):
        last = model.layers - 1
        for kind, other in others:
            honoured = kind is self or all(
                write.site == "logits" or (write.layer, write.site) == (last, "v")
                for write in kind.writes(other, model)
            )
            if not honoured:
                errors.error(
                    f"{other.kind} cannot be combined with shifted-embedding: layer 1 is "
                    f"bypassed, and only L{last + 1} ablations and `clamp logits to scores of "
                    "…` apply",
                    other.span,
                )

    def fixes(self, item, model):
        return (Write(0, "out"),)  # the last layer's pattern is the first pass's, not fixed

    def first_pass_reads(self, item, model):
        return (PassRead(model.layers - 1, "pattern"),)

    def first_pass_writes(self, item):
        return (Write(0, "out"),)

    def bypasses_layer_one(self, item):
        return item.window.is_always()

    def apply(self, site, x, clamp, context):
        """L1.out [R, N, B, C] := e (e' in the first pass); the last layer's pattern
        [R, H, Nq, N, B] := the first pass's."""
        on = expand(clamp.on, x) > 0
        if site == "pattern":
            return detached_where(clamp, context.first[(clamp.layer, "pattern")]).where(on, x)
        e = context.embedding
        return (shifted(e) if context.first_pass else e).where(on, x)


def shifted(e):
    """[e0, y0, e1, y1, eq] → [e0, e0, y0, e1, eq] along the positions of [R, N, B, C]: each
    middle token gets its predecessor; the first and the query keep their own."""
    ends = e.new_zeros(e.shape[1], 1, 1, dtype=bool)
    ends[0] = ends[-1] = True
    return e.where(ends, e.roll(1, 1))


KINDS = (ShiftedEmbedding(),)
