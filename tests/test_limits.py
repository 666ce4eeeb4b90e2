"""The bounds: what a spec file may be (a regular UTF-8 file of at most MAX_BYTES), and
how large a spec checks quickly; each limit refused with an error located where it is
crossed."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ROOT
from oracle import HEADER, LET_CHAIN, assert_located

from clampdsl.compile import (
    MAX_EXPERIMENTS,
    MAX_INTERVENTIONS,
    MAX_SPEC_INTERVENTIONS,
    compile_source,
)
from clampdsl.lang.diagnostics import SpecError
from clampdsl.lang.grammar import MAX_TOKENS
from clampdsl.lang.source import MAX_BYTES, SpecFileError, read_spec


def _validate(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "clampdsl", "validate", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=60,
    )


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="no /dev/zero")
def test_validate_refuses_what_is_not_a_regular_file(tmp_path):
    fifo = tmp_path / "spec.clamp"
    os.mkfifo(fifo)  # opening it to read would wait for a writer
    for path, kind in (("/dev/zero", "a character device"), (fifo, "a FIFO")):
        result = _validate(path)
        assert result.returncode == 2
        assert f"{path}: error: cannot read spec: not a regular file ({kind})" in result.stderr
    result = _validate(tmp_path)
    assert result.returncode == 2
    assert f"{tmp_path}: error: cannot read spec: not a regular file (a directory)" in (
        result.stderr
    )
    with pytest.raises(SpecFileError, match="a character device"):
        read_spec("/dev/zero")


def test_a_spec_file_over_the_size_limit_is_refused_unread(tmp_path):
    path = tmp_path / "big.clamp"
    path.write_bytes(HEADER.encode() + b"#" * MAX_BYTES)
    result = _validate(path)
    assert result.returncode == 2
    assert f"{path}: error: cannot read spec: larger than 1 MiB" in result.stderr
    with pytest.raises(SpecFileError) as raised:
        read_spec(path)
    assert raised.value.filename == str(path)
    path.write_bytes(HEADER.encode() + b"#" * (MAX_BYTES - len(HEADER) - 20) + b"\nexperiment e\n")
    assert compile_source(read_spec(path), str(path)).runs


def test_a_spec_that_is_not_utf8_is_an_error_at_its_first_bad_byte(tmp_path):
    path = tmp_path / "latin1.clamp"
    path.write_bytes("clampdsl 1\nexperiment é:\n".encode("latin-1"))
    result = _validate(path)
    assert result.returncode == 2
    assert f"{path}:2:12: error: this file is not UTF-8 text: byte 0xe9" in result.stderr
    assert "hint: save the spec as UTF-8" in result.stderr
    import clampdsl

    with pytest.raises(SpecError):
        clampdsl.compile_file(path)
    with pytest.raises(SpecError):
        clampdsl.parse_file(path)


def test_the_api_reads_specs_the_same_way(tmp_path):
    from clampdsl import api

    with pytest.raises(SpecFileError, match="not a regular file"):
        api.load(tmp_path, tmp_path / "runs")


def _timed(text: str) -> tuple[float, SpecError | None]:
    started = time.perf_counter()
    try:
        compile_source(text, "big.clamp")
        error = None
    except SpecError as raised:
        error = raised
        assert_located(raised, text, "big.clamp")
        str(raised)
    return time.perf_counter() - started, error


HUGE = {  # inputs that once ran away, and what they give now
    "a head range to a billion": (
        HEADER + "experiment e:\n    ablate L2.H0-999999999\n",
        "head H999999999 does not exist",
    ),
    "a let of itself": (HEADER + "let A = A\nexperiment e:\n    ablate A\n", "not defined before"),
    "a number too large for a float": (
        HEADER + "train lr=1e999\nexperiment e\n",
        "too large to be read",
    ),
    "a 1 MB line": (
        HEADER + "experiment e:\n    ablate L2.H1" + " a" * 500_000 + "\n",
        "this spec is too long",
    ),
    "a 1 MB comment": (
        HEADER + "#" + "x" * 1_000_000 + "\nexperiment e:\n    ablate L9.H1\n",
        "layer L9 does not exist",
    ),
    "10,000 nested parentheses": (
        HEADER + "task features=synthetic" + "(" * 10_000 + ")" * 10_000 + "\nexperiment e\n",
        "unexpected '('",
    ),
    "an option in 10,000 parentheses": (
        HEADER + "task features=" + "(" * 10_000 + "dim=1" + ")" * 10_000 + "\nexperiment e\n",
        "unexpected '('",
    ),
    "deep indentation": (
        HEADER
        + "experiment e:\n"
        + "".join(" " * 4 * (i + 1) + "ablate L2.H1\n" for i in range(3_000)),
        "unexpected indentation",
    ),
    "a 100,000-column indent": (
        HEADER + "experiment e:\n" + " " * 100_000 + "ablate L9.H1\n",
        "layer L9 does not exist",
    ),
    "10,000 experiments": (
        HEADER + "".join(f"experiment e{i}:\n    ablate L2.H{i % 8}\n" for i in range(10_000)),
        "this spec is too long",
    ),
    "2,000 experiments": (
        HEADER + "".join(f"experiment e{i}\n" for i in range(2_000)),
        f"more than {MAX_EXPERIMENTS:,} experiments",
    ),
    "a line of 10,000 errors": (
        HEADER + "report a" + ",a" * 10_000 + "\nexperiment e\n",
        "unknown report 'a'",
    ),
    "100,000 lines": (HEADER + "train steps=2\n" * 100_000 + "experiment e\n", "too long"),
    "10,000 restricts in one experiment": (
        HEADER + "experiment e:\n" + "    restrict L2.H1 to labels\n" * 7_000,
        f"clamps more than {MAX_INTERVENTIONS} times",
    ),
    "too many clamps in all": (
        HEADER
        + "model layers=64 heads=1 d_model=2\n"
        + "".join(f"experiment e{i}:\n    ablate L*.H0\n" for i in range(200)),
        f"more than {MAX_SPEC_INTERVENTIONS:,} times in all",
    ),
    "a chain of 1,500 lets": (LET_CHAIN, None),
}


@pytest.mark.parametrize("case", sorted(HUGE))
def test_huge_inputs_give_located_errors_quickly(case):
    text, message = HUGE[case]
    seconds, error = _timed(text)
    if message is None:
        assert error is None
    else:
        assert error is not None, f"{case} compiled"
        assert message in str(error.diagnostics[0].message) or message in str(error)
    assert seconds < 15, f"{case}: {seconds:.1f} s"


def test_the_limits_are_located_where_they_are_crossed():
    text = HEADER + "".join(f"experiment e{i}\n" for i in range(MAX_EXPERIMENTS + 5))
    _, error = _timed(text)
    (diagnostic,) = error.diagnostics
    assert (diagnostic.span.line, diagnostic.span.column) == (MAX_EXPERIMENTS + 2, 12)
    assert diagnostic.hint == "split its experiments into several spec files"
    body = "".join(f"    ablate L2.H{i % 8} from step {i}\n" for i in range(MAX_INTERVENTIONS + 9))
    _, error = _timed(HEADER + "experiment e:\n" + body)
    (diagnostic,) = error.diagnostics
    assert diagnostic.span.line == 2 + MAX_INTERVENTIONS + 1
    assert diagnostic.message.startswith(f"experiment 'e' clamps more than {MAX_INTERVENTIONS}")
    words = HEADER + "experiment e:\n    ablate L2.H1" + " a" * MAX_TOKENS + "\n"
    _, error = _timed(words)
    (diagnostic,) = error.diagnostics
    assert diagnostic.message.startswith("this spec is too long")
    assert diagnostic.span.line == 3
    # 11 tokens before the words: `clampdsl 1` and its line end, `experiment e :` and its
    # line end, `ablate L2 . H1`; so the token beyond the limit is word MAX_TOKENS - 10,
    # and word w lies at column 18 + 2 (w - 1)
    assert diagnostic.span.column == 18 + 2 * (MAX_TOKENS - 11)


def test_a_long_line_is_shown_around_its_error():
    text = HEADER + "experiment e:\n    ablate L2.H1" + " a" * 20_000 + " L9.H1\n"
    _, error = _timed(text)
    rendered = str(error)
    assert len(rendered) < 1000
    assert "…" in rendered
    source_line, caret_line = rendered.splitlines()[1:3]
    assert source_line[caret_line.index("^")] == "."  # the caret stays under the error


def test_validate_of_a_10000_experiment_spec_is_bounded(tmp_path):
    path = tmp_path / "many.clamp"
    body = "".join(f"experiment e{i}:\n    ablate L2.H{i % 8}\n" for i in range(10_000))
    path.write_text(HEADER + "train steps=10\n" + body)
    started = time.perf_counter()
    result = _validate(path)
    seconds = time.perf_counter() - started
    assert result.returncode == 2
    assert "this spec is too long" in result.stderr
    assert seconds < 20, seconds


def test_read_spec_and_the_limits_never_import_torch():
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "from clampdsl.lang.source import read_spec\n"
        "from clampdsl.compile import compile_source\n"
        "from clampdsl.lang import diagnostics, grammar, parser\n"
        f"path = {str(ROOT / 'specs/three_subcircuits.clamp')!r}\n"
        "compile_source(read_spec(path), path)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_diagnostics_show_the_line_the_parser_counts():
    # str.splitlines also breaks at \f, \v, \x1c and U+2028: the caret went under another line
    text = HEADER + "model\fheads=4  # \x0b \x1c \u2028\nexperiment e:\n    ablate L9.H0\x00\n"
    _, error = _timed(text)
    rendered = str(error)
    assert "    4 |     ablate L9.H0\ufffd\n" in rendered  # and a NUL is shown, not sent
    assert error.diagnostics[0].span.line == 4
