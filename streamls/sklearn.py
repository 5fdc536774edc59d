"""scikit-learn estimators: :class:`StreamLSRegressor` and :class:`StreamLSClassifier`.

Both wrap :func:`streamls.fit` and behave as ordinary scikit-learn estimators
(``Pipeline``, ``GridSearchCV``, ``cross_val_score``, ``clone``, pickle). ``fit`` also
takes out-of-core data: a :class:`~streamls.sources.Source`, a dask array or a data spec
such as ``"train.h5:/X"``; such inputs skip scikit-learn's in-memory validation and are
streamed block by block.

The classifier is least-squares classification, as in least-squares SVMs and extreme
learning machines: the network regresses coded labels (``+1/-1`` for two classes, one-hot
columns for more) and predicts the class with the largest output. Its outputs are not
probabilities, so it has ``decision_function`` and no ``predict_proba``.

Parameter validation uses scikit-learn's declarative constraints, so a bad
hyperparameter raises ``InvalidParameterError`` (a ``ValueError``) naming the estimator,
as scikit-learn's own estimators do.
"""

from __future__ import annotations

import math
import os
from numbers import Integral, Real
from typing import Any, ClassVar

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.preprocessing import LabelEncoder
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, column_or_1d, validate_data

from .api import fit
from .hyperparameters import AUTO, Hyperparameter, TrainConfig, document_hyperparameters, hyperparameters
from .model import TwoLayerModel
from .sources import Source, open_source
from .sources.dataset import renamed_block_rows
from .sources.spec import _is_dask_array

__all__ = ["ESTIMATOR_DEFAULTS", "StreamLSClassifier", "StreamLSRegressor", "expected_failed_checks"]

#: Seeds drawn from a ``numpy.random.RandomState`` lie in ``[0, SEED_BOUND)``.
SEED_BOUND = 2**31 - 1

#: The estimators' defaults that differ from :class:`~streamls.TrainConfig`'s (every other
#: hyperparameter defaults as in :func:`streamls.fit`). Chosen by cross-validation on small
#: in-memory data sets, the estimators' usual inputs (docs/sklearn.md, "How the defaults
#: were chosen"): 20 iterations scored as well as 50 at a fifth of fit's 100 passes.
ESTIMATOR_DEFAULTS: dict[str, Any] = {"max_iter": 20}


def is_out_of_core(data: Any) -> bool:
    """Whether ``data`` is streamed by streamls rather than validated in memory by scikit-learn.

    True for a :class:`~streamls.sources.Source`, a data spec (``str`` or path) and a dask array.
    """
    return isinstance(data, (Source, str, os.PathLike)) or _is_dask_array(data)


def seed_of(random_state: Any) -> int | None:
    """The integer seed :func:`streamls.fit` takes, from a scikit-learn ``random_state``.

    ``None`` stays ``None`` (fresh entropy each fit), an int is kept, and a
    ``RandomState`` instance yields one draw, so the same instance state gives the same
    seed (the convention of scikit-learn's own estimators).
    """
    if random_state is None or isinstance(random_state, (Integral, np.integer)):
        return None if random_state is None else int(random_state)
    return int(check_random_state(random_state).randint(SEED_BOUND))


