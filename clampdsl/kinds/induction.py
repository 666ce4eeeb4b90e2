"""Targets that set the query row of a pattern to attend to the context's label tokens:

* `clamp SEL to induction [strength s]`: s on the label tokens whose label is the query's,
  1-s on the other label tokens, 0 on exemplars. Induction strength (analysis/measures.py)
  is then 2s-1. On a last-layer head it hands the model subcircuits A and B. On a token
  task (model/context.py's `induction_targets`), every row that has an induction target
  puts s on it and 1-s evenly on the row's other keys (prefix-matching is then s); the
  other rows keep the pattern the head computes.
* `clamp SEL to match [temperature t]`: the label token after each context item gets
  softmax over the items of cos(x_query, x_item) / t, on the raw input features (t = 0:
  all on the most similar item, shared among ties), the reference's `match_heads`.

Constants; only the query row is set, and in the last layer no other row reaches the
loss, so there the head's W_Q and W_K get no gradient.
"""

from __future__ import annotations

from clampdsl.kinds.base import Param, PatternTarget, expand


class QueryRowTarget(PatternTarget):
    """Sets the query row of the pattern from `on_labels`, the attention to each context
    label."""

    roles = ("labels",)

    def apply(self, site, pattern, clamp, context):
        return set_query_row(pattern, clamp, context, self.on_labels(clamp, context))

    def on_labels(self, clamp, context):
        raise NotImplementedError


class Induction(QueryRowTarget):
    name = target = "induction"
    example = "clamp L2.H3 to induction strength 0.9"
    params = {"strength": Param(1.0, 0.0, 1.0)}
    order = 6  # the reference's step 6
    roles = ("induction-targets",)

    def apply(self, site, pattern, clamp, context):
        if context.induction_targets is None:
            return super().apply(site, pattern, clamp, context)
        return set_induction_rows(pattern, clamp, context.induction_targets)

    def on_labels(self, clamp, context):
        """[R, H, K-1, B]: the query's attention to each context label (strengths [R, H];
        labels [D, B, K], the query's last; D is 1 for data the runs share, else R)."""
        labels = context.labels
        context_labels, query = labels[..., :-1], labels[..., -1:]
        match = (context_labels == query).float()  # [D, B, K-1]
        other = 1.0 - match
        match = match / match.sum(-1, keepdim=True).clamp(min=1)
        other = other / other.sum(-1, keepdim=True).clamp(min=1)
        s = clamp.strength[:, :, None, None]  # [R, H, 1, 1]
        return s * match.transpose(1, 2)[:, None] + (1 - s) * other.transpose(1, 2)[:, None]


class Match(QueryRowTarget):
    name = target = "match"
    params = {"temperature": Param(0.0, 0.0, 1e3)}
    order = 7  # the reference's step 7
    example = "clamp L2.H3 to match temperature 0.1"

    def on_labels(self, clamp, context):
        """[R, H, K-1, B]: softmax over the context items of their cosine similarity to
        the query / t (t [R, H]; 0: the most similar item, shared among ties)."""
        inputs = context.inputs()  # [D, B, K, F]
        items, query = inputs[..., :-1, :], inputs[..., -1:, :]
        norms = items.norm(dim=-1) * query.norm(dim=-1)  # [D, B, K-1]
        cosine = ((items * query).sum(-1) / norms.clamp(min=1e-12))[:, None]  # [D, 1, B, K-1]
        t = clamp.temperature[:, :, None, None]  # [R, H, 1, 1]
        hardmax = (cosine == cosine.amax(-1, keepdim=True)).float()
        hardmax = hardmax / hardmax.sum(-1, keepdim=True)
        softmax = (cosine / t.where(t > 0, 1.0)).softmax(-1)
        return hardmax.where(t == 0, softmax).transpose(2, 3)


def set_induction_rows(pattern, clamp, targets):
    """pattern [R, H, Nq, N, B] with each row that has an induction target (targets [D, B,
    N], -1 for none) := s on it and 1-s evenly on the row's other keys, where the clamp is
    on."""
    rows, n = pattern.shape[2:4]
    targets = targets[..., n - rows :]  # [D, B, Nq]
    keys = targets.new_ones(n).cumsum(0) - 1
    on_target = (targets[..., None] == keys).to(pattern.dtype)  # [D, B, Nq, N]
    others = pattern.new_ones(n, n).tril()[n - rows :] - on_target
    others = others / others.sum(-1, keepdim=True).clamp(min=1)
    s = clamp.strength[:, :, None, None, None]  # [R, H, 1, 1, 1]
    induction = s * on_target.permute(0, 2, 3, 1)[:, None]
    induction = induction + (1 - s) * others.permute(0, 2, 3, 1)[:, None]  # [R, H, Nq, N, B]
    has_target = (targets >= 0).permute(0, 2, 1)[:, None, :, None]  # [D, 1, Nq, 1, B]
    return induction.where((expand(clamp.on, pattern) > 0) & has_target, pattern)


def set_query_row(pattern, clamp, context, on_labels):
    """pattern [R, H, Nq, N, B] with its last row (the query's) := `on_labels` [R, H, K-1,
    B] at the label tokens and 0 elsewhere, where the clamp is on."""
    r, h, _, b = on_labels.shape
    rows, n = pattern.shape[2:4]
    row = on_labels.new_zeros(r, h, n, b)
    row[:, :, context.label_positions] = on_labels
    query = pattern.new_zeros(rows, 1, 1, dtype=bool)
    query[-1] = True
    on = (expand(clamp.on, pattern) > 0) & query  # [R, H, Nq, 1, 1]
    return row[:, :, None].where(on, pattern)


KINDS = (Induction(), Match())
