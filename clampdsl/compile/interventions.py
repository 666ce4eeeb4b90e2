"""`clamp …` and `ablate …` statements → Plan interventions, checked against the model.

What a clamp can set a site to, where, with which parameters, is each kind's to say
(clampdsl/kinds); this pass resolves selectors, windows, parameters and sources, and asks
the kind for the site it writes.
"""

from __future__ import annotations

from pathlib import Path

import attrs

from clampdsl import kinds
from clampdsl.compile import architectures, donors, numbers, selectors
from clampdsl.compile.configs import TaskConfig
from clampdsl.compile.errors import Collector
from clampdsl.compile.plan import HeadRef, Intervention, Window
from clampdsl.compile.selectors import Sites
from clampdsl.compile.settings import Settings, steps_of
from clampdsl.kinds import Kind
from clampdsl.lang import ast
from clampdsl.tasks import kinds as task_kinds

DURING = ("train", "eval", "both")  # `during …`: when a clamp acts


def lower_statement(
    statement: ast.Clamp | ast.Action,
    settings: Settings,
    lets: dict[str, ast.Let],
    text: str,
    folder: Path,
    top: Path,
    errors: Collector,
) -> list[Intervention]:
    """The statement's interventions (with the ones it brings along); `folder`, the
    directory of the file that writes it, is where a donor's path starts, and `top`, the
    top spec's, where the plan's Donor has it start."""
    model = settings.model
    sites = selectors.resolve(statement.selector, model, lets, errors)
    window = _window(statement.window, settings, errors)
    if sites is None or window is None:
        return []
    found = _kind_of(statement, model, lets, errors)
    if found is None:
        return []
    kind, args, source = found
    chosen = donors.choice(args, errors) if kind.takes_donor else (args, None)
    if chosen is None:
        return []
    args, choice = chosen  # a donor's choice of run, apart from the kind's own words
    site = kind.lower_site(sites, model, statement.selector.span, errors)
    params = _arguments(kind, args, statement.span, lets, errors)
    if site is None or params is None:
        return []
    items = _interventions(kind, sites, site, params, window, source, text, statement.span)
    if not _task_has_roles(kind, items[0], settings.task, errors):
        return []
    if not _model_has_sites(kind, items, model, errors):
        return []
    if kind.takes_donor:
        lent = donors.lend(kind, items[0], args, choice, settings, (folder, top), errors)
        if lent is None:
            return []
        donor, brought = lent
        items = [attrs.evolve(item, donor=donor) for item in items] + brought
    return items + _companions(kind, items, model)


def _model_has_sites(kind: Kind, items: list[Intervention], model, errors) -> bool:
    """Whether the model has every site the clamp sets or freezes, and no first pass to
    read (Chen et al.'s has few sites: compile/architectures.py); an error if not."""
    arch = architectures.of(model)
    if arch.sites is None:
        return True
    for item in items:
        written = (*kind.writes(item, model), *kind.first_pass_writes(item))
        held = [(w.layer, w.site) for w in kind.freezes(item, model)]
        missing = [(w.layer, w.site) for w in written if (w.layer, w.site) not in arch.sites]
        missing += [where for where in held if where not in arch.frozen]
        if missing or kind.first_pass_reads(item, model):
            layer, site = missing[0] if missing else (None, "a first pass")
            what = site if layer is None else f"L{layer + 1}'s {site}"
            errors.error(
                f"{kind.describe()} needs {what}, which a model arch={model.arch} does not have",
                item.span,
                hint=f"its clamp sites: {arch.sites_hint}",
            )
            return False
    return True


def _task_has_roles(kind: Kind, item: Intervention, task: TaskConfig, errors) -> bool:
    """Whether the task declares the roles the clamp reads; an error at it if not."""
    return task_kinds.has_roles(task, kind.reads_roles(item), kind.describe(), item.span, errors)


def _kind_of(statement, model, lets, errors) -> tuple[Kind, ast.Arguments, HeadRef | None] | None:
    """The statement's kind (by its verb, or its target), its arguments and its source
    head; None after an error."""
    if isinstance(statement, ast.Action):
        verb = statement.verb
        kind = kinds.verbs().get(verb.value)
        if kind is None:
            errors.unknown("statement", verb.value, verb.span, [*kinds.verbs(), "clamp"])
            return None
        return kind, statement.args, None
    name = statement.target.name
    kind = kinds.targets().get(name.value)
    if kind is None:
        errors.unknown("clamp target", name.value, name.span, kinds.targets())
        return None
    source = _source(kind, statement.target, model, lets, errors)
    if kind.takes_source and source is None:
        return None
    return kind, statement.target.args, source


def _interventions(kind, sites: Sites, site, params, window, source, text, span):
    """One intervention per layer the selector names (one for a model-level site, and for
    kinds that take the layers as one, at the first)."""
    layers = sites.layers if kind.one_per_layer else sites.layers[:1]
    return [
        Intervention(kind.name, layer, sites.heads, site, params, window, source, text, span)
        for layer in layers or (None,)
    ]


