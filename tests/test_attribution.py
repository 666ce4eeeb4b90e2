"""Which subcircuits gate the phase change, from the runs' phase steps
(analysis/attribution.py): factors measured between runs that differ in one subcircuit,
bounds where a run never got there, "cannot tell" where no two runs differ so."""

import math

import pytest
from conftest import ROOT

from clampdsl.analysis.attribution import attribute, sentences
from clampdsl.compile import compile_file, compile_source
from clampdsl.report import tables
from clampdsl.report.summary import summarize

MAIN = compile_file(ROOT / "specs" / "three_subcircuits.clamp")
STEPS = {"noclamp": 3200, "prev_token": 2400, "layer1": 500, "match": 200, "copy": 400}
STEPS["layer1_copy"] = 400


def effect(found, name):
    return next(e for e in found.effects if e.subcircuit == name)


def test_each_subcircuit_is_measured_wherever_two_runs_differ_in_it_alone():
    found = attribute(MAIN, STEPS)
    a, b, c = (effect(found, n) for n in "ABC")
    assert dict((label, f.values) for label, f in a.by_context) == {
        "alone": (6.4,),  # noclamp / layer1
        "beside C": (1.0,),  # copy / layer1_copy
    }
    assert a.saving.typical == pytest.approx(math.sqrt(6.4))  # the geometric mean
    assert dict((label, f.values) for label, f in b.by_context) == {"beside A": (2.5,)}
    assert c.saving.values == (8.0, 1.25)
    (interaction,) = found.interactions
    assert interaction.pair == ("A", "C")
    assert interaction.factor.values == (pytest.approx(6.4),)  # 3200·400 / (500·400)
    assert found.left_out == ("prev_token",)  # hands over part of A


def test_the_sentences_say_what_the_data_show():
    text = sentences(attribute(MAIN, STEPS))
    assert (
        text[0]
        == "A gates the phase change: given, it comes 2.5× sooner (6.4× alone; 1.0× beside C)."
    )
    assert any("A and C relieve the same bottleneck" in line for line in text)
    assert text[-1].startswith("Left out")


def test_without_a_pair_of_runs_the_runs_present_cannot_tell():
    spec = (ROOT / "specs" / "three_subcircuits.clamp").read_text()
    without_match = spec.replace(
        'experiment match "A+B given":\n    clamp IH to induction\n    ablate OTHERS\n', ""
    )
    plan = compile_source(without_match, str(ROOT / "specs" / "x.clamp"))
    found = attribute(plan, STEPS)
    assert effect(found, "B").saving is None
    assert "B: the runs present cannot tell" in sentences(found)[1]


def test_a_run_that_never_got_there_makes_its_factors_bounds():
    found = attribute(MAIN, STEPS | {"noclamp": None})
    a = effect(found, "A")
    assert dict(a.by_context)["alone"].values == (4500 / 500,)  # its last step, a bound
    assert dict(a.by_context)["alone"].bounds == 1
    assert not any(i.pair == ("A", "C") for i in found.interactions)  # needs all four times


SEEDED = (
    (ROOT / "specs" / "three_subcircuits.clamp")
    .read_text()
    .replace('use "lib/induction.clamp"', 'use "lib/induction.clamp"\nseeds 5, 6')
)


def test_seeds_are_contexts_of_their_own_and_give_the_interval():
    plan = compile_source(SEEDED, str(ROOT / "specs" / "seeded.clamp"))
    steps = {}
    for run in plan.runs:
        base = STEPS[run.experiment]
        steps[run.name] = (
            base if run.train.seed == 5 else base * (2 if run.experiment == "noclamp" else 1)
        )
    found = attribute(plan, steps)
    alone = dict(effect(found, "A").by_context)["alone"]
    assert sorted(alone.values) == [6.4, 12.8]
    assert alone.interval == (6.4, 12.8)


def test_the_report_shows_it_only_where_subcircuits_are_declared():
    records = [
        {"run": name, "step": s, "sequences": s * 32, "train.loss": 2.0 if s < step else 0.1}
        for name, step in STEPS.items()
        for s in range(0, 4501, 100)
    ]
    table = tables.attribution_table(MAIN, summarize(MAIN, records))
    assert [row[0] for row in table.rows] == ["A", "B", "C"]
    assert table.notes[0].startswith("A gates the phase change")
    bare = compile_source("clampdsl 1\nexperiment base\n")
    assert tables.attribution_table(bare, summarize(bare, [])) is None
    alone = compile_file(ROOT / "specs" / "paper" / "fig3.clamp")  # declares A-C, gives none
    assert tables.attribution_table(alone, summarize(alone, [])) is None


def test_the_attribution_is_drawn_where_the_runs_tell_the_subcircuits_apart(tmp_path):
    from clampdsl.report.plots import plot_gating

    records = [
        {"run": name, "step": s, "sequences": s * 32, "train.loss": 2.0 if s < step else 0.1}
        for name, step in STEPS.items()
        for s in range(0, 4501, 100)
    ]
    drawn = plot_gating(MAIN, summarize(MAIN, records), tmp_path / "gating.png")
    assert drawn.read_bytes().startswith(b"\x89PNG")
    bare = compile_source("clampdsl 1\nexperiment base\n")
    assert plot_gating(bare, summarize(bare, []), tmp_path / "none.png") is None
