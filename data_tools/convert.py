"""CSV / Parquet (or an HDF5, Zarr or ``.npy`` array, to re-chunk it) to HDF5 or Zarr, streaming in blocks of rows.

The output holds ``X`` (the feature columns) and, when target columns are named, ``y``
(1-D for one target), ready for ``streamls.fit("out.h5:/X", "out.h5:/y")``. It is written
through :class:`streamls.sources.sinks.OutputFile`, under a temporary name renamed only
when every row is in, so a failed or interrupted conversion leaves nothing that looks
finished.

Stored chunks are sized to the data: about 4 MiB of rows, but never more rows than the
table has, as an HDF5 chunk takes its full size on disk however few rows it holds. The row
count is known up front for Parquet and arrays; for CSV, reading ahead one block tells
whether the table ends within the first.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import h5py
import numpy as np

from streamls.errors import parameter_error
from streamls.sources import open_source
from streamls.sources.dataset import round_block_rows
from streamls.sources.sinks import OutputFile
from streamls.sources.spec import split_spec

from .errors import DataToolsError
from .readers import BAD_ROW_POLICIES, DEFAULT_BLOCK_ROWS, BadRow, RowBlock, TableReader, open_table, resolve_columns
from .writing import ArrayAppender, fitted_chunk_rows, progress_bar

logger = logging.getLogger(__name__)

#: Skipped lines quoted in the report and the log; the rest are only counted.
REPORTED_BAD_ROWS = 5


@dataclass(frozen=True)
class ConvertReport:
    """What :func:`convert` wrote.

    Attributes
    ----------
    output : str
    n_rows : int
    feature_names, target_names : tuple of str
    skipped_rows : int
        Malformed lines skipped (``on_bad_row="skip"``).
    examples : tuple of BadRow
        The first few skipped lines.
    x_spec, y_spec : str or None
        Data specs of the written arrays, for ``streamls.fit``.
    """

    output: str
    n_rows: int
    feature_names: tuple[str, ...]
    target_names: tuple[str, ...]
    skipped_rows: int
    examples: tuple[BadRow, ...]
    x_spec: str
    y_spec: str | None


def array_spec(path: str, kind: str, name: str) -> str:
    """``"out.h5:/X"`` or ``"out.zarr:X"``."""
    return f"{path}:/{name}" if kind == "hdf5" else f"{path}:{name}"


class ArrayTable:
    """An HDF5, Zarr or ``.npy`` array read as a table (columns named by index), so that convert re-chunks it.

    Parameters
    ----------
    spec : str
        Data spec of the array (``data.h5:/X``, ``data.zarr:X``, ``data.npy``); a 1-D array is one column.
    block_rows : int
        Rows per block, rounded up to whole stored chunks.
    """

    has_header = False

    def __init__(self, spec: str, block_rows: int) -> None:
        self.source = open_source(spec)
        self.path = self.source.name
        self.names = tuple(str(j) for j in range(self.source.n_cols))
        self.n_rows_hint: int | None = self.source.n_rows
        self.block_rows = round_block_rows(block_rows, self.source.chunk_rows)

    def blocks(self, usecols: Sequence[int]) -> Iterator[RowBlock]:
        """Yield the ``usecols`` columns of every row, block by block, as float64."""
        columns, n = list(usecols), self.source.n_rows
        for start in range(0, n, self.block_rows):
            yield RowBlock(self.source.read(start, min(start + self.block_rows, n))[:, columns].astype(np.float64))

    def close(self) -> None:
        """Close the array's file."""
        self.source.close()


def names_an_array(spec: str) -> bool:
    """Whether ``spec`` is a data spec of an HDF5, Zarr or ``.npy`` array rather than a CSV or Parquet file."""
    path, inner = split_spec(spec)
    if inner is not None and os.path.exists(path):
        return True
    return os.path.isdir(spec) or spec.lower().endswith(".npy") or (os.path.isfile(spec) and h5py.is_hdf5(spec))


