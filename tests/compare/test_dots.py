"""serial_dots(): dot products with np.dot's bits at BLAS's thread count, computed on one BLAS thread.

The cut of a threaded OpenBLAS ddot (and so its last bits) depends on the thread count, so each case
sets numpy's OpenBLAS to 1-4 threads, takes np.dot's bits there, and checks the serial dot against them
on lengths around the single-thread limit and the cut points. Where numpy's BLAS is not an OpenBLAS
whose thread count can be set, serial_dots yields None and these tests skip.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from precdiff.compare import dots

LENGTHS = (0, 1, 17, dots.SERIAL_MAX, dots.SERIAL_MAX + 1, 20_001, 32_768, 65_535, 65_536, 65_537, 99_999)


def _numpys_openblas() -> dots._Threads:
    with dots.serial_dots() as dot:
        if dot is None:
            pytest.skip("numpy's BLAS is not an OpenBLAS whose thread count can be set")
        assert dots._state is not None
        return dots._state[0]


@pytest.fixture
def blas() -> Iterator[dots._Threads]:
    library = _numpys_openblas()
    before = library.get()
    yield library
    library.set(before)


def _vectors(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    # Magnitudes over 2^±30: a sum cut in other places rounds differently in most cases.
    return rng.standard_normal(n) * np.exp2(rng.integers(-30, 30, n)), rng.standard_normal(n)


@pytest.mark.parametrize("threads", [1, 2, 3, 4])
def test_serial_dot_has_the_bits_of_np_dot_at_the_blas_thread_count(
    blas: dots._Threads, threads: int
) -> None:
    blas.set(threads)
    pairs = [_vectors(n, seed) for seed, n in enumerate(LENGTHS)]
    pairs += [(a[3:], b[1:-2]) for a, b in pairs if a.size > 3]  # views off the vectors' alignment
    expected = [float(np.dot(a, b)) for a, b in pairs]
    with dots.serial_dots() as dot:
        assert dot is not None
        assert blas.get() == 1  # numpy's BLAS on one thread inside
        assert [dot(a, b) for a, b in pairs] == expected
    assert blas.get() == threads  # restored


def test_a_different_cut_gives_different_bits(blas: dots._Threads) -> None:
    """The test above can fail: cutting into 2 parts where BLAS used 3 changes the last bits."""
    blas.set(3)
    pairs = [_vectors(n, seed) for seed, n in enumerate(LENGTHS) if n > dots.SERIAL_MAX]
    expected = [float(np.dot(a, b)) for a, b in pairs]
    with dots.serial_dots():
        assert [dots.split_dot(a, b, 2) for a, b in pairs] != expected


def test_nested_users_restore_the_thread_count_once_the_last_leaves(blas: dots._Threads) -> None:
    blas.set(2)
    with dots.serial_dots() as outer:
        with dots.serial_dots() as inner:
            assert inner is not None and outer is not None
        assert blas.get() == 1
        a, b = _vectors(50_000, 7)
        assert inner(a, b) == outer(a, b)
    assert blas.get() == 2
