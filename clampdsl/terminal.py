"""What the commands print on: stdout and stderr as Rich consoles made on first use, and
a failure as the one line of `error: …` that each command ends with."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console


class LazyConsole:
    """A Rich console made on first use: `validate`, `plan --json` and `fmt` print plain
    text, and importing rich would be a tenth of what `validate` may take."""

    def __init__(self, stderr: bool = False):
        self._stderr, self._console = stderr, None

    @property
    def console(self) -> Console:
        if self._console is None:
            from rich.console import Console

            stream = sys.stderr if self._stderr else sys.stdout
            # Off a terminal (CI logs, pipes) Rich would assume 80 columns and fold tables.
            width = None if stream.isatty() else 132
            self._console = Console(stderr=self._stderr, width=width)
        return self._console

    def print(self, *objects, **options) -> None:
        self.console.print(*objects, **options)


out, err = LazyConsole(), LazyConsole(stderr=True)


def print_error(message: str) -> None:
    """`error: MESSAGE` on stderr as one line, whatever its width, and with no markup read
    from it: a path may hold `[`."""
    from rich.markup import escape

    err.print(f"error: {escape(message)}", style="bold red", highlight=False, soft_wrap=True)


def failure(error: Exception) -> str:
    """What stopped a command, in one line: for an OSError, the file and the cause."""
    if isinstance(error, OSError):
        return f"{error.filename or 'the output directory'}: {error.strerror or error}"
    return str(error)


def run_failure(error: Exception) -> str:
    """What stopped a run, in one line: the file and the cause, and that nothing is lost."""
    if not isinstance(error, OSError):
        return str(error)
    return (
        f"{failure(error)}. What was written before is kept; the same command resumes once "
        "the cause is gone"
    )
