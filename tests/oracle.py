"""What every spec error must be (located inside the files it names, printable in
proportion), shared by the fuzzing (fuzzing.py) and the limits (test_limits.py), and an
input that once ran away."""

from clampdsl.lang.diagnostics import SpecError

HEADER = "clampdsl 1\n"
# A chain of lets deeper than Python's recursion limit (resolving it recursed: RecursionError).
LET_CHAIN = (
    HEADER
    + "let A0 = L1.H1\n"
    + "".join(f"let A{i} = A{i - 1}\n" for i in range(1, 1500))
    + "experiment e:\n    ablate A1499\n"
)


def assert_located(error: SpecError, text: str, file: str) -> None:
    assert error.diagnostics, "a SpecError without a diagnostic"
    for diagnostic in error.diagnostics:
        span = diagnostic.span
        # in the file itself, or in one it uses (read as the error's sources hold it)
        assert span.file == file or span.file in error.sources, diagnostic
        source = text if span.file == file else error.sources[span.file]
        lines = (source if source.endswith("\n") else source + "\n").split("\n")
        assert 1 <= span.line < len(lines), (diagnostic, len(lines))
        assert 1 <= span.column <= len(lines[span.line - 1]) + 1, diagnostic
        assert diagnostic.severity in ("error", "warning")
    assert any(d.severity == "error" for d in error.diagnostics)
    rendered = str(error)  # printing them works, and stays in proportion to the file
    read = sum(len(source) for name, source in error.sources.items() if name != file)
    assert len(rendered) <= 1000 * len(error.diagnostics) + 4 * (len(text) + read)
