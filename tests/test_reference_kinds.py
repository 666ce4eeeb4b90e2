"""The reference's original clamp kinds against the plain per-head forward with each clamp
written by hand (tests/reference_model.py): logits and every gradient of the clamped run,
batched between two others. The kinds added since have their own test files."""

import torch
from reference_model import check_against_reference, reference_logits

C, HD = 8, 4
FILL = -1e9


def _edit(change):
    """An edit_of whose edit is `change(site, layer, head, i, value, b, batch)`, or the
    value unchanged where it returns None."""

    def edit_of(model, batch):
        def edit(site, layer, head, i, value, b):
            changed = change(site, layer, head, i, value, b, batch)
            return value if changed is None else changed

        return edit

    return edit_of


def test_prev_token():
    def change(site, layer, head, i, value, b, batch):
        if (site, layer, head) == ("pattern", 0, 1):
            row = torch.zeros(i + 1)
            row[max(i - 1, 0)] += 0.7
            row[i] += 0.3
            return row
        return None

    grads = check_against_reference("    clamp L1.H1 to prev-token strength 0.7\n", _edit(change))
    assert grads["qkv0"][:, HD : 2 * HD].abs().max() == 0  # L1.H1's queries: none


def test_induction():
    def change(site, layer, head, i, value, b, batch):
        if (site, layer, head, i) == ("pattern", 1, 1, 4):
            right = 1 if batch.labels[b, 1] == batch.labels[b, -1] else 0
            row = torch.zeros(5)
            row[2 * right + 1], row[2 * (1 - right) + 1] = 0.8, 0.2
            return row
        return None

    check_against_reference("    clamp L2.H1 to induction strength 0.8\n", _edit(change))


def test_ablate():
    def change(site, layer, head, i, value, b, batch):
        if (site, layer, head) == ("pattern", 0, 0):
            return torch.zeros_like(value)  # the head writes nothing (its values zero)
        return None

    grads = check_against_reference("    ablate L1.H0\n", _edit(change))
    assert grads["qkv0"][:, 2 * C : 2 * C + HD].abs().max() == 0
    assert grads["proj0"][:HD].abs().max() == 0


def test_copy_scores_with_a_clamp_upstream():
    """The logits := the source head's scores from the unclamped first pass."""

    def edit_of(model, batch):
        first = {}
        reference_logits(model.weights, 1, batch.features, batch.labels, 2, 2, record=first)

        def edit(site, layer, head, i, value, b):
            if (site, layer, head) == ("pattern", 0, 0):
                return torch.zeros_like(value)  # `ablate L1.H0`
            if site == "logits":
                logits = torch.full_like(value, FILL)
                for j in range(2):
                    logits[batch.labels[b, j]] = first[(1, 1, b, 4)][2 * j + 1]
                return logits
            return value

        return edit

    grads = check_against_reference(
        "    ablate L1.H0\n    clamp logits to scores of L2.H1\n", edit_of
    )
    for name in ("unembed_w", "unembed_b", "proj1"):
        assert grads[name].abs().max() == 0, name


def test_shifted_embedding():
    """First pass: L1.out := e' and the last layer's patterns recorded; final pass: L1.out
    := e and the last layer's patterns := the first pass's."""

    def edit_of(model, batch):
        seen = {}
        reference_logits(model.weights, 1, batch.features, batch.labels, 2, 2, record=seen)
        embedding = {b: seen[("embed", b)] for b in range(7)}
        shifted = {b: e[[0, 0, 1, 2, 4]] for b, e in embedding.items()}
        first = {}

        def first_pass(site, layer, head, i, value, b):
            return shifted[b] if (site, layer) == ("out", 0) else value

        reference_logits(
            model.weights, 1, batch.features, batch.labels, 2, 2, edit=first_pass, record=first
        )

        def edit(site, layer, head, i, value, b):
            if (site, layer) == ("out", 0):
                return embedding[b]
            if (site, layer) == ("pattern", 1):
                return first[("pattern", 1, head, b, i)]
            return value

        return edit

    grads = check_against_reference("    clamp L1.out to shifted-embedding\n", edit_of)
    for name in ("qkv0", "proj0", "ln_g0", "ln_b0"):
        assert grads[name].abs().max() == 0, name
