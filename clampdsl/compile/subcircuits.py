"""Declared subcircuits (`subcircuit NAME "…" = SITE [to TARGET or …], … [feeds OTHER]`)
and what each run's clamps hand over of them.

A site of a subcircuit is handed over when a clamp active for the whole of training fixes
it: it writes that site, on at least one of the site's heads (a part of the circuit needs
one head that does the job), and its target is one the site names, where it names any. A
clamp that hands over a layer's `out` hands over every site of that layer and the layers
before it too (nothing there reaches the loss but through it). A subcircuit declared to
feed others is handed over whole when all that it feeds are (its only role is theirs).
The paper's A, B and C are declared in specs/lib/induction.clamp.
"""

from __future__ import annotations

from clampdsl import kinds
from clampdsl.compile import selectors
from clampdsl.compile.configs import ModelConfig
from clampdsl.compile.errors import Collector
from clampdsl.compile.plan import CircuitSite, Given, Intervention, Subcircuit
from clampdsl.lang import ast

MAX_SUBCIRCUITS = 64


def lower(spec: ast.Spec, model: ModelConfig, lets, text_of, errors: Collector):
    """The spec's subcircuit declarations, checked against the model."""
    declared = [s for s in spec.statements if isinstance(s, ast.Subcircuit)]
    lowered: dict[str, Subcircuit] = {}
    for stmt in declared[:MAX_SUBCIRCUITS]:
        name = stmt.name.value
        if name in lowered:
            first = lowered[name].span.line
            message = f"subcircuit {name} is declared twice (first on line {first})"
            errors.error(message, stmt.name.span)
            continue
        sites = (_site(site, model, lets, text_of, errors) for site in stmt.sites)
        feeds = tuple(n.value for n in stmt.feeds)
        sites = tuple(site for site in sites if site is not None)
        lowered[name] = Subcircuit(name, stmt.description, sites, feeds, stmt.span)
    if len(declared) > MAX_SUBCIRCUITS:
        errors.error(f"more than {MAX_SUBCIRCUITS} subcircuits", declared[MAX_SUBCIRCUITS].span)
    _check_feeds(declared, lowered, errors)
    return tuple(lowered.values())


def _site(site: ast.CircuitSite, model, lets, text_of, errors) -> CircuitSite | None:
    sites = selectors.resolve(site.selector, model, lets, errors)
    for target in site.targets:
        if target.value not in kinds.targets():
            errors.unknown("clamp target", target.value, target.span, kinds.targets())
    if sites is None:
        return None
    if len(sites.layers) > 1:
        errors.error(
            f"a subcircuit's site lies in one layer, not {sites.describe()}",
            site.selector.span,
            hint="write one site per layer",
        )
        return None
    if sites.is_heads and sites.site is None:
        errors.error(
            "a subcircuit's head site names what of the heads it is",
            site.selector.span,
            hint=f"e.g. {sites.describe()}.pattern, .scores, .v or .z",
        )
        return None
    layer = sites.layers[0] if sites.layers else None
    text = text_of(site.selector.span)
    targets = tuple(t.value for t in site.targets)
    return CircuitSite(layer, sites.heads, sites.site or "out", targets, text)


def _check_feeds(declared, lowered: dict[str, Subcircuit], errors: Collector) -> None:
    """Each `feeds` names a declared subcircuit, and no subcircuit feeds itself through
    others (A feeds B feeds A)."""
    for stmt in declared:
        for name in stmt.feeds:
            if name.value not in lowered:
                errors.unknown("subcircuit", name.value, name.span, lowered)
            elif _reaches(name.value, stmt.name.value, lowered):
                errors.error(
                    f"{stmt.name.value} feeds {name.value}, which feeds {stmt.name.value} "
                    "again: a subcircuit cannot feed itself",
                    name.span,
                )


def _reaches(start: str, goal: str, lowered: dict[str, Subcircuit]) -> bool:
    seen, todo = set(), [start]
    while todo:
        name = todo.pop()
        if name == goal:
            return True
        if name not in seen and name in lowered:
            seen.add(name)
            todo.extend(lowered[name].feeds)
    return False


def given(
    interventions: tuple[Intervention, ...], declared: tuple[Subcircuit, ...], model: ModelConfig
) -> tuple[Given, ...]:
    """What a run's clamps hand over of each declared subcircuit, in declaration order."""
    fixes = [
        (kinds.of(item).describe(), write)
        for item in interventions
        if item.window.start == 0 and item.window.end is None and item.window.during != "eval"
        for write in kinds.of(item).fixes(item, model)
    ]
    handed = {
        sub.name: tuple(site for site in sub.sites if _fixed(site, fixes)) for sub in declared
    }
    handed = _out_covers(declared, handed)
    whole = _fed(declared, {s.name for s in declared if len(handed[s.name]) == len(s.sites)})
    return tuple(
        Given(sub.name, tuple(s.text for s in sub.sites), True)
        if sub.name in whole
        else Given(sub.name, tuple(s.text for s in handed[sub.name]), False)
        for sub in declared
        if sub.name in whole or handed[sub.name]
    )


def _fixed(site: CircuitSite, fixes) -> bool:
    """Whether a clamp fixes the site itself (to one of its targets, where it names any)."""
    return any(
        write.layer == site.layer
        and write.site == site.site
        and (not site.heads or set(write.heads) & set(site.heads))
        and (not site.targets or target in site.targets)
        for target, write in fixes
    )


def _out_covers(declared, handed: dict) -> dict:
    """A handed-over `L.out` hands over every site of layers up to L."""
    outs = [s.layer for sites in handed.values() for s in sites if s.site == "out"]
    top = max((layer for layer in outs if layer is not None), default=None)
    if top is None:
        return handed

    def covered(site: CircuitSite) -> bool:
        return site.layer is not None and site.layer <= top

    return {
        sub.name: tuple(s for s in sub.sites if s in handed[sub.name] or covered(s))
        for sub in declared
    }


def _fed(declared, whole: set[str]) -> set[str]:
    """Whole subcircuits, with those that feed only whole ones added, until none is."""
    feeders = [sub for sub in declared if sub.feeds]
    grown = True
    while grown:
        grown = False
        for sub in feeders:
            if sub.name not in whole and all(name in whole for name in sub.feeds):
                whole.add(sub.name)
                grown = True
    return whole


def describe(gives: tuple[Given, ...]) -> str:
    """`A+C`; a part handed over shows its sites: `A(L1.H*.pattern)+C`; nothing: `–`."""
    parts = [g.subcircuit if g.whole else f"{g.subcircuit}({', '.join(g.sites)})" for g in gives]
    return "+".join(parts) or "–"


def still_to_learn(gives: tuple[Given, ...], declared: tuple[Subcircuit, ...]) -> tuple[Given, ...]:
    """The rest of each declared subcircuit: `A(L1.out)` where only its pattern is given."""
    by_name = {g.subcircuit: g for g in gives}
    left = []
    for sub in declared:
        g = by_name.get(sub.name)
        if g is None:
            left.append(Given(sub.name, tuple(s.text for s in sub.sites), True))
        elif not g.whole:
            rest = tuple(s.text for s in sub.sites if s.text not in g.sites)
            left.append(Given(sub.name, rest, False))
    return tuple(left)
