"""The resource guard: refuses, as located diagnostics, a plan with a group whose estimated
peak memory exceeds the memory budget, or whose work exceeds the work budget
(compile/resources.py estimates both). `clampdsl validate | plan | run` call it unless
`--allow-large`, `clampdsl.run` unless `allow_large=True`.
"""

from __future__ import annotations

import os
import re

from clampdsl.compile.plan import Plan, Run
from clampdsl.compile.resources import GroupEstimate, estimate, scientific, size
from clampdsl.lang import ast
from clampdsl.lang.diagnostics import Diagnostic, Span, SpecError

MEMORY_BUDGET_VARIABLE = "CLAMPDSL_MEMORY_BUDGET"
WORK_BUDGET_VARIABLE = "CLAMPDSL_WORK_BUDGET"
# 8 GiB: within a laptop's or a CI runner's memory, with room for the rest, and the same
# on every machine (a spec valid here is valid there); the shipped specs take < 150 MiB.
DEFAULT_MEMORY_BUDGET = 8 * 2**30
# 1e16 floating-point operations: about a day at CPU_FLOPS; the shipped specs take at
# most 2e13 each.
DEFAULT_WORK_BUDGET = 1e16
# A 2-core CPU's rate, compiled: the paper's specs (5.6e13 in all) train in ~10 minutes.
CPU_FLOPS = 1e11
UNITS = {
    "": 1,
    "b": 1,
    "k": 2**10,
    "kb": 10**3,
    "kib": 2**10,
    "m": 2**20,
    "mb": 10**6,
    "mib": 2**20,
    "g": 2**30,
    "gb": 10**9,
    "gib": 2**30,
    "t": 2**40,
    "tb": 10**12,
    "tib": 2**40,
}


def memory_budget() -> int:
    """Bytes: CLAMPDSL_MEMORY_BUDGET (`8GiB`, `500MB`, `2e9`), or 8 GiB."""
    value = os.environ.get(MEMORY_BUDGET_VARIABLE, "").strip()
    return parse_size(value, MEMORY_BUDGET_VARIABLE) if value else DEFAULT_MEMORY_BUDGET


def work_budget() -> float:
    """Floating-point operations: CLAMPDSL_WORK_BUDGET (`1e16`), or 1e16."""
    value = os.environ.get(WORK_BUDGET_VARIABLE, "").strip()
    if not value:
        return DEFAULT_WORK_BUDGET
    try:
        number = float(value)
    except ValueError:
        number = -1.0
    if not number > 0:
        raise ValueError(f"{WORK_BUDGET_VARIABLE}={value!r} is not a positive number (1e16)")
    return number


def parse_size(text: str, what: str = "size") -> int:
    """`8GiB`, `8G` (binary), `500MB` (decimal), `2e9` (bytes) → bytes."""
    found = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([A-Za-z]*)\s*", text)
    unit = found and UNITS.get(found.group(2).lower())
    if not found or unit is None or float(found.group(1)) <= 0:
        raise ValueError(f"{what}={text!r} is not a size (e.g. 8GiB, 500MB, 2e9)")
    return int(float(found.group(1)) * unit)


