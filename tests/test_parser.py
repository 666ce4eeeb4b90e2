"""Parsing: valid forms become the right AST; every syntax error says where it is."""

import json
import pickle

import pytest
from conftest import FIXTURES, ROOT
from lark import Token
from lark.exceptions import UnexpectedInput, UnexpectedToken

from clampdsl.lang import ast, grammar
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
    # a library declares subcircuits, or builds on one that does (lib/paper.clamp)
    assert not library or any(isinstance(s, ast.Subcircuit | ast.Use) for s in spec.statements)


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


def test_a_backslash_in_a_string_keeps_the_character_after_it():
    experiment = only_experiment('clampdsl 1\nexperiment e "a \\"q\\" \\\\ \\n"\n')
    assert experiment.description == 'a "q" \\ n'


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


TAB = "indentation uses a tab: indent with spaces (4 per level)"
# Syntax errors: text, line, column and (part of) the message.
SYNTAX_ERRORS = [
    ("model layers=2\n", 1, 1, "unexpected 'model'"),
    (
        "clampdsl 1\nexperiment e:\n    clamp L1.H2 prev-token\n",
        3,
        17,
        "unexpected 'prev-token'; expected '.', 'except' or 'to'",
    ),
    ("clampdsl 1\nmodel layers=2 $\n", 2, 16, "unexpected character '$'"),
    # digits of other scripts are not numbers, in a count, a layer or a head
    ("clampdsl 1\nmodel layers=\u0662\n", 2, 14, "unexpected character '\u0662'"),
    ("clampdsl 1\nexperiment e:\n    ablate L\u0661.H2\n", 3, 13, "unexpected character"),
    ("clampdsl 1\nexperiment e:\n    ablate L1.H\u0662\n", 3, 16, "unexpected character"),
    # a head set on one line: across two, `H{` is not a head
    ("clampdsl 1\nexperiment e:\n    ablate L1.H{0,\n1}\n", 3, 16, "unexpected character '{'"),
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
        "unexpected end of line; expected a name or a number",
    ),
    (
        'clampdsl 1\nexperiment e "unterminated:\n    ablate L1.H1\n',
        2,
        14,
        "unterminated string",
    ),
    ("clampdsl 1\nlet = L1.H1\n", 2, 5, "unexpected '='; expected a name"),
    # a tab in indentation, alone or after spaces, in a block or a setting's parentheses
    ("clampdsl 1\nexperiment e:\n\tablate L2.H0\n", 3, 1, TAB),
    ("clampdsl 1\nexperiment e:\n    ablate L2.H0\n  \tablate L2.H1\n", 4, 3, TAB),
    ("clampdsl 1\ntask features=synthetic(\n\tdim=16)\nexperiment e\n", 3, 1, TAB),
    # only what is legal there: no ')', ',', '*' or '..', which Lark's own list names
    ("clampdsl 1\nmodel layers=2 = 3\n", 2, 16, "unexpected '='; expected a name or end of line"),
    (
        "clampdsl 1\nexperiment e:\n    42 L2.H0\n",
        3,
        5,
        "unexpected '42'; expected 'clamp', 'model', 'seeds', 'sweep', 'task', 'train' or a name",
    ),
    (
        "clampdsl 1\nexperiment e:\n    ablate L2.H0 ,\n",
        3,
        18,
        "unexpected ','; expected '.', 'at', 'during', 'except', 'from', 'to', 'until', a name, …",
    ),
    # a block's statement led by a word that is no statement, where it does not parse
    ("clampdsl 1\nexperiment e:\n    seed 1..3\n", 3, 5, "unknown statement 'seed'"),
    ("clampdsl 1\nexperiment e:\n    ablat\n", 3, 5, "unknown statement 'ablat'"),
    (
        "clampdsl 1\nexperiment e:\n    task features=synthetic(\n        dim=16 5)\n",
        4,
        16,
        "unexpected '5'; expected ')' or ','",  # inside parentheses: no statement begins
    ),
]


@pytest.mark.parametrize(("text", "line", "column", "message"), SYNTAX_ERRORS)
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


@pytest.mark.parametrize(("text", "line", "column", "message"), SYNTAX_ERRORS)
def test_syntax_errors_name_no_internal_terminal(text, line, column, message):
    with pytest.raises(SpecError) as raised:
        parse(text, "f.clamp")
    for internal in ("_NL", "_INDENT", "_DEDENT", "SECTION", "NAME", "ANON", "$END"):
        assert internal not in raised.value.diagnostics[0].message


@pytest.mark.parametrize(
    ("statement", "hint"),
    [
        ("seed 1..3", "did you mean seeds?"),
        ("modle layers=2", "did you mean model?"),
        ("sweeps task.classes in 50, 100", "did you mean sweep?"),
        ("ablat", "did you mean ablate?"),
        ("xyzzy L2.H0 , 3", "known: ablate, clamp, forbid, freeze, graft, model, restrict, "
         "scale, seeds, sweep, task, train"),
    ],
)  # fmt: skip
def test_an_unknown_statement_in_a_block_gets_the_statements_a_block_holds(statement, hint):
    with pytest.raises(SpecError) as raised:
        parse(f"clampdsl 1\nexperiment e:\n    ablate L2.H0\n    {statement}\n", "f.clamp")
    (diagnostic,) = raised.value.diagnostics
    word = statement.split()[0]
    assert diagnostic.message == f"unknown statement '{word}'"
    assert (diagnostic.span.line, diagnostic.span.column, diagnostic.span.end_column) == (
        4,
        5,
        5 + len(word),
    )
    assert diagnostic.hint == hint


