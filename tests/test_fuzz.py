"""Fuzzing: whatever a spec file holds, checking it ends in a plan or in located errors.

Two sources of inputs: specs assembled from plausible statements (the shipped specs'
vocabulary, random numbers, selectors, indentation), and byte-level mutations of every
shipped spec. Each goes through parse, check and plan; what compiles trains a step on the
CPU (a few examples per run: it is the slow part). The only outcomes allowed: a plan, or a
SpecError whose diagnostics all lie inside the file. Everything else (a ValueError from the
checker, a RecursionError) is a bug; inputs that once found one are kept below as explicit
examples. Then the bounds: what a spec file may be, and how large a spec checks quickly.
`-m slow` runs the same properties for longer.
"""

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import attrs
import pytest
from conftest import FIXTURES, ROOT
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from clampdsl.compile import (
    MAX_EXPERIMENTS,
    MAX_INTERVENTIONS,
    MAX_SPEC_INTERVENTIONS,
    compile_source,
)
from clampdsl.compile.plan import Plan
from clampdsl.lang.diagnostics import SpecError
from clampdsl.lang.grammar import MAX_TOKENS
from clampdsl.lang.source import MAX_BYTES, SpecFileError, decode_spec, read_spec

FILE = "no-such-folder/fuzz.clamp"  # where donor paths start: they lead to no saved run
SHIPPED = sorted([*ROOT.glob("specs/**/*.clamp"), *FIXTURES.glob("**/*.clamp")])
SOURCES = {p.relative_to(ROOT).as_posix(): p.read_bytes() for p in SHIPPED}
VOCABULARY = sorted(
    {w for text in SOURCES.values() for w in re.findall(rb"[A-Za-z_][\w-]*|\S", text)}
)
QUICK = settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)
LONG = settings(QUICK, max_examples=5000)
TRAINED = settings(QUICK, max_examples=10)  # those that compile train a step each
TRAINED_LONG = settings(QUICK, max_examples=150)
HEADER = "clampdsl 1\n"
TINY = (
    "model layers=2 heads=2 d_model=16\n"
    "task classes=10 new_classes=10 features=synthetic(dim=16, correlation=0.5)\n"
    "train steps=30 batch=8 lr=1e-3\n"
)


# ---- the oracle ------------------------------------------------------------------------------


def outcome(text: str, file: str = FILE) -> Plan | None:
    """The plan of `text`, or None after a SpecError that is well located; any other
    exception propagates (and fails the test)."""
    try:
        plan = compile_source(text, file)
    except SpecError as error:
        assert_located(error, text, file)
        return None
    json.dumps(plan.to_json())  # a plan is plain data, whatever was written
    plan.content_hash()
    return plan


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


def train_a_step(plan: Plan) -> None:
    """Every group of the plan, shrunk to one step of a small batch, trains and evaluates
    on the CPU, eagerly; a plan too large to build in a test is left at compiling."""
    import torch

    from clampdsl.train.session import GroupSession

    if not all(_small(run) for run in plan.runs):
        return
    runs = tuple(
        attrs.evolve(
            run,
            train=attrs.evolve(run.train, steps=1, batch=2),
            eval=attrs.evolve(run.eval, every=1, size=8),
        )
        for run in plan.runs
    )
    small = attrs.evolve(plan, runs=runs)
    for index in range(len(small.groups)):
        session = GroupSession(small, index, "cpu", compile="off")
        losses = session.train_step(0)
        assert losses.shape == (len(small.groups[index].runs),)
        metrics = session.evaluate(1)
        assert all(isinstance(value, torch.Tensor) for value in metrics.values())


def _small(run) -> bool:
    model, task = run.model, run.task
    return (
        model.layers <= 4
        and model.heads * model.layers <= 32
        and model.d_model <= 128
        and task.features.dim <= 512
        and task.classes + task.new_classes <= 2000
        and task.labels <= 1000
    )


# ---- generated specs -------------------------------------------------------------------------

