"""The reference's attention-only transformer, batched over runs, and its variants (`model
pos=… mlp=N smear=on`): the pieces a variant adds live in model/positions.py, mlp.py and
smear.py, each declaring its weights (model/parts.py); the default adds none.

Every parameter has a leading run dimension R: R experiments train as one model, each run's
slice independent of the others (Adam is elementwise; losses are summed across runs).
Shapes: R runs, B sequences, N tokens `[x0, y0, x1, y1, xq]`, H heads of size hd, C width.

Layouts are chosen for the CPU's vector units, which the tiny dimensions (N = 5, hd = 8)
would leave mostly idle: the residual stream is position-major, [R, N, B, C] (norms reduce
over the contiguous C), and everything per head keeps the batch innermost, q/k/v as
[R, H, hd, N, B] and scores and patterns as [R, H, Nq, N, B], so attention is elementwise
work over 32 contiguous sequences (much faster than batch-major; docs/architecture.md).
The projections switch between the two layouts for free, as transposed GEMM operands.
Recorded patterns are handed out as [R, B, H, Nq, N].

Data is either shared by every run (features [B, K, F], labels [B, K]: common random
numbers, the usual case) or given per run (a leading R: runs whose tasks differ); inside,
it always carries a leading run dimension D of 1 or R, which broadcasts against R.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from clampdsl.compile.configs import ModelConfig
from clampdsl.model import exemplars, mlp, smear
from clampdsl.model import positions as position_schemes
from clampdsl.model.clamps import ClampState
from clampdsl.model.context import Context
from clampdsl.model.exemplars import per_run, raw_inputs
from clampdsl.model.two_pass import KEYS, first_pass, scatter_runs
from clampdsl.model.weights import layer_norm, lecun_normal

MASK_VALUE = -1e20  # the reference's causal-mask fill (multiply-add), applied before clamps


class BatchedTransformer(nn.Module):
    EMBEDDING = ["embed_w", "embed_b", "label_embed"]  # what `freeze embed` holds
    COPIED = "label_embed"  # the embedding of what the logits name (the copying score's)

    def __init__(
        self,
        config: ModelConfig,
        features: int,
        labels: int,
        seeds: Sequence[int],
        positions: int = 64,
    ):
        super().__init__()
        self.config, self.n_labels = config, labels
        runs, c = len(seeds), config.d_model
        # The variant's pieces (model/parts.py): how positions enter, the keys, MLP blocks.
        self.positions = position_schemes.of(config, positions)
        self.keys, self.mlp = smear.of(config), mlp.of(config)
        self.parts = (self.positions, self.keys, self.mlp)
        shapes = self.io_shapes(features, labels, c)
        for layer in range(config.layers):
            shapes |= {
                f"ln_g{layer}": (c,),
                f"ln_b{layer}": (c,),
                f"qkv{layer}": (c, 3 * c),
                f"proj{layer}": (c, c),
            }
        # ParameterDict keeps its names sorted, the order the base model's weights are
        # drawn in; a variant's own are drawn after them, so the base's draw alike.
        own = {name: shape for part in self.parts for name, shape in part.shapes().items()}
        self.draw_order = (*sorted(shapes), *own)
        self.weights = nn.ParameterDict(
            {
                name: nn.Parameter(torch.empty(runs, *shape))
                for name, shape in (shapes | own).items()
            }
        )
        for r, seed in enumerate(seeds):
            self._init_run(r, seed)

    @staticmethod
    def io_shapes(features: int, labels: int, c: int) -> dict[str, tuple[int, ...]]:
        """The input and output weights (before the layers'; their order is the order
        each run's slice is drawn in)."""
        return {
            "embed_w": (features, c),
            "embed_b": (c,),
            "label_embed": (labels, c),
            "final_ln_g": (c,),
            "final_ln_b": (c,),
            "unembed_w": (c, labels),
            "unembed_b": (labels,),
        }

    def weights_of(self, layer: int | None, part: str) -> list[tuple]:
        """The weights a part of the model is made of, as (name, dim, start, width): a
        head's `width` entries along `dim` (of [R, …]) from `start`, one block per head in
        head order; dim None: the whole weight. Parts: a head's q, k, v (columns of W_QKV)
        and z (its rows of W_O); a layer; embed; logits (the readout). A variant's pieces
        add theirs (a layer's MLP block, a head's smear and relative positions with its k)."""
        c, hd = self.config.d_model, self.config.head_dim
        offsets = {"q": 0, "k": c, "v": 2 * c}
        if part in offsets:
            found = [(f"qkv{layer}", 2, offsets[part], hd)]
        elif part == "z":
            found = [(f"proj{layer}", 1, 0, hd)]
        else:
            names = {
                "layer": [f"ln_g{layer}", f"ln_b{layer}", f"qkv{layer}", f"proj{layer}"],
                "embed": self.EMBEDDING,
                "logits": ["final_ln_g", "final_ln_b", "unembed_w", "unembed_b"],
            }[part]
            found = [(name, None, 0, 0) for name in names]
        return found + [w for piece in self.parts for w in piece.part_weights(layer, part)]

    @torch.no_grad()
    def _init_run(self, r: int, seed: int) -> None:
        # Each run's slice is drawn from its own generator, in a fixed order, so a run gets
        # the same initial weights whether it trains alone or in a group.
        generator = torch.Generator().manual_seed(seed)
        owners = {name: part for part in self.parts for name in part.shapes()}
        for name in self.draw_order:
            value = torch.empty(self.weights[name].shape[1:])
            if name not in owners or not owners[name].initialise(name, value, generator):
                self.initialise(name, value, generator)
            self.weights[name][r].copy_(value)

    @staticmethod
    def initialise(name: str, value: torch.Tensor, generator: torch.Generator) -> None:
        """Draws a weight's initial value in place (the reference's initialisers; a learned
        position embedding as the label embeddings)."""
        if name.startswith(("embed_w", "qkv", "proj", "unembed_w")):
            lecun_normal(value, generator)
        elif name in ("label_embed", "pos_embed"):
            nn.init.trunc_normal_(value, 0.0, 0.02, -0.04, 0.04, generator=generator)
        elif name.startswith(("ln_g", "final_ln_g")):
            value.fill_(1.0)
        else:
            value.zero_()

    # ---- pieces ------------------------------------------------------------------------------
    def embed(self, features, labels, items=None, weights=None) -> torch.Tensor:
        """features [(R,) B, K, F], labels [(R,) B, K] → tokens [R, 2K-1, B, C], or from a
        table of feature vectors that `items` index (model/exemplars.py)."""
        w = weights or self.weights
        return exemplars.embed(w, features, labels, items, self.n_labels, self.embed_table)

    def embed_table(self, features: torch.Tensor) -> torch.Tensor:
        """[M, F] feature vectors seen by every run → [M, R, C]."""
        return exemplars.embed_table(self.weights["embed_w"], features)

    def attention_scores(
        self,
        layer: int,
        x: torch.Tensor,
        clamps: ClampState | None = None,
        weights=None,
        query_only: bool = False,
        values: bool = True,
        context: Context | None = None,
        keep: dict | None = None,
    ):
        """Residual [R, N, B, C] → (pre-softmax scores [R, H, Nq, N, B], values
        [R, H, hd, N, B], or None without `values`: where only the scores are read, a
        forward without gradient leaves out the values' third of the projection; a
        training step still computes it, as the gradient of a slice of W_QKV, a
        zero-padded copy, costs more).

        Nq = N, or 1 with `query_only`: keys and values at every position, the query row
        alone (the last layer's other rows reach neither the loss nor any metric). With
        clamps (and the pass's context), the clamps of the q, k and v sites apply. `keep`,
        a dict, receives q, k and v as computed (the first pass's records). The position
        scheme computes q, k, v and adds to the scores what it adds (model/positions.py)."""
        w = weights or self.weights
        n = x.shape[1]
        h = layer_norm(x, w[f"ln_g{layer}"], w[f"ln_b{layer}"])
        q, k, v = self.positions.qkv(h, w, layer, values, query_only)
        k = self.keys.smear(k, w, layer)
        rows = q.shape[3]
        if not values:
            v = None
        if keep is not None:
            keep.update(q=q, k=k, v=v)
        if clamps is not None:
            q, k = clamps.at("q", layer, q, context), clamps.at("k", layer, k, context)
            v = None if v is None else clamps.at("v", layer, v, context)
        scores = self.query_key_products(q, k) / math.sqrt(self.config.head_dim)
        scores = self.positions.scores(scores, w, layer, clamps, context)
        causal = torch.ones(n, n, device=x.device).tril()[n - rows :, :, None]
        return scores * causal + (1 - causal) * MASK_VALUE, v

    def prepare_for(self, batch) -> dict:
        """`prepare_evals` for an eval set's batch (tasks/fewshot.py)."""
        return self.prepare_evals(batch.table, batch.labels.shape[-1])

    @staticmethod
    def query_key_products(q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        """q [R, H, hd, Nq, B] · k [R, H, hd, N, B] → [R, H, Nq, N, B]. Sequences are a
        handful of tokens: a broadcast product fuses (and runs) far better than a batched
        GEMM of thousands of 5×5 matrices."""
        return (q[:, :, :, :, None] * k[:, :, :, None]).sum(2)

    @staticmethod
    def weighted_values(pattern: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """pattern [R, H, Nq, N, B] · v [R, H, hd, N, B] → z [R, H, hd, Nq, B] (a broadcast
        product, as `query_key_products`)."""
        return (pattern[:, :, None] * v[:, :, :, None]).sum(4)

    @staticmethod
    def softmax(scores: torch.Tensor) -> torch.Tensor:
        """Scores [R, H, Nq, N, B] → the pattern, normalised over the keys."""
        return torch.softmax(scores, KEYS)

    @torch.no_grad()
    def prepare_evals(self, table: torch.Tensor, items_per_sequence: int) -> dict:
        """What every forward of an eval would compute alike from the weights, computed
        once for all its chunks and passed to `forward` as `prepared`: the embedded
        feature table [R, U, C] and what the position scheme prepares (with RoPE, each
        layer's `rotated_qkv`, for 2K-1 tokens of K items). Each has a leading run
        dimension, so pass 1 takes its runs' slices."""
        n = 2 * items_per_sequence - 1
        prepared = {"embedded_table": self.embed_table(table).transpose(0, 1)}
        return prepared | self.positions.prepare(self.weights, n)

    def mix(self, layer: int, x, pattern, v, clamps=None, weights=None, context=None):
        """x + W_O · concat_h(pattern_h · v_h) at the pattern's rows (the last Nq positions),
        then the layer's MLP block where the model has them; with clamps (and the pass's
        context), the clamps of z apply."""
        z = self.weighted_values(pattern, v)
        if clamps is not None:
            z = clamps.at("z", layer, z, context)
        r, _, _, rows, b = z.shape
        w = weights or self.weights
        out = torch.matmul(z.reshape(r, -1, rows * b).transpose(1, 2), w[f"proj{layer}"])
        return self.mlp.block(layer, x[:, x.shape[1] - rows :] + out.view(r, rows, b, -1), w)

    def readout(self, x: torch.Tensor) -> torch.Tensor:
        """Query-position logits [R, B, L] (only the query enters loss and metrics)."""
        w = self.weights
        query = layer_norm(x[:, -1], w["final_ln_g"], w["final_ln_b"])
        return torch.matmul(query, w["unembed_w"]) + w["unembed_b"][:, None]

    # ---- forward -----------------------------------------------------------------------------
    def forward(
        self,
        features,
        labels,
        clamps: ClampState | None = None,
        record=None,
        items=None,
        prepared: dict | None = None,
    ):
        """Query logits [R, B, L]. `record`, a dict, receives each layer's pattern
        [R, B, H, Nq, N]; with `items`, `features` is a table of feature vectors that items
        index (see `embed`); `prepared`, what `prepare_evals` computed for it."""
        weights = self.weights if prepared is None else dict(self.weights.items()) | prepared
        e = self.positions.embed(self.embed(features, labels, items, weights), weights)
        _, labels = self.with_run_dim(features, labels)  # [1 or R, B, K]
        if clamps is None:
            x = e
            for layer in range(self.config.layers):
                last = self.query_row_only(layer)
                scores, v = self.attention_scores(layer, x, weights=weights, query_only=last)
                pattern = self.softmax(scores)
                _record(record, layer, pattern)
                x = self.mix(layer, x, pattern, v, weights=weights)
            return self.readout(x)
        context = self.context_of(labels, e, clamps)
        context.inputs = partial(raw_inputs, features, items)
        e = context.embedding = clamps.at("embed", None, e, context)
        schedule = clamps.schedule
        if schedule.first_pass is not None:
            context.first = first_pass(self, e, labels, clamps, weights)
        # Recording keeps layer 1 even where it is bypassed: measures read its patterns.
        start = schedule.final_from_layer if record is None else 0
        x = e
        # Unrecorded (the step; evals that measure nothing), layer 1 serves only the runs
        # that do not bypass it, and the last layer only those whose logits it gives.
        sliced = record is None and self.config.layers > 1
        layer_one_of_its_runs = sliced and 0 < schedule.layer_one_runs < clamps.n_runs
        last_of_its_runs = sliced and schedule.last_layer_runs < clamps.n_runs
        for layer in range(start, self.config.layers):
            if layer == 0 and layer_one_of_its_runs:
                x = self._layer_one_of_its_runs(e, clamps, context, weights)
            elif self.is_last(layer) and last_of_its_runs:
                x = self._last_layer_of_its_runs(x, clamps, context, weights)
            else:
                x = self._clamped_layer(layer, x, clamps, context, record, weights)
        return clamps.at("logits", None, self.readout(x), context)

    @staticmethod
    def with_run_dim(features: torch.Tensor, labels: torch.Tensor):
        """The data with its leading run dimension D (`per_run`)."""
        return per_run(features, labels)

    @staticmethod
    def context_of(labels: torch.Tensor, e: torch.Tensor, clamps: ClampState) -> Context:
        """The final pass's context: labels [D, B, K], the embedding e."""
        return Context(labels, e, {}, clamps.reads_first_pass)

    def is_last(self, layer: int) -> bool:
        return layer == self.config.layers - 1

    def query_row_only(self, layer: int) -> bool:
        """Whether the layer is computed at the query row only: the last layer, whose other
        rows reach neither the loss nor any measure."""
        return self.is_last(layer)

    def _clamped_layer(self, layer, x, clamps: ClampState, context: Context, record, weights):
        """The layer's output; its scores, before their clamps, go to `context.final_scores`."""
        x = clamps.at("in", layer, x, context)  # the residual stream itself, as the reference's x
        last = self.query_row_only(layer)
        scores, v = self.attention_scores(layer, x, clamps, weights, last, context=context)
        context.final_scores[layer] = scores
        scores = clamps.at("scores", layer, scores, context)
        pattern = clamps.at("pattern", layer, self.softmax(scores), context)
        _record(record, layer, pattern)
        x = self.mix(layer, x, pattern, v, clamps, weights, context)
        return clamps.at("out", layer, x, context)

    def _layer_one_of_its_runs(self, e, clamps: ClampState, context: Context, weights):
        """Layer 1 (not the last) for the runs that read it (the schedule's
        `layer_one_runs`); the bypassed runs' output is e, their scores zeros (never read)."""
        runs = slice(0, clamps.schedule.layer_one_runs)
        part = context.for_runs(runs)
        x = self._clamped_layer(0, e[runs], *_of_runs(runs, clamps, part, weights))
        context.final_scores[0] = scatter_runs(part.final_scores[0], runs, e.shape[0])
        return torch.cat([x, e[runs.stop :]])

    def _last_layer_of_its_runs(self, x, clamps: ClampState, context: Context, weights):
        """The last layer for the runs whose logits it gives (the schedule's
        `last_layer_runs`); the others' query rows and scores are zeros (their logits are
        replaced)."""
        runs, (r, n, b, c) = slice(0, clamps.schedule.last_layer_runs), x.shape
        layer = self.config.layers - 1
        if runs.stop == 0:
            context.final_scores[layer] = x.new_zeros(r, self.config.heads, 1, n, b)
            return x.new_zeros(r, 1, b, c)
        part = context.for_runs(runs)
        out = self._clamped_layer(layer, x[runs], *_of_runs(runs, clamps, part, weights))
        context.final_scores[layer] = scatter_runs(part.final_scores[layer], runs, r)
        return scatter_runs(out, runs, r)

    def loss(self, features, labels, clamps=None) -> torch.Tensor:
        """Per-run mean cross-entropy at the query: [R]."""
        return self.losses(self.forward(features, labels, clamps), labels)

    def losses(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Per-run mean cross-entropy [R] of the forward's logits against the batch's
        labels (the query's is the target)."""
        return query_loss(logits, labels[..., -1])

    def eval_sums(self, logits: torch.Tensor, labels: torch.Tensor) -> list[torch.Tensor]:
        """Sums over the sequences, per run: the loss [R] and the correct answers [R]."""
        targets = labels[..., -1]  # [B], or [R, B] when runs have their own data
        sequences = targets.shape[-1]
        correct = (logits.argmax(-1) == targets).float().sum(-1)
        return [query_loss(logits, targets) * sequences, correct]


def _of_runs(runs: slice, clamps: ClampState, context: Context, weights: dict) -> tuple:
    """A layer's arguments (clamps, context, no record, weights) for a range of the runs:
    views, whose gradient is dense."""
    return clamps.for_runs(runs), context, None, {name: w[runs] for name, w in weights.items()}


def _record(record: dict | None, layer: int, pattern: torch.Tensor) -> None:
    if record is not None:
        record[layer] = pattern.permute(0, 4, 1, 2, 3)  # [R, B, H, Nq, N]


def query_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Per-run mean cross-entropy [R] of logits [R, B, L] against targets [(R,) B]."""
    r, b, n_labels = logits.shape
    targets = targets.expand(r, b).reshape(r * b)
    flat = F.cross_entropy(logits.reshape(r * b, n_labels), targets, reduction="none")
    return flat.view(r, b).mean(-1)
