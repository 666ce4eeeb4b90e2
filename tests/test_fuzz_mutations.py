"""Fuzzing with byte-level mutations of every shipped spec (and fixture): each ends in a
plan or in located errors (tests/fuzzing.py's oracle), the bytes decoded first; what
compiles trains a step on the CPU. Inputs that once found a bug are kept as explicit
examples; `-m slow` runs the same properties for longer."""

import re

import pytest
from conftest import FIXTURES, ROOT
from fuzzing import FILE, LONG, QUICK, TRAINED, TRAINED_LONG, outcome, train_a_step
from hypothesis import example, given
from hypothesis import strategies as st
from oracle import assert_located

from clampdsl.compile.plan import Plan
from clampdsl.lang.diagnostics import SpecError
from clampdsl.lang.source import decode_spec

SHIPPED = sorted([*ROOT.glob("specs/**/*.clamp"), *FIXTURES.glob("**/*.clamp")])
SOURCES = {p.relative_to(ROOT).as_posix(): p.read_bytes() for p in SHIPPED}
VOCABULARY = sorted(
    {w for text in SOURCES.values() for w in re.findall(rb"[A-Za-z_][\w-]*|\S", text)}
)


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
