"""The trained two-layer network and its predictions, in memory or streamed to a file."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import ShapeMismatchError
from .sources import Dataset, open_source
from .sources.sinks import OutputFile, output_target
from .stats import Standardizer, augment, hidden_features

#: Rows predicted at a time from in-memory arrays, to bound temporary memory.
PREDICT_ROWS = 65536


@dataclass
class TwoLayerModel:
    """A two-layer leaky-ReLU network ``f(x) = V^T s(W [x; 1]) + b0`` on standardised data.

    Attributes
    ----------
    W : numpy.ndarray, shape (h, d + 1)
        Hidden weights; the last column is the hidden bias. Acts on standardised inputs.
    B : numpy.ndarray, shape (h + 1, k)
        Output weights ``[V; b0]``; gives standardised targets.
    alpha : float
        Activation slope for negative pre-activations (0: ReLU).
    standardizer : Standardizer
        Input and target standardisation learnt from the training rows.
    target_is_1d : bool
        Whether :meth:`predict` returns shape (n,) rather than (n, 1).
    hyperparameters : dict
        The training settings (JSON-serialisable).
    history : list of dict
        One record per iteration (see :class:`streamls.training.IterationRecord`).
    info : dict
        Training data description: source names, rows used, rows dropped.
    """

    W: np.ndarray
    B: np.ndarray
    alpha: float
    standardizer: Standardizer
    target_is_1d: bool = False
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def hidden_units(self) -> int:
        """Hidden neurons h."""
        return self.W.shape[0]

    @property
    def n_features(self) -> int:
        """Input features d (columns of ``W`` less the bias column)."""
        return self.W.shape[1] - 1

    @property
    def n_targets(self) -> int:
        """Outputs k (columns of ``B``)."""
        return self.B.shape[1]

    def predict_standardized(self, x_std: np.ndarray) -> np.ndarray:
        """Standardised predictions for standardised inputs.

        Parameters
        ----------
        x_std : numpy.ndarray, shape (m, d)

        Returns
        -------
        numpy.ndarray, shape (m, k)
        """
        _, _, phi = hidden_features(augment(x_std), self.W, self.alpha)
        return phi @ self.B

    def _predict_rows(self, x: np.ndarray) -> np.ndarray:
        return self.standardizer.untargets(self.predict_standardized(self.standardizer.inputs(x)))

    def predict(self, X: Any) -> np.ndarray:
        """Predictions in the targets' own units.

        Parameters
        ----------
        X : array_like, shape (n, d)

        Returns
        -------
        numpy.ndarray, shape (n, k), or (n,) when trained on a 1-D target
        """
        X = np.asarray(X)
        if X.ndim == 1 and self.n_features == 1:
            X = X.reshape(-1, 1)
        if X.ndim != 2 or X.shape[1] != self.n_features:
            raise ShapeMismatchError(
                f"predict: expected an array of shape (n, {self.n_features}), found shape {X.shape}"
            )
        out = np.empty((len(X), self.n_targets))
        for start in range(0, len(X), PREDICT_ROWS):
            out[start : start + PREDICT_ROWS] = self._predict_rows(X[start : start + PREDICT_ROWS])
        return out[:, 0] if self.target_is_1d else out

    def predict_to(
        self,
        source: Any,
        out_spec: str | os.PathLike[str],
        *,
        chunk_rows: int | None = None,
        overwrite: bool = False,
        prefetch: bool = True,
    ) -> str:
        """Stream predictions for every row of ``source`` into a new HDF5 or Zarr array.

        Memory stays constant: rows are read, predicted and written block by block, and
        the output keeps the input's row chunking. The file appears only when complete.

        Parameters
        ----------
        source : array_like, Source or data spec
            Inputs, shape (n, d).
        out_spec : str
            ``"preds.h5:/yhat"`` or ``"preds.zarr:yhat"`` (default array name ``predictions``).
        chunk_rows : int, optional
            Rows per block (rounded to the source's stored chunks).
        overwrite : bool
            Replace an existing output file.

        Returns
        -------
        str
            The output spec written.
        """
        x_source = open_source(source, name="X")
        if x_source.n_cols != self.n_features or len(x_source.shape) != 2:
            raise ShapeMismatchError(
                f"{x_source.name}: the model takes {self.n_features} input columns, found shape {x_source.shape}"
            )
        # A zero-column target stands in for y: prediction reads inputs only.
        dataset = Dataset(x_source, np.empty((x_source.n_rows, 0)), block_rows=chunk_rows)
        path, name = output_target(os.fspath(out_spec), "predictions")
        shape = (dataset.n_rows,) if self.target_is_1d else (dataset.n_rows, self.n_targets)
        with OutputFile(path, overwrite=overwrite) as out:
            stored_chunk = x_source.chunk_rows if x_source.chunk_rows > 1 else dataset.block_rows
            array = out.create_array(name, shape, np.float64, chunk_rows=stored_chunk)
            for block in dataset.blocks(prefetch=prefetch):
                pred = self._predict_rows(block.x)
                array[block.start : block.stop] = pred[:, 0] if self.target_is_1d else pred
        return f"{path}:{name}"

    def save(self, path: str | os.PathLike[str], overwrite: bool = True) -> None:
        """Save to an HDF5 file (``.h5``) or Zarr group (``.zarr``); see :mod:`streamls.persistence`."""
        from .persistence import save_model

        save_model(self, path, overwrite=overwrite)
