"""Chen, Sheen, Wang, Yang 2024's two-layer model (`model arch=chen`), batched over runs,
for the token tasks (tokens [(R,) B, T] in, logits [R, B, T, V] out, as model/tokens.py).

* Layer 1: H heads whose logits are learned relative-position biases by distance,
  `rel0` [R, H, P] (model/positions.py's table, so `clamp … to relative-position` sets
  it), plus a content term x_iᵀ W_h x_j (`qk0` [R, H, V, V]); their values are the
  one-hot tokens themselves.
* Features: the components u_0 = x_i and u_h = head h's output over its length (Chen's
  "simplified LayerNorm"), and for every subset S of the H + 1 components with |S| ≤ D
  (`degree`) a coefficient c_S (`coef` [R, K]). The normalised polynomial kernel between
  positions i and j is Σ_S c_S² Π_{s∈S} ⟨u_s(i), u_s(j)⟩ / Σ_S c_S²: the inner product
  of the features φ_S = c_S ⊗_{s∈S} u_s / ‖c‖, never built.
* Layer 2: one head, from each position i to the earlier positions j < i, logits
  a · kernel(i, j) (`scale` [R]), whose values are the tokens x_{j+1} that followed the
  keys: its output is a distribution over the tokens, and the logits are its logs (so
  the loss is its cross-entropy). Position 0, with no earlier key, predicts uniformly.

Clamp sites (compile/architectures.py): layer 1's positions, scores and pattern
[R, H, T, T, B] (the transformer's layouts) and the logits. Recorded patterns are
[R, B, H, T, T], layer 2's with one head.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import combinations

import torch
import torch.nn.functional as F
from torch import nn

from clampdsl.compile.configs import ModelConfig
from clampdsl.kinds.base import POSITIONS_SITE
from clampdsl.model.context import Context
from clampdsl.model.positions import by_distance
from clampdsl.model.tokens import TokenTransformer
from clampdsl.model.transformer import MASK_VALUE

W_PLUS, W_MINUS = 1.0, 0.01  # Chen's init of rel0: head h's bias at distance h + 1, else
COEF_INIT, SCALE_INIT = 0.01, 0.01  # Chen's c_S and a
CONTENT_STD = 0.01  # qk0, drawn from the run's seed: what sets one seed's runs apart
NORM_EPS = 1e-7  # Chen's SimplifiedLayerNorm
TINY = 1e-9  # added to the predicted distribution before its log


def subsets(heads: int, degree: int) -> list[tuple[int, ...]]:
    """The feature subsets, by size then members: component 0 is the token, h + 1 head h."""
    parts = range(heads + 1)
    return [s for size in range(degree + 1) for s in combinations(parts, size)]


def subset_name(members: tuple[int, ...]) -> str:
    """`{x,H0}`: the token x and layer 1's heads, as a record key names a subset."""
    return "{" + ",".join("x" if m == 0 else f"H{m - 1}" for m in members) + "}"


