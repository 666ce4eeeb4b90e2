"""What a clamp's application may read besides the value it clamps: the pass's inputs,
the first pass's records, the query scores computed so far, and the token layout.

Layout: tokens are `[x0, y0, x1, y1, …, xq]`, label tokens at the odd positions. This is
the one place the model's runtime says so.
"""

from __future__ import annotations

import torch

LABEL_POSITIONS = slice(1, None, 2)
# Where the sequences of the batch lie in each site's tensor (model/transformer.py's
# layouts: per-head values [R, H, …, B], the residual stream [R, N, B, C], logits [R, B, L]).
BATCH_DIMS = {
    **dict.fromkeys(("q", "k", "v", "scores", "pattern", "z"), -1),
    **dict.fromkeys(("in", "out", "embed"), 2),
    "logits": 1,
}


class Context:
    """One pass of a forward, for the runs it computes.

    labels [D, B, K] (D: 1 for data the runs share, else R); embedding e [R, N, B, C];
    first: the first pass's records by (layer, head site), as `two_pass.first_pass` makes
    them, zeros for runs that do not take it; reads_first_pass [R] bool, per run; first_pass:
    whether this is the first pass. The final pass adds each layer's scores, before any
    clamp of them, to `final_scores`. `inputs()` gives the raw feature vectors [D, B, K, F]
    (computed only where a clamp asks). `induction_targets` [D, B, N]: each row's
    induction target (a key position, -1 for none), which token tasks give
    (model/tokens.py); None for the few-shot task, whose query's targets are its matching
    labels."""

    label_positions = LABEL_POSITIONS
    batch_dims = BATCH_DIMS

    def __init__(self, labels, embedding, first: dict, reads_first_pass, first_pass=False):
        self.labels, self.embedding, self.first = labels, embedding, first
        self.reads_first_pass, self.first_pass = reads_first_pass, first_pass
        self.final_scores: dict[int, torch.Tensor] = {}  # layer → [R, H, Nq, N, B]
        self.inputs = None
        self.induction_targets: torch.Tensor | None = None

    @property
    def label_rows(self) -> torch.Tensor:
        """[N]: 1.0 at the label tokens' positions."""
        rows = self.embedding.new_zeros(self.embedding.shape[1])
        rows[LABEL_POSITIONS] = 1.0
        return rows

    def query_scores(self) -> dict[int, torch.Tensor]:
        """Each layer's pre-softmax query-row scores [R, H, N, B] (before any clamp of the
        scores), per run from the pass it reads (`scores_read`)."""
        layers = {layer for layer, what in self.first if what == "scores"}
        return {
            layer: self.scores_read(layer)[:, :, -1]
            for layer in sorted(layers | set(self.final_scores))
        }

    def scores_read(self, layer: int) -> torch.Tensor:
        """The layer's pre-softmax scores [R, H, Nq, N, B] (before any clamp of them) as
        the runs read them: the first pass's where a run takes it, else the final pass's
        (which computes the same values from the same weights where nothing upstream
        changed them)."""
        first, final = self.first.get((layer, "scores")), self.final_scores.get(layer)
        if first is None or final is None:
            return final if first is None else first
        if first.shape[2] != final.shape[2]:  # the first pass computed the query row alone
            final = final[:, :, -1:]
        return torch.where(self.reads_first_pass[:, None, None, None, None], first, final)

    def for_runs(self, runs: slice) -> Context:
        """The same pass for a range of its runs (views)."""
        part = Context(
            of_runs(self.labels, runs),
            self.embedding[runs],
            {key: value[runs] for key, value in self.first.items()},
            self.reads_first_pass[runs],
            self.first_pass,
        )
        part.final_scores = {layer: s[runs] for layer, s in self.final_scores.items()}
        part.inputs = self.inputs and (lambda: of_runs(self.inputs(), runs))
        if self.induction_targets is not None:
            part.induction_targets = of_runs(self.induction_targets, runs)
        return part


def of_runs(data: torch.Tensor, runs: slice) -> torch.Tensor:
    """Data with a leading run dimension D, for a range of the runs (D = 1: shared)."""
    return data if data.shape[0] == 1 else data[runs]
