"""`clamp SEL to uniform` and `clamp SEL to self`: patterns that depend on nothing.

uniform: row i spreads its attention evenly over tokens 0..i (what a head with constant
scores computes); self: row i attends to itself alone (prev-token at strength 0). Both
are constants: the heads' W_Q and W_K get no gradient through the clamped rows.
"""

from __future__ import annotations

from clampdsl.kinds.base import PatternTarget, expand


class FixedPattern(PatternTarget):
    order = 5  # with the reference's pattern clamps

    def apply(self, site, pattern, clamp, context):
        """pattern [R, H, Nq, N, B] (Nq: its last rows)."""
        rows, n = pattern.shape[2:4]
        target = self.pattern(pattern, n)[n - rows :, :, None]  # [Nq, N, 1]
        return target.where(expand(clamp.on, pattern) > 0, pattern)

    def pattern(self, like, n: int):
        """The [n, n] pattern, on `like`'s device."""
        raise NotImplementedError


class Uniform(FixedPattern):
    name = target = "uniform"
    example = "clamp L1.H* to uniform"

    def pattern(self, like, n):
        causal = like.new_ones(n, n).tril()
        return causal / causal.sum(-1, keepdim=True)


class Self(FixedPattern):
    name = target = "self"
    example = "clamp L1.H2 to self"

    def pattern(self, like, n):
        return like.new_ones(n).diag()


KINDS = (Uniform(), Self())
