"""Fuzzing: whatever a spec file holds, checking it ends in a plan or in located errors.

Two sources of inputs: specs assembled from plausible statements (the shipped specs'
vocabulary, random numbers, selectors, indentation), and byte-level mutations of every
shipped spec. Each goes through parse, check and plan; what compiles trains a step on the
CPU (a few examples per run: it is the slow part). The only outcomes allowed: a plan, or a
SpecError whose diagnostics all lie inside the file. Everything else (a ValueError from the
checker, a RecursionError) is a bug; inputs that once found one are kept below as explicit
examples. `-m slow` runs the same properties for longer. (The bounds on what a spec
file may be: tests/test_limits.py.)
"""

import json
import re

import attrs
import pytest
from conftest import FIXTURES, ROOT
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from oracle import HEADER, LET_CHAIN, assert_located

from clampdsl.compile import (
    compile_source,
)
from clampdsl.compile.plan import Plan
from clampdsl.lang.diagnostics import SpecError
from clampdsl.lang.source import decode_spec

FILE = "no-such-folder/fuzz.clamp"  # where donor paths start: they lead to no saved run
SHIPPED = sorted([*ROOT.glob("specs/**/*.clamp"), *FIXTURES.glob("**/*.clamp")])
SOURCES = {p.relative_to(ROOT).as_posix(): p.read_bytes() for p in SHIPPED}
VOCABULARY = sorted(
    {w for text in SOURCES.values() for w in re.findall(rb"[A-Za-z_][\w-]*|\S", text)}
)
QUICK = settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)
LONG = settings(QUICK, max_examples=5000)
TRAINED = settings(QUICK, max_examples=10)  # those that compile train a step each
TRAINED_LONG = settings(QUICK, max_examples=150)
TINY = (
    "model layers=2 heads=2 d_model=16\n"
    "task classes=10 new_classes=10 features=synthetic(dim=16, correlation=0.5)\n"
    "train steps=30 batch=8 lr=1e-3\n"
)


# ---- the oracle ------------------------------------------------------------------------------


def outcome(text: str, file: str = FILE) -> Plan | None:
    """The plan of `text`, or None after a SpecError that is well located; any other
    exception propagates (and fails the test)."""
    try:
        plan = compile_source(text, file)
    except SpecError as error:
        assert_located(error, text, file)
        return None
    json.dumps(plan.to_json())  # a plan is plain data, whatever was written
    plan.content_hash()
    return plan


def train_a_step(plan: Plan) -> None:
    """Every group of the plan, shrunk to one step of a small batch, trains and evaluates
    on the CPU, eagerly; a plan too large to build in a test, or grafting from a donor spec
    (whose weights only a trained donor run gives: tests/test_graft_by_spec.py), is left at
    compiling."""
    import torch

    from clampdsl.compile import donor_specs
    from clampdsl.train.session import GroupSession

    if not all(_small(run) for run in plan.runs) or donor_specs.named([plan]):
        return
    runs = tuple(
        attrs.evolve(
            run,
            train=attrs.evolve(run.train, steps=1, batch=2),
            eval=attrs.evolve(run.eval, every=1, size=8),
        )
        for run in plan.runs
    )
    small = attrs.evolve(plan, runs=runs)
    for index in range(len(small.groups)):
        session = GroupSession(small, index, "cpu", compile="off")
        losses = session.train_step(0)
        assert losses.shape == (len(small.groups[index].runs),)
        metrics = session.evaluate(1)
        assert all(isinstance(value, torch.Tensor) for value in metrics.values())


def _small(run) -> bool:
    model, task = run.model, run.task
    return (
        model.layers <= 4
        and model.heads * model.layers <= 32
        and model.d_model <= 128
        and task.features.dim <= 512
        and task.classes + task.new_classes <= 2000
        and task.labels <= 1000
    )


# ---- generated specs -------------------------------------------------------------------------