class ChenModel(nn.Module):
    def __init__(self, config: ModelConfig, vocab: int, length: int, seeds: Sequence[int]):
        super().__init__()
        self.config, self.vocab, self.n_labels = config, vocab, vocab
        self.subsets = subsets(config.heads, config.degree)
        h = config.heads
        shapes = {
            "coef": (len(self.subsets),),
            "qk0": (h, vocab, vocab),
            "rel0": (h, length),
            "scale": (),
        }
        self.weights = nn.ParameterDict(
            {name: nn.Parameter(torch.empty(len(seeds), *shape)) for name, shape in shapes.items()}
        )
        for r, seed in enumerate(seeds):
            self._init_run(r, seed)

    @torch.no_grad()
    def _init_run(self, r: int, seed: int) -> None:
        # a run's slice from its own generator: alike alone or in a group
        generator = torch.Generator().manual_seed(seed)
        w = self.weights
        w["coef"][r] = COEF_INIT
        w["scale"][r] = SCALE_INIT
        content = torch.empty(w["qk0"].shape[1:])
        w["qk0"][r] = nn.init.normal_(content, 0.0, CONTENT_STD, generator=generator)
        w["rel0"][r] = W_MINUS
        heads = torch.arange(self.config.heads)
        w["rel0"][r, heads, heads + 1] = W_PLUS

    def weights_of(self, layer: int | None, part: str) -> list[tuple]:
        """A layer's weights (what `freeze` holds): layer 1's positions and content term,
        or layer 2's coefficients and scale."""
        if part != "layer":
            return []
        names = ["rel0", "qk0"] if layer == 0 else ["coef", "scale"]
        return [(name, None, 0, 0) for name in names]

    def prepare_for(self, batch) -> dict:
        return {}

    with_run_dim = staticmethod(TokenTransformer.with_run_dim)
    losses = TokenTransformer.losses
    eval_sums = TokenTransformer.eval_sums

    def forward(self, tokens, supervision, clamps=None, record=None, items=None, prepared=None):
        tokens, supervision = self.with_run_dim(tokens, supervision)
        w = self.weights
        runs = w["scale"].shape[0]
        x = F.one_hot(tokens, self.vocab).to(w["scale"].dtype).expand(runs, -1, -1, -1)
        context = None
        if clamps is not None:
            context = Context(supervision[..., 0], x.transpose(1, 2), {}, clamps.reads_first_pass)
            context.induction_targets = supervision[..., 1]
        pattern = self.layer_one(x, clamps, context)
        _record(record, 0, pattern)
        components = torch.cat([x[:, None], self.head_outputs(pattern, x)], 1)
        second = self.layer_two(self.kernel(components))
        _record(record, 1, second)
        logits = self.predictions(second, x)
        return logits if clamps is None else clamps.at("logits", None, logits, context)

    def layer_one(self, x, clamps, context) -> torch.Tensor:
        """x [R, B, T, V] → layer 1's pattern [R, H, T, T, B]."""
        w = self.weights
        t = x.shape[2]
        content = torch.einsum("rbiv,rhvw,rbjw->rhijb", x, w["qk0"], x)
        table = w["rel0"]
        if clamps is not None:
            table = clamps.at(POSITIONS_SITE, 0, table, context)
        scores = content + by_distance(table, t)[..., None]
        causal = torch.ones(t, t, device=x.device).tril()[:, :, None]
        scores = scores * causal + (1 - causal) * MASK_VALUE
        if clamps is None:
            return scores.softmax(3)
        context.final_scores[0] = scores
        scores = clamps.at("scores", 0, scores, context)
        return clamps.at("pattern", 0, scores.softmax(3), context)

    @staticmethod
    def head_outputs(pattern: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Each head's attention-weighted tokens, over their length: [R, H, B, T, V]."""
        out = torch.einsum("rhijb,rbjv->rhbiv", pattern, x)
        return out / (out.norm(dim=-1, keepdim=True) + NORM_EPS)

    def kernel(self, components: torch.Tensor) -> torch.Tensor:
        """components [R, H+1, B, T, V] → the normalised polynomial kernel [R, B, T, T]."""
        gram = torch.einsum("rcbiv,rcbjv->crbij", components, components)
        coef = self.weights["coef"]
        shares = coef.square() / coef.square().sum(-1, keepdim=True)  # [R, K]
        total = gram.new_zeros(gram.shape[1:])
        for k, members in enumerate(self.subsets):
            term = shares[:, k, None, None, None].expand_as(total)
            for member in members:
                term = term * gram[member]
            total = total + term
        return total

    def layer_two(self, kernel: torch.Tensor) -> torch.Tensor:
        """The kernel [R, B, T, T] → layer 2's pattern [R, 1, T, T, B] over the keys
        j < i (row 0: none, all zeros)."""
        t = kernel.shape[-1]
        earlier = torch.ones(t, t, device=kernel.device).tril(-1)
        scores = self.weights["scale"][:, None, None, None] * kernel
        scores = scores * earlier + (1 - earlier) * MASK_VALUE
        pattern = scores.softmax(-1) * earlier.amax(-1, keepdim=True)
        return pattern.permute(0, 2, 3, 1)[:, None]

    def predictions(self, pattern: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Logits [R, B, T, V]: the logs of the tokens that followed the keys, weighted by
        layer 2's pattern; row 0's, uniform."""
        following = torch.cat([x[:, :, 1:], torch.zeros_like(x[:, :, :1])], 2)
        predicted = torch.einsum("rijb,rbjv->rbiv", pattern[:, 0], following)
        first = torch.full_like(predicted[:, :, :1], 1.0 / self.vocab)
        predicted = torch.cat([first, predicted[:, :, 1:]], 2)
        return (predicted + TINY).log()


def _record(record: dict | None, layer: int, pattern: torch.Tensor) -> None:
    if record is not None:
        record[layer] = pattern.permute(0, 4, 1, 2, 3)  # [R, B, H, T, T]
