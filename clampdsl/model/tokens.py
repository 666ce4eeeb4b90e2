"""The batched transformer for token tasks (tasks/repeated_tokens.py): the same layers,
clamp sites and variants (positions, MLP blocks, smeared keys) as model/transformer.py,
with a token embedding in, a readout at every position out, and every layer computed at
every row (the loss reads them all).

Tokens are [(R,) B, T]; what the model reads besides them, `supervision` [(R,) B, T, 2],
holds each position's target (the next token where the loss scores it, -1 elsewhere) and
its induction target (a key position, -1 for none: what `clamp … to induction` sets);
logits are [R, B, T, V].
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from clampdsl.compile.configs import ModelConfig
from clampdsl.model.clamps import ClampState
from clampdsl.model.context import Context
from clampdsl.model.transformer import BatchedTransformer
from clampdsl.model.weights import layer_norm

UNSCORED = -1  # a target the loss skips


class TokenTransformer(BatchedTransformer):
    EMBEDDING = ["token_embed"]
    COPIED = "token_embed"

    def __init__(self, config: ModelConfig, vocab: int, length: int, seeds: Sequence[int]):
        super().__init__(config, 0, vocab, seeds, positions=max(64, length))

    @staticmethod
    def io_shapes(features: int, labels: int, c: int) -> dict[str, tuple[int, ...]]:
        return {
            "token_embed": (labels, c),
            "final_ln_g": (c,),
            "final_ln_b": (c,),
            "unembed_w": (c, labels),
            "unembed_b": (labels,),
        }

    @staticmethod
    def initialise(name: str, value: torch.Tensor, generator: torch.Generator) -> None:
        """Token embeddings of unit scale (torch's `nn.Embedding`): at the few-shot label
        embeddings' 0.02 the tokens are drowned in the residual stream by layer 1's output,
        and the model did not form induction heads in 1,500 steps where this one does. A
        learned position embedding is drawn alike."""
        if name in ("token_embed", "pos_embed"):
            torch.nn.init.normal_(value, 0.0, 1.0, generator=generator)
        else:
            BatchedTransformer.initialise(name, value, generator)

    def query_row_only(self, layer: int) -> bool:
        return False

    @staticmethod
    def with_run_dim(tokens: torch.Tensor, supervision: torch.Tensor):
        if tokens.dim() == 2:  # shared by the runs
            return tokens[None], supervision[None]
        return tokens, supervision

    @staticmethod
    def context_of(supervision: torch.Tensor, e: torch.Tensor, clamps: ClampState) -> Context:
        context = Context(supervision[..., 0], e, {}, clamps.reads_first_pass)
        context.induction_targets = supervision[..., 1]
        return context

    # Sequences of tens of tokens: the products are batched GEMMs over (R, H, B), with the
    # scores and patterns kept key-innermost in memory ([R, H, B, Nq, N], handed out as
    # [R, H, Nq, N, B] views), so that the softmax over keys reads contiguous rows. (The
    # few-shot layout, batch innermost, suits 5 tokens; here it would hold N² · hd floats.)
    @staticmethod
    def query_key_products(q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        scores = torch.matmul(q.permute(0, 1, 4, 3, 2), k.permute(0, 1, 4, 2, 3))
        return scores.permute(0, 1, 3, 4, 2)

    @staticmethod
    def softmax(scores: torch.Tensor) -> torch.Tensor:
        # over the last dimension of the key-innermost layout: torch's softmax over another
        # dimension would first copy the scores into the batch-innermost one
        return scores.permute(0, 1, 4, 2, 3).softmax(-1).permute(0, 1, 3, 4, 2)

    @staticmethod
    def weighted_values(pattern: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        z = torch.matmul(pattern.permute(0, 1, 4, 2, 3), v.permute(0, 1, 4, 3, 2))
        return z.permute(0, 1, 4, 3, 2)

    def embed(self, tokens, targets, items=None, weights=None) -> torch.Tensor:
        """tokens [(R,) B, T] → the residual stream [R, T, B, C]."""
        table = (weights or self.weights)["token_embed"]  # [R, V, C]
        r = table.shape[0]
        by_position = tokens.transpose(-1, -2)  # [(R,) T, B]
        if by_position.dim() == 2:  # shared by the runs
            return table[:, by_position]
        return table[torch.arange(r, device=tokens.device)[:, None, None], by_position]

    def prepare_for(self, batch) -> dict:
        """What the position scheme prepares for the batch's length (with RoPE, each
        layer's rotated projections; no table to embed)."""
        return self.positions.prepare(self.weights, batch.tokens.shape[-1])

    def readout(self, x: torch.Tensor) -> torch.Tensor:
        """Logits at every position: [R, B, T, V]."""
        w = self.weights
        normed = layer_norm(x, w["final_ln_g"], w["final_ln_b"])  # [R, T, B, C]
        r, t, b, c = normed.shape
        logits = torch.matmul(normed.view(r, t * b, c), w["unembed_w"]) + w["unembed_b"][:, None]
        return logits.view(r, t, b, -1).transpose(1, 2)

    def losses(self, logits: torch.Tensor, supervision: torch.Tensor) -> torch.Tensor:
        """[R]: each sequence's mean cross-entropy over its scored positions, averaged."""
        targets = supervision[..., 0]
        return per_sequence(token_losses(logits, targets), targets).mean(-1)

    def eval_sums(self, logits: torch.Tensor, supervision: torch.Tensor) -> list[torch.Tensor]:
        """Sums over the sequences of each one's mean loss and share of correct next tokens
        at its scored positions: [R] each."""
        targets = supervision[..., 0]
        correct = (logits.argmax(-1) == targets).float()
        return [
            per_sequence(token_losses(logits, targets), targets).sum(-1),
            per_sequence(correct, targets).sum(-1),
        ]


def token_losses(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy [R, B, T] of logits [R, B, T, V] against targets [(R,) B, T] (0 where
    unscored)."""
    r, b, t, v = logits.shape
    flat = targets.expand(r, b, t).reshape(-1)
    losses = F.cross_entropy(logits.reshape(-1, v), flat, ignore_index=UNSCORED, reduction="none")
    return losses.view(r, b, t)


def per_sequence(values: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """[R, B, T] values → [R, B]: their mean over each sequence's scored positions."""
    scored = (targets != UNSCORED).to(values.dtype)
    return (values * scored).sum(-1) / scored.sum(-1).clamp(min=1)


def token_model(config: ModelConfig, vocab: int, length: int, seeds: Sequence[int]):
    """The model `arch` names, for a token task: the transformer, or Chen et al.'s
    (model/chen.py)."""
    if config.arch == "transformer":
        return TokenTransformer(config, vocab, length, seeds)
    from clampdsl.model.chen import ChenModel

    return ChenModel(config, vocab, length, seeds)
