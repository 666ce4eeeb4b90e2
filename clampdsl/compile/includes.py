"""`use "file.clamp"`: another file's statements read in where the `use` line is.

A path is relative to the file that writes it, and must stay inside the spec's tree: the top
file's folder, or the nearest folder above it holding a file named `.clamp-root` (ROOT_MARKER),
so that `specs/paper/fig3.clamp` can use `../lib/induction.clamp` where `specs/` is marked.
An absolute path, or a `..` or symbolic link that leads out of the tree, is an error: a
spec from a collaborator reads no file of the user's but those beside it. Cycles, missing
or unreadable files, and includes nested deeper than MAX_DEPTH are errors at the `use`
line that show the chain of includes. Each included file is parsed on its own (its own
`clampdsl 1` header, its own positions: an error in it names it), and its statements take
the place of the `use` line. Later statements override earlier ones: settings as they always do; a
`let`, an experiment, a subcircuit, a sweep of the same setting, `seeds` or the phase rule
defined again in a later file replaces the earlier one (defined twice in one file, it is
still an error).
"""

from __future__ import annotations

import os
from pathlib import Path

import attrs

from clampdsl.compile.toplevel import LANGUAGE_VERSION
from clampdsl.compile.tree import is_absolute, not_a_spec, spec_root, tree_words
from clampdsl.lang import ast
from clampdsl.lang.diagnostics import Diagnostic, SpecError, quoted
from clampdsl.lang.parser import parse
from clampdsl.lang.source import read_spec

MAX_DEPTH = 16  # includes within includes


@attrs.frozen
class Expanded:
    spec: ast.Spec  # the top file's, its `use` lines replaced by what they include
    sources: dict[str, str]  # every file read, by the name its spans carry
    chains: dict[str, str]  # an included file → "included from a.clamp:2 ← top.clamp:3"


def expand(spec: ast.Spec, text: str) -> Expanded:
    """The spec with its includes read in; SpecError listing what could not be."""
    sources = {spec.file: text}
    if not any(isinstance(s, ast.Use) for s in spec.statements):
        return Expanded(spec, sources, {})
    reader = _Reader(spec.file, sources)
    statements = reader.statements(spec, ())
    if reader.problems:
        raise SpecError(reader.problems, sources)
    merged = attrs.evolve(spec, statements=_overridden(statements))
    return Expanded(merged, sources, reader.chains)


def with_chain(diagnostic: Diagnostic, chains: dict[str, str]) -> Diagnostic:
    """A diagnostic in an included file, its hint naming the chain of includes."""
    chain = chains.get(diagnostic.span.file)
    if chain is None:
        return diagnostic
    hint = f"{diagnostic.hint}; {chain}" if diagnostic.hint else chain
    return attrs.evolve(diagnostic, hint=hint)


