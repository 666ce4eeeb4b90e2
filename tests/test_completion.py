"""Completion (lsp/completion.py) called directly, without a client: window words after a
statement's arguments, `step` after `from` / `until` / a window's `to`, the phases after
`during`, and nothing after a window's last part."""

import pytest
from conftest import ROOT

from clampdsl.lsp.completion import complete

SPEC = (ROOT / "specs" / "three_subcircuits.clamp").read_text() + "\nexperiment x:\n"


def labels(line: str) -> list[str]:
    text = SPEC + line
    row = text.count("\n")
    return [
        item.label for item in complete(text, str(ROOT / "specs" / "x.clamp"), row, len(line)).items
    ]


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (
            "    clamp L1.H2 to prev-token ",
            ["strength", "at labels", "from step", "until step", "during"],
        ),
        ("    clamp L1.H2 to prev-token from step 10 ", ["until step", "during"]),
        ("    clamp L1.H2 to prev-token from ", ["step"]),
        ("    clamp L1.H2 to prev-token from step 10 to ", ["step"]),
        ("    clamp L1.H2 to prev-token during ", ["train", "eval", "both"]),
        ("    clamp L1.H2 to prev-token until step 5 during eval ", []),
        ("    ablate L2.H1 ", ["from step", "until step", "during"]),
    ],
)
def test_window_words_are_offered_where_a_window_may_go(line, expected):
    assert labels(line) == expected


def test_a_clamps_own_to_is_not_a_windows():
    assert "prev-token" in labels("    clamp L1.H2 to ")


def test_a_task_line_that_names_its_kind_offers_that_kinds_settings():
    text = "clampdsl 1\ntask repeated-tokens "
    items = complete(text, str(ROOT / "specs" / "x.clamp"), 1, len("task repeated-tokens ")).items
    offered = {item.label: item.detail for item in items}
    assert {"vocab", "length", "repeat_min", "repeat_max", "loss"} <= set(offered)
    assert "classes" not in offered and "default 64" in offered["vocab"]


def test_measure_offers_the_predictions_measures_of_the_documents_task():
    def measures(text: str) -> set[str]:
        items = complete(text, str(ROOT / "specs" / "x.clamp"), text.count("\n"), 8).items
        return {item.label for item in items}

    markov = measures("clampdsl 1\ntask markov order=3\nmeasure ")
    assert {"kl-uniform", "kl-bigram", "kl-trigram", "nearest"} <= markov
    assert "induction-strength" in markov and "q-composition" in markov
    fewshot = measures("clampdsl 1\nmeasure ")
    assert "induction-strength" in fewshot and not any(m.startswith("kl-") for m in fewshot)
