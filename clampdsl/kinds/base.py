"""What every clamp kind declares: the torch-free facts the compiler checks and schedules
with, and the tensor application the model calls at the sites the kind writes.

A kind's module never imports torch: its application works through the methods of the
tensors it is handed (`where`, `new_zeros`, …), so the compiler can import the module for
its facts in a process that has no torch (`clampdsl validate`).

Sites are named as in the language: a head's `q`, `k`, `v`, `scores` (pre-softmax),
`pattern`, `z`; a layer's `in` and `out`; the model's `embed` and `logits`. Layers are
0-based here, as in the Plan.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import attrs

from clampdsl.lang import ast

if TYPE_CHECKING:
    from clampdsl.compile.configs import ModelConfig
    from clampdsl.compile.errors import Collector
    from clampdsl.compile.plan import HeadRef, Intervention
    from clampdsl.compile.selectors import Sites
    from clampdsl.lang.diagnostics import Span

HEAD_SITES = ("q", "k", "v", "scores", "pattern", "z")
# A head's relative-position biases by distance, [R, H, P] (`model pos=relative`): a site
# the language does not name, which kinds/relative_position.py clamps.
POSITIONS_SITE = "positions"
SITE_NOUNS = {"pattern": "an attention pattern", "scores": "a head's pre-softmax scores"}


@attrs.frozen
class Param:
    default: float | None  # None: the statement must give it
    low: float
    high: float


@attrs.frozen
class Write:
    """A site a clamp sets in the final pass: (layer or None for embed/logits, site, heads;
    heads empty for layer and model sites)."""

    layer: int | None
    site: str
    heads: tuple[int, ...] = ()


@attrs.frozen
class PassRead:
    """What a clamp reads from the unclamped first pass: the head site `what` (q, k, v,
    scores or pattern) of `layer`, its query row or (`every_row`) all of its rows.
    `unless_unchanged`: the final pass computes the same values, and serves instead, when
    no other clamp of the run changes what the layer's scores are computed from."""

    layer: int
    what: str
    unless_unchanged: bool = False
    every_row: bool = False


class Kind:
    """A clamp kind. Subclasses set the class attributes and override what applies.

    Compile half (torch-free): `name` (the Plan's kind), the statement that writes it
    (`target`, the word after `clamp … to`; or `statement` for a kind with a verb of its
    own), its parameters and row sets, `lower_site` (the site it writes, or an error),
    `writes`, `check`, `fixes` and the pass facts. Runtime half: `apply`."""

    name: str = ""
    statement: str = "clamp"
    target: str | None = None  # the word after `to`, for `clamp SEL to TARGET`
    params: dict[str, Param] = {}
    rows: tuple[str, ...] = ()  # row sets it may be confined to (`at labels`)
    takes_source: bool = False  # `… of L2.H3`
    order: int = 50  # where it applies at a site among other kinds: lower first
    claims_site: bool = False  # one such clamp per head and site at a time
    hands_nothing: bool = False  # an experiment of only these is a baseline
    form: tuple[str, ...] = ()  # the words that follow the target or selector, in order
    detachable: bool = False  # takes `detached`: no gradient through what it reads
    # takes `from "RUN_DIR"` or `from spec "FILE"`, the choice of the donor's run, and `at
    # step N` (compile/donors.py)
    takes_donor: bool = False
    one_per_layer: bool = True  # one intervention per layer its selector names
    roles: tuple[str, ...] = ()  # the task roles it reads (clampdsl/tasks/base.py)
    example: str = ""  # a statement of this kind, for hints

    def describe(self) -> str:
        """How the language names it: the clamp target, or the verb."""
        return self.target or self.statement

    def spoken(self, item: Intervention, selector: str) -> str:
        """Its statement as the language writes it, for `selector` (what it names, in paper
        form): the Plan's parameters back in words, defaults written out (`clamp L1.H2 to
        prev-token strength 0.9 at labels`); the window is not among them."""
        words = [self.statement, selector]
        if self.target is not None:
            words += ["to", self.target]
        if item.source is not None:
            words += ["of", f"L{item.source.layer + 1}.H{item.source.head}"]
        words += [*self.form, *(f"{name} {item.params[name]:g}" for name in self.params)]
        # a row set and `detached`, under the keys compile/interventions.py and read_words
        # give them
        words += [f"at {row}" for row in self.rows if item.params.get(f"at_{row}")]
        if item.params.get("detached"):
            words.append("detached")
        return " ".join(words)

    # ---- compile half ------------------------------------------------------------------------
    def lower_site(
        self, sites: Sites, model: ModelConfig, span: Span, errors: Collector
    ) -> str | None:
        """The site this clamp writes for the selector, or None after reporting why not."""
        raise NotImplementedError

    def read_words(self, words: tuple, span: Span, errors: Collector) -> dict | None:
        """Parameters from the words after the target or selector; None after an error.
        By default the words must be `form`, exactly, then `detached` where the kind
        takes it."""
        detached = self.detachable and bool(words) and word_text(words[-1]) == "detached"
        if detached:
            words = words[:-1]
        if not expect_words(self, self.form, words, span, errors):
            return None
        return {"detached": 1.0} if detached else {}

    def reads_roles(self, item: Intervention) -> tuple[str, ...]:
        """The task roles it needs: its own, and each row set it is confined to (`at
        labels` reads the label tokens)."""
        confined = tuple(row for row in self.rows if item.params.get(f"at_{row}"))
        return self.roles + confined

    def companions(self, item: Intervention, model: ModelConfig) -> tuple[Intervention, ...]:
        """Interventions of other kinds that the statement also asks for."""
        return ()

    def check_source(self, sites: Sites, span: Span, errors: Collector) -> HeadRef | None:
        """The head an `… of SEL` source names (kinds that take one), or None after an error."""
        raise NotImplementedError

    def writes(self, item: Intervention, model: ModelConfig) -> tuple[Write, ...]:
        """The sites it sets in the final pass."""
        return (Write(item.layer, item.site, item.heads),)

    def check(self, item: Intervention, others, model: ModelConfig, errors: Collector) -> None:
        """Refuses combinations with the run's other clamps (`others`, (kind, intervention)
        pairs) that it cannot honour."""

    def fixes(self, item: Intervention, model: ModelConfig) -> tuple[Write, ...]:
        """The sites it sets to a value of its own, whatever the weights learn: what it may
        hand over of a declared subcircuit (compile/subcircuits.py). A `clamp … to TARGET`
        fixes the sites it writes; a verb of its own (ablate, forbid, freeze…) none."""
        return self.writes(item, model) if self.target is not None else ()

    def first_pass_reads(self, item: Intervention, model: ModelConfig) -> tuple[PassRead, ...]:
        """What it reads from the unclamped first pass."""
        return ()

    def freezes(self, item: Intervention, model: ModelConfig) -> tuple[Write, ...]:
        """The weights it holds back from updates (sites naming them: a head's q, k, v, z;
        "layer"; embed; logits), for `weight_masks`."""
        return ()

    def weight_masks(self, clamp, layout, weights) -> dict:
        """{weight name: mask [R, …], 1 where held back now}, for kinds that freeze."""
        raise NotImplementedError

    def lends(self, item: Intervention, model: ModelConfig) -> tuple[Write, ...]:
        """The weights its donor lends (sites naming them, as `freezes`), copied into the
        run before it trains."""
        return ()

    def brings_clamps(self, item: Intervention) -> bool:
        """Whether the donor's clamps on what it lends come along (kinds that take one)."""
        return False

    def first_pass_writes(self, item: Intervention) -> tuple[Write, ...]:
        """The sites it sets in the first pass (which is otherwise unclamped)."""
        return ()

    def bypasses_layer_one(self, item: Intervention) -> bool:
        """Whether it replaces layer 1's output in every pass for the whole training."""
        return False

    def replaces_logits(self, item: Intervention) -> bool:
        """Whether it replaces the logits with what the first pass gives, for the whole
        training (when the run takes the first pass)."""
        return False

    def values(self, item: Intervention, model: ModelConfig) -> dict[str, Any]:
        """What its application reads besides whether it is on: a number, or nested lists
        of one shape, by name; each becomes a tensor [R, H, …] (head sites) or [R, …] that
        holds an item's values while its window is open. Default: its parameters."""
        return dict(item.params)

    # ---- runtime half ------------------------------------------------------------------------
    def apply(self, site: str, x, clamp, context):
        """`x`, the value of `site` (head sites [R, H, …], others [R, …]), with this kind's
        clamps of the site where they are on. `clamp` holds the tensors: `on` (1 where
        active, [R, H] or [R]) and each of `values` by name (`clamp.get(name)`: None where
        no clamp of the site has it); `context` what the forward knows (model/context.py:
        labels, the embedding, the first pass's records, …)."""
        raise NotImplementedError


