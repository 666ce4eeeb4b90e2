"""A group's interventions as tensors: masks and targets the forward applies with `where`.

Built once from the Plan. Each intervention keeps its window; `set_step` rewrites the masks
in place only when a window opens or closes, so a compiled step never sees a new tensor and
nothing recompiles. Semantics (shared/reference/icl_dynamics_spec.md §4, §7.9):

* ablate:            v[h] := 0 at every position (the head's weights then get no gradient)
* zero:              any site := 0 (q, k, v, pattern, z of heads; a layer's in/out; embed;
                     logits); `ablate` is zero at v
* prev-token:        pattern row i := s on i-1, 1-s on i (row 0 attends to itself); `at
                     labels`: the label rows only, other rows keep their computed pattern
* induction:         query row := s on the label tokens whose label is the query's, 1-s on
                     the other label tokens, 0 on exemplars
* shifted-embedding: pass 1 sets L1.out := [e0, e0, y0, e1, …, eq] (each token carries only
                     its predecessor's embedding); the final pass sets L1.out := e and the
                     last layer's patterns := pass 1's. Layer 1 gets no gradient.
* copy-scores:       query logits := -1e9 except the context labels, which get the source
                     head's pre-softmax query-row scores from pass 1 (gradient flows into
                     pass 1, not into the last layer's W_V, W_O or the unembedding); when no
                     other clamp of the run acts upstream of those scores, the final pass
                     computes the same scores and they are read there (`needs_first_pass`)

No clamp detaches anything: a clamp computed from parameters passes gradient, a constant
clamp cuts it, exactly as the reference's `where(mask, cache, computed)`.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch

from clampdsl.compile.plan import Intervention, ModelConfig, Run

HEAD_KINDS = ("prev-token", "induction")
ZERO_KINDS = ("ablate", "zero")  # ablate is zero at a head's values
RUN_KINDS = ("shifted-embedding", "copy-scores")


class ClampState:
    """Per-group clamp tensors. Masks are float 0/1 so they broadcast and multiply cheaply."""

    def __init__(self, runs: Sequence[Run], model: ModelConfig, device="cpu"):
        self.n_runs, self.layers, self.heads = len(runs), model.layers, model.heads
        self.items: list[tuple[int, Intervention]] = [
            (r, item) for r, run in enumerate(runs) for item in run.interventions
        ]
        kinds = {item.kind for _, item in self.items}
        zeros = torch.zeros(self.n_runs, self.layers, self.heads, device=device)
        # head masks [R, layers, H] and strengths; None when no run uses the kind
        self.head_mask = {k: zeros.clone() if k in kinds else None for k in HEAD_KINDS}
        self.strength = {k: zeros.clone() if k in kinds else None for k in HEAD_KINDS}
        # The layers where some run has the kind, in any window: elsewhere its masks stay 0
        # (evals leave it out there: transformer._applies).
        self.head_layers = {
            k: frozenset(item.layer for _, item in self.items if item.kind == k) for k in HEAD_KINDS
        }
        # [R, layers, H]: 1 where a prev-token clamp is confined to label rows
        at_labels = any("at_labels" in item.params for _, item in self.items)
        self.labels_only = zeros.clone() if at_labels else None
        self.run_mask = {
            k: torch.zeros(self.n_runs, device=device) if k in kinds else None for k in RUN_KINDS
        }
        # (layer or None, site) → [R, H] for head sites, [R] for layer and model sites
        self.zero_mask: dict[tuple[int | None, str], torch.Tensor] = {}
        for _, item in self.items:
            if item.kind in ZERO_KINDS:
                shape = (self.n_runs, self.heads) if item.heads else (self.n_runs,)
                self.zero_mask.setdefault(
                    (item.layer, item.site), torch.zeros(shape, device=device)
                )
        # [R, layers, H]: True at each copy-scores run's source head
        self.copy_source = torch.zeros(self.n_runs, self.layers, self.heads, dtype=torch.bool)
        for r, item in self.items:
            if item.kind == "copy-scores":
                self.copy_source[r, item.source.layer, item.source.head] = True
        self.copy_source = self.copy_source.to(device)
        two_pass = [r for r, run in enumerate(runs) if needs_first_pass(run)]
        # [R]: True for copy runs that read their source scores from the final pass
        copy_runs = {r for r, item in self.items if item.kind == "copy-scores"}
        from_final = [r in copy_runs and r not in two_pass for r in range(self.n_runs)]
        self.copy_from_final = torch.tensor(from_final, device=device)
        self.any_copy_from_final = any(from_final)  # else the final pass's rows go unread
        # The range of runs that covers every run that needs pass 1 (whatever their
        # windows). A range, not a list: its weights are then views, and the gradient of a
        # view is dense (torch 2.13's CPU inductor miscompiles the scatter that gathered
        # weights need). `batching_order` puts such runs together, so it holds no others.
        self.first_pass_runs = slice(min(two_pass, default=0), max(two_pass, default=-1) + 1)
        self.first_pass_layers = max(
            (
                self.layers if item.kind == "shifted-embedding" else item.source.layer + 1
                for r, item in self.items
                if r in two_pass and item.kind in RUN_KINDS
            ),
            default=0,
        )  # how many layers pass 1 runs (the last one only up to its scores)
        # Layer 1 need not be computed where every run it would serve replaces its output
        # (see `bypasses_first_layer`): in pass 1 unless a copy clamp reads layer-1 scores
        # there, in the final pass when the whole group is bypassed (patterns are recorded
        # for measures even so).
        bypassed = {r for r, run in enumerate(runs) if bypasses_first_layer(run)}
        reads_layer_one = any(
            item.kind == "copy-scores" and item.source.layer == 0 and r in two_pass
            for r, item in self.items
        )
        self.first_pass_skips_layer_one = (
            bool(two_pass) and bypassed.issuperset(two_pass) and not reads_layer_one
        )
        self.final_pass_skips_layer_one = len(bypassed) == self.n_runs
        # The runs whose layer-1 output the final pass reads, and those whose logits it
        # gives: all but the bypassed runs, and the runs whose copy clamp replaces their
        # logits with pass 1's scores throughout, where `batching_order` put them last.
        self.layer_one_runs = _before_trailing([r in bypassed for r in range(self.n_runs)])
        self.final_pass_runs = _before_trailing([replaces_final_logits(run) for run in runs])
        self._active: tuple[bool, ...] | None = None
        self.set_step(0)

    @property
    def needs_first_pass(self) -> bool:
        return self.first_pass_layers > 0

    def set_step(self, step: int) -> None:
        active = tuple(
            item.window.start <= step and (item.window.end is None or step < item.window.end)
            for _, item in self.items
        )
        if active == self._active:
            return
        self._active = active
        for tensor in self._masks():
            tensor.zero_()
        for (r, item), on in zip(self.items, active, strict=True):
            if not on:
                continue
            if item.kind in ZERO_KINDS:
                mask = self.zero_mask[(item.layer, item.site)]
                mask[(r, list(item.heads)) if item.heads else r] = 1.0
            elif item.kind in HEAD_KINDS:
                heads = (r, item.layer, list(item.heads))
                self.head_mask[item.kind][heads] = 1.0
                self.strength[item.kind][heads] = item.params["strength"]
                if "at_labels" in item.params:
                    self.labels_only[heads] = 1.0
            else:
                self.run_mask[item.kind][r] = 1.0

    def zero(self, layer: int | None, site: str, x: torch.Tensor) -> torch.Tensor:
        """x with the site zeroed where a zero clamp is active. Head sites are [R, H, …],
        the others [R, …]. Multiplying by 0 cuts the gradient, as the reference's where."""
        mask = self.zero_mask.get((layer, site))
        if mask is None:
            return x
        keep = 1 - mask  # [R, H] or [R]
        return x * keep.view(*keep.shape, *([1] * (x.dim() - keep.dim())))

    def for_runs(self, runs: slice) -> ClampState:
        """The same clamps for a range of the runs: every per-run tensor a view of this
        state's (so `set_step` reaches it)."""
        part = copy.copy(self)
        part.n_runs = len(range(*runs.indices(self.n_runs)))
        part.head_mask, part.strength, part.run_mask = (
            {k: None if t is None else t[runs] for k, t in table.items()}
            for table in (self.head_mask, self.strength, self.run_mask)
        )
        part.zero_mask = {key: mask[runs] for key, mask in self.zero_mask.items()}
        part.labels_only = None if self.labels_only is None else self.labels_only[runs]
        part.copy_source, part.copy_from_final = self.copy_source[runs], self.copy_from_final[runs]
        return part

    def tensors(self) -> list[torch.Tensor]:
        """Every tensor the forward reads: the masks `set_step` rewrites in place, and the
        copy sources."""
        return [*self._masks(), self.copy_source, self.copy_from_final]

    def _masks(self) -> list[torch.Tensor]:
        """The tensors that follow the clamp windows (masks and strengths)."""
        tables = (self.head_mask, self.strength, self.run_mask, self.zero_mask)
        found = [t for table in tables for t in table.values()] + [self.labels_only]
        return [t for t in found if t is not None]

    def to(self, device) -> ClampState:
        self.zero_mask = {key: mask.to(device) for key, mask in self.zero_mask.items()}
        for table in (self.head_mask, self.strength, self.run_mask):
            for key, tensor in table.items():
                if tensor is not None:
                    table[key] = tensor.to(device)
        if self.labels_only is not None:
            self.labels_only = self.labels_only.to(device)
        self.copy_source = self.copy_source.to(device)
        self.copy_from_final = self.copy_from_final.to(device)
        return self


