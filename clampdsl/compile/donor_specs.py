"""`graft … from spec "FILE.clamp"`: a donor that a spec defines, compiled here.

The path is relative to the file that writes it and must stay inside that file's tree
(compile/tree.py), as a `use` path must: a spec reads no file of the user's but those of
its tree. The donor spec is compiled as `clampdsl run FILE` compiles it, so its plan hash
names its run directory in the run store (compile/run_folders.py) wherever the store is;
the runner (api.py) trains that run first where it has not finished, and reuses it where
it has. Nothing of the store is read here: a donor spec's weights are the last of its run,
or those its `train keep_every` keeps. A donor spec may graft from specs in turn; a cycle
of them, or a chain deeper than MAX_DEPTH, is an error, and so is a donor spec that does
not compile (the error names its first error's file:line:col). Within one graft's chain
each donor spec is compiled once.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
from collections.abc import Iterator
from pathlib import Path

import attrs

from clampdsl.compile.errors import Collector
from clampdsl.compile.plan import Donor, Plan
from clampdsl.compile.tree import is_absolute, not_a_spec, spec_root, tree_words
from clampdsl.lang import ast
from clampdsl.lang.diagnostics import SpecError, quoted
from clampdsl.lang.source import read_spec

WORD = "spec"  # `from spec "…"`
MAX_DEPTH = 8  # donor specs of donor specs


@attrs.frozen
class _Compiled:
    plan: Plan | None
    problem: str  # why there is no plan ("" with one)


@attrs.define
class _Chain:
    """The donor specs being compiled, outermost first (with the file that began it), and
    each one compiled so far, by its resolved path."""

    files: tuple[Path, ...]
    compiled: dict[Path, _Compiled] = attrs.field(factory=dict)


_chain: contextvars.ContextVar[_Chain | None] = contextvars.ContextVar("donors", default=None)


def named(plans: list[Plan]) -> dict[str, Donor]:
    """The donor specs whose runs the plans' grafts take weights from, by plan hash, in the
    order first named: what the runner trains first."""
    return {
        item.donor.plan_hash: item.donor
        for plan in plans
        for run in plan.runs
        for item in run.interventions
        if item.donor is not None and item.donor.in_store
    }


def plan_of(path: ast.WordedPath, folder: Path, errors: Collector) -> Plan | None:
    """The donor spec's plan, its `file` the spec's path as reached from the writing file's
    name; None after an error."""
    if path.word.value != WORD:
        errors.error(
            f'unknown {quoted(path.word.value)}: a donor is `from "RUN_DIR"` or `from spec '
            '"FILE.clamp"`',
            path.word.span,
        )
        return None
    file = _file(path, folder, errors)
    if file is None:
        return None
    with _within(Path(path.span.file)) as chain:
        compiled = _compiled(file, chain)
    if compiled.plan is None:
        errors.error(compiled.problem, path.span)
    return compiled.plan


def _file(path: ast.WordedPath, folder: Path, errors: Collector) -> Path | None:
    """The donor spec's path as reached from the writing file's name; None (an error) where
    it is absolute, leads out of the tree, or cannot be resolved."""
    written = path.value
    if is_absolute(written):
        errors.error("a donor spec's path is relative to the file that writes it", path.span)
        return None
    file = folder / written
    root = spec_root(Path(path.span.file))
    try:
        resolved = file.resolve()  # symbolic links followed: they cannot lead out
    except (OSError, RuntimeError, ValueError) as error:  # a loop of links, a NUL
        errors.error(f"cannot read {quoted(written)}: {error}", path.span)
        return None
    if not resolved.is_relative_to(root):
        errors.error(f"{quoted(written)} leads out of {tree_words(root)}", path.span)
        return None
    if problem := not_a_spec(written, resolved):
        errors.error(problem, path.span)
        return None
    tidy = Path(os.path.normpath(file))
    return tidy if tidy.resolve() == resolved else file


@contextlib.contextmanager
def _within(writer: Path) -> Iterator[_Chain]:
    """The chain this compile is part of: a new one, begun at `writer`, where none is."""
    chain = _chain.get()
    if chain is not None:
        yield chain
        return
    token = _chain.set(_Chain((writer.resolve(),)))
    try:
        yield _chain.get()
    finally:
        _chain.reset(token)


def _compiled(file: Path, chain: _Chain) -> _Compiled:
    resolved = file.resolve()
    if resolved in chain.compiled:
        return chain.compiled[resolved]
    if resolved in chain.files:
        names = " → ".join(p.name for p in (*chain.files, resolved))
        return _Compiled(None, f"a cycle of donor specs: {names}")
    if len(chain.files) > MAX_DEPTH:
        return _Compiled(None, f"donor specs nest deeper than {MAX_DEPTH}")
    chain.files = (*chain.files, resolved)
    try:
        compiled = _compile(file)
    finally:
        chain.files = chain.files[:-1]
    chain.compiled[resolved] = compiled
    return compiled


def _compile(file: Path) -> _Compiled:
    from clampdsl.compile import compile_source, runnable  # the compiler, which calls here

    try:
        plan = runnable(compile_source(read_spec(file), str(file)))
    except (OSError, ValueError) as error:  # ValueError: a NUL in the path
        reason = getattr(error, "strerror", None) or str(error)
        return _Compiled(None, f"cannot read the donor spec: {reason}")
    except SpecError as error:
        first = next(d for d in error.diagnostics if d.severity == "error")
        count = len([d for d in error.diagnostics if d.severity == "error"])
        more = f" (and {count - 1} more)" if count > 1 else ""
        return _Compiled(None, f"the donor spec has errors: {first.span}: {first.message}{more}")
    return _Compiled(plan, "")
