"""Numeric lets: `let NAME = number` read as its number wherever a number is written,
compiling to the very plan of the literal; misuses are errors at the name."""

import pytest

from clampdsl.compile import compile_source
from clampdsl.lang.diagnostics import SpecError

SPEC = """clampdsl 1
{lets}
model attention-only layers=2 heads=8 d_model=64
task fewshot classes={classes} labels=5 context=2 features=synthetic(dim={dim}, correlation=0.8)
train steps=4500 batch=32 lr={lr} seed=5
eval every {every} on train, relabel
phase train.loss < {threshold} * ln2

experiment prev "prev-token given":
    clamp L1.H2 to prev-token strength {strength} at labels from step {start} until {end}
    scale L2.H3 temperature {temperature} {window}

experiment late:
    train lr={lr}
    freeze L1.H* from {start} steps
"""
LITERALS = dict(
    classes="50",
    dim="128",
    lr="1e-4",
    every="100 steps",
    threshold="0.4",
    strength="0.9",
    start="200",
    end="1e5 sequences",
    temperature="2",
    window="until step 3000",
)
NAMED = dict(
    classes="N",
    dim="DIM",
    lr="LR",
    every="EVERY steps",
    threshold="T",
    strength="S",
    start="START",
    end="END sequences",
    temperature="TEMP",
    window="until step STOP",
)
LETS = {
    "N": "50",
    "DIM": "128",
    "LR": "1e-4",
    "EVERY": "100",
    "T": "0.4",
    "S": "0.9",
    "START": "200",
    "END": "1e5",
    "TEMP": "2",
    "STOP": "3000",
}


def spec(lets: dict[str, str] = {}, **values) -> str:  # noqa: B006 (read only)
    text = "\n".join(f"let {name} = {value}" for name, value in lets.items())
    return SPEC.format(lets=text, **(LITERALS | values))


def hash_of(text: str) -> str:
    return compile_source(text, "x.clamp").content_hash()


def test_the_literal_spec_compiles():
    plan = compile_source(spec(), "x.clamp")
    assert plan.runs[0].train.lr == pytest.approx(1e-4)


@pytest.mark.parametrize("place", sorted(NAMED))
def test_a_numeric_let_in_each_place_gives_the_literal_plan(place):
    names = [name for name in LETS if name in NAMED[place].split()]
    lets = {name: LETS[name] for name in names}
    assert hash_of(spec(lets, **{place: NAMED[place]})) == hash_of(spec())


def test_numeric_lets_everywhere_at_once_give_the_literal_plan():
    assert hash_of(spec(LETS, **NAMED)) == hash_of(spec())


def test_a_let_may_be_used_before_it_is_written_and_may_name_an_earlier_let():
    text = spec({"S0": "0.9", "S": "S0"}, strength="S")
    assert hash_of(text) == hash_of(spec())
    last = spec(**LITERALS | {"lr": "LR"}) + "let LR = 1e-4\n"
    assert hash_of(last) == hash_of(spec())


def test_the_plan_keeps_the_value_not_the_name():
    plan = compile_source(spec(LETS, **NAMED), "x.clamp")
    (prev, scale) = plan.runs[0].interventions[:2]
    assert prev.params["strength"] == pytest.approx(0.9)
    assert plan.runs[0].task.features.dim == 128
    assert plan.phase.threshold == pytest.approx(0.4 * 0.6931471805599453)


def errors_of(text: str) -> list:
    with pytest.raises(SpecError) as raised:
        compile_source(text, "x.clamp")
    return raised.value.diagnostics


def single(text: str):
    (diagnostic,) = errors_of(text)
    return diagnostic


def located(diagnostic, text: str, word: str, line_of: str):
    """Whether the diagnostic points at `word` on the line holding `line_of`."""
    lines = text.split("\n")
    number = next(i for i, line in enumerate(lines, 1) if line_of in line)
    column = lines[number - 1].index(word, lines[number - 1].index(line_of)) + 1
    return (diagnostic.span.line, diagnostic.span.column) == (number, column)


