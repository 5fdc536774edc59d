"""Row assignment by a hash of the global row index.

A row's fate (train, validation, test) depends only on its index and a seed, never on
how the rows were chunked or which worker read them.
"""

from __future__ import annotations

import numpy as np

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)


def row_uniforms(rows: np.ndarray, seed: int) -> np.ndarray:
    """Map global row indices to reproducible uniforms in [0, 1) (SplitMix64 finaliser).

    Parameters
    ----------
    rows : numpy.ndarray of int, shape (m,)
        Global row indices.
    seed : int

    Returns
    -------
    numpy.ndarray of float64, shape (m,)
    """
    with np.errstate(over="ignore"):
        z = np.asarray(rows, dtype=np.uint64) + np.uint64(seed % 2**64) * _GOLDEN + _GOLDEN
        z = (z ^ (z >> np.uint64(30))) * _MIX1
        z = (z ^ (z >> np.uint64(27))) * _MIX2
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(np.float64) * (1.0 / 2**53)


def validation_mask(start: int, stop: int, fraction: float, seed: int) -> np.ndarray:
    """Which rows of ``[start, stop)`` belong to the validation set.

    Returns
    -------
    numpy.ndarray of bool, shape (stop - start,)
    """
    if fraction <= 0.0:
        return np.zeros(stop - start, dtype=bool)
    return row_uniforms(np.arange(start, stop), seed) < fraction


#: Mixed into the seed of the sample ranks so that a row's rank is independent of whether
#: it is a validation row (both come from the same hash family).
_RANK_SALT = 0x5A3F1C2B


def row_ranks(rows: np.ndarray, seed: int) -> np.ndarray:
    """Sample ranks of global row indices: uniforms in [0, 1), independent of the validation split.

    The rows of a random sample of fraction ``f`` are those ranked below ``f``: nested across
    fractions and independent of chunking, since a rank depends only on the row index and seed.

    Parameters
    ----------
    rows : numpy.ndarray of int, shape (m,)
    seed : int

    Returns
    -------
    numpy.ndarray of float64, shape (m,)
    """
    return row_uniforms(rows, seed ^ _RANK_SALT)
