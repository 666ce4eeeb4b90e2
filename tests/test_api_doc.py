"""docs/api.md's example, run as written on a small spec that declares subcircuits (the
main spec's experiments and library, shortened), so that the page stays true."""

import pytest
from conftest import ROOT, fenced, run_example

import clampdsl

SMALL = """clampdsl 1
use "lib/induction.clamp"
model layers=2 heads=2 d_model=16
task classes=10 new_classes=10 features=synthetic(dim=16, correlation=0.5)
train steps=40 batch=8 lr=1e-3
eval every 10 steps on train size=64
let IH = L2.H1
let OTHERS = L2.H* except H1
experiment noclamp:
    ablate OTHERS
experiment layer1:
    clamp L1.out to shifted-embedding
    ablate OTHERS
experiment copy:
    clamp logits to scores of IH
"""


@pytest.fixture
def small(tmp_path):
    """The small spec beside a copy of the library it uses."""
    (tmp_path / "lib").mkdir()
    library = (ROOT / "specs" / "lib" / "induction.clamp").read_text()
    (tmp_path / "lib" / "induction.clamp").write_text(library)
    (tmp_path / "small.clamp").write_text(SMALL)
    return tmp_path / "small.clamp"


def test_the_api_pages_example_runs(small, tmp_path, monkeypatch, capsys):
    (example,) = fenced(ROOT / "docs" / "api.md", "python")
    monkeypatch.chdir(tmp_path)
    code = example.replace("specs/three_subcircuits.clamp", "small.clamp")
    run_example(code.replace('device="cpu"', 'device="cpu", compile="off"'), "api.md")
    printed = capsys.readouterr().out
    assert "3 runs in 1 batched group(s)" in printed
    assert "noclamp" in printed and "evals; last loss" in printed


def test_rows_carry_every_summary_field(small, tmp_path):

    result = clampdsl.run(small, tmp_path / "runs", "cpu", compile="off")
    rows = result.rows()
    assert [r["name"] for r in rows] == ["noclamp", "layer1", "copy"]
    assert rows[1]["gives"] == "A" and "final.train.loss" in rows[1]
    assert rows[0]["final.train.loss"] == result.summary("noclamp").final["train.loss"]


def test_frame_is_the_rows_indexed_by_run(small, tmp_path):
    pandas = pytest.importorskip("pandas")
    result = clampdsl.run(small, tmp_path / "runs", "cpu", compile="off")
    frame = result.frame()
    assert isinstance(frame, pandas.DataFrame)
    assert frame.loc["copy", "gives"] == "C"
