"""Clamps of the pre-softmax scores, which the softmax then renormalises:

* `forbid SEL attending prev-token [at labels]`: score (i, i-1) := -1e9 for every row i ≥ 1
  (`at labels`: the label rows only), the reference's `disallow_prev_token`;
* `restrict SEL to labels`: the query row may attend label tokens only (the others' scores
  := -1e9), the reference's `silence_non_label_attn`, here in any layer;
* `scale SEL temperature t`: scores / t, the reference's `set_head_temperature`, which
  divides the unclamped first pass's scores; where no other clamp of the run changes what
  the layer's scores are computed from, the final pass's are the same, and serve;
  `detached`: no gradient through those scores.

-1e9 is a constant: no gradient through the elements it sets. A pattern clamp on the same
head would override these, so the combination is refused (the reference asserts it).
"""

from __future__ import annotations

from clampdsl.kinds.base import Kind, Param, PassRead, detached_where, expand, head_site

FORBIDDEN = -1e9  # the reference's fill for forbidden scores


class ScoreEdit(Kind):
    order = 8  # the reference's disallow and silence steps, before the pattern is taken

    def lower_site(self, sites, model, span, errors):
        if sites.site not in (None, "scores"):
            errors.error(f"{self.describe()} acts on scores, not on .{sites.site}", span)
            return None
        return head_site(self, "scores", sites, span, errors)

    def check(self, item, others, model, errors):
        for kind, other in others:
            if not item.window.overlaps(other.window):
                continue
            for write in kind.writes(other, model):
                shared = set(write.heads) & set(item.heads)
                if write.layer == item.layer and write.site == "pattern" and shared:
                    errors.error(
                        f"L{item.layer + 1}.H{min(shared)}'s pattern is set by {other.kind} "
                        f"(line {other.span.line}): its scores would change nothing",
                        item.span,
                    )
                    return

    def forbid(self, scores, clamp, where):
        """scores with -1e9 where the clamp is on and `where` [Nq, N] is 1."""
        on = (expand(clamp.on, scores) > 0) & (where[:, :, None] > 0)
        return scores.masked_fill(on, FORBIDDEN)


class Forbid(ScoreEdit):
    name = statement = "forbid"
    form = ("attending", "prev-token")
    rows = ("labels",)
    roles = ("previous",)
    example = "forbid L1.H* attending prev-token"

    def apply(self, site, scores, clamp, context):
        rows, n = scores.shape[2:4]
        previous = scores.new_ones(n - 1).diag(-1)[n - rows :]  # [Nq, N]: key i-1 of row i
        at_labels = clamp.get("at_labels")
        if at_labels is None:
            return self.forbid(scores, clamp, previous)
        # Heads forbidden at the label rows only, and heads forbidden at every row.
        label_rows = context.label_rows[n - rows :, None]
        labels_only = expand(at_labels, scores) > 0
        everywhere = self.forbid(scores, clamp, previous)
        return self.forbid(scores, clamp, previous * label_rows).where(labels_only, everywhere)


class Restrict(ScoreEdit):
    name = statement = "restrict"
    form = ("to", "labels")
    roles = ("labels",)
    example = "restrict L2.H3 to labels"

    def apply(self, site, scores, clamp, context):
        rows, n = scores.shape[2:4]
        query = scores.new_zeros(rows, 1)
        query[-1] = 1.0
        return self.forbid(scores, clamp, query * (1 - context.label_rows))


class Scale(ScoreEdit):
    name = statement = "scale"
    params = {"temperature": Param(None, 1e-3, 1e3)}
    example = "scale L2.H3 temperature 2"
    detachable = True
    order = 1  # the reference's first step: it divides the unclamped scores

    def first_pass_reads(self, item, model):
        return (PassRead(item.layer, "scores", unless_unchanged=True, every_row=True),)

    def apply(self, site, scores, clamp, context):
        on = expand(clamp.on, scores)
        temperature = expand(clamp.temperature, scores) + (1 - on)  # 1 where off: no 0/0
        divided = detached_where(clamp, context.scores_read(clamp.layer)) / temperature
        return divided.where(on > 0, scores)


KINDS = (Forbid(), Restrict(), Scale())
