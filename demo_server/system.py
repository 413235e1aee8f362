"""Process facts for /healthz, and handing freed memory back."""

from __future__ import annotations

import ctypes
from collections.abc import Callable
from pathlib import Path


def process_rss_bytes(pid: int | str = "self") -> int | None:
    """Resident memory of a process (this one by default) from /proc/PID/status (None where
    there is no /proc, or no such process)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def _libc_trim() -> Callable[[int], int] | None:
    try:
        return ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None


_MALLOC_TRIM = _libc_trim()


def release_free_memory() -> None:
    """Hand freed heap memory back to the system (glibc's malloc_trim; nothing elsewhere).

    A large decode's buffers are freed into the worker thread's malloc arena, where they would
    stay resident; after one, the server's memory settles back instead.
    """
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)