small_int = st.one_of(st.integers(0, 12), st.sampled_from([16, 32, 64, 100, 128, 1000]))
numbers = st.one_of(
    small_int.map(str),
    st.sampled_from(["0.5", "1e-3", "1e5", "32k", "2M", "10_000", "1e999", "0.999", "3.7"]),
    st.integers(0, 10**30).map(str),
    st.floats(0, 10, allow_nan=False).map(lambda x: f"{x:.3f}"),
)
names = st.sampled_from(
    ["IH", "OTHERS", "A", "B", "KEY_HEADS", "logits", "embed", "L1x", "train", "to", "x-y"]
)
heads = st.one_of(
    st.just("H*"),
    small_int.map(lambda h: f"H{h}"),
    st.tuples(small_int, small_int).map(lambda r: f"H{r[0]}-{r[1]}"),
    st.lists(small_int, min_size=1, max_size=4).map(lambda h: "H{" + ",".join(map(str, h)) + "}"),
    st.just("H0-999999999"),
    st.just("H" + "9" * 5000),
)
layer = st.one_of(
    st.just("L*"),
    st.integers(0, 4).map(lambda n: f"L{n}"),
    st.sampled_from(["L99999999999", "L" + "1" * 5000]),
)
sites = st.sampled_from(["pattern", "scores", "q", "k", "v", "z", "in", "out", "patern"])
selectors = st.one_of(
    st.builds(lambda at, h: f"{at}.{h}", layer, heads),
    st.builds(lambda at, h, s: f"{at}.{h}.{s}", layer, heads, sites),
    st.builds(lambda at, h, e: f"{at}.{h} except {e}", layer, heads, heads),
    st.builds(lambda at, s: f"{at}.{s}", layer, sites),
    layer.map(lambda at: f"{at}.."),
    layer,
    names,
)
points = st.one_of(
    numbers.map(lambda n: f"step {n}"),
    numbers.map(lambda n: f"{n} steps"),
    numbers.map(lambda n: f"{n} sequences"),
)
window = st.lists(
    st.one_of(
        points.map(lambda p: f"from {p}"),
        points.map(lambda p: f"until {p}"),
        st.tuples(points, points).map(lambda p: f"from {p[0]} to {p[1]}"),
        st.sampled_from(["during train", "during eval", "during both", "during never"]),
    ),
    max_size=2,
).map(" ".join)
targets = st.sampled_from(
    [
        "prev-token",
        "prev-token strength 0.9",
        "prev-token at labels",
        "prev-token strength 2",
        "induction",
        "induction strength 0.5",
        "match",
        "match temperature 0.1",
        "uniform",
        "self",
        "zero",
        "mean",
        "shifted-embedding",
        "scores of L2.H0",
        "scores of L2.H3 detached",
        "scores of logits",
        "scores",
        "prev-tokn",
        "induction strength",
        "match at labels at labels",
    ]
)
verbs = st.sampled_from(
    [
        "ablate {s}",
        "ablate {s} keeping patterns",
        "ablate {s} keeping values",
        "ablate {s} keeping nothing",
        "forbid {s} attending prev-token",
        "forbid {s} attending prev-token at labels",
        "restrict {s} to labels",
        "scale {s} temperature 2",
        "scale {s} temperature 0",
        "scale {s} temperature 2 detached",
        "freeze {s}",
        'graft {s} from "runs/donor/0123abcd"',
        'graft {s} from "../outside" at step 3',
        'graft {s} from "a\\"b" run pt',
        "ablat {s}",
    ]
)
setting_keys = st.sampled_from(
    [
        "layers",
        "heads",
        "d_model",
        "classes",
        "new_classes",
        "labels",
        "context",
        "pair_split",
        "seed",
        "steps",
        "batch",
        "lr",
        "data_seed",
        "eval_seed",
        "keep_every",
        "checkpoint_every",
        "layres",
    ]
)
values = st.one_of(
    numbers,
    st.sampled_from(["rope", "pre", "adam", "synthetic", '"text"']),
    st.builds(
        lambda d, c: f"synthetic(dim={d}, correlation={c})",
        small_int,
        st.sampled_from(["0.5", "0.9", "1", "0"]),
    ),
)
setting_line = st.builds(
    lambda section, flags, options: " ".join([section, *flags, *options]),
    st.sampled_from(["model", "task", "train"]),
    st.lists(st.sampled_from(["attention-only", "fewshot", "decoder"]), max_size=1),
    st.lists(st.builds(lambda k, v: f"{k}={v}", setting_keys, values), max_size=3),
)
features_line = st.builds(
    lambda d, c: f"task features=synthetic(dim={d}, correlation={c})",
    st.sampled_from([8, 16, 32]),
    st.sampled_from(["0.5", "0.9"]),
)
body_line = st.one_of(
    st.builds(lambda s, t, w: f"clamp {s} to {t} {w}", selectors, targets, window),
    st.builds(lambda v, s, w: f"{v.format(s=s)} {w}", verbs, selectors, window),
    setting_line,
)
indent = st.sampled_from(["    ", "  ", "\t", "        ", "", "   \t"])
top_line = st.one_of(
    setting_line,
    features_line,
    st.builds(
        lambda n, u, sets, size: f"eval every {n} {u} on {', '.join(sets)}{size}",
        small_int,
        st.sampled_from(["steps", "sequences"]),
        st.lists(st.sampled_from(["train", "relabel", "new-classes", "tran"]), min_size=1),
        st.sampled_from(["", " size=64", " size=1"]),
    ),
    st.builds(
        lambda s, m, op, f: f"phase {s}.{m} {op} {f}",
        st.sampled_from(["train", "relabel", "new-classes", "test"]),
        st.sampled_from(["loss", "acc", "los"]),
        st.sampled_from(["<", "<=", ">", ">="]),
        st.sampled_from(["0.4 * ln2", "1", "ln2", "2 * ln3", "1e999 * 0"]),
    ),
    st.builds(lambda n, s: f"let {n} = {s}", names, st.one_of(selectors, numbers)),
    st.builds(
        lambda m, s: f"measure {m} of {s}",
        st.sampled_from(["induction-strength", "prev-token-strength", "strength"]),
        selectors,
    ),
    st.builds(
        lambda r: "report " + ", ".join(r),
        st.lists(st.sampled_from(["subcircuits", "phase", "curves", "tables"]), min_size=1),
    ),
)