def needs_first_pass(run: Run) -> bool:
    """Whether a run needs the unclamped first pass. Shifted-embedding always does. A
    copy-scores clamp reads its source head's scores from it; but when none of the run's
    other clamps acts upstream of those scores, the final pass computes the same scores
    from the same weights, and reading them there gives the same values and gradients
    without the pass."""
    copies = [item for item in run.interventions if item.kind == "copy-scores"]
    return any(item.kind == "shifted-embedding" for item in run.interventions) or any(
        _acts_before_scores(other, copy.source.layer)
        for copy in copies
        for other in run.interventions
        if other is not copy
    )


def bypasses_first_layer(run: Run) -> bool:
    """Whether the run's shifted-embedding clamp is on for the whole training: layer 1's
    output is then e' in pass 1 and e in the final pass, whatever layer 1 computes."""
    return any(
        item.kind == "shifted-embedding" and item.window.is_always() for item in run.interventions
    )


def _before_trailing(left_out: list[bool]) -> slice:
    """The runs before the trailing ones that are left out."""
    kept = len(left_out)
    while kept and left_out[kept - 1]:
        kept -= 1
    return slice(0, kept)


def replaces_final_logits(run: Run) -> bool:
    """Whether the run's logits are pass 1's copied scores for the whole training (an
    always-on copy clamp that reads pass 1): the final pass's last layer and readout then
    reach neither its loss nor its gradients."""
    copies_always = any(
        item.kind == "copy-scores" and item.window.is_always() for item in run.interventions
    )
    return copies_always and needs_first_pass(run)