@pytest.mark.parametrize(
    ("place", "written", "anchor"),
    [
        ("lr", "LRR", "train steps"),
        ("classes", "NN", "task fewshot"),
        ("dim", "DIMM", "task fewshot"),
        ("every", "EVERYY steps", "eval every"),
        ("threshold", "TT", "phase"),
        ("strength", "SS", "to prev-token"),
        ("start", "STARTT", "to prev-token"),
        ("end", "ENDD sequences", "to prev-token"),
        ("temperature", "TEMPP", "temperature"),
        ("window", "until step STOPP", "temperature"),
    ],
)
def test_a_misspelt_numeric_let_is_an_error_at_the_name_with_did_you_mean(place, written, anchor):
    right = NAMED[place].split()[0] if place != "window" else "STOP"
    wrong = written.split()[-1] if place == "window" else written.split()[0]
    text = spec({right: LETS[right]}, **{place: written})
    diagnostics = errors_of(text)
    assert diagnostics, text
    first = diagnostics[0]
    assert located(first, text, wrong, anchor), (first, text)
    assert first.hint == f"did you mean {right}?", first


def test_an_undefined_name_where_a_number_is_says_how_to_bind_it():
    text = spec(lr="RATE")
    diagnostic = errors_of(text)[0]  # (and again in experiment late)
    assert "unknown name 'RATE'" in diagnostic.message
    assert "lr takes a number" in diagnostic.message
    assert located(diagnostic, text, "RATE", "train steps")
    assert "let RATE = " in diagnostic.hint


@pytest.mark.parametrize(
    ("place", "anchor", "what"),
    [
        ("lr", "train steps", "lr"),
        ("strength", "to prev-token", "strength"),
        ("start", "to prev-token", "a step"),
        ("threshold", "phase", "a phase threshold"),
    ],
)
def test_a_selector_let_where_a_number_is_is_an_error(place, anchor, what):
    text = spec(**{place: "IH"}) + "let IH = L2.H3\n"
    diagnostic = errors_of(text)[0]
    assert "IH is bound to a selector (line" in diagnostic.message
    assert located(diagnostic, text, "IH", anchor)
    assert diagnostic.hint == f"{what} takes a number"


def test_a_numeric_let_where_a_selector_is_is_an_error():
    text = spec({"HEAD": "3", "IH": "L2.H3"}) + "experiment e:\n    ablate HAED\n"
    text = text.replace("ablate HAED", "ablate HEAD")
    diagnostic = single(text)
    assert diagnostic.message == "HEAD is bound to a number (line 2), not a selector"
    assert diagnostic.span.line == text.split("\n").index("    ablate HEAD") + 1
    assert diagnostic.span.column == 12
    # a misspelt selector let still gets its hint
    text = spec({"IH": "L2.H3"}) + "experiment e:\n    ablate IHH\n"
    assert single(text).hint == "did you mean IH?"


def test_a_numeric_let_measured_is_an_error():
    text = spec({"N3": "3"}) + "measure induction-strength of N3\n"
    assert "N3 is bound to a number" in single(text).message


def test_a_let_cannot_shadow_a_constant():
    text = spec({"ln2": "0.7"})
    diagnostic = single(text)
    assert "'ln2' cannot be a let name: it is a constant" in diagnostic.message


def test_an_out_of_range_let_is_refused_where_it_is_used():
    text = spec({"S": "1.5"}, strength="S")
    diagnostic = single(text)
    assert "strength 1.5 is out of range" in diagnostic.message
    assert located(diagnostic, text, "S", "prev-token strength")


def test_a_fractional_step_let_is_refused_where_it_is_used():
    text = spec({"START": "2.5"}, start="START")
    diagnostic = errors_of(text)[0]
    assert "a step count must be a whole" in diagnostic.message
    assert located(diagnostic, text, "START", "to prev-token")
