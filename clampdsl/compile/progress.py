"""Progress measures that are not read off the eval's own attention patterns
(icl_dynamics_spec.md §5-§7; Olsson et al. 2022's head evaluators), lowered to Plan
measures:

* read off the weights, with no forward: `measure k-composition of L2.H* from L1.H*` (and
  q-, v-composition), `measure copying of L2.H*`;
* computed by forwards of their own on the first eval set, post hoc, with clamps added to
  each run's that never act in training: `measure single-head-accuracy of L2.H*` (every
  other head of the layer value-ablated, and the head alone dropped) and `measure loss
  as-if SEL clamped to TARGET` (any clamp target, lowered as an experiment's clamp is).

Any of these takes `at end`: computed once, after the last step, instead of at every eval.
The runtime half is clampdsl/train/progress.py; the scores, clampdsl/analysis/progress.py.
"""

from __future__ import annotations

from pathlib import Path

import attrs

from clampdsl.compile import interventions, rules, selectors
from clampdsl.compile.errors import Collector
from clampdsl.compile.plan import Measure, Run
from clampdsl.compile.settings import Settings
from clampdsl.lang import ast
from clampdsl.tasks import kinds as task_kinds

WEIGHTS, POST_HOC = "weights", "post-hoc"  # Measure.reads
AS_IF_METRICS = ("loss", "acc")  # what an as-if measure reports of its forward
AS_IF = " as-if"  # an as-if measure's metric: `loss as-if` (apart from the eval's `loss`)
WHEN = ("end",)  # `at end`


@attrs.frozen
class Declared:
    """A progress measure's facts: what it reads, the task roles it needs, whether it reads
    a second set of heads (`from SEL`: composition's writing heads); for a measure of one
    model `arch`, the layer it is measured at and how many heads that layer has (None:
    the model's)."""

    reads: str
    roles: tuple[str, ...] = ()
    source: bool = False
    arch: str = ""
    layer: int | None = None
    heads: int | None = None


PROGRESS = {
    "q-composition": Declared(WEIGHTS, source=True),
    "k-composition": Declared(WEIGHTS, source=True),
    "v-composition": Declared(WEIGHTS, source=True),
    "copying": Declared(WEIGHTS),
    "single-head-accuracy": Declared(POST_HOC),
    # Chen et al.'s model (analysis/chen.py)
    "feature-share": Declared(WEIGHTS, arch="chen", layer=1, heads=1),
    "attention-scale": Declared(WEIGHTS, arch="chen", layer=1, heads=1),
    "rpe-peak": Declared(WEIGHTS, arch="chen", layer=0),
}
COMPOSITION_EXAMPLE = "measure k-composition of L2.H* from L1.H*"
# Single-head accuracy's record keys: the head alone (its layer's others ablated), dropped
ALONE, DROPPED = "single-head-accuracy", "dropped-head-accuracy"


def head_key(metric: str, layer: int, head: int) -> str:
    """A head's record key: `copying L2.H3` (layers 0-based here, as the Plan's)."""
    return f"{metric} L{layer + 1}.H{head}"


def pair_key(metric: str, layer: int, head: int, source_layer: int, source: int) -> str:
    """A composition score's record key: `k-composition L2.H3 L1.H1`, reader then writer."""
    return f"{head_key(metric, layer, head)} L{source_layer + 1}.H{source}"


def parse_pair(key: str) -> tuple[str, str, str] | None:
    """(metric, reading head, writing head) of a composition score's key, else None."""
    parts = key.split(" ")
    if len(parts) == 3 and PROGRESS.get(parts[0], Declared("")).source:
        return parts[0], parts[1], parts[2]
    return None


def attention_measures(measures: tuple[Measure, ...]) -> tuple[Measure, ...]:
    """The measures read off the eval's own attention patterns (train/evaluate.py): all
    but this module's."""
    return tuple(m for m in measures if m.reads not in (WEIGHTS, POST_HOC))


