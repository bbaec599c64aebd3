"""What the daemon's memory is made of, beyond Python objects: for memory diagnoses.

``heap_stats()`` reads, without changing anything: the resident set (``VmRSS``),
glibc's allocator (``mallinfo2``: bytes in use, bytes free but still held in its
arenas, bytes in large ``mmap`` blocks), SQLite's own allocations
(``sqlite3_memory_used``: page caches, statements), and how much Python memory
``tracemalloc`` traces when it runs.  RSS growing while the traced total stays flat
is the C heap; its in-use bytes growing is a C-level leak, and RSS growing while they
stay is memory freed but kept resident (what ``malloc_trim`` returns:
``cloudgw.heap_trim``).  glibc's free bytes include pages a trim already gave back
(it still counts them as free), so they say how fragmented the heap is, not how much
of it is resident.

Each figure is None where the platform has no such call (another libc, an SQLite
without ``sqlite3_memory_used``): a diagnosis, never a requirement.  This module is the
one place that binds glibc's allocator calls (``malloc_trim`` too, for ``heap_trim``).
"""

from __future__ import annotations

import ctypes
import functools
import tracemalloc
from typing import Any, Callable


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
                 "keepcost")]


@functools.cache
def _libc() -> Any:
    try:
        libc = ctypes.CDLL(None)
        libc.mallinfo2.restype = _MallInfo2
        libc.malloc_trim.argtypes = [ctypes.c_size_t]
        libc.malloc_trim.restype = ctypes.c_int
        return libc
    except (OSError, AttributeError):
        return None


def malloc_trim() -> Callable[[], object] | None:
    """glibc's ``malloc_trim(0)`` as a call (None: not glibc)."""
    libc = _libc()
    return None if libc is None else lambda: libc.malloc_trim(0)


@functools.cache
def _libsqlite() -> Any:
    """The SQLite library the ``sqlite3`` module uses: looked up through its extension module
    (``dlsym`` searches the libraries it links), not by name (``find_library`` would run
    ``ldconfig`` in a subprocess)."""
    try:
        import _sqlite3

        lib = ctypes.CDLL(_sqlite3.__file__)
        lib.sqlite3_memory_used.restype = ctypes.c_int64
        return lib
    except (ImportError, OSError, AttributeError):
        return None


def _rss_kib() -> int | None:
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def resident_not_in_use() -> int | None:
    """Resident bytes glibc is not handing out: the resident set less glibc's bytes in use
    (its arenas' and its ``mmap`` blocks').  What a burst leaves behind once freed, and what
    ``malloc_trim`` can give back (with Python's own small-object arenas, which it cannot).
    None: no ``/proc`` or not glibc."""
    kib, libc = _rss_kib(), _libc()
    if kib is None or libc is None:
        return None
    info = libc.mallinfo2()
    return kib * 1024 - info.uordblks - info.hblkhd


def heap_stats() -> dict[str, int | None]:
    """Bytes (RSS in KiB) of each part; see the module doc."""
    out: dict[str, int | None] = {"rss_kib": _rss_kib(), "malloc_in_use": None, "malloc_free_held": None,
                                  "malloc_mmapped": None, "sqlite": None,
                                  "python_traced": tracemalloc.get_traced_memory()[0] if tracemalloc.is_tracing()
                                  else None}
    if (libc := _libc()) is not None:
        info = libc.mallinfo2()
        out["malloc_in_use"], out["malloc_free_held"], out["malloc_mmapped"] = info.uordblks, info.fordblks, info.hblkhd
    if (sqlite := _libsqlite()) is not None:
        out["sqlite"] = sqlite.sqlite3_memory_used()
    return out
