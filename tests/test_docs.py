"""The language reference's examples compile: every ```clamp block of docs/language.md,
whole files as they are, statement lines as the body of an experiment."""

import re

import pytest
from conftest import ROOT

from clampdsl.compile import compile_source

REFERENCE = ROOT / "docs" / "language.md"
BLOCKS = re.findall(r"```clamp\n(.*?)```", REFERENCE.read_text(), flags=re.S)
MODEL = "clampdsl 1\nmodel layers=2 heads=8 d_model=64\ntrain steps=4000\n"


def _as_spec(block: str) -> str:
    if block.lstrip().startswith("clampdsl"):
        return block
    lines = block.strip().splitlines()
    return MODEL + "".join(
        f"experiment e{i}:\n    {line.strip()}\n" for i, line in enumerate(lines)
    )


def test_the_reference_has_examples():
    assert len(BLOCKS) >= 5


@pytest.mark.parametrize("block", BLOCKS, ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_example_compiles(block):
    compile_source(_as_spec(block), str(REFERENCE))