@st.composite
def experiments(draw) -> str:
    name = draw(st.sampled_from(["e", "base", "match", "copy", "x1", "e"]))
    description = draw(st.sampled_from(["", ' "a description"', ' "A+B given"']))
    body = draw(st.lists(body_line, max_size=4))
    if not body:
        return f"experiment {name}{description}"
    pad = draw(st.sampled_from(["    ", "    ", "  ", "\t"]))  # one block, one indentation
    pads = [pad] * len(body)
    if draw(st.integers(0, 4)) == 0:  # or not
        pads = draw(st.lists(indent, min_size=len(body), max_size=len(body)))
    lines = [p + line for p, line in zip(pads, body, strict=True)]
    lines.insert(0, f"experiment {name}{description}:")
    return "\n".join(lines)


@st.composite
def generated_specs(draw) -> str:
    header = draw(st.sampled_from([HEADER] * 8 + ["clampdsl 2\n", "", "\nclampdsl 1\n"]))
    preamble = draw(st.sampled_from([TINY] * 3 + [""]))
    statements = draw(st.lists(top_line, max_size=4)) + draw(
        st.lists(experiments(), min_size=1, max_size=4)
    )
    if draw(st.integers(0, 4)) == 0:
        statements = draw(st.permutations(statements))
    comment = draw(st.sampled_from(["", "  # a comment", "  #"]))
    ending = draw(st.sampled_from(["\n", "\r\n", ""]))
    return header + preamble + ending.join(s + comment for s in statements) + ending


@st.composite
def compiling_specs(draw) -> str:
    """Specs of the small model, with experiments of well-formed clamps: most compile."""
    heads = st.sampled_from(["H0", "H1", "H*", "H0-1", "H{0,1}", "H* except H1"])
    selector = st.one_of(st.builds(lambda at, h: f"{at}.{h}", st.sampled_from(["L1", "L2"]), heads))
    target = targets.filter(lambda t: "L2.H3" not in t and "strength 2" not in t)
    line = st.one_of(
        st.builds(lambda s, t: f"clamp {s} to {t}", selector, target),
        st.builds(lambda v, s: v.format(s=s), verbs.filter(lambda v: "graft" not in v), selector),
        st.builds(
            lambda s, a, b: f"clamp {s} to prev-token from step {a} until step {a + b + 1}",
            selector,
            st.integers(0, 3),
            st.integers(0, 3),
        ),
    )
    body = draw(st.lists(line, min_size=0, max_size=3))
    count = draw(st.integers(1, 3))
    blocks = "".join(
        f"experiment e{i}:\n" + "".join(f"    {b}\n" for b in body[i::count])
        if body[i::count]
        else f"experiment e{i}\n"
        for i in range(count)
    )
    return (
        HEADER
        + TINY
        + "eval every 10 steps on train, relabel size=64\n"
        + (blocks or "experiment base\n")
    )


DIGITS = "1" * 5000  # more than int() converts from a string (4,300 digits): ValueError
# A chain of lets deeper than Python's recursion limit (resolving it recursed: RecursionError).
LET_CHAIN = (
    HEADER
    + "let A0 = L1.H1\n"
    + "".join(f"let A{i} = A{i - 1}\n" for i in range(1, 1500))
    + "experiment e:\n    ablate A1499\n"
)


@example(LET_CHAIN)
@example(HEADER + f"experiment e:\n    clamp L{DIGITS}.H0 to prev-token\n")
@example(HEADER + f"experiment e:\n    ablate L1.H{DIGITS}\n")
@example(HEADER + f"experiment e:\n    ablate L1.H{DIGITS}-0\n")
@example(HEADER + "experiment e:\n    ablate L1.H{0, " + DIGITS + "}\n")
@example(HEADER + 'experiment e:\n    graft L1 from "a\x00b"\n')  # ValueError: a NUL
@example(HEADER + 'experiment e:\n    graft L1 from "' + "x" * 5000 + '"\n')  # ENAMETOOLONG
@example(HEADER + 'experiment e:\n    graft L1 from "' + "a/" * 3000 + '"\n')  # ENAMETOOLONG
@example(HEADER + "model\fheads=4\nexperiment e:\n    ablate L9.H0\n")  # \f: a line, not two
@QUICK
@given(generated_specs())
def test_generated_specs_compile_or_give_located_errors(text):
    outcome(text)


