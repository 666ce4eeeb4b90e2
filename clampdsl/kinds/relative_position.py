"""`clamp SEL to relative-position offset d [margin m]`, for models with `pos=relative`:
the heads' relative-position biases (model/positions.py, one per distance i−j) := 0 at
distance −d and −m at every other, so that row i attends to key i+d whatever its content
scores (d ≤ 0: offset −1 is the previous token, where Chen et al. 2024's first-layer
heads end up). A row with no key at i+d (i < −d) has −m on every key: its content scores
alone spread it. Margin m in [0, 1e9], by default 1e9: the pattern is then exactly 1 at
i+d (offset −1 sets the pattern `prev-token` sets), and the softmax, saturated, passes no
gradient to W_Q and W_K through the rows that have that key; a finite margin lets the
content compete.

A constant: the clamped heads' biases get no gradient. A pattern clamp on the same head
would override it, and `scale` divides the unclamped pass's scores, which do not hold it:
both combinations are refused.
"""

from __future__ import annotations

from clampdsl.kinds.base import POSITIONS_SITE, Param, expand
from clampdsl.kinds.score_edits import FORBIDDEN, ScoreEdit

MAX_OFFSET = 511  # positions of the longest sequence (task repeated-tokens length=512), less one


class RelativePosition(ScoreEdit):
    name = target = "relative-position"
    params = {
        "offset": Param(None, -MAX_OFFSET, 0),
        "margin": Param(-FORBIDDEN, 0.0, -FORBIDDEN),
    }
    claims_site = True  # one set of biases per head at a time
    example = "clamp L1.H2 to relative-position offset -1"

    def lower_site(self, sites, model, span, errors):
        if model.pos != "relative":
            errors.error(
                f"{self.target} clamps relative-position biases, and this model has "
                f"pos={model.pos}",
                span,
                hint="set `model pos=relative`",
            )
            return None
        if not sites.is_heads or sites.site is not None:
            errors.error(
                f"{self.target} sets heads' relative-position biases; it cannot be clamped "
                f"at {sites.describe()}",
                span,
                hint=f"name heads alone, as in `{self.example}`",
            )
            return None
        return POSITIONS_SITE

    def check(self, item, others, model, errors):
        if item.params["offset"] != int(item.params["offset"]):
            errors.error(f"offset {item.params['offset']:g} is not a whole number", item.span)
        super().check(item, others, model, errors)  # the pattern clamps
        for kind, other in others:
            reads = {(r.layer, r.what) for r in kind.first_pass_reads(other, model)}
            shared = {
                head
                for write in kind.writes(other, model)
                if (write.layer, write.site) == (item.layer, "scores")
                for head in set(write.heads) & set(item.heads)
            }
            if shared and (item.layer, "scores") in reads and item.window.overlaps(other.window):
                errors.error(
                    f"L{item.layer + 1}.H{min(shared)}'s scores are replaced by {other.kind} "
                    f"(line {other.span.line}), which reads the unclamped pass: its "
                    "relative positions would change nothing",
                    item.span,
                )
                return

    def apply(self, site, table, clamp, context):
        """table [R, H, P]: each head's biases by distance 0..P-1."""
        distance = table.new_ones(table.shape[-1]).cumsum(0) - 1
        at_offset = (distance + clamp.offset[..., None]).abs() < 0.5  # distance = -offset
        target = (-clamp.margin[..., None]).expand_as(table).masked_fill(at_offset, 0.0)
        return target.where(expand(clamp.on, table) > 0, table)


KINDS = (RelativePosition(),)
