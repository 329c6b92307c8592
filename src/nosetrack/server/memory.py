"""A worker's memory back to the system when it is idle: glibc's malloc_trim.

A 14-megapixel photo is 40 MiB of pixels and more in the model's views; glibc keeps what such requests freed
in its per-thread arenas, so a worker that served them stays large when idle. `python -m bench.front_door
--scenarios bigphotos` measures it, with glibc's default arenas and with MALLOC_ARENA_MAX=2: a trim once idle
brings each worker back close to its baseline, and fewer arenas add nothing to that (docs/design.md has the
figures). Elsewhere than glibc, it is a no-op.
"""

from __future__ import annotations

import ctypes
import ctypes.util


def _glibc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    libc = ctypes.CDLL(name)
    return libc if hasattr(libc, "malloc_trim") else None


_LIBC = _glibc()


def give_back_free_memory() -> None:
    """Return the free pages of every arena to the system (glibc's malloc_trim)."""
    if _LIBC is not None:
        _LIBC.malloc_trim(0)
