"""The batches of token tasks (tasks/repeated_tokens.py, tasks/markov.py), as the token
model reads them (model/tokens.py)."""

from __future__ import annotations

import attrs
import torch

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
        return type(self)(*(t.to(device) for t in attrs.astuple(self, recurse=False)))

    def position_major(self) -> TokenBatch:
        return self  # tokens are gathered whole: no layout to choose

    def rows(self, rows: slice) -> TokenBatch:
        return type(self)(*(t[..., rows, :] for t in attrs.astuple(self, recurse=False)))

    @classmethod
    def for_runs(cls, batches, pick: torch.Tensor) -> TokenBatch:
        """[R, B, …]: run r's sequences from batches[pick[r]]."""
        fields = zip(*(attrs.astuple(b, recurse=False) for b in batches), strict=True)
        return cls(*(torch.stack(parts).index_select(0, pick) for parts in fields))


@attrs.frozen
class StrategyBatch(TokenBatch):
    """A token batch with what the task's in-context strategies predict at each position
    (tasks/base.py's `baselines`): the eval sets of a task that declares them."""

    strategies: torch.Tensor  # [B, T, S, V]: each strategy's log-probabilities of the next token

    def rows(self, rows: slice) -> StrategyBatch:
        tokens = TokenBatch.rows(TokenBatch(self.tokens, self.targets, self.induction), rows)
        return StrategyBatch(
            *attrs.astuple(tokens, recurse=False), self.strategies[..., rows, :, :, :]
        )
