"""Shared fixtures: small synthetic teacher data and writers of real data files under tmp_path.

The teacher data are those of :mod:`streamls.synthetic` (the generator behind ``data_tools
synth`` and ``streamls demo``), with a column spread so that standardisation matters.

Every writer produces a real file (``.npy``, HDF5 through h5py, Zarr v3 through zarr)
and returns the data spec streamls reads it by, so tests exercise the same code paths
as users do.
"""

from __future__ import annotations

import gzip
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import pytest
import zarr

from streamls.sources import open_source
from streamls.synthetic import SynthSpec, Teacher, generate_rows

UCI_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "uci"


@dataclass(frozen=True)
class TeacherData:
    """Rows from a random two-layer ReLU network plus Gaussian noise.

    Attributes
    ----------
    X : numpy.ndarray, shape (n, d)
    y : numpy.ndarray, shape (n,) for k = 1, else (n, k)
    noise_std : float
    """

    X: np.ndarray
    y: np.ndarray
    noise_std: float


def teacher_data(
    n: int = 2000, d: int = 5, hidden: int = 4, k: int = 1, noise_std: float = 0.1, seed: int = 0
) -> TeacherData:
    """Rows of a random ReLU teacher with ``hidden`` units (:mod:`streamls.synthetic`), float64.

    Inputs get different offsets and scales per column (``column_spread``) so that
    standardisation matters.
    """
    spec = SynthSpec(n_rows=n, n_features=d, hidden_units=hidden, n_targets=k, noise=noise_std, seed=seed, dtype="float64")
    X, y = generate_rows(spec, Teacher.draw(spec, column_spread=True), 0, n)
    return TeacherData(X, y[:, 0] if k == 1 else y, noise_std)


@pytest.fixture
def small_data() -> TeacherData:
    """1500 rows, d = 5, one target."""
    return teacher_data(n=1500, seed=1)


def write_npy(directory: Path, array: np.ndarray, name: str | None = None) -> str:
    """Save ``array`` as a ``.npy`` file; returns its path (the data spec)."""
    path = directory / f"{name or uuid.uuid4().hex[:8]}.npy"
    np.save(path, array)
    return str(path)


def write_hdf5(
    directory: Path,
    arrays: dict[str, np.ndarray],
    chunk_rows: int | None = None,
    name: str | None = None,
) -> dict[str, str]:
    """Write ``arrays`` as datasets of one HDF5 file.

    Parameters
    ----------
    arrays : dict
        Dataset paths inside the file (``"/X"``, ``"/group/y"``) to data.
    chunk_rows : int or None
        Rows per stored chunk; ``None`` writes contiguous (unchunked) datasets.

    Returns
    -------
    dict
        Dataset path to data spec (``"FILE.h5:/X"``).
    """
    path = directory / f"{name or uuid.uuid4().hex[:8]}.h5"
    with h5py.File(path, "w") as handle:
        for key, value in arrays.items():
            chunks = None if chunk_rows is None else (min(chunk_rows, len(value)), *value.shape[1:])
            handle.create_dataset(key, data=value, chunks=chunks)
    return {key: f"{path}:{key}" for key in arrays}


def write_zarr(
    store: str,
    arrays: dict[str, np.ndarray],
    chunk_rows: int,
) -> dict[str, str]:
    """Write ``arrays`` into a Zarr v3 group at ``store`` (a local directory or a URL).

    Returns
    -------
    dict
        Array name to data spec (``"STORE:NAME"``).
    """
    group = zarr.open_group(store, mode="w", zarr_format=3)
    for key, value in arrays.items():
        array = group.create_array(
            key, shape=value.shape, dtype=value.dtype, chunks=(min(chunk_rows, len(value)), *value.shape[1:])
        )
        array[...] = value
    return {key: f"{store}:{key}" for key in arrays}


@pytest.fixture
def files(tmp_path: Path) -> Callable[..., dict[str, str]]:
    """Factory writing ``{"X": ..., "y": ...}`` in one format; returns the data specs.

    ``files(kind, arrays, chunk_rows)`` with kind one of ``"npy"``, ``"hdf5"``,
    ``"hdf5-contiguous"``, ``"zarr"`` (local directory) and ``"zarr-memory"`` (memory:// URL).
    """

    def make(kind: str, arrays: dict[str, np.ndarray], chunk_rows: int = 100) -> dict[str, str]:
        if kind == "npy":
            return {key: write_npy(tmp_path, value) for key, value in arrays.items()}
        if kind == "hdf5":
            specs = write_hdf5(tmp_path, {f"/data/{k}": v for k, v in arrays.items()}, chunk_rows)
            return {key: specs[f"/data/{key}"] for key in arrays}
        if kind == "hdf5-contiguous":
            specs = write_hdf5(tmp_path, {f"/{k}": v for k, v in arrays.items()}, None)
            return {key: specs[f"/{key}"] for key in arrays}
        if kind == "zarr":
            return write_zarr(str(tmp_path / f"{uuid.uuid4().hex[:8]}.zarr"), arrays, chunk_rows)
        if kind == "zarr-memory":
            return write_zarr(f"memory://{uuid.uuid4().hex[:8]}.zarr", arrays, chunk_rows)
        raise ValueError(kind)

    return make


FILE_KINDS = ("npy", "hdf5", "hdf5-contiguous", "zarr", "zarr-memory")


@pytest.fixture
def uci_dir() -> Path:
    """The shared UCI data folder; skips the test when it is absent."""
    if not UCI_DIR.is_dir():
        pytest.skip(f"real data folder {UCI_DIR} is absent (it lives outside the repository)")
    return UCI_DIR


def load_uci(directory: Path, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Inputs (n, d) and target (n,) of ``NAME.csv.gz`` (no header, last column target)."""
    path = directory / f"{name}.csv.gz"
    if not path.exists():
        pytest.skip(f"real data file {path} is absent")
    source = open_source(str(path))  # the package's own CSV source: one reader for every table
    try:
        table = np.asarray(source.read(0, source.n_rows), dtype=np.float64)
    finally:
        source.close()
    return table[:, :-1], table[:, -1]


def files_under(directory: Path) -> set[str]:
    """Every path below ``directory`` (including hidden temporaries), relative to it."""
    return {str(p.relative_to(directory)) for p in directory.rglob("*")}


def write_csv(path: Path, table: np.ndarray, header: list[str] | None = None, delimiter: str = ",") -> str:
    """A CSV file (gzip for ``.gz``) of ``table`` with 17 significant digits, so it reads back exactly."""
    lines = [delimiter.join(header) + "\n"] if header else []
    lines += [delimiter.join(f"{v:.17g}" for v in row) + "\n" for row in table]
    text = "".join(lines)
    if path.suffix == ".gz":
        with gzip.open(path, "wt") as handle:
            handle.write(text)
    else:
        path.write_text(text)
    return str(path)