def lowers(statement: ast.Measure) -> bool:
    """Whether this module lowers the statement (compile/toplevel.py lowers the others)."""
    return statement.as_if is not None or statement.metric.value in PROGRESS


def lower(
    spec: ast.Spec,
    settings: Settings,
    lets,
    runs: tuple[Run, ...],
    text_of,
    top: Path,
    errors: Collector,
) -> tuple[Measure, ...]:
    """The spec's progress measures; for the other measures, errors where they are written
    with this module's words (`from`, `at end`). `top`: the top spec's folder, where the
    plan's donor paths start."""
    found: list[Measure] = []
    for statement in (s for s in spec.statements if isinstance(s, ast.Measure)):
        if statement.as_if is not None:
            found += _as_if(statement, settings, lets, runs, text_of, top, errors)
        elif statement.metric.value in PROGRESS:
            found += _progress(statement, settings, lets, errors)
        else:
            _refuse_words(statement, errors)
    return tuple(found)


def _progress(statement: ast.Measure, settings: Settings, lets, errors) -> list[Measure]:
    metric = statement.metric.value
    declared, model = PROGRESS[metric], settings.model
    if not task_kinds.has_roles(settings.task, declared.roles, metric, statement.span, errors):
        return []
    sites = _heads(statement.selector, metric, model, lets, errors)
    source = _source(statement, declared, model, lets, errors)
    at_end = _at_end(statement, errors)
    if sites is None or source is False or at_end is None:
        return []
    if not _on_its_model(statement, declared, sites, model, errors):
        return []
    if source is not None and not _reads_earlier(sites, source, statement, errors):
        return []
    source_layer, source_heads = (source.layers[0], source.heads) if source else (None, ())
    return [
        Measure(
            metric,
            layer,
            sites.heads,
            statement.span,
            declared.reads,
            source_layer,
            source_heads,
            at_end=at_end,
        )
        for layer in sites.layers
    ]


def _on_its_model(statement: ast.Measure, declared: Declared, sites, model, errors) -> bool:
    """Whether a measure of one model arch is taken on it, at its layer's heads."""
    if not declared.arch:
        return True
    metric, layer = statement.metric.value, declared.layer
    if model.arch != declared.arch:
        errors.error(
            f"{metric} reads a model arch={declared.arch}; this one is arch={model.arch}",
            statement.span,
        )
        return False
    heads = model.heads if declared.heads is None else declared.heads
    if sites.layers != (layer,) or max(sites.heads) >= heads:
        last = f"L{layer + 1}.H0" if heads == 1 else f"L{layer + 1}.H*"
        errors.error(
            f"{metric} is measured at L{layer + 1}'s heads, which are {last}",
            statement.selector.span,
            hint=f"measure {metric} of {last}",
        )
        return False
    return True


def _heads(selector, metric: str, model, lets, errors):
    """The heads a selector names (no site of theirs), or None after an error."""
    sites = selectors.resolve(selector, model, lets, errors)
    if sites is None:
        return None
    if not sites.is_heads or sites.site is not None:
        errors.error(f"{metric} is measured on heads, not {sites.describe()}", selector.span)
        return None
    return sites


def _source(statement: ast.Measure, declared: Declared, model, lets, errors):
    """The writing heads of `from SEL`: Sites, None where the measure takes none, False
    after an error."""
    metric = statement.metric.value
    if not declared.source:
        if statement.source is not None:
            errors.error(f"{metric} takes no `from` heads", statement.source.span)
            return False
        return None
    if statement.source is None:
        errors.error(
            f"{metric} needs the heads whose output it reads: `from SEL`",
            statement.span,
            hint=f"as in `{COMPOSITION_EXAMPLE}`",
        )
        return False
    sites = _heads(statement.source, metric, model, lets, errors)
    if sites is None:
        return False
    if len(sites.layers) > 1:
        errors.error(f"{metric} reads the heads of one layer", statement.source.span)
        return False
    return sites


