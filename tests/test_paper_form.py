"""The Plan back in the language's words (report/paper_form.py, each kind's `spoken`), as
`clampdsl plan` shows it: head sets as a selector writes them, windows in steps and
sequences, and each statement once, in words that compile to what it lowered to."""

import itertools
import json

import attrs
import pytest

from clampdsl.compile import compile_source
from clampdsl.compile.plan import Window, snapshot_name
from clampdsl.report import paper_form

MODEL = "clampdsl 1\nmodel layers=2 heads=8 d_model=64\ntrain steps=4000\n"


@pytest.mark.parametrize(
    ("chosen", "written"),
    [
        ((3,), "H3"),
        (range(8), "H*"),
        ((0, 1, 2, 4, 5, 6, 7), "H* except H3"),
        ((0, 1, 2, 4, 6, 7), "H* except H{3,5}"),
        ((0, 1, 2, 3, 4, 5), "H* except H6-7"),
        ((0, 1, 2), "H0-2"),
        ((0, 1, 3), "H{0,1,3}"),
        ((0, 2, 4, 6, 7), "H{0,2,4,6,7}"),
    ],
)
def test_a_head_set_is_written_as_compactly_as_a_selector_writes_it(chosen, written):
    assert paper_form.heads(chosen, 8) == written


def test_every_head_set_is_written_as_a_selector_of_those_heads():
    subsets = [s for n in range(1, 9) for s in itertools.combinations(range(8), n)]
    body = "".join(
        f"experiment e{i}:\n    ablate L1.{paper_form.heads(s, 8)}\n" for i, s in enumerate(subsets)
    )
    plan = compile_source(MODEL + body)
    assert [run.interventions[0].heads for run in plan.runs] == subsets


@pytest.mark.parametrize(
    ("window", "written"),
    [
        (Window(), ""),
        (Window(1000), "from step 1,000 (32,000 sequences) until the end"),
        (Window(0, 100), "until step 100 (3,200 sequences)"),
        (
            Window(500, 3125),
            "from step 500 (16,000 sequences) until step 3,125 (100,000 sequences)",
        ),
        (Window(during="train"), "during train"),
        (Window(100, None, "eval"), "from step 100 (3,200 sequences) until the end during eval"),
    ],
)
def test_a_window_is_told_in_steps_and_sequences(window, written):
    assert paper_form.window(window, 32) == written


@pytest.fixture
def folder(tmp_path):
    """A folder holding a saved run to graft from: a finished one-run plan whose clamp on
    L1 comes along with a graft in (its weights are only looked for at compile time)."""
    directory = tmp_path / "runs" / "donor"
    (directory / "checkpoints").mkdir(parents=True)
    donor = compile_source(MODEL + "experiment d:\n    clamp L1.H2 to prev-token\n", "donor.clamp")
    (directory / "plan.json").write_text(json.dumps(donor.to_json()))
    (directory / "summary.json").write_text("{}")
    (directory / "checkpoints" / snapshot_name(0, 4000)).write_bytes(b"")
    return tmp_path


# Statement as written → as shown (the window apart): lets resolved, defaults written out.
SHOWN = {
    "ablate OTHERS": "ablate L2.H* except H3",
    "clamp IH to induction": "clamp L2.H3 to induction strength 1",
    "clamp L1.H2 to prev-token strength S at labels from step START": (
        "clamp L1.H2 to prev-token strength 0.9 at labels"
    ),
    "clamp L*.H7 to uniform": "clamp L*.H7 to uniform",
    "clamp L2.H3 to match": "clamp L2.H3 to match temperature 0",
    "ablate L1.H{1, 2, 5} keeping patterns": "ablate L1.H{1,2,5} keeping patterns",
    "clamp L1.H3.z to mean until 1e5 sequences": "clamp L1.H3.z to mean",
    "clamp L1.H4.v to zero": "clamp L1.H4 to zero",
    "clamp embed to zero during eval": "clamp embed to zero",
    "clamp L1.out to shifted-embedding detached": "clamp L1.out to shifted-embedding detached",
    "clamp logits to scores of IH detached from step 100 during train": (
        "clamp logits to scores of L2.H3 detached"
    ),
    "scale L2.H5 temperature 2 detached": "scale L2.H5 temperature 2 detached",
    "forbid L1.H6-7 attending prev-token at labels": (
        "forbid L1.H6-7 attending prev-token at labels"
    ),
    "restrict L2.H6 to labels": "restrict L2.H6 to labels",
    "freeze L2.H7.q until 200 steps": "freeze L2.H7.q",
    "freeze L1.H5": "freeze L1.H5",
    'graft L1 from "runs/donor"': 'graft L1 from "runs/donor" run d at step 4000',
    'graft L2.. from "runs/donor"': 'graft L2.. from "runs/donor" run d at step 4000',
}
# One experiment per statement: a statement's clamps must not meet another's.
WRITTEN = "let IH = L2.H3\nlet OTHERS = L2.H* except H3\nlet S = 0.9\nlet START = 500\n" + "".join(
    f"experiment e{i}:\n    {text}\n" for i, text in enumerate(SHOWN)
)


def _meaning(item):
    """What an intervention does, not where it was written."""
    return attrs.evolve(item, text="", span=None)


def test_each_statement_is_shown_once_in_words_that_compile_to_what_it_lowered_to(folder):
    plan = compile_source(MODEL + WRITTEN, str(folder / "spec.clamp"))
    shown = [paper_form.statements(run) for run in plan.runs]
    expected = [[words] for words in SHOWN.values()]
    # the graft in brings the donor's clamp along, shown as a statement of the donor's
    expected[list(SHOWN).index('graft L1 from "runs/donor"')].append(
        "clamp L1.H2 to prev-token strength 1"
    )
    assert [[s.words for s in run] for run in shown] == expected
    again = MODEL + "".join(
        f"experiment e{i}:\n"
        + "".join(
            f"    {s.words} {_window_in_words(s.item.window)}\n"
            for s in run
            if s.item.span.file == plan.file  # not the donor's: those come along again
        )
        for i, run in enumerate(shown)
    )
    replanned = compile_source(again, str(folder / "again.clamp"))
    for run, rerun in zip(plan.runs, replanned.runs, strict=True):
        assert list(map(_meaning, run.interventions)) == list(map(_meaning, rerun.interventions))
    windows = {s.item.text: s.window for run in shown for s in run}
    assert windows["clamp L1.H3.z to mean until 1e5 sequences"] == (
        "until step 3,125 (100,000 sequences)"
    )
    assert windows["clamp embed to zero during eval"] == "during eval"


def _window_in_words(window: Window) -> str:
    """The window as a statement writes it (the plan shows it in prose)."""
    words = [f"from step {window.start}"] if window.start else []
    words += [f"until step {window.end}"] if window.end is not None else []
    return " ".join(words + ([f"during {window.during}"] if window.during != "both" else []))


def test_the_tensor_indices_are_0_based():
    plan = compile_source(
        MODEL + "experiment e:\n    clamp L*.H7 to uniform\n    clamp logits to scores of L2.H3\n"
    )
    uniform, copy = paper_form.statements(plan.runs[0])
    assert uniform.tensor == "tensor layers [0, 1], heads [7]"
    assert copy.tensor == "tensor source layer 1, head 3"
