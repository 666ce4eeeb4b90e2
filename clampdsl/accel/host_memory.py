"""Keeps freed host memory in the process, so that tensors reuse pages instead of faulting.

A forward allocates its activations anew on every call. glibc's malloc serves a block over
its mmap threshold (128 KiB, raised only when such a block is freed) with fresh pages from
the kernel and returns it at free, and it hands the top of its heap back past a trim
threshold: every eval chunk then touches megabytes of new pages, each a page fault that
zeroes 4 KiB: thousands of faults per eval (docs/performance.md, "Accelerations").
Raising both thresholds keeps those pages for the next call. Peak memory is unchanged:
what is kept was in use a moment before.

The setting is process-wide and harmless to other code; where the C library is not glibc
(macOS, musl: no `mallopt`, or one that does nothing) nothing changes.
"""

from __future__ import annotations

import ctypes
import sys

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters
MMAP_THRESHOLD_MAX = 32 * 1024 * 1024  # glibc's ceiling on 64-bit systems
TRIM_THRESHOLD = 1024 * 1024 * 1024  # free memory kept at the heap's top, at most


def keep_freed_memory() -> bool:
    """Raises malloc's mmap and trim thresholds; whether the C library took them."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_MAX)) and bool(
        mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    )
