"""Synthetic regression data from a teacher network, written in parallel at disk speed.

The rows are those of :mod:`streamls.synthetic`, made in fixed generation units of
:data:`~streamls.synthetic.UNIT_ROWS` rows each seeded by ``(seed, unit)``. The block size
only groups whole units into one write and the worker count only decides who computes
which unit, so the data are identical whatever either is. Teacher weights are saved in
the output (``teacher/W1``, ``teacher/b1``, ``teacher/W2``, ``teacher/b2``) beside ``X`` and
``y``, with the generation settings as a JSON attribute ``data_tools``.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict

import h5py
import numpy as np
import zarr
from threadpoolctl import threadpool_limits

from streamls.concurrency import available_threads, ordered_map
from streamls.errors import parameter_error
from streamls.sources import open_source
from streamls.sources.sinks import OutputFile, output_kind
from streamls.synthetic import UNIT_ROWS, SynthSpec, Teacher, generate_rows

from .errors import DataToolsError
from .writing import default_chunk_rows, progress_bar

logger = logging.getLogger(__name__)

DEFAULT_BLOCK_ROWS = 16 * UNIT_ROWS


def synth(
    output: str | os.PathLike[str],
    spec: SynthSpec,
    *,
    block_rows: int = DEFAULT_BLOCK_ROWS,
    chunk_rows: int | None = None,
    compression: str | None = None,
    workers: int | None = None,
    overwrite: bool = False,
    progress: bool | None = None,
) -> Teacher:
    """Write ``spec``'s dataset (``X``, ``y`` and the teacher) to an HDF5 file or Zarr group.

    Parameters
    ----------
    output : path
        ``.h5``/``.hdf5`` or ``.zarr``.
    spec : SynthSpec
    block_rows : int
        Rows per write, rounded up to whole generation units; memory is about
        ``2 * workers`` blocks.
    chunk_rows : int, optional
        Rows per stored chunk (default: about 4 MiB of ``X``).
    compression : str, optional
    workers : int, optional
        Generator threads (default: :func:`streamls.concurrency.available_threads`); one thread writes, in order.
    overwrite, progress
        As for :func:`data_tools.convert`.

    Returns
    -------
    Teacher
    """
    if block_rows < 1:
        raise parameter_error("synth", "block_rows", "an int in the range [1, inf)", block_rows)
    workers = workers or available_threads()
    if workers < 1:
        raise parameter_error("synth", "workers", "an int in the range [1, inf)", workers)
    block = -(-block_rows // UNIT_ROWS) * UNIT_ROWS
    teacher = Teacher.draw(spec)
    d, k, n = spec.n_features, spec.n_targets, spec.n_rows
    chunk = min(chunk_rows or default_chunk_rows(d * np.dtype(spec.dtype).itemsize), n)
    starts = range(0, n, block)
    with OutputFile(output, overwrite=overwrite) as out:
        X = out.create_array("X", (n, d), spec.dtype, chunk, compression)
        y = out.create_array("y", (n,) if k == 1 else (n, k), spec.dtype, chunk, compression)
        for name, value in teacher.arrays().items():
            out.create_array(f"teacher/{name}", value.shape, value.dtype, data=value)
        out.attrs["data_tools"] = json.dumps({"tool": "synth", "unit_rows": UNIT_ROWS, **asdict(spec)})
        # The teacher's matrices are small: BLAS threads inside each worker would only contend.
        with threadpool_limits(1), progress_bar(progress, n, f"synth {out.path}") as bar:
            rows = ordered_map(lambda a: generate_rows(spec, teacher, a, min(a + block, n)), starts, workers, 2 * workers, "synth")
            for start, (x_block, y_block) in zip(starts, rows):
                X[start : start + len(x_block)] = x_block
                y[start : start + len(y_block)] = y_block.reshape(-1) if k == 1 else y_block
                bar.update(len(x_block))
    logger.info("wrote %d synthetic rows (%s, d=%d) to %s", n, spec.kind, d, output)
    return teacher


def read_metadata(path: str | os.PathLike[str]) -> dict[str, object]:
    """The ``data_tools`` JSON attribute of an HDF5 file or Zarr group written by data_tools."""
    path = os.fspath(path).rstrip("/")
    if output_kind(path) == "hdf5":
        with h5py.File(path, "r") as handle:
            text = handle.attrs.get("data_tools")
    else:
        text = zarr.open_group(path, mode="r").attrs.get("data_tools")
    if text is None:
        raise DataToolsError(f"{path}: no 'data_tools' attribute; not written by data_tools")
    return dict(json.loads(text))


def load_teacher(path: str | os.PathLike[str]) -> Teacher:
    """The teacher saved by :func:`synth` in ``path``."""
    path = os.fspath(path).rstrip("/")
    meta = read_metadata(path)
    if meta.get("tool") != "synth":
        raise DataToolsError(f"{path}: not written by data_tools synth (tool={meta.get('tool')!r})")
    sep = ":/" if output_kind(path) == "hdf5" else ":"

    def read(name: str) -> np.ndarray:
        source = open_source(f"{path}{sep}teacher/{name}")
        try:
            return np.asarray(source.array[...], dtype=np.float64)
        finally:
            source.close()

    if meta["kind"] == "linear":
        return Teacher(None, None, read("W2"), read("b2"))
    return Teacher(read("W1"), read("b1"), read("W2"), read("b2"))