class _Reader:
    def __init__(self, top: str, sources: dict[str, str]):
        self.root = spec_root(Path(top))
        self.sources = sources
        self.chains: dict[str, str] = {}
        self.problems: list[Diagnostic] = []
        self.included: set[Path] = set()

    def statements(self, spec: ast.Spec, chain: tuple[tuple[ast.Use, Path], ...]) -> list:
        out = []
        for statement in spec.statements:
            if isinstance(statement, ast.Use):
                out += self.include(statement, chain)
            else:
                out.append(statement)
        return out

    def include(self, use: ast.Use, chain) -> list:
        here = (*chain, (use, None))
        path = self.path_of(use, chain, here)
        if path is None:
            return []
        here = (*chain, (use, path))
        name = str(path)  # as reached from the top file's name: the file to open
        try:
            text = read_spec(path)
        except (OSError, ValueError) as error:  # ValueError: a NUL in the path
            reason = getattr(error, "strerror", None) or str(error)
            self.error(f"cannot read {quoted(use.path.value)}: {reason}", use, here)
            return []
        except SpecError as error:  # not UTF-8: its position in the included file
            self.nested(error, here)
            return []
        try:
            spec = parse(text, name)
        except SpecError as error:
            self.sources[name] = text
            self.nested(error, here)
            return []
        self.sources[name] = text
        self.chains[name] = _chain_text(here)
        if spec.version.value != LANGUAGE_VERSION:
            self.problems.append(
                Diagnostic(
                    f"this is clampdsl {spec.version.text}; only version {LANGUAGE_VERSION} exists",
                    spec.version.span,
                    self.chains[name],
                )
            )
        return self.statements(spec, here)

    def path_of(self, use: ast.Use, chain, here) -> Path | None:
        written = use.path.value
        if is_absolute(written):
            self.error("a `use` path is relative to the file that writes it", use, here)
            return None
        if len(chain) >= MAX_DEPTH:
            self.error(f"includes nest deeper than {MAX_DEPTH} files", use, here)
            return None
        path = Path(use.span.file).parent / written
        try:
            resolved = path.resolve()
        except (OSError, RuntimeError, ValueError) as error:  # a loop of links, a NUL
            self.error(f"cannot read {quoted(written)}: {error}", use, here)
            return None
        if not resolved.is_relative_to(self.root):
            self.error(f"{quoted(written)} leads out of {tree_words(self.root)}", use, here)
            return None
        if problem := not_a_spec(written, resolved):
            self.error(problem, use, here)
            return None
        files = [Path(u.span.file).resolve() for u, _ in chain] + [Path(use.span.file).resolve()]
        if resolved in files:
            self.error(f"{quoted(written)} includes itself (a cycle of includes)", use, here)
            return None
        if resolved in self.included:
            return None  # read in once, where first used
        self.included.add(resolved)
        return _tidy(path, resolved)

    def nested(self, error: SpecError, here) -> None:
        chain = _chain_text(here)
        for diagnostic in error.diagnostics:
            self.chains.setdefault(diagnostic.span.file, chain)
            self.problems.append(with_chain(diagnostic, {diagnostic.span.file: chain}))
        self.sources.update(error.sources)

    def error(self, message: str, use: ast.Use, here) -> None:
        hint = _chain_text(here[:-1]) if len(here) > 1 else None
        self.problems.append(Diagnostic(message, use.path.span, hint))


def _tidy(path: Path, resolved: Path) -> Path:
    """`specs/lib/x.clamp` for `specs/paper/../lib/x.clamp`, for errors to name, unless a
    link makes the shorter path another file."""
    tidy = Path(os.path.normpath(path))
    return tidy if tidy.resolve() == resolved else path


def _chain_text(chain) -> str:
    """`included from lib/a.clamp:2 ← top.clamp:3`: the `use` lines, innermost first."""
    return "included from " + " ← ".join(
        f"{use.span.file}:{use.span.line}" for use, _ in reversed(chain)
    )


def _overridden(statements: list) -> tuple:
    """Statements with those a later file defines again left out (`_key`: a let, an
    experiment or a subcircuit of the same name, a sweep of the same setting, seeds, the
    phase rule). (In one file, a second definition
    stays, for the checks to refuse.)"""
    kept, seen = [], {}
    for index, statement in reversed(list(enumerate(statements))):
        key = _key(statement)
        if key is not None and key in seen and seen[key] != statement.span.file:
            continue  # overridden by a later file's
        if key is not None:
            seen.setdefault(key, statement.span.file)
        kept.append((index, statement))
    return tuple(statement for _, statement in sorted(kept, key=lambda pair: pair[0]))


def _key(statement) -> tuple | None:
    if isinstance(statement, ast.Let):
        return ("let", statement.name.value)
    if isinstance(statement, ast.Experiment):
        return ("experiment", statement.name.value)
    if isinstance(statement, ast.Subcircuit):
        return ("subcircuit", statement.name.value)
    if isinstance(statement, ast.Sweep):
        return ("sweep", statement.section.value, statement.key.value)
    if isinstance(statement, ast.Seeds):
        return ("seeds",)
    if isinstance(statement, ast.PhaseStmt | ast.PhaseWhen):
        return ("phase",)
    return None
