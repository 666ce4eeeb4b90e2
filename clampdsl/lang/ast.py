"""The syntax tree of a .clamp file: frozen attrs nodes, each carrying its source span."""

from __future__ import annotations

import attrs

from clampdsl.lang.diagnostics import Span


@attrs.frozen
class Number:
    value: float
    text: str
    span: Span


@attrs.frozen
class Name:
    value: str
    span: Span


@attrs.frozen
class String:
    value: str
    span: Span


@attrs.frozen
class WordedPath(String):
    """A path led by a word that says what it names: `from spec "donor.clamp"` (the
    compiler checks the word)."""

    word: Name


@attrs.frozen
class Call:
    """`synthetic(dim=128, correlation=0.9)`, `file("feats.h5", key="feat")`: a named value
    with options, and a string before them where the call takes one."""

    name: Name
    options: tuple[Option, ...]
    span: Span
    argument: String | None = None


Value = Number | Name | String | Call


@attrs.frozen
class Option:
    key: Name
    value: Value
    span: Span


@attrs.frozen
class Setting:
    """`model attention-only layers=2`: a section, bare flags, and key=value options."""

    section: Name
    flags: tuple[Name, ...]
    options: tuple[Option, ...]
    span: Span


@attrs.frozen
class StepPoint:
    """A point in training: `step 100`, `500 steps`, or `1e5 sequences` (the paper's unit)."""

    value: Number | Name  # a Name: a numeric `let`, read as its number by the compiler
    unit: str  # "steps" | "sequences"
    span: Span


@attrs.frozen
class EvalStmt:
    every: StepPoint
    sets: tuple[Name, ...]
    options: tuple[Option, ...]
    span: Span
    near_every: StepPoint | None = None  # `, every 20 steps near phase`


@attrs.frozen
class PhaseStmt:
    """`phase train.loss < 0.4 * ln2`."""

    eval_set: Name
    metric: Name
    op: str
    factors: tuple[Number | Name, ...]  # a Name: a constant (`ln2`) or a numeric `let`
    span: Span


@attrs.frozen
class PhaseWhen:
    """`phase when nearest is bigram`: a measure of categories, at one of them."""

    metric: Name
    value: Name
    span: Span


@attrs.frozen
class SiteSelector:
    """`L2.H* except H3`, `L1.H2.pattern`, `L1.out`. Heads/except are raw text like `H0-2`."""

    layer: str  # "1", "2", or "*"
    heads: str | None
    site: Name | None
    except_heads: str | None
    span: Span
    onward: bool = False  # `L2..`: that layer and every later one


@attrs.frozen
class NameSelector:
    """A `let` name or a model-wide site (`logits`, `embed`)."""

    name: Name
    span: Span


Selector = SiteSelector | NameSelector


@attrs.frozen
class Let:
    name: Name
    value: Selector | Number
    span: Span


@attrs.frozen
class Use:
    """`use "lib/induction.clamp"`: another file's statements, read in at this line."""

    path: String
    span: Span


@attrs.frozen
class Sweep:
    """`sweep task.classes in 50, 100, 200`: one run per value of a setting."""

    section: Name
    key: Name
    values: tuple[Value, ...]
    span: Span


@attrs.frozen
class Seeds:
    """`seeds 5..9` (a range, both ends in) or `seeds 5, 6, 7`: one run per init seed."""

    values: tuple[Number | Name, ...]  # a range's two ends, or the list; a Name: a numeric let
    is_range: bool
    span: Span


@attrs.frozen
class CircuitSite:
    """A site of a subcircuit, with the clamp targets that hand it over (none: any clamp
    that fixes the site)."""

    selector: Selector
    targets: tuple[Name, ...]
    span: Span


@attrs.frozen
class Subcircuit:
    """`subcircuit A "description" = L1.H*.pattern to prev-token, L1.out feeds B`."""

    name: Name
    description: str
    sites: tuple[CircuitSite, ...]
    feeds: tuple[Name, ...]
    span: Span


@attrs.frozen
class Param:
    name: Name
    value: Number
    span: Span


@attrs.frozen
class Rows:
    """`at labels`: the pattern rows a clamp is confined to."""

    name: Name
    span: Span


@attrs.frozen
class Arguments:
    """What follows a clamp's target or an action's selector, before the window: words
    (`attending prev-token`, `detached`), `name number` parameters (`strength 0.8`) and
    `at NAME` row sets, each kind saying which it takes. A number with no name before it
    is kept among the words, for the compiler to refuse."""

    words: tuple[Name | Number, ...] = ()
    params: tuple[Param, ...] = ()
    rows: tuple[Rows, ...] = ()
    paths: tuple[String, ...] = ()  # `from "runs/x"`, `from spec "x.clamp"` (a WordedPath)
    steps: tuple[StepPoint, ...] = ()  # `at step N`


@attrs.frozen
class Target:
    """What a clamp sets its site to: `prev-token strength 0.8 at labels`, `scores of
    L2.H3`."""

    name: Name
    source: Selector | None
    args: Arguments
    span: Span


@attrs.frozen
class Window:
    start: StepPoint | None
    end: StepPoint | None
    span: Span | None
    repeated: tuple[StepPoint, ...] = ()  # bounds given again (an error)
    during: Name | None = None  # `during train|eval|both`


@attrs.frozen
class Clamp:
    selector: Selector
    target: Target
    window: Window
    span: Span


@attrs.frozen
class Action:
    """A statement led by a verb of its own: `ablate L2.H* except H3`, `forbid L1.H* attending
    prev-token`, `scale L2.H3 temperature 2`."""

    verb: Name
    selector: Selector
    args: Arguments
    window: Window
    span: Span


@attrs.frozen
class Experiment:
    name: Name
    description: str
    body: tuple[Clamp | Action | Setting | Sweep | Seeds, ...]
    span: Span


@attrs.frozen
class Measure:
    """`measure METRIC of SEL [from SEL] [at end]`, or `measure METRIC as-if SEL clamped to
    TARGET` or `as-if VERB SEL …` (`as_if`: that clamp or action, with an always-open
    window; `selector`: its selector); a
    measure of the model's predictions has no selector, and may have options (`measure
    icl-score early=10 late=100`)."""

    metric: Name
    selector: Selector | None
    span: Span
    source: Selector | None = None  # `from L1.H*`: the heads a composition score reads
    when: Name | None = None  # `at end`
    as_if: Clamp | Action | None = None
    options: tuple[Option, ...] = ()


@attrs.frozen
class Report:
    kinds: tuple[Name, ...]
    span: Span


Statement = (
    Setting
    | EvalStmt
    | PhaseStmt
    | PhaseWhen
    | Let
    | Use
    | Experiment
    | Measure
    | Report
    | Sweep
    | Seeds
    | Subcircuit
)


@attrs.frozen
class Spec:
    file: str
    version: Number
    statements: tuple[Statement, ...]
    span: Span
