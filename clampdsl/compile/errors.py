"""Collect-all error mode: passes record diagnostics here and carry on where they can."""

from __future__ import annotations

from clampdsl.lang.diagnostics import Diagnostic, Span, did_you_mean, quoted


class Collector:
    def __init__(self) -> None:
        self.diagnostics: list[Diagnostic] = []

    def error(self, message: str, span: Span, hint: str | None = None) -> None:
        self.diagnostics.append(Diagnostic(message, span, hint))

    def warn(self, message: str, span: Span, hint: str | None = None) -> None:
        """Something that is legal but surely not meant: reported, and the spec still runs."""
        self.diagnostics.append(Diagnostic(message, span, hint, severity="warning"))

    def unknown(self, what: str, word: str, span: Span, choices) -> None:
        choices = sorted(choices)
        hint = did_you_mean(word, choices) or f"known: {', '.join(choices)}"
        self.error(f"unknown {what} {quoted(word)}", span, hint)

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.severity == "error"]

    def __bool__(self) -> bool:
        """Whether there are errors (warnings alone let the compiler go on)."""
        return bool(self.errors)
