"""``np.dot`` of float64 vectors with the bits of numpy's threaded OpenBLAS, one thread per call.

OpenBLAS splits a ``ddot`` longer than 10,000 values over its threads: with ``k`` threads the vector
is cut into ``k`` contiguous parts (each ``ceil(remaining / threads left)`` long), each part is summed
by the single-thread kernel and the parts are added in order to ``0.0``. That split is part of the
result's rounding, so the metrics of ``compare`` depend on the BLAS thread count (as they always did).
It is also slow where it matters: every dot of a 64 Ki slice wakes OpenBLAS's workers, which then spin
between dots and wait for a core whenever the machine has other work.

:func:`serial_dots` sets numpy's OpenBLAS to one thread for a while and hands out a dot that makes
the same cut itself, part by part on the calling thread: the same kernel on the same parts, added in
the same order, so the same bits as ``np.dot`` outside. The streaming pass then runs one slice per
thread of its own (:mod:`precdiff.compare.stream`). Where the library is not found (not Linux, not
OpenBLAS) or a check of the cut on probe vectors fails, :func:`serial_dots` yields None and the caller
keeps ``np.dot`` on one thread of its own.

While inside, every BLAS call of the process runs on one thread (OpenBLAS has no per-thread setting):
a dot computed meanwhile by other code of the same process gets the one-thread bits.
"""

from __future__ import annotations

import ctypes
import functools
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

Dot = Callable[[NDArray[np.float64], NDArray[np.float64]], float]

# OpenBLAS runs a ddot of at most this many values on one thread (kernel/x86_64/ddot.c: ``n <= 10000``);
# a build that cuts elsewhere fails the check of _verify and keeps np.dot.
SERIAL_MAX = 10_000

# (get, set) of the thread count, as the OpenBLAS builds name them (numpy's wheels: scipy_openblas64_).
_SYMBOLS = [
    (f"{prefix}openblas_get_num_threads{suffix}", f"{prefix}openblas_set_num_threads{suffix}")
    for prefix in ("scipy_", "")
    for suffix in ("64_", "")
]


class _Threads:
    """Get and set the thread count of one loaded OpenBLAS library."""

    def __init__(self, get: Callable[[], int], set_: Callable[[int], None]) -> None:
        self.get, self.set = get, set_


def plain_dot(a: NDArray[np.float64], b: NDArray[np.float64]) -> float:
    """``np.dot`` as a Python float (what the metrics call when no :func:`serial_dots` is in use)."""
    return float(np.dot(a, b))


def split_dot(a: NDArray[np.float64], b: NDArray[np.float64], threads: int) -> float:
    """``np.dot(a, b)`` as OpenBLAS with ``threads`` threads computes it, from single-thread dots of
    the parts (numpy's BLAS must be on one thread, or each part is split again)."""
    n = a.size
    if threads <= 1 or n <= SERIAL_MAX:
        return float(np.dot(a, b))
    total, start, left = 0.0, 0, n
    for part in range(threads):
        width = min(left, -(-left // (threads - part)))
        total += float(np.dot(a[start : start + width], b[start : start + width]))
        start, left = start + width, left - width
    return total


@functools.cache
def _libraries() -> tuple[_Threads, ...]:
    """The loaded OpenBLAS libraries with a thread-count setter (Linux: from /proc/self/maps)."""
    try:
        maps = Path("/proc/self/maps").read_text().splitlines()
    except OSError:
        return ()
    paths = dict.fromkeys(
        line.split(maxsplit=5)[5] for line in maps if "openblas" in line.lower() and len(line.split()) == 6
    )
    found = []
    for path in paths:
        try:
            library = ctypes.CDLL(path)
        except OSError:
            continue
        for get_name, set_name in _SYMBOLS:
            if hasattr(library, get_name) and hasattr(library, set_name):
                get, set_ = getattr(library, get_name), getattr(library, set_name)
                get.restype, get.argtypes = ctypes.c_int, []
                set_.restype, set_.argtypes = None, [ctypes.c_int]
                found.append(_Threads(get, set_))
                break
    return tuple(found)


_lock = threading.Lock()
_users = 0
_state: tuple[_Threads, int] | None = None  # (library set to one thread, its thread count before)
_checked: dict[tuple[int, ...], _Threads | None] = {}  # thread counts -> the library that passed, or None


def _enter() -> tuple[_Threads, int] | None:
    """Set numpy's OpenBLAS to one thread (first user only); its former thread count."""
    global _users, _state
    with _lock:
        if _users:
            _users += 1
            return _state
        libraries = _libraries()
        counts = tuple(library.get() for library in libraries)
        if counts not in _checked:
            _checked[counts] = _verify(libraries)
        library = _checked[counts]
        if library is None:
            return None
        _users, _state = 1, (library, library.get())
        library.set(1)
        return _state


def _verify(libraries: tuple[_Threads, ...]) -> _Threads | None:
    """The library whose one-thread setting makes :func:`split_dot` reproduce ``np.dot``'s bits of
    before, or None. The probes' magnitudes spread over 2^±20, so a different cut changes the last bits
    of most of them."""
    rng = np.random.default_rng(0)
    lengths = (SERIAL_MAX, SERIAL_MAX + 1, 12_345, 32_769, 65_535, 65_536, 100_003)
    probes = [
        (rng.standard_normal(n) * np.exp2(rng.integers(-20, 20, n)), rng.standard_normal(n)) for n in lengths
    ]
    for library in libraries:
        threads = library.get()
        expected = [float(np.dot(a, b)) for a, b in probes]
        library.set(1)
        try:
            if all(split_dot(a, b, threads) == want for (a, b), want in zip(probes, expected)):
                return library
        finally:
            library.set(threads)
    return None


def _leave() -> None:
    global _users, _state
    with _lock:
        _users -= 1
        if _users == 0 and _state is not None:
            library, threads = _state
            library.set(threads)
            _state = None


@contextmanager
def serial_dots() -> Iterator[Dot | None]:
    """Inside: a dot with ``np.dot``'s bits outside that keeps to the calling thread, so that several
    threads of the caller can each run dots; None where that cannot be had (see the module docstring).
    """
    state = _enter()
    if state is None:
        yield None
        return
    threads = state[1]
    try:
        yield functools.partial(split_dot, threads=threads)
    finally:
        _leave()
