"""Streaming means and variances (Chan et al. pairwise merge) and the standardisation they define."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..sources import Block


@dataclass(frozen=True)
class ColumnMoments:
    """Count, mean, sum of squared deviations, minimum and maximum of each column.

    Attributes
    ----------
    n : int
    mean : numpy.ndarray, shape (c,)
    m2 : numpy.ndarray, shape (c,)
        Sum of squared deviations from ``mean``.
    minimum, maximum : numpy.ndarray, shape (c,)
        Smallest and largest values (``+inf`` and ``-inf`` of no rows), so that they
        combine by min and max as the other fields add.
    """

    n: int
    mean: np.ndarray
    m2: np.ndarray
    minimum: np.ndarray
    maximum: np.ndarray

    @classmethod
    def of(cls, rows: np.ndarray) -> ColumnMoments:
        """Moments of a block of rows, shape (m, c), computed in float64."""
        rows = np.asarray(rows, dtype=np.float64)
        if len(rows) == 0:
            zeros, inf = np.zeros(rows.shape[1]), np.full(rows.shape[1], np.inf)
            return cls(0, zeros, zeros.copy(), inf, -inf)
        mean = rows.mean(axis=0)
        return cls(len(rows), mean, ((rows - mean) ** 2).sum(axis=0), rows.min(axis=0), rows.max(axis=0))

    def __add__(self, other: ColumnMoments) -> ColumnMoments:
        if other.n == 0:
            return self
        if self.n == 0:
            return other
        n = self.n + other.n
        delta = other.mean - self.mean
        mean = self.mean + delta * (other.n / n)
        m2 = self.m2 + other.m2 + delta**2 * (self.n * other.n / n)
        return ColumnMoments(n, mean, m2, np.minimum(self.minimum, other.minimum), np.maximum(self.maximum, other.maximum))

    @property
    def std(self) -> np.ndarray:
        """Population standard deviation, shape (c,)."""
        return np.sqrt(self.m2 / max(self.n, 1))


@dataclass(frozen=True)
class DataMoments:
    """What the first pass learns: moments of inputs and targets of the training rows.

    Attributes
    ----------
    x, y : ColumnMoments
    n_validation : int
        Rows held out for validation.
    dropped : int
        Rows skipped because they held NaN or Inf.
    anchor_rows : numpy.ndarray of int64, shape (r,)
        Global indices of the training rows collected for initialisation.
    anchor_x : numpy.ndarray, shape (r, d)
        Those rows' inputs, in the stored units.
    pooled : tuple of Block
        Rows kept in memory for later passes, per block in row order (empty once a backend
        has taken them into its pool).
    pooled_rows, pooled_bytes : int
        Rows and bytes of the pool.
    """

    x: ColumnMoments
    y: ColumnMoments
    n_validation: int
    dropped: int
    anchor_rows: np.ndarray
    anchor_x: np.ndarray
    pooled: tuple[Block, ...] = ()
    pooled_rows: int = 0
    pooled_bytes: int = 0

    def __add__(self, other: DataMoments) -> DataMoments:
        return DataMoments(
            self.x + other.x,
            self.y + other.y,
            self.n_validation + other.n_validation,
            self.dropped + other.dropped,
            np.concatenate([self.anchor_rows, other.anchor_rows]),
            np.concatenate([self.anchor_x, other.anchor_x]),
            self.pooled + other.pooled,
            self.pooled_rows + other.pooled_rows,
            self.pooled_bytes + other.pooled_bytes,
        )

    def anchors(self) -> np.ndarray:
        """Anchor rows ordered by global index, whatever order partitions were added in; shape (r, d)."""
        return self.anchor_x[np.argsort(self.anchor_rows, kind="stable")]


def safe_scale(moments: ColumnMoments) -> np.ndarray:
    """Column scales for standardisation; constant columns keep scale 1.

    A column counts as constant when its spread is at rounding level of its mean, so
    that a float32 column of one repeated value does not get a scale of 1e-8.
    """
    std = moments.std
    tiny = 1e-12 * np.maximum(np.abs(moments.mean), 1.0)
    return np.where(std > tiny, std, 1.0)


@dataclass(frozen=True)
class Standardizer:
    """Affine maps ``x -> (x - x_mean) / x_scale`` and the same for targets, and the training range.

    Attributes
    ----------
    x_mean, x_scale : numpy.ndarray, shape (d,)
    y_mean, y_scale : numpy.ndarray, shape (k,)
    x_min, x_max : numpy.ndarray, shape (d,), or None
        Smallest and largest input of the training rows, against which predictions check
        their inputs; ``None`` when unknown (a model file written before they were kept).
    """

    x_mean: np.ndarray
    x_scale: np.ndarray
    y_mean: np.ndarray
    y_scale: np.ndarray
    x_min: np.ndarray | None = None
    x_max: np.ndarray | None = None

    @classmethod
    def from_moments(cls, moments: DataMoments) -> Standardizer:
        """The standardisation of the training rows: their column means, scales from :func:`safe_scale`, and range."""
        x = moments.x
        return cls(x.mean, safe_scale(x), moments.y.mean, safe_scale(moments.y), x.minimum, x.maximum)

    def inputs(self, x: np.ndarray) -> np.ndarray:
        """Standardised inputs, float64, shape (m, d)."""
        return (np.asarray(x, dtype=np.float64) - self.x_mean) / self.x_scale

    def design(self, x: np.ndarray) -> np.ndarray:
        """Standardised inputs with the bias column appended, ``x~ = [(x - x_mean) / x_scale, 1]``: float64, shape (m, d + 1).

        Written in place into one array: :meth:`inputs` and a separate append make four
        float64 copies, which cost four times as much as the matrix products of a
        matrix-free product pass on float32 rows (d = 128, h = 32).
        """
        m, d = x.shape
        out = np.empty((m, d + 1))
        inputs = out[:, :d]
        np.subtract(x, self.x_mean, out=inputs)
        np.divide(inputs, self.x_scale, out=inputs)
        out[:, d] = 1.0
        return out

    def targets(self, y: np.ndarray) -> np.ndarray:
        """Standardised targets, float64, shape (m, k)."""
        return (np.asarray(y, dtype=np.float64) - self.y_mean) / self.y_scale

    def untargets(self, y_std: np.ndarray) -> np.ndarray:
        """Targets back in their own units, shape (m, k)."""
        return y_std * self.y_scale + self.y_mean