def _reads_earlier(sites, source, statement: ast.Measure, errors) -> bool:
    """Whether every layer measured comes after the layer it reads from."""
    if min(sites.layers) > source.layers[0]:
        return True
    errors.error(
        f"{statement.metric.value} reads what an earlier layer writes: "
        f"L{min(sites.layers) + 1} does not come after L{source.layers[0] + 1}",
        statement.selector.span,
        hint=f"as in `{COMPOSITION_EXAMPLE}`",
    )
    return False


def _at_end(statement: ast.Measure, errors) -> bool | None:
    if statement.when is None:
        return False
    if statement.when.value not in WHEN:
        errors.unknown("time to measure at", statement.when.value, statement.when.span, WHEN)
        return None
    return True


def _as_if(statement: ast.Measure, settings: Settings, lets, runs, text_of, top, errors):
    """`measure loss as-if SEL clamped to TARGET`: the clamp lowered as an experiment's,
    and checked beside each run's own clamps, as if the run had it too."""
    metric = statement.metric.value
    if metric not in AS_IF_METRICS:
        errors.unknown("as-if metric", metric, statement.metric.span, AS_IF_METRICS)
        return []
    text = text_of(statement.span)
    folder = Path(statement.span.file).parent
    clamp, at_end = _without_when(statement.as_if)
    items = interventions.lower_statement(clamp, settings, lets, text, folder, top, errors)
    if not items:
        return []
    excluded = tuple(run.name for run in runs if _clashes(run, items, statement, errors))
    first = items[0]
    words = text.split()[1:]  # after `measure`, and before `at end`
    name = " ".join(words[:-2] if at_end else words)
    measure = Measure(f"{metric}{AS_IF}", first.layer, first.heads, statement.span, POST_HOC)
    return [attrs.evolve(measure, clamps=tuple(items), name=name, excluded=excluded, at_end=at_end)]


def _without_when(clamp: ast.Clamp | ast.Action) -> tuple[ast.Clamp | ast.Action, bool]:
    """The clamp (or action) without a trailing `at end` (which the parser reads as a row
    set, `at labels`), and whether it had one."""
    given = clamp.target.args if isinstance(clamp, ast.Clamp) else clamp.args
    if not given.rows or given.rows[-1].name.value not in WHEN:
        return clamp, False
    args = attrs.evolve(given, rows=given.rows[:-1])
    if isinstance(clamp, ast.Action):
        return attrs.evolve(clamp, args=args), True
    return attrs.evolve(clamp, target=attrs.evolve(clamp.target, args=args)), True


def as_if_result(measure: Measure) -> str:
    """What of its forward an as-if measure reports: `loss` or `acc`."""
    return measure.metric.removesuffix(AS_IF)


def _clashes(run: Run, items, statement: ast.Measure, errors: Collector) -> bool:
    """Whether the as-if clamp cannot join the run's own clamps (one already claims its
    site, or a kind refuses the pair): a warning, and the run is not measured."""
    alone, joined = Collector(), Collector()
    rules.check_experiment(list(run.interventions), run.model, alone)
    rules.check_experiment([*run.interventions, *items], run.model, joined)
    new = [d for d in joined.errors if d not in alone.errors]
    if new:
        errors.warn(
            f"{run.name} is not measured as if so clamped (its value is NaN): {new[0].message}",
            statement.span,
        )
    return bool(new)


def _refuse_words(statement: ast.Measure, errors: Collector) -> None:
    """`from` and `at end` on a measure read off the eval's own patterns."""
    metric = statement.metric.value
    if statement.source is not None:
        errors.error(
            f"{metric} takes no `from` heads",
            statement.source.span,
            hint=f"composition scores do: `{COMPOSITION_EXAMPLE}`",
        )
    if statement.when is not None:
        errors.error(
            f"{metric} is read off every eval's own forward: `at end` would save nothing",
            statement.when.span,
        )
