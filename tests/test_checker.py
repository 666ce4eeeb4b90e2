"""Semantic checks: every error class, positioned, and all of them collected at once."""

import pytest
from conftest import FIXTURES

from clampdsl.compile import compile_source
from clampdsl.lang.diagnostics import SpecError

HEAD = "clampdsl 1\nmodel layers=2 heads=8\n"


def errors_of(body: str) -> list:
    with pytest.raises(SpecError) as raised:
        compile_source(HEAD + body, "x.clamp")
    return raised.value.diagnostics


def single_error(body: str):
    (diagnostic,) = errors_of(body)
    return diagnostic


@pytest.mark.parametrize(
    ("body", "line", "column", "message", "hint"),
    [
        # nonexistent layers and heads
        (
            "experiment e:\n    clamp L3.H2 to prev-token\n",
            4,
            11,
            "layer L3 does not exist",
            "did you mean L2?",
        ),
        ("experiment e:\n    ablate L0.H1\n", 4, 12, "layers count from 1", "did you mean L1?"),
        ("experiment e:\n    ablate L2.H8\n", 4, 12, "head H8 does not exist", None),
        ("experiment e:\n    ablate L2.H3-1\n", 4, 12, "runs backwards", "write H1-3"),
        ("experiment e:\n    ablate L2.H3 except H3\n", 4, 12, "selects no heads", None),
        # unknown names
        (
            "experiment e:\n    clamp L1.H2 to prev-tokn\n",
            4,
            20,
            "unknown clamp target",
            "did you mean prev-token?",
        ),
        ("experiment e:\n    ablate IHH\n", 4, 12, "unknown name 'IHH'", None),
        (
            "experiment e:\n    clamp L1.H2 to prev-token strenght 1\n",
            4,
            31,
            "unknown parameter of prev-token",
            "did you mean strength?",
        ),
        (
            "model layres=2\nexperiment e:\n    ablate L1.H0\n",
            3,
            7,
            "unknown model setting",
            "did you mean layers?",
        ),
        (
            "measure induction-strenght of L2.H*\nexperiment e:\n    ablate L1.H0\n",
            3,
            9,
            "unknown measure",
            "did you mean induction-strength?",
        ),
        (
            "eval every 10 steps on train, relabell\nexperiment e:\n    ablate L1.H0\n",
            3,
            31,
            "unknown eval set",
            "did you mean relabel?",
        ),
        # a clamp not valid at that site
        (
            "experiment e:\n    clamp L1.out to prev-token\n",
            4,
            11,
            "prev-token is an attention pattern",
            None,
        ),
        ("experiment e:\n    clamp L1.H2.v to induction\n", 4, 11, "cannot be clamped at", None),
        (
            "experiment e:\n    clamp L2.out to shifted-embedding\n",
            4,
            11,
            "only be clamped at L1.out",
            None,
        ),
        (
            "experiment e:\n    clamp L2.H3 to scores of L2.H3\n",
            4,
            11,
            "only be clamped at logits",
            None,
        ),
        ("experiment e:\n    clamp logits to scores of L2.H*\n", 4, 31, "exactly one head", None),
        ("experiment e:\n    clamp logits to scores\n", 4, 21, "needs a source head", None),
        ("experiment e:\n    ablate L1.out\n", 4, 12, "cannot ablate L1.out", None),
        (
            "experiment e:\n    clamp L1.H2.scores to zero\n",
            4,
            11,
            "zero cannot be clamped at .scores: it would unmask",
            "zero one of .q, .k, .v, .pattern, .z",
        ),
        # values out of range, combinations the reference rejects
        (
            "experiment e:\n    clamp L1.H2 to prev-token strength 1.5\n",
            4,
            40,
            "out of range",
            "strength lies in [0, 1]",
        ),
        (  # a required parameter out of range: that error alone, not "needs its" as well
            "experiment e:\n    scale L2.H1 temperature 0\n",
            4,
            29,
            "temperature 0 is out of range",
            "temperature lies in [0.001, 1000]",
        ),
        ("train lr=2\nexperiment e:\n    ablate L1.H0\n", 3, 10, "out of range", None),
        ("train steps=10.5\nexperiment e:\n    ablate L1.H0\n", 3, 13, "whole number", None),
        (
            "experiment e:\n    clamp L1.out to shifted-embedding\n    clamp L1.H2 to prev-token\n",
            5,
            5,
            "cannot be combined with shifted-embedding",
            None,
        ),
        (
            "experiment e:\n    clamp L1.H2 to prev-token\n    clamp L1.H2 to induction\n",
            5,
            5,
            "already clamped to prev-token (line 4)",
            None,
        ),
        (
            "experiment e:\n    ablate L1.H2 from step 10 to step 5\n",
            4,
            18,
            "window is empty",
            None,
        ),
        (
            "train batch=32\nexperiment e:\n    ablate L1.H2 from 100 sequences\n",
            5,
            23,
            "not a whole number of steps at batch 32",
            "use 96 or 128 sequences",
        ),
        (
            "phase relabel.loss < 0.3\neval every 10 steps on train\nexperiment e:\n"
            "    ablate L1.H0\n",
            3,
            7,
            "which is not evaluated",
            None,
        ),
        (
            "measure prev-token-strength of L2.H*\nexperiment e:\n    ablate L1.H0\n",
            3,
            32,
            "computed at the query position only",
            "measure it in L1",
        ),
        (
            "experiment e:\n    ablate L1.H0\nexperiment e:\n    ablate L1.H1\n",
            5,
            12,
            "defined twice (first on line 3)",
            None,
        ),
        ("let L1x = L1.H0\nexperiment e:\n    ablate L1.H0\n", 3, 5, "cannot be a let name", None),
        (
            "experiment e:\n    clamp L1.H2 to prev-token at label\n",
            4,
            34,
            "unknown row set 'label'",
            "did you mean labels?",
        ),
        (
            "experiment e:\n    clamp L2.H3 to induction at labels\n",
            4,
            30,
            "induction cannot be confined to some rows",
            "applies to prev-token",
        ),
    ],
)
def test_semantic_errors(body, line, column, message, hint):
    diagnostic = single_error(body)
    assert (diagnostic.span.line, diagnostic.span.column) == (line, column), diagnostic
    assert message in diagnostic.message
    if hint:
        assert hint in diagnostic.hint