def check(
    plan: Plan,
    source: str,
    memory: int | None = None,
    work: float | None = None,
) -> list[GroupEstimate]:
    """Raises SpecError where a group's estimated peak exceeds `memory` bytes (one
    diagnostic per such group, at the line that sets what makes most of it) or the plan's
    work exceeds `work` FLOPs (at the `train` line of its largest group); defaults:
    `memory_budget()`, `work_budget()`. Else returns the estimates. `source`: the spec's
    text (to point into it)."""
    memory = memory_budget() if memory is None else memory
    work = work_budget() if work is None else work
    estimates = estimate(plan)
    diagnostics = []
    sources = {plan.file: source}
    spec = None

    def where(group: GroupEstimate, part: str) -> Span:
        nonlocal spec
        if spec is None:  # the spec with its includes read in: a setting may lie in one
            from clampdsl.compile import includes
            from clampdsl.lang.parser import parse

            expanded = includes.expand(parse(source, plan.file), source)
            spec = expanded.spec
            sources.update(expanded.sources)
        return _span(spec, plan.run(plan.groups[group.index].runs[0]), part)

    def asks(group: GroupEstimate) -> str:
        what = f"{_count(group.runs, 'run')} × {_count_parameters(group.parameters)}"
        return f"group {group.index + 1}: {what}" if len(estimates) > 1 else what

    for group in estimates:
        if group.peak > memory:
            part = group.largest
            message = (
                f"this spec asks for ≈ {size(group.peak)} of memory at its peak ({asks(group)}, "
                f"batch {group.batch:,} × {group.tokens} tokens; the largest part: {part}, "
                f"{size(group.parts[part])}); the memory budget is {size(memory)}"
            )
            diagnostics.append(Diagnostic(message, where(group, part), _hint(True)))
    total = sum(group.flops for group in estimates)
    if total > work:
        group = max(estimates, key=lambda g: g.flops)
        message = (
            f"this spec asks for ≈ {scientific(total)} floating-point operations "
            f"({asks(group)} × {group.steps:,} steps × batch {group.batch:,}"
            + (f", and {_count(len(estimates) - 1, 'more group')}" if len(estimates) > 1 else "")
            + f"; ≈ {duration(total / CPU_FLOPS)} at {scientific(CPU_FLOPS)} FLOP/s); the work "
            f"budget is {scientific(work)}"
        )
        diagnostics.append(Diagnostic(message, where(group, "steps"), _hint(False)))
    if diagnostics:
        diagnostics.sort(key=lambda d: (d.span.file != plan.file, d.span.line, d.span.column))
        raise SpecError(diagnostics, sources)
    return estimates


def _hint(memory: bool) -> str:
    variable = MEMORY_BUDGET_VARIABLE if memory else WORK_BUDGET_VARIABLE
    return f"pass --allow-large (allow_large=True) to run it anyway, or set {variable}"


# What makes each part large: the section whose line the diagnostic points at.
BLAME = {
    "weights and Adam": "model",
    "gradients and Adam's temporaries": "model",
    "evals": "model",
    "training activations": "train",
    "task data": "task",
    "shuffling classes": "task",
    "building the task data": "task",
    "steps": "train",
}


def _span(spec: ast.Spec, run: Run, part: str) -> Span:
    """The line that sets what `part` grows with, for the group's first run: its
    experiment's own setting line, else the last top-level one, else the experiment."""
    section = BLAME[part]
    experiment = next(
        s
        for s in spec.statements
        if isinstance(s, ast.Experiment) and s.name.value == run.experiment
    )
    for statements in (experiment.body, spec.statements):
        lines = [s for s in statements if isinstance(s, ast.Setting)]
        lines = [s for s in lines if s.section.value == section]
        if lines:
            return lines[-1].span
    return experiment.span


def _count(number: int, noun: str) -> str:
    return f"{number:,} {noun}{'' if number == 1 else 's'}"


def _count_parameters(number: int) -> str:
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if number >= scale:
            return f"{number / scale:.3g}{suffix} parameters"
    return f"{number} parameters"


def duration(seconds: float) -> str:
    """`40 s`, `12 min`, `3.5 h`, `2.1 days`, `3e7 days`."""
    scale, unit = next(
        ((scale, unit) for limit, scale, unit in DURATIONS if seconds < limit), (86_400, "days")
    )
    value = seconds / scale
    if value >= 1e4:
        return f"{scientific(value)} {unit}"
    return f"{value:.0f} {unit}" if value >= 10 else f"{value:.1f} {unit}"


DURATIONS = ((120, 1, "s"), (7200, 60, "min"), (172_800, 3600, "h"))  # (below, seconds, unit)