small_int = st.one_of(st.integers(0, 12), st.sampled_from([16, 32, 64, 100, 128, 1000]))
numbers = st.one_of(
    small_int.map(str),
    st.sampled_from(["0.5", "1e-3", "1e5", "32k", "2M", "10_000", "1e999", "0.999", "3.7"]),
    st.integers(0, 10**30).map(str),
    st.floats(0, 10, allow_nan=False).map(lambda x: f"{x:.3f}"),
)
names = st.sampled_from(
    ["IH", "OTHERS", "A", "B", "KEY_HEADS", "logits", "embed", "L1x", "train", "to", "x-y"]
)
heads = st.one_of(
    st.just("H*"),
    small_int.map(lambda h: f"H{h}"),
    st.tuples(small_int, small_int).map(lambda r: f"H{r[0]}-{r[1]}"),
    st.lists(small_int, min_size=1, max_size=4).map(lambda h: "H{" + ",".join(map(str, h)) + "}"),
    st.just("H0-999999999"),
    st.just("H" + "9" * 5000),
)
layer = st.one_of(
    st.just("L*"),
    st.integers(0, 4).map(lambda n: f"L{n}"),
    st.sampled_from(["L99999999999", "L" + "1" * 5000]),
)
sites = st.sampled_from(["pattern", "scores", "q", "k", "v", "z", "in", "out", "patern"])
selectors = st.one_of(
    st.builds(lambda at, h: f"{at}.{h}", layer, heads),
    st.builds(lambda at, h, s: f"{at}.{h}.{s}", layer, heads, sites),
    st.builds(lambda at, h, e: f"{at}.{h} except {e}", layer, heads, heads),
    st.builds(lambda at, s: f"{at}.{s}", layer, sites),
    layer.map(lambda at: f"{at}.."),
    layer,
    names,
)
points = st.one_of(
    numbers.map(lambda n: f"step {n}"),
    numbers.map(lambda n: f"{n} steps"),
    numbers.map(lambda n: f"{n} sequences"),
)
window = st.lists(
    st.one_of(
        points.map(lambda p: f"from {p}"),
        points.map(lambda p: f"until {p}"),
        st.tuples(points, points).map(lambda p: f"from {p[0]} to {p[1]}"),
        st.sampled_from(["during train", "during eval", "during both", "during never"]),
    ),
    max_size=2,
).map(" ".join)
targets = st.sampled_from(
    [
        "prev-token",
        "prev-token strength 0.9",
        "prev-token at labels",
        "prev-token strength 2",
        "induction",
        "induction strength 0.5",
        "match",
        "match temperature 0.1",
        "uniform",
        "self",
        "zero",
        "mean",
        "shifted-embedding",
        "scores of L2.H0",
        "scores of L2.H3 detached",
        "scores of logits",
        "scores",
        "prev-tokn",
        "induction strength",
        "match at labels at labels",
    ]
)
verbs = st.sampled_from(
    [
        "ablate {s}",
        "ablate {s} keeping patterns",
        "ablate {s} keeping values",
        "ablate {s} keeping nothing",
        "forbid {s} attending prev-token",
        "forbid {s} attending prev-token at labels",
        "restrict {s} to labels",
        "scale {s} temperature 2",
        "scale {s} temperature 0",
        "scale {s} temperature 2 detached",
        "freeze {s}",
        'graft {s} from "runs/donor/0123abcd"',
        'graft {s} from "../outside" at step 3',
        'graft {s} from "a\\"b" run pt',
        "ablat {s}",
    ]
)
setting_keys = st.sampled_from(
    [
        "layers",
        "heads",
        "d_model",
        "classes",
        "new_classes",
        "labels",
        "context",
        "pair_split",
        "seed",
        "steps",
        "batch",
        "lr",
        "data_seed",
        "eval_seed",
        "keep_every",
        "checkpoint_every",
        "layres",
    ]
)
values = st.one_of(
    numbers,
    st.sampled_from(["rope", "pre", "adam", "synthetic", '"text"']),
    st.builds(
        lambda d, c: f"synthetic(dim={d}, correlation={c})",
        small_int,
        st.sampled_from(["0.5", "0.9", "1", "0"]),
    ),
)
setting_line = st.builds(
    lambda section, flags, options: " ".join([section, *flags, *options]),
    st.sampled_from(["model", "task", "train"]),
    st.lists(st.sampled_from(["attention-only", "fewshot", "decoder"]), max_size=1),
    st.lists(st.builds(lambda k, v: f"{k}={v}", setting_keys, values), max_size=3),
)
features_line = st.builds(
    lambda d, c: f"task features=synthetic(dim={d}, correlation={c})",
    st.sampled_from([8, 16, 32]),
    st.sampled_from(["0.5", "0.9"]),
)
body_line = st.one_of(
    st.builds(lambda s, t, w: f"clamp {s} to {t} {w}", selectors, targets, window),
    st.builds(lambda v, s, w: f"{v.format(s=s)} {w}", verbs, selectors, window),
    setting_line,
)
indent = st.sampled_from(["    ", "  ", "\t", "        ", "", "   \t"])
top_line = st.one_of(
    setting_line,
    features_line,
    st.builds(
        lambda n, u, sets, size: f"eval every {n} {u} on {', '.join(sets)}{size}",
        small_int,
        st.sampled_from(["steps", "sequences"]),
        st.lists(st.sampled_from(["train", "relabel", "new-classes", "tran"]), min_size=1),
        st.sampled_from(["", " size=64", " size=1"]),
    ),
    st.builds(
        lambda s, m, op, f: f"phase {s}.{m} {op} {f}",
        st.sampled_from(["train", "relabel", "new-classes", "test"]),
        st.sampled_from(["loss", "acc", "los"]),
        st.sampled_from(["<", "<=", ">", ">="]),
        st.sampled_from(["0.4 * ln2", "1", "ln2", "2 * ln3", "1e999 * 0"]),
    ),
    st.builds(lambda n, s: f"let {n} = {s}", names, st.one_of(selectors, numbers)),
    st.builds(
        lambda m, s: f"measure {m} of {s}",
        st.sampled_from(["induction-strength", "prev-token-strength", "strength"]),
        selectors,
    ),
    st.builds(
        lambda r: "report " + ", ".join(r),
        st.lists(st.sampled_from(["subcircuits", "phase", "curves", "tables"]), min_size=1),
    ),
)


