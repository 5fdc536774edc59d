"""Train / test / validation split by a hash of the global row index, streaming.

Row ``i`` goes to test when ``u_i < test``, to validation when
``test <= u_i < test + validation`` and to train otherwise, where
``u_i = streamls.split.row_uniforms(i, seed)``. So a row's part depends only on its
index and the seed: not on block sizes, chunking, or the order blocks are read.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from dataclasses import dataclass

import numpy as np

from streamls.errors import parameter_error
from streamls.sources import open_source
from streamls.sources.base import Source
from streamls.sources.dataset import round_block_rows
from streamls.sources.sinks import OutputFile
from streamls.sources.spec import split_spec
from streamls.split import row_uniforms

from .errors import DataToolsError
from .inspection import array_specs
from .writing import ArrayAppender, fitted_chunk_rows, progress_bar

logger = logging.getLogger(__name__)

PARTS = ("train", "test", "validation")
FORMATS = {"hdf5": ".h5", "zarr": ".zarr"}
DEFAULT_BLOCK_ROWS = 65536


@dataclass(frozen=True)
class SplitReport:
    """Paths written and rows in each part (``{"train": ..., "test": ...[, "validation": ...]}``)."""

    outputs: dict[str, str]
    rows: dict[str, int]


def assign_parts(start: int, stop: int, test: float, validation: float, seed: int) -> np.ndarray:
    """Part index (0 train, 1 test, 2 validation) of rows ``[start, stop)``, shape (stop - start,)."""
    u = row_uniforms(np.arange(start, stop), seed)
    return np.where(u < test, 1, np.where(u < test + validation, 2, 0)).astype(np.int8)


def _check_fractions(test: float, validation: float) -> None:
    if not 0.0 < test < 1.0:
        raise parameter_error("split", "test", "a float in the range (0, 1)", test)
    if not 0.0 <= validation < 1.0 - test:
        raise parameter_error("split", "validation", f"a float in the range [0, {1.0 - test:g})", validation)


def _open_all(path: str, arrays: list[str] | None) -> list[Source]:
    """The arrays to split: the named ones, or every top-level array of the file; equal row counts."""
    specs = [f"{path}:{name}" for name in arrays] if arrays else [
        s for s in array_specs(path) if "/" not in (split_spec(s)[1] or "").strip("/")
    ]
    sources = [open_source(spec) for spec in specs]
    counts = {s.name: s.n_rows for s in sources}
    if len(set(counts.values())) != 1:
        raise DataToolsError(f"{path}: the arrays to split have different row counts {counts}; name them with arrays=")
    return sources


def split(
    source: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    test: float = 0.2,
    validation: float = 0.0,
    seed: int = 0,
    arrays: list[str] | None = None,
    output_format: str | None = None,
    block_rows: int = DEFAULT_BLOCK_ROWS,
    compression: str | None = None,
    overwrite: bool = False,
    progress: bool | None = None,
) -> SplitReport:
    """Split the rows of an HDF5 file, Zarr group or ``.npy`` file into part files.

    Parameters
    ----------
    source : path
        The file; every top-level array (for example ``X`` and ``y``) is split alike.
    out_dir : path
        Created if missing; receives ``train``, ``test`` (and ``validation``) files holding
        arrays of the same names.
    test, validation : float
        Expected shares of rows.
    seed : int
    arrays : list of str, optional
        Names of the arrays to split (default: all top-level arrays).
    output_format : {"hdf5", "zarr"}, optional
        Default: the input's (HDF5 for ``.npy``).
    block_rows : int
        Rows read at a time, rounded up to whole stored chunks.
    compression : str, optional
    overwrite, progress
        As for :func:`data_tools.convert`.
    """
    _check_fractions(test, validation)
    source, out_dir = os.fspath(source).rstrip("/"), os.fspath(out_dir)
    sources = _open_all(source, arrays)
    kind = output_format or ("zarr" if source.lower().endswith(".zarr") else "hdf5")
    if kind not in FORMATS:
        raise parameter_error("split", "output_format", f"one of {tuple(FORMATS)}", kind)
    parts = PARTS if validation > 0 else PARTS[:2]
    os.makedirs(out_dir, exist_ok=True)
    outputs = {part: os.path.join(out_dir, part + FORMATS[kind]) for part in parts}
    n = sources[0].n_rows
    step = round_block_rows(block_rows, sources[0].chunk_rows)
    try:
        with contextlib.ExitStack() as stack:
            files = [stack.enter_context(OutputFile(outputs[part], overwrite=overwrite)) for part in parts]
            writers = [[_appender(f, s, compression) for s in sources] for f in files]
            with progress_bar(progress, n, f"split {source}") as bar:
                for start in range(0, n, step):
                    stop = min(start + step, n)
                    where = assign_parts(start, stop, test, validation, seed)
                    for s, source_array in enumerate(sources):
                        block = source_array.read(start, stop)
                        for p in range(len(parts)):
                            writers[p][s].append(block[where == p])
                    bar.update(stop - start)
            for part, out, row_writers in zip(parts, files, writers):
                out.attrs["data_tools"] = json.dumps(
                    {"tool": "split", "source": os.path.abspath(source), "part": part, "test": test,
                     "validation": validation, "seed": seed, "rows": row_writers[0].n_rows}
                )
    finally:
        for s in sources:
            s.close()
    rows = {part: w[0].n_rows for part, w in zip(parts, writers)}
    logger.info("%s: split %d rows into %s", source, n, rows)
    return SplitReport(outputs, rows)


def _appender(out: OutputFile, source: Source, compression: str | None) -> ArrayAppender:
    """An appendable copy of ``source``'s layout (1-D stays 1-D) in ``out``."""
    name = (split_spec(source.name)[1] or "X").strip("/")
    n_cols = None if len(source.shape) == 1 else source.n_cols
    # A part holds fewer rows than the source, so the source's row count caps its chunks too.
    stored = source.chunk_rows if source.chunk_rows > 1 else None
    chunk = fitted_chunk_rows(source.n_cols * source.dtype.itemsize, source.n_rows, stored)
    return ArrayAppender(out, name, n_cols, source.dtype, chunk, compression)
