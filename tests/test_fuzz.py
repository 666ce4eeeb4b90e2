"""Fuzzing with specs assembled from plausible statements (the shipped specs' vocabulary,
random numbers, selectors, indentation): whatever a spec file holds, it ends in a plan or
in located errors (tests/fuzzing.py's oracle), and what compiles trains a step on the CPU
(a few examples per run: it is the slow part). Everything else (a ValueError from the
checker, a RecursionError) is a bug; inputs that once found one are kept below as explicit
examples. `-m slow` runs the same properties for longer. Byte-level mutations of the
shipped specs: tests/test_fuzz_mutations.py; the bounds on what a spec file may be:
tests/test_limits.py.
"""

import pytest
from fuzzing import LONG, QUICK, TRAINED, TRAINED_LONG, outcome, train_a_step
from hypothesis import example, given
from hypothesis import strategies as st
from oracle import HEADER, LET_CHAIN

TINY = (
    "model layers=2 heads=2 d_model=16\n"
    "task classes=10 new_classes=10 features=synthetic(dim=16, correlation=0.5)\n"
    "train steps=30 batch=8 lr=1e-3\n"
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