def _companions(kind: Kind, items: list[Intervention], model) -> list[Intervention]:
    """What the statement's interventions also ask for, once per statement."""
    found: dict[tuple, Intervention] = {}
    for item in items:
        for companion in kind.companions(item, model):
            found.setdefault((companion.kind, companion.layer, companion.site), companion)
    return list(found.values())


def _arguments(kind: Kind, args: ast.Arguments, span, lets, errors: Collector) -> dict | None:
    """The intervention's parameters from what follows its target or selector: the
    kind's words, its `name number` parameters, its row set."""
    for before, word in zip(args.words, args.words[1:], strict=False):
        named = isinstance(before, ast.Name) and before.value in kind.params
        if named and isinstance(word, ast.Name):  # `strength S`, S no numeric let
            numbers.not_a_number(word, lets, before.value, errors)
            return None
    words = kind.read_words(args.words, span, errors)
    params = _params(kind, args.params, span, errors)
    rows = _rows(kind, args.rows, errors)
    if words is None or params is None or rows is None or not _no_donor(kind, args, errors):
        return None
    return words | params | rows


def _no_donor(kind: Kind, args: ast.Arguments, errors: Collector) -> bool:
    """Whether a kind that takes no donor was given none (`from "…"`, `from spec "…"`,
    `at step N`)."""
    extra = (*args.paths, *args.steps)
    if extra and not kind.takes_donor:
        errors.error(
            f'{kind.describe()} takes no saved run (`from "…"`, `at step`)',
            extra[0].span,
            hint='a saved run lends weights with `graft L1 from "RUN_DIR"`',
        )
    return not extra or kind.takes_donor


def _params(kind: Kind, given: tuple[ast.Param, ...], span, errors: Collector) -> dict | None:
    values = {key: spec.default for key, spec in kind.params.items()}
    ok, seen = True, {}
    for param in given:
        spec = kind.params.get(param.name.value)
        if param.name.value in seen:
            errors.error(
                f"{param.name.value} is given twice (first at column "
                f"{seen[param.name.value].span.column})",
                param.span,
            )
            ok = False
        elif spec is None:
            errors.unknown(
                f"parameter of {kind.describe()}",
                param.name.value,
                param.name.span,
                kind.params or {"(none)"},
            )
            ok = False
        elif not spec.low <= param.value.value <= spec.high:
            errors.error(
                f"{param.name.value} {param.value.text} is out of range",
                param.value.span,
                hint=f"{param.name.value} lies in [{spec.low:g}, {spec.high:g}]",
            )
            ok = False
        else:
            values[param.name.value] = float(param.value.value)
        seen.setdefault(param.name.value, param)
    # one written but refused above is not missing as well
    missing = [key for key, value in values.items() if value is None and key not in seen]
    for key in missing:
        errors.error(
            f"{kind.describe()} needs its {key}, as in `{kind.example}`",
            given[-1].span if given else span,
        )
    return values if ok and not missing else None


def _rows(kind: Kind, given: tuple[ast.Rows, ...], errors: Collector) -> dict | None:
    """`at labels` → {"at_labels": 1.0}; nothing → {}; None (with an error) if refused."""
    if not given:
        return {}
    rows = given[0]
    if not kind.rows:
        errors.error(
            f"{kind.describe()} cannot be confined to some rows",
            rows.span,
            hint="`at labels` applies to "
            + ", ".join(k.describe() for k in kinds.all_kinds() if k.rows),
        )
        return None
    if len(given) > 1:
        errors.error("a row set is given twice", given[1].span)
        return None
    if rows.name.value not in kind.rows:
        errors.unknown("row set", rows.name.value, rows.name.span, kind.rows)
        return None
    return {f"at_{rows.name.value}": 1.0}


def _source(kind: Kind, target: ast.Target, model, lets, errors) -> HeadRef | None:
    if not kind.takes_source:
        if target.source is not None:
            errors.error(f"{target.name.value} takes no `of` source", target.source.span)
        return None
    if target.source is None:
        errors.error(
            f"{target.name.value} needs a source head: `{target.name.value} of L2.H3`", target.span
        )
        return None
    sites = selectors.resolve(target.source, model, lets, errors)
    if sites is None:
        return None
    return kind.check_source(sites, target.source.span, errors)


def _window(window: ast.Window, settings: Settings, errors: Collector) -> Window | None:
    for point in window.repeated:
        errors.error("this window already has this bound (`from … to …` or `until …`)", point.span)
    batch = settings.train.batch
    start = steps_of(window.start, batch, errors) if window.start else 0
    end = steps_of(window.end, batch, errors) if window.end else None
    if start is None or (window.end is not None and end is None):
        return None
    if end is not None and end <= start:
        errors.error(
            f"this window is empty: it ends (step {end}) before it starts (step {start})",
            window.span,
        )
        return None
    if start >= settings.train.steps:
        errors.warn(
            f"this window opens at step {start}, when training has ended (step "
            f"{settings.train.steps}): the clamp never acts",
            window.span,
        )
    during = _during(window.during, errors)
    if window.repeated or during is None:
        return None
    return Window(start, end, during)


def _during(name: ast.Name | None, errors: Collector) -> str | None:
    if name is None:
        return "both"
    if name.value not in DURING:
        errors.unknown("phase", name.value, name.span, DURING)
        return None
    return name.value
