"""A worker's memory back to the system when it is idle: glibc's malloc, kept to two arenas and trimmed.

A 14-megapixel photo is 40 MiB of pixels and more in the model's views; glibc keeps what such requests freed
in its per-thread arenas (up to 8 per core), so a worker that served them stays large when idle. `python -m
bench.front_door --scenarios bigphotos` measures it: with a trim once idle, a worker with glibc's default
arenas stayed at 180 MiB 20 s later (baseline 114), and with two arenas came back to 126-131 MiB
(docs/design.md has the figures). Elsewhere than glibc, both are no-ops.
"""

from __future__ import annotations

import ctypes
import ctypes.util


def _glibc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    libc = ctypes.CDLL(name)
    return libc if hasattr(libc, "malloc_trim") and hasattr(libc, "mallopt") else None


_LIBC = _glibc()
M_ARENA_MAX = -8  # mallopt's parameter number, from glibc's malloc.h
ARENAS = 2


def limit_arenas() -> None:
    """At most ARENAS malloc arenas in this process, so that freed memory gathers where a trim finds it."""
    if _LIBC is not None:
        _LIBC.mallopt(M_ARENA_MAX, ARENAS)


def give_back_free_memory() -> None:
    """Return the free pages of every arena to the system (glibc's malloc_trim)."""
    if _LIBC is not None:
        _LIBC.malloc_trim(0)