def network_weights(model: TwoLayerModel) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The network's weights in the data's own units, in ``MLPRegressor``'s layout.

    The stored model acts on standardised inputs and gives standardised targets; folding
    the standardisation into the weights gives the same function on raw data:
    ``s(X @ coefs[0] + intercepts[0]) @ coefs[1] + intercepts[1]`` equals ``model.predict(X)``
    (2-D), with ``s`` the leaky ReLU.

    Returns
    -------
    coefs : list of numpy.ndarray, shapes (d, h) and (h, k)
    intercepts : list of numpy.ndarray, shapes (h,) and (k,)
    """
    std = model.standardizer
    hidden = model.W[:, :-1] / std.x_scale  # (h, d)
    hidden_bias = model.W[:, -1] - hidden @ std.x_mean
    out = model.B[:-1] * std.y_scale  # (h, k)
    out_bias = model.B[-1] * std.y_scale + std.y_mean
    return [hidden.T.copy(), out], [hidden_bias, out_bias]


def constraint(spec: Hyperparameter) -> list[Any]:
    """scikit-learn's parameter constraint for a hyperparameter: the same bounds or choices.

    A seed also takes a ``RandomState`` instance, as scikit-learn's ``random_state`` does.
    """
    if spec.kind == "seed":
        return ["random_state"]
    if spec.choices:
        return [StrOptions(set(spec.words))]
    high = None if math.isinf(spec.high) else spec.high
    closed = "left" if spec.upper_open or high is None else "both"
    interval = Interval(Integral if spec.kind == "int" else Real, spec.low, high, closed=closed)
    return [interval, StrOptions({AUTO})] if spec.auto else [interval]


class _StreamLSBase(BaseEstimator):
    """Hyperparameters, training and fitted attributes shared by both estimators."""

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        **{spec.name: constraint(spec) for spec in hyperparameters()},
        "block_rows": [Interval(Integral, 1, None, closed="left"), None],
        "chunk_rows": [Interval(Integral, 1, None, closed="left"), None],
    }

    # An explicit signature, as scikit-learn's get_params reads it; tests/test_hyperparameters.py
    # checks that it has every hyperparameter with its default (or ESTIMATOR_DEFAULTS').
    def __init__(
        self,
        hidden_units: int = TrainConfig.hidden_units,
        *,
        alpha: float = TrainConfig.alpha,
        l2: float | str = TrainConfig.l2,
        damping: float = TrainConfig.damping,
        max_iter: int = ESTIMATOR_DEFAULTS["max_iter"],
        tol: float = TrainConfig.tol,
        n_iter_no_change: int = TrainConfig.n_iter_no_change,
        validation_fraction: float = TrainConfig.validation_fraction,
        n_init: int | str = TrainConfig.n_init,
        schedule: str = TrainConfig.schedule,
        hidden_solver: str = TrainConfig.hidden_solver,
        line_search: str = TrainConfig.line_search,
        random_state: Any = TrainConfig.random_state,
        block_rows: int | None = None,
        chunk_rows: int | None = None,
    ) -> None:
        self.hidden_units = hidden_units
        self.alpha = alpha
        self.l2 = l2
        self.damping = damping
        self.max_iter = max_iter
        self.tol = tol
        self.n_iter_no_change = n_iter_no_change
        self.validation_fraction = validation_fraction
        self.n_init = n_init
        self.schedule = schedule
        self.hidden_solver = hidden_solver
        self.line_search = line_search
        self.random_state = random_state
        self.block_rows = block_rows
        self.chunk_rows = chunk_rows

    def _train(self, X: Any, y: Any) -> None:
        """Run :func:`streamls.fit` with these hyperparameters and set the fitted attributes."""
        settings = {spec.name: getattr(self, spec.name) for spec in hyperparameters()}
        settings["random_state"] = seed_of(self.random_state)
        block_rows = renamed_block_rows(type(self).__name__, self.block_rows, self.chunk_rows)
        result = fit(X, y, block_rows=block_rows, **settings)
        model = result.model
        self.model_ = model
        self.coefs_, self.intercepts_ = network_weights(model)
        self.n_iter_ = result.n_iter
        self.best_iteration_ = result.best_iteration
        self.stop_reason_ = result.stop_reason
        self.loss_curve_ = [record.train_loss for record in result.history]
        has_validation = result.n_validation > 0
        self.validation_loss_curve_ = [record.val_loss for record in result.history] if has_validation else None
        self.best_loss_ = (self.validation_loss_curve_ or self.loss_curve_)[result.best_iteration]
        self.n_features_in_ = model.n_features  # validate_data sets it for arrays, not for sources

    def _validated_fit_input(self, X: Any, y: Any, **check: Any) -> tuple[Any, Any]:
        """Validate in-memory ``X, y`` (setting ``n_features_in_``); pass sources through."""
        if is_out_of_core(X) or is_out_of_core(y):
            # Streamed data is checked block by block by streamls; forget names from a past fit.
            self.__dict__.pop("feature_names_in_", None)
            return X, y
        return validate_data(self, X, y, dtype=[np.float64, np.float32], **check)

    def _outputs(self, X: Any) -> np.ndarray:
        """The network's outputs for in-memory ``X``, shape (n,) or (n, k)."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=[np.float64, np.float32])
        return self.model_.predict(X)

    def __sklearn_tags__(self):  # type: ignore[no-untyped-def]
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        tags.input_tags.sparse = False
        return tags


