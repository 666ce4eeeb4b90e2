"""`clamp logits to scores of L2.H3`: perfect copy (subcircuit C), the reference's
`perfect_copy_from_head_pattern`. The query's logits are -1e9 except the context labels,
which get the source head's pre-softmax query-row scores at the label tokens.
`detached`: no gradient through those scores.

The scores come from the unclamped first pass, so gradient reaches the source head's W_Q
and W_K, layer 1 and the embeddings, but not the last layer's W_V, W_O or the
unembedding. When no other clamp of the run changes what those scores are computed from,
the final pass computes the same scores from the same weights, and they are read there:
the same values and gradients without the first pass.
"""

from __future__ import annotations

from clampdsl.compile.plan import HeadRef
from clampdsl.kinds.base import Kind, PassRead, detached_where, expand

FILL = -1e9  # the reference's fill for the logits of labels not in the context


class CopyScores(Kind):
    name = "copy-scores"
    target = "scores"
    roles = ("labels",)
    takes_source = True
    detachable = True
    order = 10  # the reference's perfect copy, before a zero clamp of the logits

    def lower_site(self, sites, model, span, errors):
        if sites.layers or sites.site != "logits":
            errors.error(
                f"{self.target} can only be clamped at logits, not {sites.describe()}",
                span,
                hint=f"write `clamp logits to {self.target} of L2.H3`",
            )
            return None
        return "logits"

    def check_source(self, sites, span, errors) -> HeadRef | None:
        if len(sites.layers) != 1 or len(sites.heads) != 1 or sites.site not in (None, "scores"):
            errors.error(f"{self.target} reads exactly one head, not {sites.describe()}", span)
            return None
        return HeadRef(sites.layers[0], sites.heads[0])

    def first_pass_reads(self, item, model):
        return (PassRead(item.source.layer, "scores", unless_unchanged=True),)

    def replaces_logits(self, item):
        return item.window.is_always()

    def values(self, item, model):
        source = [[0.0] * model.heads for _ in range(model.layers)]
        source[item.source.layer][item.source.head] = 1.0
        return dict(item.params) | {"source": source}  # [layers, H]: 1 at the source head

    def apply(self, site, logits, clamp, context):
        """Query logits [R, B, L]."""
        labels = context.labels
        rows = detached_where(clamp, source_rows(clamp, context))
        rows = rows[:, context.label_positions].transpose(1, 2)
        where = labels[..., :-1].expand(logits.shape[0], -1, -1)  # the context's labels
        target = logits.new_full(logits.shape, FILL).scatter(-1, where, rows)
        return target.where(expand(clamp.on, logits) > 0, logits)


def source_rows(clamp, context):
    """Each run's source head's query row of scores [R, N, B], from the pass the run reads
    (`context.query_scores`). Picked with `where`, not by indexing: the gradient of an
    index is a scatter, which torch 2.13's CPU inductor miscompiles."""
    picked = None
    for layer, rows in context.query_scores().items():  # [R, H, N, B]
        part = rows.where(expand(clamp.source[:, layer] > 0, rows), 0.0).sum(1)
        picked = part if picked is None else picked + part
    return picked


KINDS = (CopyScores(),)
