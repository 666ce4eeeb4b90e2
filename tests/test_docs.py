"""The language reference's examples compile: every ```clamp block of docs/language.md,
whole files as they are, statement lines as the body of an experiment."""

import json

import pytest
from conftest import ROOT, fenced

from clampdsl.compile import compile_source
from clampdsl.compile.plan import snapshot_name

REFERENCE = ROOT / "docs" / "language.md"
BLOCKS = fenced(REFERENCE, "clamp")
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


@pytest.fixture
def donor_beside(tmp_path):
    """A folder holding the saved run the graft examples name: a finished one-run plan of
    the examples' model, which kept its weights at steps 1000 and 4000 (the files are
    only looked for at compile time); and the donor spec they name."""
    directory = tmp_path / "runs" / "donor" / "0123abcd4567"
    (directory / "checkpoints").mkdir(parents=True)
    plan = compile_source(MODEL + "experiment donor\n")
    (directory / "plan.json").write_text(json.dumps(plan.to_json()))
    (directory / "summary.json").write_text("{}")
    for step in (1000, 4000):
        (directory / "checkpoints" / snapshot_name(0, step)).write_bytes(b"")
    (tmp_path / "donor.clamp").write_text(MODEL + "seeds 5..7\nexperiment all_heads\n")
    return tmp_path


@pytest.mark.parametrize("block", BLOCKS, ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_example_compiles(block, donor_beside):
    compile_source(_as_spec(block), str(donor_beside / "language.md"))
