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

import torch

from clampdsl.compile.configs import ModelConfig, TaskConfig
from clampdsl.tasks.token_batch import NONE, TokenBatch


class RepeatedTokensTask:
    def __init__(self, config: TaskConfig):
        self.config = config
        self.tokens = config.tokens

    def model(self, model: ModelConfig, seeds):
        from clampdsl.model.tokens import token_model

        return token_model(model, self.tokens.vocab, self.tokens.length, seeds)

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