class StreamLSRegressor(RegressorMixin, _StreamLSBase):
    """Two-layer (leaky) ReLU network regressor trained by alternating least squares.

    Each iteration reads the data once and solves both layers exactly by ridge
    regression on the current activation pattern (see ``docs/method.md``); the best
    iterate is kept.

    Parameters
    ----------
    {hyperparameters}
    block_rows : int, optional
        Rows per block read when streaming (default 65536, fewer for rows of more than 15
        inputs), rounded up to whole stored chunks.
    chunk_rows : int, optional
        Deprecated name of ``block_rows`` (it warns).

    Attributes
    ----------
    model_ : TwoLayerModel
        The trained network (save it with ``model_.save(path)``; stream predictions for
        out-of-core inputs with ``model_.predict_to(source, out_spec)``).
    coefs_ : list of numpy.ndarray, shapes (n_features, hidden_units) and (hidden_units, n_outputs)
        Weights in the data's own units (standardisation folded in), as ``MLPRegressor``.
    intercepts_ : list of numpy.ndarray, shapes (hidden_units,) and (n_outputs,)
    n_iter_ : int
        Solves performed.
    best_iteration_ : int
        Iteration of the model kept.
    stop_reason_ : str
    loss_curve_ : list of float
        Training mean squared error of every iterate, in standardised target units; entry
        ``t`` is model ``t``, and model 0 (zero output weights) has loss 1.
    validation_loss_curve_ : list of float or None
        The same on the validation rows (``None`` without validation rows).
    best_loss_ : float
        The monitored loss (validation if any, else training) of the model kept.
    n_features_in_ : int
    feature_names_in_ : numpy.ndarray of str, shape (n_features_in_,)
        Only when ``X`` had string column names (a pandas DataFrame).

    Notes
    -----
    The defaults are :func:`streamls.fit`'s but for those in :data:`ESTIMATOR_DEFAULTS`,
    chosen by cross-validation (``docs/sklearn.md``). ``l2="auto"`` chooses the ridge of
    each layer and iteration by generalised cross-validation, or by the validation loss
    of a held-out share ``validation_fraction`` of the rows; a number fixes it.

    ``random_state`` also takes a ``numpy.random.RandomState`` instance, whose next draw
    is the seed.
    """

    def fit(self, X: Any, y: Any = None) -> StreamLSRegressor:
        """Train on ``X, y``.

        Parameters
        ----------
        X : array_like of shape (n_samples, n_features), Source, dask array or data spec
            Inputs. Out-of-core inputs are streamed and not loaded whole.
        y : array_like of shape (n_samples,) or (n_samples, n_outputs), Source or data spec
            Targets. ``None`` only with an out-of-core ``X`` whose last column is the target.

        Returns
        -------
        self
        """
        self._validate_params()
        X, y = self._validated_fit_input(X, y, multi_output=True, y_numeric=True)
        self._train(X, y)
        return self

    def predict(self, X: Any) -> np.ndarray:
        """Predicted targets.

        Parameters
        ----------
        X : array_like of shape (n_samples, n_features)

        Returns
        -------
        numpy.ndarray of shape (n_samples,) or (n_samples, n_outputs), as ``y`` in ``fit``
        """
        return self._outputs(X)

    def __sklearn_tags__(self):  # type: ignore[no-untyped-def]
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags


