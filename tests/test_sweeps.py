"""`sweep SECTION.KEY in …` and `seeds A..B`: experiments expanded into named runs that
still share batched models, and the report across seeds."""

import math

import pytest

from clampdsl.compile import compile_source, guard
from clampdsl.lang.diagnostics import SpecError
from clampdsl.report import tables
from clampdsl.report.summary import RunSummary

HEAD = "clampdsl 1\nmodel layers=2 heads=8\ntrain steps=1000\n"


def runs_of(body: str) -> list[str]:
    return [run.name for run in compile_source(HEAD + body).runs]


def errors_of(body: str) -> list:
    with pytest.raises(SpecError) as raised:
        compile_source(HEAD + body, "x.clamp")
    return raised.value.diagnostics


def test_sweeps_and_seeds_form_a_cross_product_of_named_runs():
    names = runs_of("sweep task.classes in 50, 100\nseeds 5..6\nexperiment base\n")
    assert names == [
        "base[classes=50, seed=5]",
        "base[classes=50, seed=6]",
        "base[classes=100, seed=5]",
        "base[classes=100, seed=6]",
    ]


def test_each_run_gets_its_point_and_keeps_its_experiment():
    plan = compile_source(
        HEAD + "let S = 7\nsweep train.lr in 1e-4, 3e-4\nseeds S, 9\nexperiment e\n"
    )
    run = plan.run("e[lr=3e-4, seed=9]")
    assert (run.train.lr, run.train.seed, run.experiment) == (3e-4, 9, "e")
    assert run.point == (("train.lr", "3e-4"), ("train.seed", "9"))
    assert [r.train.seed for r in plan.runs] == [7, 9, 7, 9]  # a numeric let as a seed


def test_an_experiments_own_sweep_replaces_the_top_level_one():
    body = "seeds 1..2\nexperiment a\nexperiment b:\n    seeds 7\n    ablate L2.H0\n"
    assert runs_of(body) == ["a[seed=1]", "a[seed=2]", "b[seed=7]"]


def test_runs_that_differ_in_task_or_seed_share_one_batched_model():
    plan = compile_source(
        HEAD + "sweep task.classes in 50, 100\nseeds 1..3\nsweep task.labels in 5, 10\n"
        "experiment e\n"
    )
    assert len(plan.runs) == 12
    # labels change the output vocabulary, so the model's shape: one group per label count
    assert [len(g.runs) for g in plan.groups] == [6, 6]
    assert {plan.run(r).task.labels for r in plan.groups[1].runs} == {10}


def test_a_sweep_of_features_names_its_value_as_written():
    body = "sweep task.features in synthetic(correlation=0.5), synthetic\nexperiment e\n"
    plan = compile_source(HEAD + body)
    assert [r.name for r in plan.runs] == [
        "e[features=synthetic(correlation=0.5)]",
        "e[features=synthetic]",
    ]
    assert plan.runs[0].task.features.correlation == 0.5


def test_two_axes_with_one_key_are_named_in_full():
    names = runs_of("sweep task.seed in 1, 2\nseeds 3\nexperiment e\n")
    assert names == ["e[task.seed=1, train.seed=3]", "e[task.seed=2, train.seed=3]"]


@pytest.mark.parametrize(
    ("body", "line", "message"),
    [
        ("sweep task.clases in 1, 2\nexperiment e\n", 4, "unknown task setting 'clases'"),
        ("sweep task.classes in 50, 1\nexperiment e\n", 4, "classes=1 is out of range"),
        ("sweep task.classes in 50, 50\nexperiment e\n", 4, "swept twice"),
        ("seeds 1..2\nseeds 3\nexperiment e\n", 5, "train.seed is swept twice"),
        ("sweep train.seed in 1, 2\nseeds 3\nexperiment e\n", 5, "swept twice"),
        ("seeds 5..2\nexperiment e\n", 4, "is empty"),
        ("seeds 1.5\nexperiment e\n", 4, "whole, non-negative"),
        ("seeds 0..5000\nexperiment e\n", 4, "more than 1,000 seeds"),
        ("seeds NOPE\nexperiment e\n", 4, "unknown name 'NOPE'"),
        (
            "sweep task.classes in 50, 100\nexperiment e:\n    task classes=70\n",
            6,
            "sets task.classes, which the sweep on line 4 varies",
        ),
        (
            "sweep task.classes in 2, 3, 4, 5, 6, 7, 8, 9, 10, 11\nseeds 1..101\nexperiment e\n",
            6,
            "expands to 1,010 runs",
        ),
    ],
)
def test_sweep_errors_point_at_their_cause(body, line, message):
    diagnostics = errors_of(body)
    assert any(message in d.message and d.span.line == line for d in diagnostics), diagnostics


def test_an_error_in_an_expanded_experiment_is_reported_once():
    (diagnostic,) = errors_of("seeds 1..5\nexperiment e:\n    ablate L3.H0\n")
    assert "L3" in diagnostic.message


def test_the_resource_guard_points_into_a_swept_spec():
    source = HEAD + "seeds 1..4\nexperiment e\n"
    plan = compile_source(source, "x.clamp")
    with pytest.raises(SpecError) as raised:
        guard.check(plan, source, work=1e9)
    assert raised.value.diagnostics[0].span.line == 3  # the train line


def summary(name: str, experiment: str, seed: int, step: int | None, **point) -> RunSummary:
    values = (*((f"task.{k}", str(v)) for k, v in point.items()), ("train.seed", str(seed)))
    return RunSummary(
        name, "", "", "", step, None, None, 0.0, {}, {}, None, None, experiment, values
    )


def test_across_seeds_the_median_counts_the_censored_as_later_than_any_step():
    plan = compile_source(HEAD + "sweep task.classes in 50, 100\nseeds 1..3\nexperiment e\n")
    rows = tables.seeds_table(
        plan,
        [
            summary("a", "e", 1, 300, classes=50),
            summary("b", "e", 2, 100, classes=50),
            summary("c", "e", 3, None, classes=50),
            summary("d", "e", 1, None, classes=100),
            summary("f", "e", 2, None, classes=100),
            summary("g", "e", 3, 700, classes=100),
        ],
    ).rows
    assert rows == (
        ("e[classes=50]", "3", "300", "100–300", "1"),
        ("e[classes=100]", "3", "not reached by 1,000", "700–700", "2"),
    )


def test_an_even_count_of_seeds_takes_the_mean_of_the_middle_two():
    plan = compile_source(HEAD + "seeds 1..4\nexperiment e\n")
    steps = (100, 200, 400, 800)
    rows = tables.seeds_table(plan, [summary(str(s), "e", s, steps[s]) for s in range(4)]).rows
    assert rows == (("e", "4", "300", "100–800", "0"),)
    assert not math.isnan(float(rows[0][2]))


def test_no_table_across_seeds_where_each_experiment_runs_once():
    plan = compile_source(HEAD + "experiment a\nexperiment b\n")
    assert tables.seeds_table(plan, [summary("a", "a", 5, 1), summary("b", "b", 5, 2)]) is None
