"""Inputs and targets read together, in storage-aligned row blocks, with a prefetch thread."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Generator, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

from ..concurrency import ordered_map
from ..errors import ConfigError, NonFiniteDataError, ShapeMismatchError, SourceFormatError, closest, parameter_error
from .base import Source
from .spec import open_source

T = TypeVar("T")

NAN_POLICIES = ("error", "drop")
#: Default rows per block when the caller names none: large enough for fast I/O and BLAS,
#: small enough that a block of float64 rows stays far below memory.
DEFAULT_BLOCK_ROWS = 65536
#: For wide rows the default holds at most this many bytes of float64 inputs (with the bias
#: column), but never fewer than :data:`MIN_DEFAULT_BLOCK_ROWS` rows: the element-wise work
#: and the skinny products of a pass run faster on blocks that stay in cache, and every pass
#: holds a few float64 copies of a block per thread. At d = 128 (2 cores) a matrix-free
#: product took 1.11 us per row in 8192-row blocks, 1.42 in 16384 and 4.13 in 65536, and the
#: run's peak RSS fell from 1.11 GB with 65536-row blocks to 0.83 GB with 16384.
DEFAULT_BLOCK_BYTES = 8 << 20
MIN_DEFAULT_BLOCK_ROWS = 4096


def default_block_rows(n_features: int) -> int:
    """Rows per block when the caller names none: :data:`DEFAULT_BLOCK_ROWS`, fewer for rows over 15 columns."""
    return int(min(DEFAULT_BLOCK_ROWS, max(MIN_DEFAULT_BLOCK_ROWS, DEFAULT_BLOCK_BYTES // (8 * (n_features + 1)))))


@dataclass(frozen=True)
class Block:
    """Rows of a dataset: ``[start, start + len(x))``, or the rows named by ``index``.

    Attributes
    ----------
    start : int
        Absolute index of the first row (of the first stored row the block was taken from,
        when ``index`` is given).
    x : numpy.ndarray, shape (m, d)
        Inputs in the stored dtype.
    y : numpy.ndarray, shape (m, k)
        Targets in the stored dtype.
    keep : numpy.ndarray of bool, shape (m,), or None
        Rows to use; ``None`` means all. Rows holding NaN or Inf are not kept under
        ``nan_policy="drop"``.
    index : numpy.ndarray of int64, shape (m,), or None
        Global indices of rows that are not contiguous (a sample); ``None``: contiguous.
    ranks : numpy.ndarray of float64, shape (m,), or None
        Sample ranks of the rows, for a block of pooled rows; ``None`` otherwise.
    """

    start: int
    x: np.ndarray
    y: np.ndarray
    keep: np.ndarray | None = None
    index: np.ndarray | None = None
    ranks: np.ndarray | None = None

    @property
    def n_rows(self) -> int:
        """Rows in the block, kept or not."""
        return len(self.x)

    @property
    def stop(self) -> int:
        """Absolute index one past the last row (of a contiguous block)."""
        return self.start + len(self.x)

    @property
    def rows(self) -> np.ndarray:
        """Global indices of the block's rows, shape (m,)."""
        return np.arange(self.start, self.stop) if self.index is None else self.index

    @property
    def dropped(self) -> int:
        """Rows of the block that are not kept (0 when ``keep`` is None)."""
        return 0 if self.keep is None else int(len(self.keep) - self.keep.sum())


