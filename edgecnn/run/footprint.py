"""Process-wide settings that keep a long ``edgecnn run`` small: made by the CLI before the run starts a
thread or imports numpy, because both libraries read them once, at start.

- **malloc arenas.** glibc gives a thread that finds the allocator busy an arena of its own, up to 8 per
  core (32 on a Raspberry Pi 4), and an arena keeps the memory it once held. A served run has about 20
  threads (capture, 16 HTTP workers, the preview encoder, the runtime's), nearly all Python threads that
  allocate one at a time under the GIL, so separate arenas buy no speed, only resident memory: two are
  kept (glibc's ``M_ARENA_MAX``, the same knob as the ``MALLOC_ARENA_MAX`` environment variable).
- **OpenBLAS threads.** numpy and OpenCV each bundle OpenBLAS, which starts a thread per core at import
  (one per extra core each: 2 threads here, 6 on a Pi 4). ``run`` multiplies no matrices through BLAS
  (the model runs in TFLite's own thread pool), so ``OPENBLAS_NUM_THREADS=1``.

A value already in the environment wins (a unit file or a user who measured otherwise). Measured with
``benchmarks/http_load.py``; the figures are in docs/figures.md ("Serving").
"""

from __future__ import annotations

import logging
import os
import platform
import sys
from collections.abc import MutableMapping

log = logging.getLogger("edgecnn.run")

MALLOC_ARENAS = 2
_M_ARENA_MAX = -8  # glibc's malloc.h


def configure_process(env: MutableMapping[str, str] | None = None) -> list[str]:
    """Apply the settings above to this process; return the ones applied, as ``NAME=value``."""
    env = os.environ if env is None else env
    applied = []
    # Read by OpenBLAS when numpy (or cv2) loads it: too late once numpy is imported.
    if "OPENBLAS_NUM_THREADS" not in env and "numpy" not in sys.modules:
        env["OPENBLAS_NUM_THREADS"] = "1"
        applied.append("OPENBLAS_NUM_THREADS=1")
    if "MALLOC_ARENA_MAX" not in env and _mallopt(_M_ARENA_MAX, MALLOC_ARENAS):
        applied.append(f"MALLOC_ARENA_MAX={MALLOC_ARENAS}")
    if applied:
        log.debug("process settings: %s", " ".join(applied))
    return applied


MMAP_THRESHOLD = 128 * 1024
_M_MMAP_THRESHOLD = -3  # glibc's malloc.h


def fix_mmap_threshold() -> bool:
    """Keep glibc's mmap threshold at 128 KB (``MALLOC_MMAP_THRESHOLD_``), for runs that hold many
    frame-sized buffers on many threads (several cameras, clips): glibc otherwise raises the threshold
    after the first large free, and camera frames and JPEGs then live in the heap, where freed ones stay
    resident. Fixed, every buffer of 128 KB or more is mapped and handed back when freed (measured with
    ``benchmarks/multicam.py``: about 2 MB less per camera). An environment value wins."""
    if "MALLOC_MMAP_THRESHOLD_" in os.environ:
        return False
    return _mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)


def _mallopt(param: int, value: int) -> bool:
    """glibc's ``mallopt``; False where there is none (musl, macOS) or it refuses."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    import ctypes

    try:
        return bool(ctypes.CDLL(None).mallopt(param, value))
    except (OSError, AttributeError):
        return False