@st.composite
def experiments(draw) -> str:
    name = draw(st.sampled_from(["e", "base", "match", "copy", "x1", "e"]))
    description = draw(st.sampled_from(["", ' "a description"', ' "A+B given"']))
    body = draw(st.lists(body_line, max_size=4))
    if not body:
        return f"experiment {name}{description}"
    pad = draw(st.sampled_from(["    ", "    ", "  ", "\t"]))  # one block, one indentation
    pads = [pad] * len(body)
    if draw(st.integers(0, 4)) == 0:  # or not
        pads = draw(st.lists(indent, min_size=len(body), max_size=len(body)))
    lines = [p + line for p, line in zip(pads, body, strict=True)]
    lines.insert(0, f"experiment {name}{description}:")
    return "\n".join(lines)


@st.composite
def generated_specs(draw) -> str:
    header = draw(st.sampled_from([HEADER] * 8 + ["clampdsl 2\n", "", "\nclampdsl 1\n"]))
    preamble = draw(st.sampled_from([TINY] * 3 + [""]))
    statements = draw(st.lists(top_line, max_size=4)) + draw(
        st.lists(experiments(), min_size=1, max_size=4)
    )
    if draw(st.integers(0, 4)) == 0:
        statements = draw(st.permutations(statements))
    comment = draw(st.sampled_from(["", "  # a comment", "  #"]))
    ending = draw(st.sampled_from(["\n", "\r\n", ""]))
    return header + preamble + ending.join(s + comment for s in statements) + ending


@st.composite
def compiling_specs(draw) -> str:
    """Specs of the small model, with experiments of well-formed clamps: most compile."""
    heads = st.sampled_from(["H0", "H1", "H*", "H0-1", "H{0,1}", "H* except H1"])
    selector = st.one_of(st.builds(lambda at, h: f"{at}.{h}", st.sampled_from(["L1", "L2"]), heads))
    target = targets.filter(lambda t: "L2.H3" not in t and "strength 2" not in t)
    line = st.one_of(
        st.builds(lambda s, t: f"clamp {s} to {t}", selector, target),
        st.builds(lambda v, s: v.format(s=s), verbs.filter(lambda v: "graft" not in v), selector),
        st.builds(
            lambda s, a, b: f"clamp {s} to prev-token from step {a} until step {a + b + 1}",
            selector,
            st.integers(0, 3),
            st.integers(0, 3),
        ),
    )
    body = draw(st.lists(line, min_size=0, max_size=3))
    count = draw(st.integers(1, 3))
    blocks = "".join(
        f"experiment e{i}:\n" + "".join(f"    {b}\n" for b in body[i::count])
        if body[i::count]
        else f"experiment e{i}\n"
        for i in range(count)
    )
    return (
        HEADER
        + TINY
        + "eval every 10 steps on train, relabel size=64\n"
        + (blocks or "experiment base\n")
    )


DIGITS = "1" * 5000  # more than int() converts from a string (4,300 digits): ValueError


@example(LET_CHAIN)
@example(HEADER + f"experiment e:\n    clamp L{DIGITS}.H0 to prev-token\n")
@example(HEADER + f"experiment e:\n    ablate L1.H{DIGITS}\n")
@example(HEADER + f"experiment e:\n    ablate L1.H{DIGITS}-0\n")
@example(HEADER + "experiment e:\n    ablate L1.H{0, " + DIGITS + "}\n")
@example(HEADER + 'experiment e:\n    graft L1 from "a\x00b"\n')  # ValueError: a NUL
@example(HEADER + 'experiment e:\n    graft L1 from "' + "x" * 5000 + '"\n')  # ENAMETOOLONG
@example(HEADER + 'experiment e:\n    graft L1 from "' + "a/" * 3000 + '"\n')  # ENAMETOOLONG
@example(HEADER + "model\fheads=4\nexperiment e:\n    ablate L9.H0\n")  # \f: a line, not two
@QUICK
@given(generated_specs())
def test_generated_specs_compile_or_give_located_errors(text):
    outcome(text)


