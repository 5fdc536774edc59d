"""The trained two-layer network, its predictions (in memory or streamed to a file) and its model file.

A model file is a record file (:mod:`streamls.records`) of format ``streamls.TwoLayerModel``
holding arrays ``W``, ``B``, ``x_mean``, ``x_scale``, ``y_mean``, ``y_scale``, ``x_min`` and
``x_max`` (the training range, for :class:`~streamls.errors.OutOfRangeWarning`), and
metadata ``alpha``, ``target_is_1d``, ``hyperparameters``, ``history``, ``summary`` (the
fields of :class:`~streamls.summary.FitSummary`), ``feature_names`` and ``target_names``
(lists of str, or null for unnamed columns) and the writing streamls version.

This is format version 3; older files still load. Versions 1 and 2 kept the summary's
fields in a dict ``info`` (fields it lacks take their defaults), and version 1 lacks the
range and the names.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import __version__
from .errors import ModelFileError, OutOfRangeWarning, ShapeMismatchError
from .records import read_record, standardizer_arrays, standardizer_from, write_record
from .sources import Dataset, SelectedColumns, Source, open_source
from .sources.dataset import renamed_block_rows
from .sources.sinks import ARRAY_KINDS, OutputFile, output_target
from .stats import Standardizer, augment, hidden_features
from .summary import FitSummary

#: Rows predicted at a time from in-memory arrays, to bound temporary memory.
PREDICT_ROWS = 65536
#: Columns an out-of-range warning describes one by one; the rest are counted.
WARNED_COLUMNS = 8

MODEL_FORMAT = "streamls.TwoLayerModel"
MODEL_FORMAT_VERSION = 3
#: Model format versions this streamls reads.
MODEL_READABLE_VERSIONS = (1, 2, 3)


@dataclass
class RangeReport:
    """Inputs beyond the training range (per column minimum and maximum), counted over the rows of one prediction.

    Attributes
    ----------
    low, high : numpy.ndarray, shape (d,)
        The training rows' minimum and maximum per input column.
    names : tuple of str or None
        Input column names, for the message.
    rows : int
        Rows checked.
    outside : int
        Rows with at least one input below ``low`` or above ``high``.
    below, above : numpy.ndarray of int64, shape (d,)
        Per column, the rows below ``low`` and above ``high``.
    """

    low: np.ndarray
    high: np.ndarray
    names: tuple[str, ...] | None = None
    rows: int = field(default=0, init=False)
    outside: int = field(default=0, init=False)
    below: np.ndarray = field(init=False)
    above: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.below = np.zeros(len(self.low), dtype=np.int64)
        self.above = np.zeros(len(self.low), dtype=np.int64)

    def add(self, x: np.ndarray) -> None:
        """Count the rows of ``x``, shape (m, d), that leave the range (NaN counts as inside)."""
        below, above = x < self.low, x > self.high
        self.rows += len(x)
        self.outside += int((below | above).any(axis=1).sum())
        self.below += below.sum(axis=0)
        self.above += above.sum(axis=0)

    def warn(self, what: str) -> None:
        """Issue one :class:`OutOfRangeWarning` for ``what`` (the inputs' name) if any row left the range."""
        if self.outside == 0:
            return
        columns = np.flatnonzero(self.below + self.above)
        parts = []
        for j in columns[:WARNED_COLUMNS]:
            name = f" ({self.names[j]!r})" if self.names else ""
            parts.append(
                f"column {j}{name}: {self.below[j]} below the minimum {self.low[j]:.6g}, "
                f"{self.above[j]} above the maximum {self.high[j]:.6g}"
            )
        more = f"; and {len(columns) - WARNED_COLUMNS} more columns" if len(columns) > WARNED_COLUMNS else ""
        warnings.warn(
            f"{what}: {self.outside} of {self.rows} rows hold inputs outside the range of the training rows, "
            f"where the network extrapolates: {'; '.join(parts)}{more}",
            OutOfRangeWarning,
            stacklevel=3,
        )


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
    summary : FitSummary
        What the fit reported: the training data, the rows used, the best iteration, why
        it stopped, the schedule's stage and the race of starts.
    feature_names, target_names : tuple of str or None
        Column names of the inputs and targets, when the training data had them (a
        Parquet file, a CSV header, ...): predicting and scoring then pick the columns of
        a table by name.
    """

    W: np.ndarray
    B: np.ndarray
    alpha: float
    standardizer: Standardizer
    target_is_1d: bool = False
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    summary: FitSummary = field(default_factory=FitSummary)
    feature_names: tuple[str, ...] | None = None
    target_names: tuple[str, ...] | None = None

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

    @property
    def output_names(self) -> tuple[str, ...]:
        """Column names of predictions written as a table: the target names, else ``prediction`` (``prediction_0``, ...)."""
        if self.target_names is not None:
            return self.target_names
        return ("prediction",) if self.n_targets == 1 else tuple(f"prediction_{j}" for j in range(self.n_targets))

    def range_report(self, names: Sequence[str] | None = None) -> RangeReport | None:
        """A fresh count of inputs beyond the training range, or ``None`` when the range is unknown (an old model file)."""
        st = self.standardizer
        if st.x_min is None or st.x_max is None:
            return None
        return RangeReport(st.x_min, st.x_max, tuple(names) if names else self.feature_names)

    def _predict_rows(self, x: np.ndarray, report: RangeReport | None) -> np.ndarray:
        if report is not None:
            report.add(x)
        return self.standardizer.untargets(self.predict_standardized(self.standardizer.inputs(x)))

    def predict(self, X: Any, *, range_report: RangeReport | None = None) -> np.ndarray:
        """Predictions in the targets' own units.

        Warns with :class:`~streamls.errors.OutOfRangeWarning` (once per call) when rows
        hold inputs beyond the minimum or maximum of the training rows.

        Parameters
        ----------
        X : array_like, shape (n, d)
        range_report : RangeReport, optional
            Count out-of-range rows into this report (from :meth:`range_report`) instead,
            without warning: for callers that predict block by block and warn once at the end.

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
        report = self.range_report() if range_report is None else range_report
        out = np.empty((len(X), self.n_targets))
        for start in range(0, len(X), PREDICT_ROWS):
            out[start : start + PREDICT_ROWS] = self._predict_rows(X[start : start + PREDICT_ROWS], report)
        if range_report is None and report is not None:
            report.warn("predict")
        return out[:, 0] if self.target_is_1d else out

    def input_source(self, data: Any) -> Source:
        """The model's input columns of ``data``, in the model's order.

        A source with column names, for a model trained on named columns, is matched by
        name: it must hold the inputs and may also hold the targets (which are left out).
        Otherwise its columns are the inputs, in order.

        Raises
        ------
        ShapeMismatchError
            When the column names or the column count do not match the model's inputs.
        """
        source = open_source(data, name="X")
        names = source.column_names
        if self.feature_names is not None and names is not None and names != self.feature_names:
            return SelectedColumns(source, self._columns_by_name(source, names, self.feature_names))
        if len(source.shape) != 2 or source.n_cols != self.n_features:
            raise ShapeMismatchError(
                f"{source.name}: the model takes {self.n_features} input columns, found shape {source.shape}"
            )
        return source

    def scoring_dataset(
        self,
        data: Any,
        y: Any = None,
        *,
        target_cols: int | str | Sequence[int | str] | None = None,
        nan_policy: str = "error",
        block_rows: int | None = None,
    ) -> Dataset:
        """The rows of ``data`` (and ``y``) as this model's inputs and targets, for scoring them.

        Without ``y`` and ``target_cols``, a table with column names (for a model trained
        on named columns) gives its inputs and targets by name, and any other table its
        inputs in its first ``d`` columns and its targets in the last ``k``.

        Raises
        ------
        ShapeMismatchError
            When the columns do not match the model's inputs and outputs.
        """
        d, k = self.n_features, self.n_targets
        options: dict[str, Any] = {"nan_policy": nan_policy, "block_rows": block_rows}
        if y is not None or target_cols is not None:
            dataset = Dataset(self.input_source(data) if y is not None else data, y, target_cols=target_cols, **options)
        else:
            source = open_source(data, name="X")
            names = source.column_names
            if names is not None and self.feature_names is not None and self.target_names is not None:
                wanted = self.feature_names + self.target_names
                source = SelectedColumns(source, self._columns_by_name(source, names, wanted))
            elif len(source.shape) != 2 or source.n_cols != d + k:
                raise ShapeMismatchError(
                    f"{source.name}: shape {source.shape}, but the model takes {d} inputs and gives {k} outputs, "
                    f"so a table of both needs {d + k} columns; pass y (--y) or target_cols (--target-col)"
                )
            dataset = Dataset(source, target_cols=list(range(d, d + k)), **options)
        found = dataset.feature_names
        if (dataset.n_features, dataset.n_targets) != (d, k) or (found and self.feature_names and found != self.feature_names):
            dataset.close()
            named = f" {list(found)}" if found and self.feature_names else ""
            wanted = f" {list(self.feature_names)}" if found and self.feature_names else ""
            raise ShapeMismatchError(
                f"{dataset.name}: {dataset.n_features} inputs{named} and {dataset.n_targets} targets, but the model "
                f"takes {d} inputs{wanted} and gives {k} outputs"
            )
        return dataset

    def _columns_by_name(self, source: Source, names: Sequence[str], wanted: Sequence[str]) -> list[int]:
        """Indices in ``names`` of the ``wanted`` columns; a table may hold the model's inputs and targets, nothing else."""
        known = set(self.feature_names or ()) | set(self.target_names or ())
        missing = [n for n in wanted if n not in names]
        unexpected = [n for n in names if n not in known]
        if missing or unexpected:
            problems = ([f"missing {missing}"] if missing else []) + ([f"unexpected {unexpected}"] if unexpected else [])
            raise ShapeMismatchError(
                f"{source.name}: its columns {list(names)} do not match the model's: inputs {list(self.feature_names or ())}, "
                f"targets {list(self.target_names or ())} ({'; '.join(problems)}); select columns with 'PATH:col,col,...'"
            )
        return [list(names).index(n) for n in wanted]

    def predict_to(
        self,
        source: Any,
        out_spec: str | os.PathLike[str],
        *,
        block_rows: int | None = None,
        overwrite: bool = False,
        prefetch: bool = True,
        chunk_rows: int | None = None,
    ) -> str:
        """Stream predictions for every row of ``source`` into a new file: HDF5, Zarr, CSV or Parquet.

        Memory stays constant: rows are read, predicted and written block by block, and
        the output keeps the input's row chunking. The file appears only when complete.
        Warns once with :class:`~streamls.errors.OutOfRangeWarning` when rows hold inputs
        beyond the training range.

        Parameters
        ----------
        source : array_like, Source or data spec
            Inputs, shape (n, d); or a table with column names holding the inputs and
            perhaps the targets (see :meth:`input_source`).
        out_spec : str
            ``"preds.h5:/yhat"`` or ``"preds.zarr:yhat"`` (default array name ``predictions``),
            ``"preds.csv"``, ``"preds.csv.gz"`` or ``"preds.parquet"`` (columns named by
            :attr:`output_names`); Zarr, CSV and Parquet also at fsspec URLs.
        block_rows : int, optional
            Rows per block read (rounded up to the source's stored chunks).
        overwrite : bool
            Replace an existing output file.
        chunk_rows : int, optional
            Deprecated name of ``block_rows`` (it warns).

        Returns
        -------
        str
            The output spec written (``PATH:ARRAY`` for HDF5 and Zarr).
        """
        x_source = self.input_source(source)
        # A zero-column target stands in for y: prediction reads inputs only.
        dataset = Dataset(x_source, np.empty((x_source.n_rows, 0)), block_rows=renamed_block_rows("predict_to", block_rows, chunk_rows))
        path, name = output_target(os.fspath(out_spec), "predictions")
        report = self.range_report(x_source.column_names)
        with OutputFile(path, overwrite=overwrite) as out:
            stored_chunk = x_source.chunk_rows if x_source.chunk_rows > 1 else dataset.block_rows
            n_cols = None if self.target_is_1d else self.n_targets
            rows = out.row_writer(name, dataset.n_rows, n_cols, self.output_names, stored_chunk)
            for block in dataset.blocks(prefetch=prefetch):
                pred = self._predict_rows(block.x, report)
                rows.write(block.start, pred[:, 0] if self.target_is_1d else pred)
            written = f"{path}:{name}" if out.kind in ARRAY_KINDS else path
        if report is not None:
            report.warn(x_source.name)
        return written

    def save(self, path: str | os.PathLike[str], overwrite: bool = True) -> None:
        """Write the model file (see the module's description) atomically.

        Parameters
        ----------
        path : str or path-like
            ``.h5``/``.hdf5``: an HDF5 file; ``.zarr``: a Zarr group.
        overwrite : bool
            Replace an existing file; otherwise raise :class:`~streamls.errors.OutputExistsError`.
        """
        metadata = {
            "alpha": self.alpha,
            "target_is_1d": self.target_is_1d,
            "hyperparameters": self.hyperparameters,
            "history": self.history,
            "summary": self.summary.as_dict(),
            "feature_names": self.feature_names,
            "target_names": self.target_names,
            "streamls_version": __version__,
        }
        arrays = {"W": self.W, "B": self.B, **standardizer_arrays(self.standardizer)}
        write_record(path, MODEL_FORMAT, MODEL_FORMAT_VERSION, arrays, metadata, overwrite=overwrite)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> TwoLayerModel:
        """Read a model file written by :meth:`save`, of this or an older format version.

        Raises
        ------
        ModelFileError
            When the file is missing, not a model, of another format version, truncated or
            does not match its checksum.
        """
        arrays, meta = read_record(path, MODEL_FORMAT, MODEL_READABLE_VERSIONS, "model")
        try:
            # Versions 1 and 2 kept the summary's fields in "info".
            summary = meta["summary"] if "summary" in meta else meta["info"]
            return cls(
                W=arrays["W"],
                B=arrays["B"],
                alpha=float(meta["alpha"]),
                standardizer=standardizer_from(arrays),
                target_is_1d=bool(meta["target_is_1d"]),
                hyperparameters=meta["hyperparameters"],
                history=meta["history"],
                summary=FitSummary.from_dict(summary),
                feature_names=_names(meta.get("feature_names")),
                target_names=_names(meta.get("target_names")),
            )
        except KeyError as exc:
            raise ModelFileError(f"{os.fspath(path)}: model file lacks {exc}") from exc


def _names(value: list[str] | None) -> tuple[str, ...] | None:
    return None if value is None else tuple(value)