def test_all_errors_are_collected_in_source_order():
    diagnostics = errors_of(
        "train lr=5\n"
        "experiment a:\n    ablate L9.H1\n    clamp L1.H1 to nothing\n"
        "experiment b:\n    ablate L1.H99\n"
    )
    assert [d.span.line for d in diagnostics] == [3, 5, 6, 8]


def test_version_other_than_one_is_rejected():
    with pytest.raises(SpecError, match="only version 1 exists"):
        compile_source("clampdsl 2\nexperiment e:\n    ablate L1.H0\n")


def test_valid_fixture_compiles_to_the_expected_interventions():
    plan = compile_source((FIXTURES / "valid" / "every_form.clamp").read_text())
    selectors = plan.run("selectors")
    kinds = [(i.kind, i.layer, i.heads) for i in selectors.interventions]
    assert kinds == [
        ("ablate", 1, (0, 1, 2)),
        ("ablate", 1, (4, 5)),
        ("ablate", 0, (7,)),
        ("ablate", 1, (7,)),
        ("prev-token", 0, (2,)),
        ("prev-token", 0, (3,)),
        ("induction", 1, (3,)),
        ("freeze", 1, ()),  # L2..: in a 2-layer model, L2
    ]
    windows = [(i.window.start, i.window.end) for i in selectors.interventions[4:]]
    assert windows == [(100, 200), (0, 3125), (500, None), (1000, None)]
    assert selectors.interventions[4].params == {"strength": 0.8}
    assert selectors.interventions[5].params == {"strength": 1.0, "at_labels": 1.0}
    assert plan.run("selectors").eval.every == 1000  # 32k sequences at batch 32
    assert plan.run("selectors").train.keep_every == 100_000
    assert plan.run("selectors").train.steps == 2_000_000
    copy = plan.run("copy").interventions[0]
    assert (copy.kind, copy.source.layer, copy.source.head) == ("copy-scores", 1, 3)
    assert plan.run("copy").train.seed == 6
    assert plan.phase.op == "<=" and plan.phase.threshold == pytest.approx(0.2772588722)
    assert plan.reports == ("subcircuits", "phase", "curves")