@pytest.mark.slow
@LONG
@given(generated_specs())
def test_generated_specs_compile_or_give_located_errors_long(text):
    outcome(text)


def _trains(text: str) -> None:
    plan = outcome(text)
    if plan is not None:
        train_a_step(plan)


@TRAINED
@given(compiling_specs())
def test_generated_specs_that_compile_train_a_step(text):
    _trains(text)


@pytest.mark.slow
@TRAINED_LONG
@given(compiling_specs())
def test_generated_specs_that_compile_train_a_step_long(text):
    _trains(text)


# ---- byte-level mutations of the shipped specs -----------------------------------------------

INSERTS = [
    b"\x00",
    b"\xff",
    b"\xc3",  # a UTF-8 lead byte without its continuation
    b"\xed\xa0\x80",  # an encoded surrogate: not UTF-8
    b"\t",
    b"\r",
    b"\f",
    b"\x0b",
    b"\x1c",
    b"\xc2\x85",  # NEL: a line break to str.splitlines, not to the parser
    b"\xe2\x80\xa8",  # LINE SEPARATOR, likewise
    b"\n",
    b"    ",
    b"(",
    b")",
    b'"',
    b"#",
    b":",
    b"..",
]


@st.composite
def mutations(draw, most: int = 4) -> tuple[str, bytes]:
    name = draw(st.sampled_from(sorted(SOURCES)))
    data = bytearray(SOURCES[name])
    for _ in range(draw(st.integers(1, most))):
        at = draw(st.integers(0, len(data)))
        action = draw(
            st.sampled_from(
                ["flip", "insert", "token", "delete", "duplicate", "byte", "long", "indent"]
            )
        )
        if action == "flip" and at < len(data):
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif action == "insert":
            data[at:at] = draw(st.sampled_from(INSERTS))
        elif action == "token":
            data[at:at] = b" " + draw(st.sampled_from(VOCABULARY)) + b" "
        elif action == "byte":
            data[at:at] = bytes([draw(st.integers(0, 255))])
        elif action == "delete":
            del data[at : at + draw(st.integers(1, 40))]
        elif action == "duplicate":
            piece = data[at : at + draw(st.integers(1, 200))]
            data[at:at] = piece * draw(st.integers(1, 3))
        elif action == "long":
            unit = draw(st.sampled_from([b"x", b" a", b"(", b"1", b"L1.H1 ", b"#"]))
            data[at:at] = unit * draw(st.integers(1_000, 200_000))
        elif action == "indent":
            start = data.rfind(b"\n", 0, at) + 1
            data[start:start] = draw(st.sampled_from([b"  ", b"\t", b"    ", b"         "]))
    return name, bytes(data)


def check_bytes(name: str, data: bytes) -> Plan | None:
    # A shipped spec is read where it lies, so that its `use` lines find specs/lib.
    file = str(ROOT / name) if name.startswith("specs/") else FILE
    try:
        text = decode_spec(data, file)
    except SpecError as error:
        assert_located(error, data.decode("utf-8", errors="replace"), file)
        return None
    return outcome(text, file)


@example(("specs/three_subcircuits.clamp", b"clampdsl 1\n\xff\n"))
@example(("specs/three_subcircuits.clamp", SOURCES["specs/three_subcircuits.clamp"] + b"\x00"))
@QUICK
@given(mutations())
def test_mutated_shipped_specs_compile_or_give_located_errors(mutated):
    check_bytes(*mutated)


@pytest.mark.slow
@LONG
@given(mutations())
def test_mutated_shipped_specs_compile_or_give_located_errors_long(mutated):
    check_bytes(*mutated)


def _mutant_trains(mutated) -> None:
    plan = check_bytes(*mutated)
    if plan is not None:
        train_a_step(plan)


@TRAINED
@given(mutations(most=1))  # one mutation: more of them compile
def test_mutated_shipped_specs_that_compile_train_a_step(mutated):
    _mutant_trains(mutated)


@pytest.mark.slow
@TRAINED_LONG
@given(mutations(most=2))
def test_mutated_shipped_specs_that_compile_train_a_step_long(mutated):
    _mutant_trains(mutated)


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_every_shipped_spec_goes_through_the_oracle(name):
    plan = check_bytes(name, SOURCES[name])
    assert (plan is None) == ("invalid" in name)
    if plan is not None:
        train_a_step(plan)
