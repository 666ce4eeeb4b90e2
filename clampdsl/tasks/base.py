"""What a task is to the rest of clampdsl: a declaration the compiler reads (torch-free) and
the sampler the runtime builds from it.

A task kind declares its settings, its eval sets, whether its loss reads every position,
and its token roles: what its sequences' positions mean, which is what clamps and
measures read. A clamp or measure that reads a role the task lacks is a compile error.

Roles:
* `previous`: position i's previous token is position i-1 (prev-token clamps and measures);
* `labels`: the few-shot layout, `[x0, y0, …, xq]`, label tokens at the odd positions and
  the query's answer among them (`at labels`, induction and match on labels, `restrict …
  to labels`, copy-scores, shifted-embedding, induction-strength);
* `repeats`: some positions repeat an earlier token, and each such row's induction target,
  the token after that earlier copy, is known (prefix-matching);
* `induction-targets`: where an induction head would attend, for `clamp … to induction`:
  the few-shot query's matching labels, or each repeated token's induction target;
* `next-tokens`: every position's next token is known, the last one's too (the loss at
  any position, for `icl-score`).

A kind may also declare in-context strategies (`baselines`): predictors that read only the
context, whose predictions its eval batches carry; reports draw their losses, and the
`kl-…` and `nearest` measures compare the model's predictions with them.

The sampler (the class `data` names) draws training batches from a generator (the stream
seeds one per chunk of steps, so a batch is a function of its step) and fixed eval sets.
Its batches carry what the model reads (`model_inputs`) and what the roles locate.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from clampdsl.compile.configs import TaskConfig
    from clampdsl.compile.errors import Collector
    from clampdsl.compile.keys import Key
    from clampdsl.lang.diagnostics import Span

ROLE_NOUNS = {
    "previous": "a previous token at each position",
    "labels": "label tokens",
    "repeats": "repeated tokens with known induction targets",
    "induction-targets": "induction targets",
    "next-tokens": "a known next token at every position",
}


class TaskKind:
    """A task kind, as `task NAME …` selects it. Subclasses set the class attributes."""

    name: ClassVar[str] = ""
    roles: ClassVar[frozenset[str]] = frozenset()
    eval_sets: ClassVar[tuple[str, ...]] = ()
    keys: ClassVar[dict[str, Key]] = {}  # its `task` settings
    every_position: ClassVar[bool] = False  # the loss reads every position, not the last
    architectures: ClassVar[tuple[str, ...]] = ("transformer",)  # the `model arch=` it builds
    data: ClassVar[str] = ""  # "module:Class" of its sampler

    def selected(self, task: TaskConfig) -> TaskConfig:
        """The config once `task NAME` selects this kind (its own settings at defaults)."""
        raise NotImplementedError

    def model_shape(self, task: TaskConfig) -> tuple:
        """What of the task the model's shape depends on: runs whose tasks differ in nothing
        else batch as one model, each with its own data stream."""
        raise NotImplementedError

    def brief(self, task: TaskConfig) -> str:
        """What tells a run's task from its group's others, in a few words (`clampdsl plan`)."""
        raise NotImplementedError

    def summary(self, task: TaskConfig) -> str:
        """The task in a line of a report."""
        raise NotImplementedError

    def inputs(self, task: TaskConfig) -> str:
        """What the model reads besides its own embeddings, for `clampdsl plan` ("" for
        nothing: tokens are embedded by the model)."""
        return ""

    def check(self, task: TaskConfig, span: Span, errors: Collector) -> None:
        """What the task's numbers must satisfy together."""

    def baselines(self, task: TaskConfig) -> tuple[str, ...]:
        """Its in-context strategies, simplest first (none by default)."""
        return ()

    def length(self, task: TaskConfig) -> int | None:
        """Positions in a sequence, for token tasks (None for the others)."""
        return None

    def sampler(self, task: TaskConfig):
        """The runtime's sampler for `task` (imports torch)."""
        module, name = self.data.split(":")
        return getattr(importlib.import_module(module), name)(task)
