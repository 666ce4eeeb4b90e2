"""An upstream fix to torch's CPU compiler that shortens compiling, applied where the torch
in use still lacks it.

Inductor's C++ code generation asks, for every index of every loop it vectorises, how the
index moves along the vector lanes (`sizevars.simplify_index_in_vec_range`). It rewrites the
lane-uniform FloorDiv and ModularIndexing terms into free symbols (what the question needs),
then runs sympy's general `simplify` over the whole expression, which tries dozens of
rewrites (trigonometric, hypergeometric, …) on what is a sum of integer multiples.
pytorch/pytorch#186319 (fixing #133734) drops that last pass.

Compiling the Fig. 5b group's train step calls `sympy.simplify` thousands of times, and not
one call changes its expression. Without the pass the generated C++ and Python are
byte-identical (the same content-hashed files in inductor's cache) for every graph
compared (five groups' steps and evals), and compiling takes less time
(docs/performance.md, "Accelerations").

The function is rebuilt from its own code with a `sympy` whose `simplify` returns its
argument, and put back where its callers look it up; nothing else in torch or sympy
changes. On a torch whose function no longer calls `simplify`, or lacks it, nothing is done.
"""

from __future__ import annotations

import functools
import types

import sympy


class _SympyWithoutSimplify(types.ModuleType):
    """sympy, except that `simplify` hands its expression back unchanged."""

    def __getattr__(self, name: str):
        return getattr(sympy, name)

    @staticmethod
    def simplify(expr, *args, **kwargs):
        return expr


def skip_full_simplify_in_vector_index_analysis() -> bool:
    """Applies pytorch/pytorch#186319 to the running torch (once; later calls do nothing).
    Returns whether the running torch now goes without the full `simplify`."""
    try:
        from torch._inductor import sizevars
    except ImportError:
        return False
    current = getattr(sizevars, "simplify_index_in_vec_range", None)
    original = getattr(current, "__wrapped__", None)  # under its functools.lru_cache
    if original is None:
        return False
    if isinstance(original.__globals__.get("sympy"), _SympyWithoutSimplify):
        return True  # applied already
    if "simplify" not in original.__code__.co_names:
        return False  # this torch has the fix, or works differently
    namespace = dict(original.__globals__) | {"sympy": _SympyWithoutSimplify("sympy")}
    rebuilt = types.FunctionType(
        original.__code__, namespace, original.__name__, original.__defaults__
    )
    rebuilt.__kwdefaults__, rebuilt.__doc__ = original.__kwdefaults__, original.__doc__
    cached = functools.lru_cache(rebuilt)
    namespace["simplify_index_in_vec_range"] = cached  # its own recursive call
    sizevars.simplify_index_in_vec_range = cached  # stride_at_vec_range's call
    return True