def test_a_long_line_is_echoed_as_a_window_with_the_caret_under_the_error():
    line = "    ablate L2.H1" + " a" * 4_991 + " $"  # 10,000 characters, the error at the end
    assert len(line) == 10_000
    with pytest.raises(SpecError) as raised:
        parse(f"clampdsl 1\nexperiment e:\n{line}\n", "f.clamp")
    (diagnostic,) = raised.value.diagnostics
    assert diagnostic.message == "unexpected character '$'"
    assert (diagnostic.span.line, diagnostic.span.column) == (3, 10_000)
    echoed, caret = str(raised.value).splitlines()[1:3]
    assert len(echoed) <= 200 and echoed.startswith("    3 | …")
    assert caret.count("^") == 1 and echoed[caret.index("^")] == "$"


def test_the_caret_lines_up_after_a_tab_inside_a_line():
    with pytest.raises(SpecError) as raised:
        parse("clampdsl 1\nmodel\tlayers=2\t$\n", "f.clamp")
    (diagnostic,) = raised.value.diagnostics
    assert (diagnostic.span.line, diagnostic.span.column) == (2, 16)
    echoed, caret = str(raised.value).splitlines()[1:3]
    assert caret.index("^") == echoed.index("$")
    assert caret[: caret.index("^")].count("\t") == 2  # as wide as the line's tabs


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


# ---- the parser's cache ---------------------------------------------------------------------

SOURCES = sorted((ROOT / "specs").rglob("*.clamp")) + sorted(FIXTURES.rglob("*.clamp"))


def _shape(node):
    """A parse tree as plain data, with every position."""
    if isinstance(node, Token):
        return node.type, str(node), node.line, node.column, node.end_line, node.end_column
    meta = node.meta
    at = [getattr(meta, f, None) for f in ("line", "column", "end_line", "end_column")]
    return str(node.data), *at, [_shape(child) for child in node.children]


REFUSALS = (UnexpectedInput, grammar.DedentError, grammar.TabIndentation)


def _outcome(lark_parser, text: str):
    """What a parser makes of `text`: its tokens and its tree, or where each fails and
    what its interactive parser would accept there."""
    tokens = []
    try:
        tokens += [(t.type, str(t), t.line, t.column) for t in lark_parser.lex(text)]
    except REFUSALS as error:
        tokens.append(_refusal(error))
    try:
        return tokens, _shape(lark_parser.parse(text))
    except REFUSALS as error:
        accepts = isinstance(error, UnexpectedToken) and sorted(error.interactive_parser.accepts())
        return tokens, (*_refusal(error), accepts)


def _refusal(error: Exception) -> tuple:
    return type(error).__name__, getattr(error, "line", None), getattr(error, "column", None)


@pytest.fixture(scope="module")
def fresh_and_cached(tmp_path_factory):
    """A parser built from the grammar, and one read from a cache file written by another."""
    directory = tmp_path_factory.mktemp("cache")
    grammar.cached_parser(directory)  # builds it and writes the file
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(grammar, "build", lambda text=None: pytest.fail("built, not read"))
        cached = grammar.cached_parser(directory)
    return grammar.build(), cached


@pytest.mark.parametrize(
    "text",
    [path.read_text(encoding="utf-8") for path in SOURCES] + [e[0] for e in SYNTAX_ERRORS],
    ids=[path.name for path in SOURCES] + [f"error{i}" for i in range(len(SYNTAX_ERRORS))],
)
def test_the_cached_parser_parses_as_the_built_one(fresh_and_cached, text):
    fresh, cached = fresh_and_cached
    text = text if text.endswith("\n") else text + "\n"  # as parse() hands it over
    assert _outcome(cached, text) == _outcome(fresh, text)


def test_the_cache_is_json_and_never_unpickled(tmp_path, monkeypatch):
    grammar.cached_parser(tmp_path)
    (path,) = tmp_path.glob("parser-*.json")
    stored = json.loads(path.read_text(encoding="utf-8"))
    assert stored["key"] == grammar.cache_key(grammar.grammar_path().read_text(encoding="utf-8"))
    for name in ("load", "loads", "Unpickler"):
        monkeypatch.setattr(pickle, name, lambda *a, **k: pytest.fail("unpickled"))
    monkeypatch.setattr(grammar, "build", lambda text=None: pytest.fail("built, not read"))
    assert grammar.cached_parser(tmp_path).parse("clampdsl 1\n")


@pytest.mark.parametrize(
    "damage",
    [
        lambda text: text[: len(text) // 2],  # torn
        lambda text: "\x00garbage",  # not JSON
        lambda text: text.replace('"key": "', '"key": "0'),  # another grammar's
        lambda text: text.replace('"states"', '"stat"'),  # the right key, wrong contents
    ],
    ids=["torn", "garbage", "other-key", "wrong-contents"],
)
def test_a_damaged_cache_file_is_ignored_and_rebuilt(tmp_path, damage):
    grammar.cached_parser(tmp_path)
    (path,) = tmp_path.glob("parser-*.json")
    intact = path.read_text(encoding="utf-8")
    path.write_text(damage(intact), encoding="utf-8")
    (tmp_path / "parser-0123.json").write_text("{}")  # an earlier grammar's
    rebuilt = grammar.cached_parser(tmp_path)
    assert rebuilt.parse("clampdsl 1\nexperiment e:\n    ablate L2.H0\n")
    assert json.loads(path.read_text(encoding="utf-8"))["key"] == json.loads(intact)["key"]
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary, no other
