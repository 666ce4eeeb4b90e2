"""Collect-all error mode: passes record diagnostics here and carry on where they can."""

from __future__ import annotations

from clampdsl.lang.diagnostics import Diagnostic, Span, did_you_mean


class Collector:
    def __init__(self) -> None:
        self.diagnostics: list[Diagnostic] = []

    def error(self, message: str, span: Span, hint: str | None = None) -> None:
        self.diagnostics.append(Diagnostic(message, span, hint))

    def unknown(self, what: str, word: str, span: Span, choices) -> None:
        choices = sorted(choices)
        hint = did_you_mean(word, choices) or f"known: {', '.join(choices)}"
        self.error(f"unknown {what} {word!r}", span, hint)

    def __bool__(self) -> bool:
        return bool(self.diagnostics)
