"""`clamp SEL to prev-token [strength s] [at labels]`: every row i of the pattern puts s on
token i-1 and 1-s on itself (row 0 attends to itself). `at labels`: the label rows only
(the reference's `_only_label`); the other rows keep the pattern the head computes.

A constant: the head's W_Q and W_K get no gradient through the clamped rows.
"""

from __future__ import annotations

from clampdsl.kinds.base import Param, PatternTarget, expand


class PrevToken(PatternTarget):
    name = target = "prev-token"
    params = {"strength": Param(1.0, 0.0, 1.0)}
    rows = ("labels",)
    roles = ("previous",)
    order = 5  # the reference's step 5

    def apply(self, site, pattern, clamp, context):
        """pattern [R, H, Nq, N, B] (Nq: its last rows)."""
        rows, n = pattern.shape[2:4]
        target = prev_token_pattern(clamp.strength, n)[:, :, n - rows :, :, None]
        on = expand(clamp.on, target)  # [R, H, 1, 1, 1]
        at_labels = clamp.get("at_labels")
        if at_labels is not None:  # exemplar rows keep their computed pattern
            exemplar_rows = (1 - context.label_rows[n - rows :])[:, None, None]
            on = on * (1 - expand(at_labels, target) * exemplar_rows)
        return target.where(on > 0, pattern)


def prev_token_pattern(strength, n: int):
    """[..., H] strengths → [..., H, n, n] patterns: s on i-1, 1-s on i; row 0 on itself."""
    eye = strength.new_ones(n).diag()
    shift = strength.new_ones(n - 1).diag(-1)
    shift[0, 0] = 1.0
    s = strength[..., None, None]
    return s * shift + (1 - s) * eye


KINDS = (PrevToken(),)
