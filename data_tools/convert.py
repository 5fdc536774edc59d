"""CSV / Parquet to HDF5 or Zarr, streaming in blocks of rows.

The output holds ``X`` (the feature columns) and, when target columns are named, ``y``
(1-D for one target), ready for ``streamls.fit("out.h5:/X", "out.h5:/y")``. It is written
through :class:`streamls.sources.sinks.OutputFile`, under a temporary name renamed only
when every row is in, so a failed or interrupted conversion leaves nothing that looks
finished.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from streamls.errors import parameter_error
from streamls.sources.sinks import OutputFile

from .errors import DataToolsError
from .readers import BAD_ROW_POLICIES, DEFAULT_BLOCK_ROWS, BadRow, TableReader, open_table, resolve_columns
from .writing import ArrayAppender, default_chunk_rows, progress_bar

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
    """Convert a CSV (plain or gzip) or Parquet file to an HDF5 file or Zarr group.

    Parameters
    ----------
    source : path
        CSV, gzipped CSV (told by content) or Parquet (needs pyarrow).
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
        Rows per stored chunk (default: about 4 MiB of ``X``).
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
    chunk = chunk_rows or default_chunk_rows(len(features) * np.dtype(dtype).itemsize)
    x_out = ArrayAppender(out, "X", len(features), dtype, chunk, compression)
    y_out = ArrayAppender(out, "y", len(targets) if len(targets) > 1 else None, dtype, chunk, compression) if targets else None
    skipped, examples = 0, []
    with progress_bar(progress, reader.n_rows_hint, f"convert {reader.path}") as bar:
        for block in reader.blocks(features + targets):
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