def test_runs_share_a_batched_model_where_its_shape_allows():
    source = """clampdsl 1
train steps=100
experiment base
experiment more_classes:
    task classes=100 features=synthetic(correlation=0.5)
experiment other_seed:
    train seed=6 data_seed=3
experiment more_labels:
    task labels=10
experiment longer:
    train steps=200
experiment faster:
    train lr=1e-3
"""
    plan = compile_source(source)
    assert [g.runs for g in plan.groups] == [
        ("base", "more_classes", "other_seed"),  # same shape: per-run data streams
        ("more_labels",),  # another label vocabulary is another model shape
        ("longer",),
        ("faster",),
    ]
    plan = compile_source((FIXTURES / "valid" / "every_form.clamp").read_text())
    assert [g.runs for g in plan.groups] == [("selectors", "copy", "layer1")]


CIRCUIT = """subcircuit A = L1.H*.pattern to prev-token, L1.out to shifted-embedding feeds B
subcircuit B "matches" = L2.H*.pattern to induction or match
subcircuit C "copies out" = logits to scores
"""


@pytest.mark.parametrize(
    ("clamps", "gives", "learns"),
    [
        ("    ablate L2.H* except H3\n", "–", "A+B+C"),
        ("    clamp L1.H2 to prev-token\n", "A(L1.H*.pattern)", "A(L1.out)+B+C"),
        ("    clamp L1.H2 to uniform\n", "–", "A+B+C"),  # not a target A names
        ("    clamp L1.H2 to prev-token from step 100\n", "–", "A+B+C"),  # not from the start
        ("    clamp L1.out to shifted-embedding\n", "A", "B+C"),  # L1.out covers L1's pattern
        ("    clamp L2.H3 to induction\n", "A+B", "C"),  # A feeds only B
        ("    clamp L1.H3 to induction\n", "–", "A+B+C"),  # B lies in L2
        ("    clamp logits to scores of L2.H3\n", "C", "A+B"),
        (
            "    clamp L1.out to shifted-embedding\n    clamp logits to scores of L2.H3\n",
            "A+C",
            "B",
        ),
    ],
)
def test_what_each_experiment_gives(clamps, gives, learns):
    from clampdsl.compile import subcircuits

    plan = compile_source(HEAD + CIRCUIT + "experiment e:\n" + clamps)
    (run,) = plan.runs
    assert subcircuits.describe(run.gives) == gives
    assert subcircuits.describe(subcircuits.still_to_learn(run.gives, plan.subcircuits)) == learns


def test_gives_follows_the_declarations_not_the_kinds():
    """Declared at another site, the same clamps hand over another part."""
    circuit = 'subcircuit P "prev" = L1.H2.pattern\nsubcircuit Q "all of L2" = L2.out\n'
    plan = compile_source(HEAD + circuit + "experiment e:\n    clamp L1.H2 to uniform\n")
    assert [(g.subcircuit, g.whole) for g in plan.runs[0].gives] == [("P", True)]
    bare = compile_source(HEAD + "experiment e:\n    clamp L1.H2 to prev-token\n")
    assert bare.runs[0].gives == () and bare.subcircuits == ()


