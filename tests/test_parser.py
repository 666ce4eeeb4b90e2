"""Parsing: valid forms become the right AST; every syntax error says where it is."""

import pytest
from conftest import FIXTURES, ROOT

from clampdsl.lang import ast
from clampdsl.lang.diagnostics import SpecError
from clampdsl.lang.parser import parse, parse_file, parse_number


def only_experiment(text: str) -> ast.Experiment:
    return next(s for s in parse(text).statements if isinstance(s, ast.Experiment))


@pytest.mark.parametrize(
    "path",
    sorted((ROOT / "specs").rglob("*.clamp")) + sorted((FIXTURES / "valid").glob("*.clamp")),
    ids=lambda p: p.name,
)
def test_shipped_specs_parse(path):
    spec = parse_file(path)
    assert spec.version.value == 1
    library = path.parent.name == "lib"  # definitions for other specs to use
    assert library or any(isinstance(s, ast.Experiment) for s in spec.statements)
    assert not library or any(isinstance(s, ast.Subcircuit) for s in spec.statements)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("32", 32),
        ("32k", 32_000),
        ("2M", 2_000_000),
        ("1e5", 100_000),
        ("1_000", 1000),
        ("0.4", 0.4),
        ("1e-4", 1e-4),
    ],
)
def test_number_forms(text, value):
    assert parse_number(text) == pytest.approx(value)


def test_selectors_keep_their_parts_and_positions():
    experiment = only_experiment(
        "clampdsl 1\nexperiment e:\n    ablate L2.H* except H3\n    clamp L1.H2.pattern to "
        "prev-token strength 0.5 from step 3 to step 9\n"
    )
    ablate, clamp = experiment.body
    assert (ablate.selector.layer, ablate.selector.heads, ablate.selector.except_heads) == (
        "2",
        "H*",
        "H3",
    )
    assert (ablate.selector.span.line, ablate.selector.span.column) == (3, 12)
    assert clamp.selector.site.value == "pattern"
    assert clamp.target.name.value == "prev-token"
    assert clamp.target.args.params[0].value.value == 0.5
    assert clamp.window.start.value.value == 3 and clamp.window.end.value.value == 9


def test_window_in_sequences_and_until():
    experiment = only_experiment(
        "clampdsl 1\nexperiment e:\n    ablate L2.H1 from 1e5 sequences until step 9000\n"
    )
    window = experiment.body[0].window
    assert window.start.unit == "sequences" and window.start.value.value == 1e5
    assert window.end.unit == "steps" and window.end.value.value == 9000


def test_keywords_stay_usable_as_names():
    spec = parse(
        "clampdsl 1\neval every 50 steps on train, relabel\nphase train.loss < 0.3\n"
        "experiment train:\n    ablate L1.H0\n"
    )
    evaluation = next(s for s in spec.statements if isinstance(s, ast.EvalStmt))
    assert [n.value for n in evaluation.sets] == ["train", "relabel"]


def test_comments_and_blank_lines_are_ignored_everywhere():
    experiment = only_experiment(
        "# top\n\nclampdsl 1  # header\n\nexperiment e:  # trailing\n\n    # inside\n"
        "    ablate L1.H0\n\n    # between\n    ablate L1.H1\n"
    )
    assert len(experiment.body) == 2


@pytest.mark.parametrize(
    ("text", "line", "column", "message"),
    [
        ("model layers=2\n", 1, 1, "unexpected 'model'"),
        ("clampdsl 1\nexperiment e:\n    clamp L1.H2 prev-token\n", 3, 17, "expected 'to'"),
        ("clampdsl 1\nmodel layers=2 $\n", 2, 16, "unexpected character '$'"),
        (
            "clampdsl 1\nexperiment e:\n    ablate L1.H1\n  ablate L1.H2\n",
            4,
            1,
            "indentation does not match",
        ),
        ("clampdsl 1\nexperiment e:\nablate L1.H1\n", 3, 1, "'ablate' cannot begin a top-level"),
        ("clampdsl 1\nexperiment e  # a comment\n    ablate L1.H1\n", 2, 13, "needs a ':'"),
        ("clampdsl 1\nexperimnt e:\n    ablate L1.H1\n", 2, 1, "'experimnt' cannot begin"),
        ("clampdsl 1\n    ablate L1.H1\n", 2, 5, "unexpected indentation"),
        (
            "clampdsl 1\nexperiment e:\n    ablate L1.H2 from step\n",
            3,
            27,
            "expected a name, a number",
        ),
        (
            'clampdsl 1\nexperiment e "unterminated:\n    ablate L1.H1\n',
            2,
            14,
            "unterminated string",
        ),
        ("clampdsl 1\nlet = L1.H1\n", 2, 5, "expected a name"),
    ],
)
def test_syntax_errors_point_at_the_problem(text, line, column, message):
    with pytest.raises(SpecError) as raised:
        parse(text, "f.clamp")
    (diagnostic,) = raised.value.diagnostics
    assert (diagnostic.span.line, diagnostic.span.column) == (line, column)
    assert message in diagnostic.message
    rendered = str(raised.value)
    assert rendered.startswith(f"f.clamp:{line}:{column}: error:")
    caret_line = rendered.splitlines()[2]
    assert caret_line.index("^") - caret_line.index("|") - 2 == column - 1


def test_slips_are_explained_with_a_fix():
    with pytest.raises(SpecError) as typo:
        parse("clampdsl 1\nexperimnt e:\n    ablate L1.H1\n", "f.clamp")
    assert typo.value.diagnostics[0].hint == "did you mean experiment?"
    with pytest.raises(SpecError) as colon:
        parse('clampdsl 1\nexperiment e "x"\n    ablate L1.H1\n', "f.clamp")
    assert colon.value.diagnostics[0].hint == 'write `experiment e "x":`'


def test_an_experiment_without_a_block_clamps_nothing():
    spec = parse(
        'clampdsl 1\nexperiment baseline "all heads live"\nexperiment e:\n    ablate L1.H0\n'
    )
    baseline, other = (s for s in spec.statements if isinstance(s, ast.Experiment))
    assert baseline.body == () and baseline.description == "all heads live"
    assert len(other.body) == 1
