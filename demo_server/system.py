"""Process facts for /healthz."""

from __future__ import annotations

from pathlib import Path


def process_rss_bytes() -> int | None:
    """Resident memory of this process from /proc/self/status (None where there is no /proc)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None