class PatternTarget(Kind):
    """A target that sets heads' patterns whole (`clamp SEL to TARGET`): one per head at a
    time."""

    claims_site = True

    def lower_site(self, sites, model, span, errors):
        return head_site(self, "pattern", sites, span, errors)


def head_site(kind: Kind, site: str, sites: Sites, span: Span, errors: Collector) -> str | None:
    """`site` for a selector of heads that names no site or that one; else an error."""
    if sites.is_heads and sites.site in (None, site):
        return site
    example = kind.example or f"clamp L1.H2 to {kind.describe()}"
    errors.error(
        f"{kind.describe()} is {SITE_NOUNS[site]}; it cannot be clamped at {sites.describe()}",
        span,
        hint=f"clamp heads' .{site}, as in `{example}`",
    )
    return None


def expect_words(kind: Kind, expected: tuple[str, ...], words, span, errors) -> bool:
    """Whether `words` (ast Names and stray Numbers) are `expected`; else an error."""
    given = tuple(word_text(w) for w in words)
    if given == expected:
        return True
    matched = len(_common_prefix(given, expected))
    where = words[min(matched, len(words) - 1)].span if words else span
    if expected:
        message = f"{kind.describe()} is written `{kind.describe()} … {' '.join(expected)}`"
    else:
        message = f"unexpected {given[0]!r}: {kind.describe()} takes no such word"
    errors.error(message, where, hint=f"as in `{kind.example}`" if kind.example else None)
    return False


def word_text(word) -> str:
    """A word as written (ast Names, and stray Numbers among the words)."""
    return word.text if isinstance(word, ast.Number) else word.value


def _common_prefix(a: tuple, b: tuple) -> tuple:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return a[:n]


def detached_where(clamp, value):
    """`value` without its gradient in the runs and heads whose clamp is `detached`."""
    detached = clamp.get("detached")
    if detached is None:
        return value
    return value.detach().where(expand(detached, value) > 0, value)


def expand(mask, x):
    """A mask [R, H] or [R] viewed to broadcast against `x` ([R, H, …] or [R, …])."""
    return mask.view(*mask.shape, *([1] * (x.dim() - mask.dim())))