def _acts_before_scores(item: Intervention, layer: int) -> bool:
    """Whether a clamp changes what the attention scores of `layer` are computed from."""
    if item.kind in ZERO_KINDS:
        if item.site in ("embed", "logits"):
            return item.site == "embed"
        return item.layer < layer or (item.layer == layer and item.site in ("in", "q", "k"))
    return item.kind in HEAD_KINDS and item.layer < layer  # a pattern in an earlier layer


def batching_order(runs: Sequence[Run]) -> list[Run]:
    """The runs of a group in the order they are batched: those that need pass 1 last (see
    `ClampState.first_pass_runs`), of those the ones that bypass layer 1 last
    (`ClampState.layer_one_runs`), and of those the ones whose logits pass 1 gives last of
    all (`ClampState.final_pass_runs`), each part in plan order."""

    def key(run: Run) -> tuple[bool, bool, bool]:
        return needs_first_pass(run), bypasses_first_layer(run), replaces_final_logits(run)

    return sorted(runs, key=key)


def prev_token_pattern(strength: torch.Tensor, n: int) -> torch.Tensor:
    """[..., H] strengths → [..., H, n, n] patterns: s on i-1, 1-s on i; row 0 on itself."""
    eye = torch.eye(n, device=strength.device)
    shift = torch.diag(torch.ones(n - 1, device=strength.device), -1)
    shift[0, 0] = 1.0
    s = strength[..., None, None]
    return s * shift + (1 - s) * eye


def induction_row(strength: torch.Tensor, labels: torch.Tensor, n: int) -> torch.Tensor:
    """Query-row target [R, H, n, B] from strengths [R, H] and labels [D, B, K] (query
    last; D is 1 for data shared by the runs, else R)."""
    context, query = labels[..., :-1], labels[..., -1:]
    match = (context == query).float()  # [D, B, K-1]
    other = 1.0 - match
    match = match / match.sum(-1, keepdim=True).clamp(min=1)
    other = other / other.sum(-1, keepdim=True).clamp(min=1)
    s = strength[:, :, None, None]  # [R, H, 1, 1]
    on_labels = s * match.transpose(1, 2)[:, None] + (1 - s) * other.transpose(1, 2)[:, None]
    r, h, _, b = on_labels.shape
    row = torch.zeros(r, h, n, b, device=labels.device)
    row[:, :, 1::2] = on_labels  # label tokens sit at odd positions
    return row


def shifted_embedding(e: torch.Tensor) -> torch.Tensor:
    """[e0, y0, e1, y1, eq] → [e0, e0, y0, e1, eq] along the positions of [R, N, B, C]:
    each middle token gets its predecessor."""
    return torch.cat([e[:, :1], e[:, :-2], e[:, -1:]], dim=1)
