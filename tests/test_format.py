"""`clampdsl fmt`: one canonical form, comments kept, idempotent, never a change of meaning."""

import re

import pytest
from conftest import ROOT, clampdsl

from clampdsl.compile import compile_source
from clampdsl.lang.diagnostics import SpecError
from clampdsl.lang.format import format_source

SHIPPED = sorted(ROOT.glob("specs/**/*.clamp"))
FIXTURES = sorted(ROOT.glob("tests/fixtures/**/*.clamp"))
MESSY = """\
# a spec as typed in a hurry
clampdsl   1
model attention-only   layers = 2 heads=2 d_model=16
task classes=10 new_classes=10 features=synthetic( dim=16 ,correlation=0.5 )
train steps=30 batch=8 lr=1e-3   # short
eval every 10 steps on train,relabel size=64
phase train . loss<0.4*ln2



let IH=L2.H1
let LONGER_NAME   =   L2.H{ 0,1 }
experiment base "nothing":
  ablate L2.H0
      # a comment in the block
  clamp L1.H0 to prev-token   from step 10   # windowed
experiment copy
"""
CANONICAL = """\
# a spec as typed in a hurry
clampdsl 1
model attention-only layers=2 heads=2 d_model=16
task  classes=10 new_classes=10 features=synthetic(dim=16, correlation=0.5)
train steps=30 batch=8 lr=1e-3   # short
eval  every 10 steps on train, relabel size=64
phase train.loss < 0.4 * ln2

let IH          = L2.H1
let LONGER_NAME = L2.H{0, 1}
experiment base "nothing":
    ablate L2.H0
    # a comment in the block
    clamp L1.H0 to prev-token from step 10   # windowed
experiment copy
"""


def comments(text: str) -> list[str]:
    return re.findall(r"#.*", text)


def test_a_messy_spec_takes_the_canonical_form():
    assert format_source(MESSY) == CANONICAL
    assert compile_source(CANONICAL).content_hash() == compile_source(MESSY).content_hash()


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: str(p.relative_to(ROOT)))
def test_shipped_specs_are_in_canonical_form(path):
    text = path.read_text()
    assert format_source(text, str(path)) == text


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: str(p.relative_to(ROOT)))
def test_formatting_is_idempotent_keeps_comments_and_never_changes_the_plan(path):
    text = path.read_text()
    once = format_source(text, str(path))
    assert format_source(once, str(path)) == once
    assert comments(once) == [c.rstrip() for c in comments(text)]
    try:
        before = compile_source(text, str(path)).content_hash()
    except SpecError as error:  # the invalid fixtures: the same errors, one for one
        with pytest.raises(SpecError) as again:
            compile_source(once, str(path))
        messages = [d.message for d in again.value.diagnostics]
        assert messages == [d.message for d in error.diagnostics]
        return
    assert compile_source(once, str(path)).content_hash() == before


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: str(p.relative_to(ROOT)))
def test_a_semantic_edit_changes_the_plan(path):
    text = path.read_text()
    edited = text + "experiment one_more\n"
    hashes = {compile_source(t, str(path)).content_hash() for t in (text, edited)}
    assert len(hashes) == 2


def test_fmt_check_write_and_print(tmp_path):
    messy, tidy = tmp_path / "messy.clamp", tmp_path / "tidy.clamp"
    messy.write_text(MESSY)
    tidy.write_text(CANONICAL)
    printed = clampdsl("fmt", messy)
    assert printed.returncode == 0 and printed.stdout == CANONICAL
    checked = clampdsl("fmt", "--check", messy, tidy)
    assert checked.returncode == 1
    assert f"{messy}: would be reformatted" in checked.stderr and str(tidy) not in checked.stderr
    assert messy.read_text() == MESSY  # --check writes nothing
    written = clampdsl("fmt", "--write", messy, tidy)
    assert written.returncode == 0 and messy.read_text() == CANONICAL
    assert clampdsl("fmt", "--check", messy, tidy).returncode == 0


def test_fmt_refuses_a_spec_that_does_not_parse(tmp_path):
    broken = tmp_path / "broken.clamp"
    broken.write_text("clampdsl 1\nexperiment base\n    ablate L2.H0\n")
    done = clampdsl("fmt", "--write", broken)
    assert done.returncode == 2
    assert "broken.clamp:2:16: error: this experiment's header needs a ':'" in done.stderr
    assert "Traceback" not in done.stderr
    assert broken.read_text() == "clampdsl 1\nexperiment base\n    ablate L2.H0\n"


def test_a_negative_number_keeps_its_sign_next_to_it():
    spec = (
        "clampdsl 1\nmodel pos=relative layers=2 heads=2 d_model=8\n"
        "experiment e:\n    clamp L1.H0 to relative-position   offset   -1\n"
    )
    assert "offset -1\n" in format_source(spec)