class StreamLSClassifier(ClassifierMixin, _StreamLSBase):
    """Least-squares classifier on a two-layer (leaky) ReLU network, trained by alternating least squares.

    The labels are coded as targets (``-1/+1`` for two classes, one-hot columns for
    more; targets are standardised per column, so the coding's offset and scale do not
    change the fit), the network regresses them, and the class with the largest output
    wins. Parameters are those of :class:`StreamLSRegressor`.

    Attributes
    ----------
    classes_ : numpy.ndarray, shape (n_classes,)
    model_ : TwoLayerModel
        The network from inputs to coded targets: one output for two classes, one per
        class otherwise.
    coefs_, intercepts_, n_iter_, best_iteration_, stop_reason_, loss_curve_, \
validation_loss_curve_, best_loss_, n_features_in_, feature_names_in_
        As in :class:`StreamLSRegressor`.
    """

    def fit(self, X: Any, y: Any) -> StreamLSClassifier:
        """Train on ``X`` and class labels ``y``.

        Parameters
        ----------
        X : array_like of shape (n_samples, n_features), Source, dask array or data spec
            Inputs; out-of-core inputs are streamed.
        y : array_like of shape (n_samples,), Source or data spec
            Class labels (numbers or strings). A source is read whole: labels are one
            column, and coding them needs the set of classes.

        Returns
        -------
        self
        """
        self._validate_params()
        if is_out_of_core(y):
            labels = open_source(y, name="y")
            y = labels.read(0, labels.n_rows)  # (n, 1) for a 1-D array: sources hand out columns
            y = y.ravel() if labels.n_cols == 1 else y
        X, y = self._validated_fit_input(X, y)
        if is_out_of_core(X):
            y = column_or_1d(y, warn=True)
        check_classification_targets(y)
        encoder = LabelEncoder().fit(y)
        if len(encoder.classes_) < 2:
            raise ValueError(
                f"{type(self).__name__} needs samples of at least 2 classes, but the data holds 1 class: "
                f"{encoder.classes_[0]!r}"
            )
        self.classes_ = encoder.classes_
        self._train(X, coded_targets(encoder.transform(np.ravel(y)), len(self.classes_)))
        return self

    def decision_function(self, X: Any) -> np.ndarray:
        """The network's outputs: larger means more likely that class.

        Parameters
        ----------
        X : array_like of shape (n_samples, n_features)

        Returns
        -------
        numpy.ndarray of shape (n_samples,) for two classes (positive: ``classes_[1]``),
        else (n_samples, n_classes)
        """
        return self._outputs(X)

    def predict(self, X: Any) -> np.ndarray:
        """Predicted class labels, shape (n_samples,)."""
        scores = self.decision_function(X)
        index = (scores > 0).astype(int) if scores.ndim == 1 else scores.argmax(axis=1)
        return self.classes_[index]


StreamLSRegressor.__doc__ = document_hyperparameters(StreamLSRegressor.__doc__, ESTIMATOR_DEFAULTS)


def coded_targets(codes: np.ndarray, n_classes: int) -> np.ndarray:
    """Regression targets for class indices: ``-1/+1``, shape (n,), for two classes; one-hot, shape (n, c), else."""
    if n_classes == 2:
        return 2.0 * codes - 1.0
    return (codes[:, None] == np.arange(n_classes)).astype(np.float64)


def expected_failed_checks(estimator: BaseEstimator) -> dict[str, str]:
    """scikit-learn estimator checks that ``estimator`` is known to fail, with the reason.

    Pass it as ``parametrize_with_checks(..., expected_failed_checks=expected_failed_checks)``.
    """
    return {}