@pytest.mark.slow
@LONG
@given(generated_specs())
def test_generated_specs_compile_or_give_located_errors_long(text):
    outcome(text)


def _trains(text: str) -> None:
    plan = outcome(text)
    if plan is not None:
        train_a_step(plan)


@TRAINED
@given(compiling_specs())
def test_generated_specs_that_compile_train_a_step(text):
    _trains(text)


@pytest.mark.slow
@TRAINED_LONG
@given(compiling_specs())
def test_generated_specs_that_compile_train_a_step_long(text):
    _trains(text)


# ---- byte-level mutations of the shipped specs -----------------------------------------------

INSERTS = [
    b"\x00",
    b"\xff",
    b"\xc3",  # a UTF-8 lead byte without its continuation
    b"\xed\xa0\x80",  # an encoded surrogate: not UTF-8
    b"\t",
    b"\r",
    b"\f",
    b"\x0b",
    b"\x1c",
    b"\xc2\x85",  # NEL: a line break to str.splitlines, not to the parser
    b"\xe2\x80\xa8",  # LINE SEPARATOR, likewise
    b"\n",
    b"    ",
    b"(",
    b")",
    b'"',
    b"#",
    b":",
    b"..",
]


@st.composite
def mutations(draw, most: int = 4) -> tuple[str, bytes]:
    name = draw(st.sampled_from(sorted(SOURCES)))
    data = bytearray(SOURCES[name])
    for _ in range(draw(st.integers(1, most))):
        at = draw(st.integers(0, len(data)))
        action = draw(
            st.sampled_from(
                ["flip", "insert", "token", "delete", "duplicate", "byte", "long", "indent"]
            )
        )
        if action == "flip" and at < len(data):
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif action == "insert":
            data[at:at] = draw(st.sampled_from(INSERTS))
        elif action == "token":
            data[at:at] = b" " + draw(st.sampled_from(VOCABULARY)) + b" "
        elif action == "byte":
            data[at:at] = bytes([draw(st.integers(0, 255))])
        elif action == "delete":
            del data[at : at + draw(st.integers(1, 40))]
        elif action == "duplicate":
            piece = data[at : at + draw(st.integers(1, 200))]
            data[at:at] = piece * draw(st.integers(1, 3))
        elif action == "long":
            unit = draw(st.sampled_from([b"x", b" a", b"(", b"1", b"L1.H1 ", b"#"]))
            data[at:at] = unit * draw(st.integers(1_000, 200_000))
        elif action == "indent":
            start = data.rfind(b"\n", 0, at) + 1
            data[start:start] = draw(st.sampled_from([b"  ", b"\t", b"    ", b"         "]))
    return name, bytes(data)


def check_bytes(name: str, data: bytes) -> Plan | None:
    # A shipped spec is read where it lies, so that its `use` lines find specs/lib.
    file = str(ROOT / name) if name.startswith("specs/") else FILE
    try:
        text = decode_spec(data, file)
    except SpecError as error:
        assert_located(error, data.decode("utf-8", errors="replace"), file)
        return None
    return outcome(text, file)


@example(("specs/three_subcircuits.clamp", b"clampdsl 1\n\xff\n"))
@example(("specs/three_subcircuits.clamp", SOURCES["specs/three_subcircuits.clamp"] + b"\x00"))
@QUICK
@given(mutations())
def test_mutated_shipped_specs_compile_or_give_located_errors(mutated):
    check_bytes(*mutated)


@pytest.mark.slow
@LONG
@given(mutations())
def test_mutated_shipped_specs_compile_or_give_located_errors_long(mutated):
    check_bytes(*mutated)


def _mutant_trains(mutated) -> None:
    plan = check_bytes(*mutated)
    if plan is not None:
        train_a_step(plan)


@TRAINED
@given(mutations(most=1))  # one mutation: more of them compile
def test_mutated_shipped_specs_that_compile_train_a_step(mutated):
    _mutant_trains(mutated)


@pytest.mark.slow
@TRAINED_LONG
@given(mutations(most=2))
def test_mutated_shipped_specs_that_compile_train_a_step_long(mutated):
    _mutant_trains(mutated)


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_every_shipped_spec_goes_through_the_oracle(name):
    plan = check_bytes(name, SOURCES[name])
    assert (plan is None) == ("invalid" in name)
    if plan is not None:
        train_a_step(plan)


# ---- bounds: reading a spec, and checking a large one ----------------------------------------


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
