"""`task repeated-tokens`: Olsson et al. 2022's repeated random tokens, as a training task
(sampler: tasks/repeated_tokens.py). Each sequence is uniform random tokens in which one
segment of random length reappears at a random later offset, so no fixed position or
distance gives the repeat away and only matching the previous token finds it."""

from __future__ import annotations

import attrs

from clampdsl.compile.configs import TokensConfig
from clampdsl.compile.keys import Key
from clampdsl.tasks.base import TaskKind

MAX_LENGTH = 512  # positions the model's rotary tables are built for


class RepeatedTokens(TaskKind):
    name = "repeated-tokens"
    roles = frozenset({"previous", "repeats", "induction-targets"})
    eval_sets = ("train",)
    keys = {
        "vocab": Key("int", low=2, high=65_536, field="tokens.vocab"),
        "length": Key("int", low=4, high=MAX_LENGTH, field="tokens.length"),
        "repeat_min": Key("int", low=2, high=MAX_LENGTH // 2, field="tokens.repeat_min"),
        "repeat_max": Key("int", low=2, high=MAX_LENGTH // 2, field="tokens.repeat_max"),
        "loss": Key("choice", choices=("all", "repeat"), field="tokens.loss"),
    }
    every_position = True
    architectures = ("transformer", "chen")
    data = "clampdsl.tasks.repeated_tokens:RepeatedTokensTask"

    def selected(self, task):
        tokens = task.tokens or TokensConfig()
        return attrs.evolve(task, kind=self.name, tokens=tokens, markov=None)

    def model_shape(self, task):
        return (task.tokens.vocab, task.tokens.length)

    def length(self, task):
        return task.tokens.length

    def brief(self, task):
        tokens = task.tokens
        return f"{tokens.length} tokens, repeats {tokens.repeat_min}-{tokens.repeat_max}"

    def summary(self, task):
        tokens = task.tokens
        return (
            f"repeated tokens: {tokens.length} of {tokens.vocab}, a segment of "
            f"{tokens.repeat_min}-{tokens.repeat_max} repeated; loss at {tokens.loss} positions"
        )

    def check(self, task, span, errors):
        """Segments of repeat_min to repeat_max tokens, twice, fit in a sequence."""
        tokens = task.tokens
        if tokens.repeat_min > tokens.repeat_max:
            errors.error(
                f"task repeat_min={tokens.repeat_min} is above repeat_max={tokens.repeat_max}",
                span,
            )
        elif 2 * tokens.repeat_max > tokens.length:
            errors.error(
                f"task length={tokens.length} cannot hold a segment of repeat_max="
                f"{tokens.repeat_max} tokens twice",
                span,
                hint=f"use length={2 * tokens.repeat_max} or more",
            )


TASK = RepeatedTokens()
