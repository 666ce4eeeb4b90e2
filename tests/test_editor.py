"""The TextMate grammar (editors/clamp.tmLanguage.json, for VS Code and other editors that
read TextMate grammars) colours every shipped spec as the parser reads it: each token the
real lexer produces gets the scope of its kind."""

import json
import re
from pathlib import Path

import pytest
from conftest import ROOT
from lark import Lark

from clampdsl.lang.grammar import BlockIndenter, grammar_path

GRAMMAR = json.loads((ROOT / "editors" / "clamp.tmLanguage.json").read_text())
SPECS = sorted(ROOT.glob("specs/**/*.clamp")) + sorted(ROOT.glob("tests/fixtures/valid/*.clamp"))
STATEMENT = "keyword.control.statement"
SCOPES = {
    "COMMENT": "comment.line",
    "STRING": "string.quoted",
    "NUMBER": "constant.numeric",
    "LAYER": "variable.other.site",
    "HEADS": "variable.other.site",
    "CLAMP": "keyword.other.verb",
    "COMPARE": "keyword.operator",
    "EQUAL": "keyword.operator",
    "STAR": "keyword.operator",
    **dict.fromkeys(
        ["CLAMPDSL", "EVAL", "PHASE", "LET", "EXPERIMENT", "MEASURE", "REPORT"], STATEMENT
    ),
    **dict.fromkeys(
        ["TO", "OF", "AT", "FROM", "UNTIL", "STEP", "STEPS", "SEQUENCES", "DURING"]
        + ["EVERY", "ON", "EXCEPT"],
        "keyword.other",
    ),
}


def patterns(rules: list[dict]) -> list[dict]:
    out = []
    for rule in rules:
        if "include" in rule:
            out.extend(patterns([GRAMMAR["repository"][rule["include"].removeprefix("#")]]))
        else:
            out.append(rule | {"regex": re.compile(rule["match"])})
    return out


RULES = patterns(GRAMMAR["patterns"])


def scopes_of(line: str) -> list[str]:
    """Each character's scope, as a TextMate engine assigns them with `match` rules: at
    each position the rule that matches earliest wins, the first listed among equals."""
    scopes, position = [""] * len(line), 0
    while position < len(line):
        found = [
            (m.start(), i, m)
            for i, r in enumerate(RULES)
            if (m := r["regex"].search(line, position))
        ]
        if not found:
            break
        _, index, match = min(found, key=lambda item: item[:2])
        rule = RULES[index]
        if "name" in rule:
            scopes[match.start() : match.end()] = [rule["name"]] * (match.end() - match.start())
        for group, capture in rule.get("captures", {}).items():
            if match.group(int(group)) is not None:
                start, end = match.span(int(group))
                scopes[start:end] = [capture["name"]] * (end - start)
        position = max(match.end(), position + 1)
    return scopes


def lexed(text: str) -> list:
    """Every token the parser's own lexer produces on a valid spec, comments included."""
    source = grammar_path().read_text(encoding="utf-8")
    tokens = []

    def keep(token):
        tokens.append(token)
        return token

    options = {"parser": "lalr", "lexer": "contextual", "maybe_placeholders": False}
    names = [t.name for t in Lark(source, **options).terminals]
    callbacks = dict.fromkeys(names, keep)
    Lark(source, postlex=BlockIndenter(), lexer_callbacks=callbacks, **options).parse(text)
    return tokens


def expected(token, line: str) -> str | None:
    before = line[: token.column - 1]
    after = line[token.end_column - 1 :]
    if token.type in ("NAME", "SECTION") and before.strip() == "":
        return STATEMENT if not before else "keyword.other.verb"
    if token.type == "NAME" and re.fullmatch(r"let\s+", before):
        return "variable.other.constant.let"
    if token.type == "NAME" and re.fullmatch(r"experiment\s+", before):
        return "entity.name.function.experiment"
    if token.type == "NAME" and re.fullmatch(r"subcircuit\s+", before):
        return "entity.name.type.subcircuit"
    if token.type == "NAME" and after.lstrip().startswith("="):
        return "variable.parameter"
    return SCOPES.get(token.type)


def test_the_grammar_is_for_clamp_files():
    assert GRAMMAR["scopeName"] == "source.clamp"
    assert GRAMMAR["fileTypes"] == ["clamp"]


@pytest.mark.parametrize("path", SPECS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_token_of_a_shipped_spec_gets_its_kinds_scope(path: Path):
    text = path.read_text()
    lines = text.splitlines()
    checked = 0
    for token in lexed(text):
        want = expected(token, lines[token.line - 1])
        if want is None:
            continue
        scopes = scopes_of(lines[token.line - 1])[token.column - 1 : token.end_column - 1]
        assert all(s.startswith(want) for s in scopes), (token.line, str(token), want, scopes)
        checked += 1
    assert checked >= 15  # the shortest shipped spec (fig18.clamp) has 19 such tokens
    for number, line in enumerate(lines, 1):  # comment lines (the parser folds them into _NL)
        if line.lstrip().startswith("#"):
            start = len(line) - len(line.lstrip())
            assert set(scopes_of(line)[start:]) == {"comment.line.number-sign.clamp"}, number


def test_a_hash_inside_a_string_is_not_a_comment():
    line = '    graft L1 from "runs/a#b/0123" run base  # the donor'
    scopes = scopes_of(line)
    assert scopes[line.index("#b")].startswith("string.quoted")
    assert scopes[line.index("# the")].startswith("comment.line")
