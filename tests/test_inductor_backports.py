"""The compile-time backport (accel/inductor_backports.py): inductor's vector-range index
analysis gives the answers it gave with sympy's full `simplify`, without calling it."""

import types

import pytest
import sympy
from torch._inductor import sizevars
from torch.utils._sympy.functions import FloorDiv, ModularIndexing

from clampdsl.accel.inductor_backports import skip_full_simplify_in_vector_index_analysis

lane, d0, d1, d2 = sympy.symbols("lane d0 d1 d2", integer=True, nonnegative=True)

# Indices as the project's graphs produce them (the slowest of Fig. 5b's step among them),
# and the lane-uniform divisions and remainders the analysis rewrites into free symbols.
INDICES = [
    64 * d0 + 384 * d2 + lane + 12288 * FloorDiv(d1, 2),
    4096 * d0 + 64 * d2 + lane + 2048 * FloorDiv(d1 - 1, 2) + 16384,
    -12288 * FloorDiv(lane, 2) + 12288 * FloorDiv(lane + 1, 2),
    3 * d0 + lane,
    4 * FloorDiv(lane, 16) + lane,
    FloorDiv(lane, 32) + 500 * d0,
    ModularIndexing(lane, 1, 32) + 5,
    ModularIndexing(lane, 16, 4) + 2 * d1,
    FloorDiv(lane, 5) + ModularIndexing(lane, 1, 7),
]


def with_full_simplify():
    """The analysis as torch ships it: its own code, with sympy's `simplify`."""
    code = sizevars.simplify_index_in_vec_range.__wrapped__.__code__
    namespace = dict(vars(sizevars)) | {"sympy": sympy}
    function = types.FunctionType(code, namespace, code.co_name)
    namespace["simplify_index_in_vec_range"] = function
    return function


@pytest.mark.parametrize("index", INDICES, ids=str)
def test_vector_index_analysis_answers_as_with_sympy_simplify(index, monkeypatch):
    expected = with_full_simplify()(index, lane, 16)
    assert skip_full_simplify_in_vector_index_analysis()
    sizevars.simplify_index_in_vec_range.cache_clear()

    def fail(*args, **kwargs):
        raise AssertionError("sympy.simplify called")

    monkeypatch.setattr(sympy, "simplify", fail)
    assert sizevars.simplify_index_in_vec_range(index, lane, 16) == expected


def test_the_backport_is_applied_once():
    assert skip_full_simplify_in_vector_index_analysis()
    applied = sizevars.simplify_index_in_vec_range
    assert skip_full_simplify_in_vector_index_analysis()
    assert sizevars.simplify_index_in_vec_range is applied
