"""Keep freed heap memory in the process instead of handing it back to the OS at once.

glibc's malloc serves blocks of a few MiB with fresh pages (``mmap``, or a heap it trims as
soon as its top is free), and every fresh page faults on first touch. torch's CPU tensors in
a vmapped landscape chunk or a Hessian-vector product are exactly that size and short-lived,
so without this a PINN grid chunk took 22,000 page faults and spent 26% of its time in the
kernel (bench/landscape.py). The compute executors call :func:`keep_freed_memory` once per
process; it changes only glibc's thresholds, and is a no-op elsewhere.
"""

from __future__ import annotations

import ctypes
import sys

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
TRIM_THRESHOLD_BYTES = 512 * 1024**2  # free heap kept before trimming
MMAP_THRESHOLD_BYTES = 32 * 1024**2  # glibc's maximum on 64-bit: larger blocks still use mmap


def keep_freed_memory() -> bool:
    """Raise glibc's trim and mmap thresholds for this process; False where malloc is not glibc's."""
    if not sys.platform.startswith("linux"):
        return False
    libc = ctypes.CDLL(None)
    if not hasattr(libc, "gnu_get_libc_version"):
        return False
    return bool(libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES)) and bool(
        libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)
    )
