"""Allocator setting shared by the timing benchmarks."""
from __future__ import annotations

import ctypes
import ctypes.util

M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3


def keep_freed_memory() -> bool:
    """Make glibc keep freed blocks instead of returning them to the OS (as jemalloc/tcmalloc do).

    Without it every [B, K] temporary above the mmap threshold is a fresh mapping whose pages the kernel faults in
    and zeroes on each step; on a VM that cost is large and erratic, swamping the arithmetic the ratios compare.
    It applies to the reference and the losses alike. Returns False where the C library has no `mallopt`.
    """
    libc_name = ctypes.util.find_library("c")
    try:
        mallopt = ctypes.CDLL(libc_name).mallopt
    except (OSError, AttributeError, TypeError):
        return False
    ok = mallopt(M_MMAP_THRESHOLD, 32 * 1024 * 1024) == 1  # glibc's upper limit on 64-bit machines
    ok &= mallopt(M_TRIM_THRESHOLD, 2**31 - 1) == 1
    ok &= mallopt(M_TOP_PAD, 256 * 1024 * 1024) == 1
    return bool(ok)
