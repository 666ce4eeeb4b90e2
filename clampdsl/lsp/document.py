"""A document as completion and hover read it: parsed as far as it parses, with its includes,
lets and model settings, never raising on a broken spec.

A document being edited rarely parses: the line being typed (`clamp L1.H2 to `) is a syntax
error. So the lines that do not parse are left out, one at a time, until the rest does, and
the settings and lets are read with the compiler's own passes, each problem set aside: what
the rest of the spec says about the model and its names still holds.
"""

from __future__ import annotations

import attrs

from clampdsl.compile import includes, numbers, settings, toplevel
from clampdsl.compile.configs import ModelConfig
from clampdsl.compile.errors import Collector
from clampdsl.lang import ast
from clampdsl.lang.diagnostics import Span, SpecError
from clampdsl.lang.parser import parse

MAX_PARSES = 32  # tries before giving up on a document, each leaving out one more line
# What a line left out becomes: a settings line that sets nothing, which parses wherever a
# statement may stand, at the top level and in an experiment's block alike.
PLACEHOLDER = "model"


@attrs.frozen
class Reading:
    file: str  # the name the document's spans carry
    spec: ast.Spec | None  # None: nothing of it parses
    lets: dict[str, ast.Let]
    sources: dict[str, str]  # the text of each file read, by the name its spans carry

    def written(self, span: Span) -> str:
        """The text of a span on one line, as written in its file."""
        lines = self.sources.get(span.file, "").split("\n")
        if not 1 <= span.line <= len(lines):
            return ""
        end = span.end_column - 1 if span.end_line == span.line else None
        return lines[span.line - 1][span.column - 1 : end].strip()

    @property
    def experiments(self) -> tuple[ast.Experiment, ...]:
        """The document's own experiments (not an included file's)."""
        statements = self.spec.statements if self.spec else ()
        return tuple(
            s for s in statements if isinstance(s, ast.Experiment) and s.span.file == self.file
        )

    def settings(self, experiment: ast.Experiment | None = None) -> settings.Settings:
        """What the top-level settings give, with `experiment`'s own settings applied."""
        resolved, ignored = settings.Settings(), Collector()
        statements = self.spec.statements if self.spec else ()
        body = experiment.body if experiment else ()
        for line in (*statements, *body):
            if isinstance(line, ast.Setting):
                resolved = settings.apply_setting(resolved, line, ignored)
        return resolved

    def model(self, experiment: ast.Experiment | None = None) -> ModelConfig:
        return self.settings(experiment).model

    def experiment_at(self, line: int, indented: bool) -> ast.Experiment | None:
        """The experiment whose body holds 1-based `line`: the last one headed above it,
        where the line lies in its span or is indented (the body's lines that do not parse
        are not in its span)."""
        above = [e for e in self.experiments if e.span.line <= line]
        if above and (indented or line <= above[-1].span.end_line):
            return above[-1]
        return None


def read(text: str, file: str, leave_out: int | None = None) -> Reading:
    """The document's reading; `leave_out`, a 1-based line left out from the start (the
    one being typed)."""
    spec = _parse_leniently(text, file, leave_out)
    if spec is None:
        return Reading(file, None, {}, {file: text})
    sources = {file: text}
    try:
        expanded = includes.expand(spec, text)
        spec, sources = expanded.spec, expanded.sources
    except SpecError:
        pass  # an include that cannot be read: the document's own statements still say much
    lets = toplevel.collect_lets(spec, Collector())
    return Reading(file, numbers.substitute(spec, lets, Collector()), lets, sources)


def _parse_leniently(text: str, file: str, leave_out: int | None) -> ast.Spec | None:
    lines = text.split("\n")  # as the parser counts lines
    if leave_out is not None and 1 <= leave_out <= len(lines):
        lines[leave_out - 1] = _left_out(lines[leave_out - 1])
    for _ in range(MAX_PARSES):
        try:
            return parse("\n".join(lines), file)
        except SpecError as error:
            line = error.diagnostics[0].span.line
            if not 1 <= line <= len(lines) or not lines[line - 1].strip():
                return None  # at a line already empty: leaving out more would not help
            left_out = lines[line - 1].strip() == PLACEHOLDER
            lines[line - 1] = "" if left_out else _left_out(lines[line - 1])
    return None


def _left_out(line: str) -> str:
    """A line left out: the placeholder at its indentation, so that an experiment's block
    stays one (a line that fails even so is then left empty)."""
    return line[: len(line) - len(line.lstrip())] + PLACEHOLDER
