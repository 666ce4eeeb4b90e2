"""`task markov`: in-context Markov chains (Edelman et al. 2024; Chen et al. 2024's n-gram
form), as a training task (sampler: tasks/markov.py). Each sequence has a transition table
of its own, one row per (order-1)-tuple of previous tokens, so the next token's law is
learnt from the context only: first its token counts (unigram), then the counts of what
followed the current context earlier on (bigram, for order 2), Edelman's phases."""

from __future__ import annotations

import attrs

from clampdsl.compile.configs import MarkovConfig
from clampdsl.compile.keys import Key
from clampdsl.tasks.base import TaskKind

MAX_LENGTH = 512  # positions the model's rotary tables are built for
MAX_TABLE = 1024  # entries of a sequence's table, vocab ** order: a chunk holds thousands
# The in-context m-gram strategies, m = 0, 1, …: the next token's law from the counts of
# what followed the last m-1 tokens earlier in the sequence (m = 0: none; uniform). Named in
# words, as a phase rule names its value (`phase when nearest is tetragram`).
STRATEGIES = ("uniform", "unigram", "bigram", "trigram", "tetragram", "pentagram")


class Markov(TaskKind):
    name = "markov"
    roles = frozenset({"previous", "next-tokens"})
    eval_sets = ("train",)
    keys = {
        "vocab": Key("int", low=2, high=32, field="markov.vocab"),  # 32² = MAX_TABLE
        "length": Key("int", low=2, high=MAX_LENGTH, field="markov.length"),
        "order": Key("int", low=2, high=len(STRATEGIES) - 1, field="markov.order"),
        "alpha": Key("float", low=1e-3, high=1e3, field="markov.alpha"),
        "prior": Key("choice", choices=("dirichlet", "doubly-stochastic"), field="markov.prior"),
        "loss": Key("choice", choices=("all", "last"), field="markov.loss"),
    }
    every_position = True
    architectures = ("transformer", "chen")
    data = "clampdsl.tasks.markov:MarkovTask"

    def selected(self, task):
        return attrs.evolve(task, kind=self.name, tokens=None, markov=task.markov or MarkovConfig())

    def model_shape(self, task):
        # the order too: it decides how many strategies the eval batches carry
        return (task.markov.vocab, task.markov.length, task.markov.order)

    def baselines(self, task):
        """The m-grams for m = 0 to the order: the last, with add-alpha counts, is the
        posterior mean under the Dirichlet(alpha) prior."""
        return STRATEGIES[: task.markov.order + 1]

    def length(self, task):
        return task.markov.length

    def brief(self, task):
        chain = task.markov
        return f"order {chain.order}, alpha {chain.alpha:g}, {chain.prior}"

    def summary(self, task):
        chain = task.markov
        prior = f"Dirichlet({chain.alpha:g}) rows" + (
            ", doubly stochastic" if chain.prior == "doubly-stochastic" else ""
        )
        return (
            f"in-context Markov chains: {chain.length} tokens of {chain.vocab}, order "
            f"{chain.order}, {prior}, a table per sequence; loss at {chain.loss} positions"
        )

    def check(self, task, span, errors):
        """A sequence's table fits a chunk of sequences, and the context goes beyond the
        order-1 tokens drawn before the chain starts."""
        chain = task.markov
        if chain.vocab**chain.order > MAX_TABLE:
            errors.error(
                f"task vocab={chain.vocab} and order={chain.order} give tables of "
                f"{chain.vocab**chain.order:,} entries per sequence, more than {MAX_TABLE:,}",
                span,
                hint="a smaller vocab or order",
            )
        if chain.length <= chain.order:
            errors.error(
                f"task length={chain.length} leaves no transition to learn in context at "
                f"order={chain.order}",
                span,
                hint=f"use length={chain.order + 1} or more",
            )


TASK = Markov()
