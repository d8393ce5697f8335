"""Host memory: keep freed blocks for reuse instead of returning them to the system.

A training step on the CPU allocates and frees the same large tensors again and again
(activations, their gradients: 50 MB each for twelve stacked concat critics on a batch of
64). glibc's ``malloc`` serves a block above its *mmap threshold* (dynamic, at most 32 MB)
with a fresh ``mmap`` and gives it back on ``free``, and it trims free memory at the top of
its heap; either way the next step touches new pages, and the kernel zero-fills each one in
a page fault. Measured here on the twelve Gaussian-benchmark estimators trained stacked
(``scripts/bench_gaussian.py``): the concat critic took about 74,000 page faults per step,
a third of its CPU time; after :func:`keep_freed_memory`, none. PyTorch has no caching
allocator for the CPU, so the fix is malloc's own: raise both thresholds.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import sys

__all__ = ["keep_freed_memory"]

# mallopt parameters, from glibc's <malloc.h>.
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_ONE_GIB = 1 << 30


@functools.cache
def keep_freed_memory() -> bool:
    """Let this process's ``malloc`` keep freed blocks of up to 1 GiB for reuse.

    Called by :func:`remi_tutorial.train.train`; once per process (later calls return the
    first answer). The cost: memory freed by the process stays reserved for it rather than
    going back to the system, so its resident size stays near its peak.

    Returns:
        ``True`` if glibc accepted the settings; ``False`` elsewhere (macOS, Windows, musl),
        where nothing changes.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, _ONE_GIB)) and bool(
        mallopt(_M_TRIM_THRESHOLD, _ONE_GIB)
    )
