"""Gradient-trained peers of streamls shared by the benchmarks (compare.py, big_data.py).

:class:`TorchLearner` is the PyTorch network ``d -> h -> k`` (ReLU, or leaky ReLU with
slope ``alpha``) trained by Adam or SGD with momentum 0.9 on mini-batches streamed from
an HDF5 file holding ``X`` (n, d) and ``y`` (n,), in one of two orders:

- :class:`H5Batches` through ``torch.utils.data.DataLoader`` (compare.py): item ``i`` is
  the contiguous batch ``[i * batch, (i + 1) * batch)``; the loader shuffles the batch
  order each epoch, so the rows must have been shuffled once when the file was written;
- :class:`H5ShuffledChunks` (big_data.py): each epoch visits contiguous chunks of
  ``chunk_rows`` rows in a random order, shuffles the rows of each chunk and cuts it into
  batches; rows may be standardised on the fly with given means and scales.

PyTorch is imported inside the functions that need it, so this module imports without it
(and a benchmark child that trains only streamls never loads it).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import h5py
import numpy as np


def mse(pred: np.ndarray, target: np.ndarray) -> float:
    """Mean squared error over all entries of (n, k) arrays, in float64."""
    diff = np.asarray(pred, dtype=np.float64).reshape(target.shape) - target
    return float(np.mean(diff * diff))


class Learner:
    """A gradient-trained network that advances by one step and reports MSEs."""

    def step(self) -> bool:
        """Train one step (a mini-batch, an epoch or an L-BFGS chunk); False once converged."""
        raise NotImplementedError

    def mse(self, x: np.ndarray, y: np.ndarray) -> float:
        raise NotImplementedError

    @property
    def epochs(self) -> float:
        raise NotImplementedError


class H5Batches:
    """``torch.utils.data.Dataset`` of contiguous row batches of an HDF5 file.

    Item ``i`` is rows ``[i * batch, (i + 1) * batch)`` of ``X`` and ``y`` as float32
    tensors of shapes (m, d) and (m, 1). The file opens lazily, so the dataset pickles
    for DataLoader workers.
    """

    def __init__(self, path: Path, batch: int) -> None:
        self.path, self.batch = path, batch
        with h5py.File(path, "r") as handle:
            self.n_rows = handle["X"].shape[0]
        self._file: h5py.File | None = None

    def __len__(self) -> int:
        return math.ceil(self.n_rows / self.batch)

    def __getitem__(self, index: int) -> tuple[Any, Any]:
        import torch

        if self._file is None:
            self._file = h5py.File(self.path, "r")
        lo, hi = index * self.batch, min((index + 1) * self.batch, self.n_rows)
        x = torch.from_numpy(self._file["X"][lo:hi])
        y = torch.from_numpy(self._file["y"][lo:hi]).reshape(-1, 1)
        return x, y


#: Means and scales ``(x_mean (d,), x_scale (d,), y_mean (k,), y_scale (k,))`` applied as
#: ``(v - mean) / scale`` to the rows a loader yields.
Standardization = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


class H5ShuffledChunks:
    """Endless mini-batches of an HDF5 file: chunks in random order, rows shuffled within.

    Each epoch draws a permutation of the chunks ``[c * chunk_rows, (c + 1) * chunk_rows)``;
    each chunk is read with one contiguous h5py read of ``X`` and ``y``, standardised
    (``standardize``, optional), its rows permuted, and cut into batches of ``batch`` rows
    (the last batch of a short chunk may be smaller). Only one chunk is held in memory.

    Iterating yields float32 tensors ``(x (m, d), y (m, k))``; :attr:`rows_yielded` counts
    the rows handed out.
    """

    def __init__(self, path: Path, chunk_rows: int, batch: int, seed: int, standardize: Standardization | None = None) -> None:
        if chunk_rows < 1 or batch < 1:
            raise ValueError(f"chunk_rows and batch must be positive, got {chunk_rows} and {batch}")
        self.path, self.chunk_rows, self.batch = path, chunk_rows, batch
        with h5py.File(path, "r") as handle:
            self.n_rows = handle["X"].shape[0]
        self.n_chunks = math.ceil(self.n_rows / chunk_rows)
        self.rng = np.random.default_rng(seed)
        self.standardize = None
        if standardize is not None:
            self.standardize = tuple(np.asarray(v, dtype=np.float32).reshape(1, -1) for v in standardize)
        self.rows_yielded = 0

    def _chunk(self, handle: h5py.File, index: int) -> tuple[np.ndarray, np.ndarray]:
        lo, hi = index * self.chunk_rows, min((index + 1) * self.chunk_rows, self.n_rows)
        x = np.asarray(handle["X"][lo:hi], dtype=np.float32)
        y = np.asarray(handle["y"][lo:hi], dtype=np.float32).reshape(hi - lo, -1)
        if self.standardize is not None:
            x_mean, x_scale, y_mean, y_scale = self.standardize
            x = (x - x_mean) / x_scale
            y = (y - y_mean) / y_scale
        order = self.rng.permutation(hi - lo)
        return np.ascontiguousarray(x[order]), np.ascontiguousarray(y[order])

    def __iter__(self) -> Iterator[tuple[Any, Any]]:
        import torch

        with h5py.File(self.path, "r") as handle:
            while True:
                for index in self.rng.permutation(self.n_chunks):
                    x, y = self._chunk(handle, int(index))
                    for lo in range(0, len(x), self.batch):
                        xb, yb = x[lo : lo + self.batch], y[lo : lo + self.batch]
                        self.rows_yielded += len(xb)
                        yield torch.from_numpy(xb), torch.from_numpy(yb)


class TorchLearner(Learner):
    """PyTorch ``d -> h -> k`` network trained by Adam or SGD (momentum 0.9) from an HDF5 file.

    With ``chunk_rows=None`` (compare.py) the batches come from a ``DataLoader`` over
    :class:`H5Batches` shuffling the batch order each epoch; with ``chunk_rows`` set
    (big_data.py) from :class:`H5ShuffledChunks`, standardised by ``standardize`` if given.
    """

    def __init__(
        self, path: Path, d: int, k: int, h: int, alpha: float, optimizer: str, lr: float, seed: int, *,
        batch_size: int = 64, chunk_rows: int | None = None, standardize: Standardization | None = None,
    ) -> None:
        import torch
        from torch import nn
        from torch.utils.data import DataLoader

        torch.manual_seed(seed)
        activation = nn.LeakyReLU(alpha) if alpha > 0 else nn.ReLU()
        self.net = nn.Sequential(nn.Linear(d, h), activation, nn.Linear(h, k))
        params = self.net.parameters()
        self.opt = torch.optim.Adam(params, lr=lr) if optimizer == "adam" else torch.optim.SGD(params, lr=lr, momentum=0.9)
        self.batch_size = batch_size
        self.chunks: H5ShuffledChunks | None = None
        if chunk_rows is None:
            if standardize is not None:
                raise ValueError("standardize needs chunk_rows (the DataLoader path reads pre-standardised files)")
            data = H5Batches(path, batch_size)
            self.n_rows = data.n_rows
            self.batches_per_epoch = len(data)
            generator = torch.Generator().manual_seed(seed)
            self.loader: Any = DataLoader(data, batch_size=None, shuffle=True, num_workers=0, generator=generator)
        else:
            self.chunks = H5ShuffledChunks(path, chunk_rows, batch_size, seed, standardize)
            self.n_rows = self.chunks.n_rows
            self.batches_per_epoch = math.ceil(self.n_rows / batch_size)
            self.loader = self.chunks
        self._iter: Iterator[Any] = iter(self.loader)
        self.steps = 0

    def step(self) -> bool:
        import torch

        try:
            x, y = next(self._iter)
        except StopIteration:
            self._iter = iter(self.loader)
            x, y = next(self._iter)
        self.opt.zero_grad(set_to_none=True)
        loss = torch.nn.functional.mse_loss(self.net(x), y)
        loss.backward()
        self.opt.step()
        self.steps += 1
        return bool(torch.isfinite(loss))

    def predict(self, x: np.ndarray) -> np.ndarray:
        """The network's outputs, float32 (m, k), for (already standardised) inputs."""
        import torch

        with torch.no_grad():
            return self.net(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))).numpy()

    def mse(self, x: np.ndarray, y: np.ndarray) -> float:
        import torch

        with torch.no_grad():
            return mse(self.net(torch.from_numpy(x)).numpy(), y)

    @property
    def epochs(self) -> float:
        if self.chunks is not None:
            return self.chunks.rows_yielded / self.n_rows
        return self.steps / self.batches_per_epoch
