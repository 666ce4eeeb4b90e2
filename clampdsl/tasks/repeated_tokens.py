"""The sampler of `task repeated-tokens` (declared in tasks/kinds/repeated_tokens.py).

A sequence is `length` uniform random tokens; a segment of L tokens (L uniform in
repeat_min..repeat_max) starting at a (uniform in 0..length-2L) is copied to start at b
(uniform in a+L..length-L). Both the length and the distance b - a vary, so neither a
position nor an offset tells where the copy is: only matching each token against the
earlier ones does, which is what an induction head computes.

Position b+j of the copy (j < L-1) repeats a+j, so its induction target, the token after
the earlier copy, is a+j+1, which is also the next token: these rows are where the
prefix-matching score reads and where `loss=repeat` scores.
"""

from __future__ import annotations

import attrs
import torch

from clampdsl.compile.plan import ModelConfig, TaskConfig

NONE = -1  # no target: a position the loss skips, a row without an induction target


@attrs.frozen
class TokenBatch:
    """Sequences of tokens; a leading run dimension ([R, B, T]) gives each run its own."""

    tokens: torch.Tensor  # [B, T]
    targets: torch.Tensor  # [B, T]: the next token where the loss scores it, else NONE
    induction: torch.Tensor  # [B, T]: each row's induction target (a key position), or NONE

    @property
    def sequences(self) -> int:
        return self.tokens.shape[-2]

    @property
    def device(self) -> torch.device:
        return self.tokens.device

    @property
    def preparation(self) -> tuple:
        """What `prepare_for` computes from: the sequence length only."""
        return ("tokens", self.tokens.shape[-1])

    @property
    def supervision(self) -> torch.Tensor:
        """[B, T, 2]: each position's target and induction target (model/tokens.py)."""
        return torch.stack([self.targets, self.induction], -1)

    def model_inputs(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.tokens, self.supervision

    def eval_inputs(self) -> tuple[torch.Tensor, torch.Tensor, None]:
        return self.tokens, self.supervision, None

    def to(self, device) -> TokenBatch:
        return TokenBatch(*(t.to(device) for t in attrs.astuple(self, recurse=False)))

    def position_major(self) -> TokenBatch:
        return self  # tokens are gathered whole: no layout to choose

    def rows(self, rows: slice) -> TokenBatch:
        return TokenBatch(*(t[..., rows, :] for t in attrs.astuple(self, recurse=False)))

    @staticmethod
    def for_runs(batches, pick: torch.Tensor) -> TokenBatch:
        """[R, B, T]: run r's sequences from batches[pick[r]]."""
        fields = zip(*(attrs.astuple(b, recurse=False) for b in batches), strict=True)
        return TokenBatch(*(torch.stack(parts).index_select(0, pick) for parts in fields))


class RepeatedTokensTask:
    def __init__(self, config: TaskConfig):
        self.config = config
        self.tokens = config.tokens

    def model(self, model: ModelConfig, seeds):
        from clampdsl.model.tokens import TokenTransformer

        return TokenTransformer(model, self.tokens.vocab, self.tokens.length, seeds)

    def sample(self, size: int, generator: torch.Generator) -> TokenBatch:
        t, lowest, highest = self.tokens.length, self.tokens.repeat_min, self.tokens.repeat_max
        tokens = torch.randint(self.tokens.vocab, (size, t), generator=generator)
        length = torch.randint(lowest, highest + 1, (size, 1), generator=generator)
        first = _uniform_below(t - 2 * length + 1, generator)
        second = first + length + _uniform_below(t - 2 * length - first + 1, generator)
        position = torch.arange(t)[None]
        in_copy = (position >= second) & (position < second + length)
        shift = second - first
        tokens = tokens.gather(1, torch.where(in_copy, position - shift, position))
        # rows b..b+L-2: the next token is in the copy, and repeats the token after the
        # earlier copy of this one
        repeating = in_copy & (position < second + length - 1)
        induction = torch.where(repeating, position - shift + 1, NONE)
        following = torch.cat([tokens[:, 1:], torch.full((size, 1), NONE)], 1)
        scored = repeating if self.tokens.loss == "repeat" else following != NONE
        return TokenBatch(tokens, torch.where(scored, following, NONE), induction)

    def eval_sets(self, names, size: int, seed: int) -> dict[str, TokenBatch]:
        """Fixed eval sets (only `train`: sequences drawn as in training), from the eval
        seed."""
        generator = torch.Generator().manual_seed(seed)
        return {name: self.sample(size, generator) for name in names}


def _uniform_below(bounds: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """A uniform integer in 0..bound-1 for each bound [B, 1]."""
    return (torch.rand(bounds.shape, generator=generator) * bounds).long()