@pytest.mark.parametrize(
    ("declaration", "message"),
    [
        ('subcircuit A "x" = L1.H*\n', "names what of the heads it is"),
        ('subcircuit A "x" = L*.H*.pattern\n', "lies in one layer"),
        ('subcircuit A "x" = L1.out to shifted\n', "unknown clamp target 'shifted'"),
        ('subcircuit A "x" = L1.out feeds Z\n', "unknown subcircuit 'Z'"),
        ('subcircuit A "x" = L1.out feeds A\n', "cannot feed itself"),
        ('subcircuit A "x" = L1.out\nsubcircuit A "y" = logits\n', "declared twice"),
        ('subcircuit A "x" = L3.out\n', "L3"),
    ],
)
def test_subcircuit_declaration_errors(declaration, message):
    diagnostics = errors_of(declaration + "experiment e\n")
    assert any(message in d.message for d in diagnostics), diagnostics


def test_a_library_without_experiments_validates_but_does_not_run():
    from clampdsl.compile import runnable

    plan = compile_source(HEAD + CIRCUIT)
    assert plan.runs == () and plan.warnings == ()
    with pytest.raises(SpecError, match="runs nothing"):
        runnable(plan)


def test_statement_text_drops_trailing_comments():
    plan = compile_source(
        HEAD + "phase train.loss < 0.3  # a note\nexperiment e:\n    ablate L1.H0  # why\n"
    )
    assert plan.runs[0].interventions[0].text == "ablate L1.H0"
    assert plan.phase.text == "train.loss < 0.3"


def test_a_window_bound_given_twice_is_an_error():
    errors = errors_of("experiment e:\n    ablate L1.H2 from step 1 from step 2 until step 9\n")
    assert [(d.span.column, d.message[:34]) for d in errors] == [
        (35, "this window already has this bound")
    ]
    (error,) = errors_of("experiment e:\n    ablate L1.H2 until step 3 until step 4\n")
    assert error.span.column == 37  # the second `until`'s point


def test_a_window_that_opens_after_training_is_a_warning(tmp_path):
    from conftest import clampdsl

    spec = tmp_path / "late.clamp"
    spec.write_text(HEAD + "train steps=100\nexperiment e:\n    ablate L1.H2 from step 100\n")
    plan = compile_source(spec.read_text(), str(spec))
    (warning,) = plan.warnings
    assert f"{spec}:5:18: warning: this window opens at step 100" in warning
    result = clampdsl("validate", spec)
    assert result.returncode == 0 and "warning: this window opens at step 100" in result.stderr


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("model heads=3 d_model=16\nexperiment e\n", "heads=3 does not divide d_model=16"),
        ("model heads=8 d_model=8\nexperiment e\n", "head size d_model / heads = 1 is odd"),
        ("train seed=1e20\nexperiment e\n", "seed=1e20 is out of range"),
        ("model d_model=65536\nexperiment e\n", "d_model=65536 is out of range"),
        ("task labels=1e6\nexperiment e\n", "labels=1e6 is out of range"),
        ("train steps=1e9\nexperiment e\n", "steps=1e9 is out of range"),
        ("model layers=10000\nexperiment e\n", "layers=10000 is out of range"),
        ("task features=synthetic(scale=1e30)\nexperiment e\n", "scale=1e30 is out of range"),
        ("task features=synthetic(noise=1e9)\nexperiment e\n", "noise=1e9 is out of range"),
        ("train steps=1e999\nexperiment e\n", "too large to be read"),
        ("experiment e:\n    ablate L2.H0-999999999\n", "head H999999999 does not exist"),
        ("let A = A\nexperiment e:\n    ablate A\n", "'A' is not defined before this line"),
        ("let A = B\nlet B = A\nexperiment e:\n    ablate A\n", "'B' is not defined before"),
    ],
)
def test_what_the_trainer_could_not_run_is_refused_when_checked(body, message):
    """Shapes the model cannot take, numbers beyond any experiment, and inputs that would
    make the checker itself run away (a huge head range, a let naming itself)."""
    diagnostics = errors_of(body)
    assert any(message in d.message for d in diagnostics), [d.message for d in diagnostics]