def convert(
    source: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    target_cols: Sequence[str | int] = (),
    columns: Sequence[str | int] | None = None,
    header: bool | None = None,
    delimiter: str = ",",
    dtype: str = "float32",
    chunk_rows: int | None = None,
    compression: str | None = None,
    on_bad_row: str = "error",
    block_rows: int = DEFAULT_BLOCK_ROWS,
    overwrite: bool = False,
    progress: bool | None = None,
) -> ConvertReport:
    """Convert a CSV (plain or gzip) or Parquet file, or re-chunk an array, to an HDF5 file or Zarr group.

    Parameters
    ----------
    source : path
        CSV, gzipped CSV (told by content), Parquet (needs pyarrow), or the data spec of an
        HDF5, Zarr or ``.npy`` array (columns named ``"0"``, ``"1"``, ...; ``header`` and
        ``delimiter`` do not apply).
    output : path
        ``.h5``/``.hdf5`` or ``.zarr``.
    target_cols : sequence of str or int
        Target columns, by name or index (negative counts from the end); written as ``y``.
    columns : sequence of str or int, optional
        Columns to keep (default: all); target columns need not be listed.
    header : bool or None
        Whether the CSV's first line is a header; ``None`` guesses.
    delimiter : str
    dtype : str
        Stored dtype of ``X`` and ``y`` (float32 or float64).
    chunk_rows : int, optional
        Rows per stored chunk (default: about 4 MiB of ``X``); at most the table's row count.
    compression : str, optional
        ``none``/``gzip``/``lzf`` (HDF5) or ``none``/``zstd``/``blosc-lz4`` (Zarr).
    on_bad_row : {"error", "skip"}
    block_rows : int
        Lines parsed per block; memory grows with it, not with the file.
    overwrite : bool
    progress : bool or None
        Show a progress bar; ``None``: when stderr is a terminal.

    Raises
    ------
    CSVFormatError
        A malformed line (with its number and text), or no data rows.
    DataToolsError, OutputExistsError, ConfigError
    """
    _check_options(dtype, on_bad_row, block_rows, chunk_rows)
    source, output = os.fspath(source), os.fspath(output).rstrip("/")
    if names_an_array(source):
        reader: TableReader = ArrayTable(source, block_rows)
    else:
        reader = open_table(source, header, delimiter, block_rows, on_bad_row)
    try:
        targets = resolve_columns(target_cols, reader.names, source)
        kept = resolve_columns(columns, reader.names, source) if columns is not None else range(len(reader.names))
        features = [j for j in kept if j not in targets]
        if not features:
            raise DataToolsError(f"{source}: no feature columns left after taking the targets {list(target_cols)}")
        with OutputFile(output, overwrite=overwrite) as out:
            report = _write(reader, out, features, targets, dtype, chunk_rows, compression, progress)
            out.attrs["data_tools"] = json.dumps(
                {"tool": "convert", "source": os.path.abspath(source), "features": report.feature_names,
                 "targets": report.target_names, "skipped_rows": report.skipped_rows}
            )
    finally:
        reader.close()
    logger.info("%s: wrote %d rows to %s", source, report.n_rows, output)
    if report.skipped_rows:
        logger.warning(
            "%s: skipped %d malformed lines; first: %s",
            source, report.skipped_rows, "; ".join(f"line {b.line}: {b.problem}" for b in report.examples),
        )
    return report


def _check_options(dtype: str, on_bad_row: str, block_rows: int, chunk_rows: int | None) -> None:
    if np.dtype(dtype).kind != "f":
        raise parameter_error("convert", "dtype", "a floating dtype such as 'float32' or 'float64'", dtype)
    if on_bad_row not in BAD_ROW_POLICIES:
        raise parameter_error("convert", "on_bad_row", f"one of {BAD_ROW_POLICIES}", on_bad_row)
    if block_rows < 1:
        raise parameter_error("convert", "block_rows", "an int in the range [1, inf)", block_rows)
    if chunk_rows is not None and chunk_rows < 1:
        raise parameter_error("convert", "chunk_rows", "an int in the range [1, inf)", chunk_rows)


def _write(
    reader: TableReader,
    out: OutputFile,
    features: list[int],
    targets: list[int],
    dtype: str,
    chunk_rows: int | None,
    compression: str | None,
    progress: bool | None,
) -> ConvertReport:
    names = reader.names
    blocks = reader.blocks(features + targets)
    # Two blocks in hand tell whether the table ends within the first, when the reader cannot say.
    head = list(itertools.islice(blocks, 2))
    n_rows = sum(len(b.values) for b in head) if len(head) < 2 else reader.n_rows_hint
    chunk = fitted_chunk_rows(len(features) * np.dtype(dtype).itemsize, n_rows, chunk_rows)
    x_out = ArrayAppender(out, "X", len(features), dtype, chunk, compression)
    y_out = ArrayAppender(out, "y", len(targets) if len(targets) > 1 else None, dtype, chunk, compression) if targets else None
    skipped, examples = 0, []
    with progress_bar(progress, reader.n_rows_hint, f"convert {reader.path}") as bar:
        for block in itertools.chain(_emptied(head), blocks):
            x_out.append(block.values[:, : len(features)])
            if y_out is not None:
                y_out.append(block.values[:, len(features) :])
            skipped += len(block.bad)
            examples.extend(block.bad[: REPORTED_BAD_ROWS - len(examples)])
            bar.update(len(block.values))
    return ConvertReport(
        output=out.path,
        n_rows=x_out.n_rows,
        feature_names=tuple(names[j] for j in features),
        target_names=tuple(names[j] for j in targets),
        skipped_rows=skipped,
        examples=tuple(examples),
        x_spec=array_spec(out.path, out.kind, "X"),
        y_spec=array_spec(out.path, out.kind, "y") if targets else None,
    )


def _emptied(blocks: list[RowBlock]) -> Iterator[RowBlock]:
    """Yield and drop the blocks of a list in order, so each is freed once written."""
    while blocks:
        yield blocks.pop(0)