def round_block_rows(requested: int, chunk_rows: int) -> int:
    """Round a block size up to whole stored chunks of ``chunk_rows`` rows, so no chunk is read twice."""
    return max(1, -(-requested // chunk_rows)) * chunk_rows


def renamed_block_rows(owner: str, block_rows: int | None, chunk_rows: int | None) -> int | None:
    """The rows per block of a call that may use ``chunk_rows``, the deprecated name of ``block_rows``.

    ``chunk_rows`` meant the rows per block read in :func:`streamls.fit` and
    :meth:`~streamls.TwoLayerModel.predict_to`; it now names only a source's stored chunk
    (:attr:`Source.chunk_rows`), which blocks are rounded up to.

    Parameters
    ----------
    owner : str
        The function or class taking both, for the messages.
    block_rows, chunk_rows : int or None
        The values given under each name.

    Returns
    -------
    int or None
        The one that was given; with ``chunk_rows``, after a :class:`DeprecationWarning`
        naming the call of ``owner``.

    Raises
    ------
    ConfigError
        When both are given.
    """
    if chunk_rows is None:
        return block_rows
    if block_rows is not None:
        raise ConfigError(f"{owner}: pass block_rows only; chunk_rows is its deprecated name")
    message = f"{owner}(chunk_rows=...) is deprecated; pass block_rows=..., the rows per block read"
    warnings.warn(f"{message} (chunk_rows now names the stored chunk)", DeprecationWarning, stacklevel=3)
    return chunk_rows


def prefetched(tasks: Iterable[Callable[[], T]], enabled: bool = True) -> Generator[T, None, None]:
    """Run ``tasks`` in order, computing the next one in a background thread.

    One reader thread suffices: h5py serialises its calls, and the consumer's BLAS work
    releases the GIL, so reading block ``i + 1`` overlaps computing on block ``i``.
    """
    if not enabled:
        return (task() for task in tasks)
    return ordered_map(_call, tasks, workers=1, ahead=2, name="streamls-prefetch")


def _call(task: Callable[[], T]) -> T:
    return task()


class Dataset:
    """Rows of inputs ``x`` and targets ``y`` over one or two sources.

    Parameters
    ----------
    x : array_like, Source or data spec
        Inputs, shape (n, d); with ``y=None`` a table holding the targets too.
    y : array_like, Source, data spec or None
        Targets, shape (n,) or (n, k).
    target_cols : int, str or sequence of int and str, optional
        With ``y=None``: the target column(s) of ``x``, by index (negative counts from the
        end) or, where the source has column names (Parquet, a CSV header, files written by
        ``data_tools convert``), by name. Default: the last column.
    nan_policy : {"error", "drop"}
        What a row holding NaN or Inf does: raise :class:`NonFiniteDataError`, or get skipped.
    block_rows : int, optional
        Rows per block, rounded up to whole stored chunks of ``x``.
    """

    def __init__(
        self,
        x: Any,
        y: Any = None,
        *,
        target_cols: int | str | Sequence[int | str] | None = None,
        nan_policy: str = "error",
        block_rows: int | None = None,
    ) -> None:
        if nan_policy not in NAN_POLICIES:
            raise parameter_error("Dataset", "nan_policy", f"one of {NAN_POLICIES}", nan_policy)
        if block_rows is not None and (not isinstance(block_rows, (int, np.integer)) or block_rows < 1):
            raise parameter_error("Dataset", "block_rows", "an int >= 1 or None", block_rows)
        self.x_source: Source = open_source(x, name="X")
        self.y_source: Source | None = None if y is None else open_source(y, name="y")
        self.nan_policy = nan_policy
        if len(self.x_source.shape) != 2 and (self.y_source is not None or target_cols is not None):
            raise SourceFormatError(
                f"{self.x_source.name}: inputs must be a 2-D array (n_rows, n_features), "
                f"found shape {self.x_source.shape}"
            )
        if self.y_source is None:
            self.feature_cols, self.target_cols = _split_columns(self.x_source, target_cols)
        else:
            if target_cols is not None:
                raise ConfigError("Pass either y or target_cols, not both: target_cols picks targets out of X when y is None.")
            self.feature_cols, self.target_cols = None, None
            if self.y_source.n_rows != self.x_source.n_rows:
                raise ShapeMismatchError(
                    f"X and y row counts differ: {self.x_source.name} has {self.x_source.n_rows} rows, "
                    f"{self.y_source.name} has {self.y_source.n_rows}"
                )
        if self.n_rows < 1:
            raise SourceFormatError(f"{self.x_source.name}: holds 0 rows; training needs at least 1")
        if self.n_features < 1:
            raise SourceFormatError(f"{self.x_source.name}: holds no input columns")
        chunk = self.x_source.chunk_rows
        self.block_rows = round_block_rows(block_rows or default_block_rows(self.n_features), chunk)

    @property
    def name(self) -> str:
        """The source's name, or ``"X name | y name"`` with separate inputs and targets; used in messages."""
        return self.x_source.name if self.y_source is None else f"{self.x_source.name} | {self.y_source.name}"

    @property
    def feature_names(self) -> tuple[str, ...] | None:
        """Names of the d input columns, where the source has names."""
        names = self.x_source.column_names
        if names is None or self.feature_cols is None:
            return names
        return tuple(names[c] for c in self.feature_cols)

    @property
    def target_names(self) -> tuple[str, ...] | None:
        """Names of the k target columns, where the source has names."""
        if self.y_source is not None:
            return self.y_source.column_names
        names = self.x_source.column_names
        assert self.target_cols is not None
        return None if names is None else tuple(names[c] for c in self.target_cols)

    @property
    def n_rows(self) -> int:
        """Rows n, including any that the NaN policy drops."""
        return self.x_source.n_rows

    @property
    def n_features(self) -> int:
        """Input columns d."""
        return self.x_source.n_cols if self.feature_cols is None else len(self.feature_cols)

    @property
    def n_targets(self) -> int:
        """Target columns k (1 for a 1-D target)."""
        if self.y_source is not None:
            return self.y_source.n_cols
        assert self.target_cols is not None
        return len(self.target_cols)

    @property
    def target_is_1d(self) -> bool:
        """Whether predictions should be returned as a 1-D array."""
        if self.y_source is not None:
            return len(self.y_source.shape) == 1
        return self.n_targets == 1

    def block_ranges(self, start: int = 0, stop: int | None = None) -> list[tuple[int, int]]:
        """Storage-aligned ``(start, stop)`` row ranges covering ``[start, stop)``."""
        stop = self.n_rows if stop is None else stop
        step = self.block_rows
        first = (start // step) * step
        return [(max(a, start), min(a + step, stop)) for a in range(first, stop, step)]

    def read_block(self, start: int, stop: int) -> Block:
        """Read rows ``[start, stop)`` and check them against the NaN policy."""
        raw = self.x_source.read(start, stop)
        if self.y_source is None:
            x, y = raw[:, self.feature_cols], raw[:, self.target_cols]
        else:
            x, y = raw, self.y_source.read(start, stop)
        return Block(start, x, y, self._finite_rows(x, y, start, stop))

    def blocks(self, start: int = 0, stop: int | None = None, prefetch: bool = True) -> Generator[Block, None, None]:
        """Yield the blocks of ``[start, stop)`` in order, reading ahead in a thread."""
        tasks = (lambda a=a, b=b: self.read_block(a, b) for a, b in self.block_ranges(start, stop))
        return prefetched(tasks, enabled=prefetch)

    def check_partitionable(self, backend: str) -> None:
        """Raise :class:`SourceFormatError` if ``backend`` cannot split these rows among processes (a CSV file)."""
        for source in (self.x_source, self.y_source):
            if source is not None:
                source.check_partitionable(backend)

    def close(self) -> None:
        """Close the sources' file handles; they reopen on the next read."""
        self.x_source.close()
        if self.y_source is not None:
            self.y_source.close()

    def _finite_rows(self, x: np.ndarray, y: np.ndarray, start: int, stop: int) -> np.ndarray | None:
        if x.dtype.kind != "f" and y.dtype.kind != "f":
            return None  # integer and bool columns cannot hold NaN or Inf
        finite = np.isfinite(x).all(axis=1) & np.isfinite(y).all(axis=1)
        if finite.all():
            return None
        if self.nan_policy == "drop":
            return finite
        row = int(np.argmin(finite))
        in_x = not np.isfinite(x[row]).all()
        values = x[row] if in_x else y[row]
        col = int(np.argmin(np.isfinite(values)))
        source = self.x_source if in_x or self.y_source is None else self.y_source
        table_cols = self.feature_cols if in_x else self.target_cols
        stored = col if table_cols is None else table_cols[col]  # the column's number in its source
        names = source.column_names
        named = f" ({names[stored]!r})" if names else ""
        which = self.x_source.name if in_x else self._y_name
        raise NonFiniteDataError(
            f"{which}: rows {start}-{stop - 1}: row {start + row}, column {stored}{named} holds {values[col]} "
            f"(nan_policy='error'; clean the data or pass nan_policy='drop' to skip such rows)"
        )

    @property
    def _y_name(self) -> str:
        if self.y_source is not None:
            return self.y_source.name
        return f"{self.x_source.name} target columns {self.target_cols}"


def _split_columns(table: Source, target_cols: int | str | Sequence[int | str] | None) -> tuple[list[int], list[int]]:
    """Feature and target column indices of a table whose targets are some of its columns."""
    if len(table.shape) != 2 or table.n_cols < 2:
        raise SourceFormatError(
            f"{table.name}: with y=None the table needs at least 2 columns (inputs and a target), "
            f"found shape {table.shape}"
        )
    n_cols = table.n_cols
    wanted: list[int | str]
    if target_cols is None:
        wanted = [-1]
    elif isinstance(target_cols, (int, np.integer, str)):
        wanted = [target_cols]
    else:
        wanted = list(target_cols)
    targets = [column_index(table, col, "target_cols") for col in wanted]
    if len(set(targets)) != len(targets) or len(targets) >= n_cols:
        raise parameter_error("fit", "target_cols", "distinct columns that leave at least one input", target_cols)
    features = [c for c in range(n_cols) if c not in targets]
    return features, targets


def column_index(table: Source, column: int | str, parameter: str) -> int:
    """The index of a column given by index (negative counts from the end) or, where the source has names, by name.

    Raises
    ------
    ConfigError
        For an index out of range, a name the source does not have, or a name given to a
        source without column names.
    """
    n_cols = table.n_cols
    if isinstance(column, str):
        names = table.column_names
        if names is None:
            raise ConfigError(
                f"{table.name}: {parameter} names column {column!r}, but this source has no column names "
                f"(an array, or a CSV file without a header); give column indices"
            )
        if column not in names:
            guess = closest(column, names)
            hint = f"; did you mean {guess!r}?" if guess else ""
            raise ConfigError(f"{table.name}: {parameter}: no column named {column!r}; the columns are {list(names)}{hint}")
        return names.index(column)
    if isinstance(column, bool) or not isinstance(column, (int, np.integer)) or not -n_cols <= int(column) < n_cols:
        raise parameter_error("fit", parameter, f"column names or indices in [-{n_cols}, {n_cols})", column)
    return int(column) % n_cols
