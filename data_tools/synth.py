"""Synthetic regression data from a teacher network, generated in parallel at disk speed.

Rows are made in fixed generation units of :data:`UNIT_ROWS` rows; unit ``u`` draws from
its own generator seeded by ``(seed, u)``. The block size only groups whole units into
one write and the worker count only decides who computes which unit, so the data are
identical whatever either is, and the first ``n`` rows do not depend on the total row
count. Teacher weights come from a separate stream of the same seed and are saved in
the output (``teacher/W1``, ``teacher/b1``, ``teacher/W2``, ``teacher/b2``) beside ``X`` and
``y``, with the generation settings as a JSON attribute ``data_tools``.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass

import h5py
import numpy as np
import zarr
from threadpoolctl import threadpool_limits

from streamls.concurrency import available_threads, ordered_map
from streamls.errors import parameter_error
from streamls.sources import open_source
from streamls.sources.sinks import OutputFile, output_kind

from .errors import DataToolsError
from .writing import default_chunk_rows, progress_bar

logger = logging.getLogger(__name__)

#: Rows per generation unit: the granularity of seeding, fixed forever for reproducibility.
UNIT_ROWS = 4096
KINDS = ("teacher", "linear")
#: Stream tags that keep the teacher's draws and each unit's draws apart.
_TEACHER_STREAM, _UNIT_STREAM = 0, 1
DEFAULT_BLOCK_ROWS = 16 * UNIT_ROWS


@dataclass(frozen=True)
class SynthSpec:
    """What to generate.

    Attributes
    ----------
    n_rows : int
    n_features : int
        ``d``.
    hidden_units : int
        Teacher hidden units (``kind="teacher"``).
    n_targets : int
        ``k``; ``y`` is 1-D when 1.
    noise : float
        Standard deviation of the Gaussian noise added to the targets.
    kind : {"teacher", "linear"}
        ``y = relu(X W1^T + b1) W2 + b2 + noise`` or ``y = X W2 + b2 + noise``.
    seed : int
    dtype : str
        Stored dtype of ``X`` and ``y``.
    """

    n_rows: int
    n_features: int
    hidden_units: int = 16
    n_targets: int = 1
    noise: float = 0.1
    kind: str = "teacher"
    seed: int = 0
    dtype: str = "float32"

    def __post_init__(self) -> None:
        for name in ("n_rows", "n_features", "hidden_units", "n_targets", "seed"):
            value = getattr(self, name)
            low = 0 if name == "seed" else 1
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
                raise parameter_error("synth", name, f"an int in the range [{low}, inf)", value)
        if not (np.isfinite(self.noise) and self.noise >= 0):
            raise parameter_error("synth", "noise", "a float in the range [0, inf)", self.noise)
        if self.kind not in KINDS:
            raise parameter_error("synth", "kind", f"one of {KINDS}", self.kind)
        if np.dtype(self.dtype).kind != "f":
            raise parameter_error("synth", "dtype", "a floating dtype such as 'float32'", self.dtype)


@dataclass(frozen=True)
class Teacher:
    """The network behind the targets (float64 weights).

    Attributes
    ----------
    W1 : numpy.ndarray, shape (h, d), or None for the linear kind
    b1 : numpy.ndarray, shape (h,), or None
    W2 : numpy.ndarray, shape (h, k) (teacher) or (d, k) (linear)
    b2 : numpy.ndarray, shape (k,)
    """

    W1: np.ndarray | None
    b1: np.ndarray | None
    W2: np.ndarray
    b2: np.ndarray

    @classmethod
    def draw(cls, spec: SynthSpec) -> Teacher:
        """The teacher of ``spec``: a function of its seed, ``d``, ``h``, ``k`` and kind only."""
        rng = np.random.default_rng(np.random.SeedSequence(spec.seed, spawn_key=(_TEACHER_STREAM,)))
        d, h, k = spec.n_features, spec.hidden_units, spec.n_targets
        if spec.kind == "linear":
            return cls(None, None, rng.standard_normal((d, k)) / np.sqrt(d), rng.standard_normal(k))
        # Pre-activations have unit variance with X ~ N(0, I), offsets put the kinks inside the data.
        W1 = rng.standard_normal((h, d)) / np.sqrt(d)
        b1 = 0.5 * rng.standard_normal(h)
        return cls(W1, b1, rng.standard_normal((h, k)) / np.sqrt(h), rng.standard_normal(k))

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Noiseless targets, shape (m, k) float64, of inputs ``x``, shape (m, d)."""
        features = np.asarray(x, dtype=np.float64)
        if self.W1 is not None:
            # In place, with a C-ordered W1^T: fresh (m, h) temporaries cost more in page
            # faults than the arithmetic, and synth calls this for every 4096 rows.
            features = features @ np.ascontiguousarray(self.W1.T)
            features += self.b1
            np.maximum(features, 0.0, out=features)
        return features @ self.W2 + self.b2

    def arrays(self) -> dict[str, np.ndarray]:
        """The weights by field name (``W1``, ``b1``, ``W2``, ``b2``), leaving out the None ones of the linear kind."""
        return {name: value for name, value in asdict(self).items() if value is not None}


def generate_unit(spec: SynthSpec, teacher: Teacher, unit: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows of generation unit ``unit``: ``X`` (m, d) and ``y`` (m, k) in the stored dtype.

    The unit is always drawn whole (then cut at ``n_rows``), so a row's values never
    depend on the total row count.
    """
    rng = np.random.default_rng(np.random.SeedSequence(spec.seed, spawn_key=(_UNIT_STREAM, unit)))
    x = rng.standard_normal((UNIT_ROWS, spec.n_features), dtype=np.float32)
    noise = rng.standard_normal((UNIT_ROWS, spec.n_targets))
    y = teacher.predict(x) + spec.noise * noise
    m = min(UNIT_ROWS, spec.n_rows - unit * UNIT_ROWS)
    return x[:m].astype(spec.dtype, copy=False), y[:m].astype(spec.dtype)


def generate_rows(spec: SynthSpec, teacher: Teacher, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows ``[start, stop)`` of the dataset: ``X`` (m, d) and ``y`` (m, k)."""
    first, last = start // UNIT_ROWS, -(-stop // UNIT_ROWS)
    units = [generate_unit(spec, teacher, u) for u in range(first, last)]
    offset = start - first * UNIT_ROWS
    x = np.concatenate([u[0] for u in units])[offset : offset + stop - start]
    y = np.concatenate([u[1] for u in units])[offset : offset + stop - start]
    return x, y


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
