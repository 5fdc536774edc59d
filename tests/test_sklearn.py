"""The scikit-learn estimators: scikit-learn's own checks, meta-estimators, and values against references."""

from __future__ import annotations

import pickle
import warnings
from collections.abc import Iterator

import h5py
import numpy as np
import pytest
from sklearn.base import clone
from sklearn.datasets import load_diabetes, load_digits, load_iris, make_regression
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV, KFold, StratifiedKFold, cross_val_score
from sklearn.neural_network import MLPRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks
from threadpoolctl import threadpool_limits

import streamls
from streamls.sklearn import StreamLSClassifier, StreamLSRegressor, expected_failed_checks, seed_of


@pytest.fixture(autouse=True)
def one_blas_thread() -> Iterator[None]:
    """Small solves on a shared machine run fastest, and reproducibly, on one BLAS thread."""
    with threadpool_limits(1):
        yield


@parametrize_with_checks([StreamLSRegressor(), StreamLSClassifier()], expected_failed_checks=expected_failed_checks)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


def leaky_relu(u: np.ndarray, alpha: float) -> np.ndarray:
    return np.where(u > 0, u, alpha * u)


@pytest.fixture(scope="module")
def regression_data() -> tuple[np.ndarray, np.ndarray]:
    """Two targets of different scale and offset, on inputs far from standardised."""
    X, y = make_regression(n_samples=300, n_features=5, n_targets=2, noise=1.0, random_state=3)
    return 10.0 * X + 50.0, np.column_stack([y[:, 0], 0.01 * y[:, 1] - 7.0])


def test_regressor_matches_the_core_and_its_weights_reproduce_predict(regression_data):
    X, Y = regression_data
    params = {"hidden_units": 8, "alpha": 0.1, "l2": 0.01, "max_iter": 6, "random_state": 4}
    est = StreamLSRegressor(**params).fit(X, Y)
    reference = streamls.fit(
        X, Y, tol=est.tol, n_iter_no_change=est.n_iter_no_change, damping=est.damping, **params
    ).model
    np.testing.assert_allclose(est.predict(X), reference.predict(X), rtol=1e-12, atol=1e-9)

    # coefs_/intercepts_ act on raw inputs and give raw targets: an independent forward pass.
    hidden = leaky_relu(X @ est.coefs_[0] + est.intercepts_[0], 0.1)
    np.testing.assert_allclose(hidden @ est.coefs_[1] + est.intercepts_[1], est.predict(X), rtol=1e-9, atol=1e-9)
    assert [c.shape for c in est.coefs_] == [(5, 8), (8, 2)]
    assert [b.shape for b in est.intercepts_] == [(8,), (2,)]
    assert est.n_features_in_ == 5 and est.n_iter_ >= 1
    assert len(est.loss_curve_) == est.n_iter_ + 1 and est.validation_loss_curve_ is None
    assert est.best_loss_ == min(est.loss_curve_)
    assert est.predict(X).shape == (300, 2) and est.score(X, Y) > 0.9


def test_one_target_column_keeps_its_shape(regression_data):
    X, Y = regression_data
    est = StreamLSRegressor(hidden_units=4, max_iter=3, random_state=0)
    assert est.fit(X, Y[:, 0]).predict(X).shape == (300,)
    assert est.fit(X, Y[:, :1]).predict(X).shape == (300, 1)


def test_validation_fraction_gives_a_validation_curve_and_picks_the_best(regression_data):
    X, Y = regression_data
    est = StreamLSRegressor(hidden_units=8, validation_fraction=0.2, random_state=0).fit(X, Y)
    assert len(est.validation_loss_curve_) == len(est.loss_curve_)
    assert est.best_loss_ == min(est.validation_loss_curve_)
    assert est.validation_loss_curve_[est.best_iteration_] == est.best_loss_


def test_random_state_int_and_instance_are_deterministic(regression_data):
    X, Y = regression_data
    fitted = [StreamLSRegressor(hidden_units=6, max_iter=3, random_state=rs).fit(X, Y).predict(X) for rs in (7, 7)]
    np.testing.assert_array_equal(*fitted)
    from_instances = [
        StreamLSRegressor(hidden_units=6, max_iter=3, random_state=np.random.RandomState(5)).fit(X, Y).predict(X)
        for _ in range(2)
    ]
    np.testing.assert_array_equal(*from_instances)
    assert seed_of(None) is None and seed_of(3) == 3
    assert seed_of(np.random.RandomState(5)) == seed_of(np.random.RandomState(5))


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ({"l2": -1.0}, "'l2' parameter of StreamLSRegressor"),
        ({"alpha": 1.0}, "'alpha' parameter of StreamLSRegressor"),
        ({"hidden_units": 0}, "'hidden_units' parameter of StreamLSRegressor"),
        ({"random_state": "seed"}, "'random_state' parameter of StreamLSRegressor"),
    ],
)
def test_bad_hyperparameters_raise_value_error_naming_the_estimator(regression_data, params, fragment):
    X, Y = regression_data
    with pytest.raises(ValueError, match=fragment):
        StreamLSRegressor(**params).fit(X, Y)


def test_classifier_string_labels_binary_and_multiclass():
    X, y = load_iris(return_X_y=True)
    names = np.array(["setosa", "versicolor", "virginica"])[y]
    clf = StreamLSClassifier(hidden_units=8, random_state=0).fit(X, names)
    np.testing.assert_array_equal(clf.classes_, ["setosa", "versicolor", "virginica"])
    scores = clf.decision_function(X)
    assert scores.shape == (150, 3)
    np.testing.assert_array_equal(clf.predict(X), clf.classes_[scores.argmax(axis=1)])
    assert clf.score(X, names) > 0.95
    assert not hasattr(clf, "predict_proba")

    binary = names != "setosa"
    labels = np.where(binary, "other", "setosa")
    clf.fit(X, labels)
    scores = clf.decision_function(X)
    assert scores.shape == (150,) and clf.model_.n_targets == 1
    np.testing.assert_array_equal(clf.predict(X), np.where(scores > 0, clf.classes_[1], clf.classes_[0]))
    assert clf.score(X, labels) == 1.0


def test_classifier_is_least_squares_on_coded_labels():
    """The network regresses one-hot columns: the core on the same targets gives the same scores."""
    X, y = load_iris(return_X_y=True)
    params = {"hidden_units": 6, "l2": 0.05, "max_iter": 4, "random_state": 2}
    clf = StreamLSClassifier(**params).fit(X, y)
    one_hot = (y[:, None] == np.arange(3)).astype(float)
    reference = streamls.fit(
        X, one_hot, tol=clf.tol, n_iter_no_change=clf.n_iter_no_change, damping=clf.damping, **params
    ).model
    np.testing.assert_allclose(clf.decision_function(X), reference.predict(X), rtol=1e-12, atol=1e-9)


def test_classifier_needs_two_classes():
    X = np.random.default_rng(0).normal(size=(10, 3))
    with pytest.raises(ValueError, match="1 class"):
        StreamLSClassifier().fit(X, np.ones(10))


# Held-out folds hold rows beyond the training folds' range by design: the warning is expected there.
@pytest.mark.filterwarnings("ignore::streamls.errors.OutOfRangeWarning")
def test_pipeline_grid_search_and_cross_val_score(regression_data):
    X, Y = regression_data
    pipe = make_pipeline(StandardScaler(), StreamLSRegressor(hidden_units=6, max_iter=5, random_state=0))
    search = GridSearchCV(pipe, {"streamlsregressor__l2": [1e-3, 1e-1]}, cv=3).fit(X, Y[:, 0])
    assert search.best_params_["streamlsregressor__l2"] in (1e-3, 1e-1)
    assert search.best_estimator_.score(X, Y[:, 0]) > 0.9

    X_iris, y_iris = load_iris(return_X_y=True)
    scores = cross_val_score(StreamLSClassifier(hidden_units=8, random_state=0), X_iris, y_iris, cv=5)
    assert scores.shape == (5,) and scores.mean() > 0.9


@pytest.mark.parametrize("make", [StreamLSRegressor, StreamLSClassifier])
def test_clone_and_pickle_round_trip(make):
    X, y = load_iris(return_X_y=True)
    est = make(hidden_units=5, l2=0.3, max_iter=3, random_state=1).fit(X, y)
    restored = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(restored.predict(X), est.predict(X))
    fresh = clone(est)
    assert fresh.get_params() == est.get_params() and not hasattr(fresh, "model_")
    np.testing.assert_array_equal(fresh.fit(X, y).predict(X), est.predict(X))


def test_dataframe_feature_names():
    pd = pytest.importorskip("pandas")
    X, y = load_diabetes(return_X_y=True, as_frame=True)
    est = StreamLSRegressor(hidden_units=4, max_iter=3, random_state=0).fit(X, y)
    np.testing.assert_array_equal(est.feature_names_in_, X.columns.to_numpy())
    with pytest.warns(UserWarning, match="does not have valid feature names"):
        np.testing.assert_array_equal(est.predict(X.to_numpy()), est.predict(X))
    with pytest.raises(ValueError, match="feature names"):
        est.predict(pd.DataFrame(X.to_numpy(), columns=[f"c{i}" for i in range(X.shape[1])]))
    est.fit(X.to_numpy(), y.to_numpy())
    assert not hasattr(est, "feature_names_in_")


def test_out_of_core_hdf5_gives_the_in_memory_model(tmp_path, regression_data):
    X, Y = regression_data
    labels = np.where(Y[:, 0] > np.median(Y[:, 0]), "high", "low")
    path = tmp_path / "train.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("X", data=X, chunks=(32, 5))
        f.create_dataset("y", data=Y)
        f.create_dataset("table", data=np.column_stack([X, Y[:, 0]]), chunks=(50, 6))
        f.create_dataset("codes", data=(labels == "high").astype(np.int64))
    params = {"hidden_units": 6, "max_iter": 4, "random_state": 3, "block_rows": 64}

    in_memory = StreamLSRegressor(**params).fit(X, Y)
    streamed = StreamLSRegressor(**params).fit(f"{path}:/X", f"{path}:/y")
    np.testing.assert_allclose(streamed.predict(X), in_memory.predict(X), rtol=1e-10, atol=1e-8)
    assert streamed.n_features_in_ == 5

    table = StreamLSRegressor(**params).fit(f"{path}:/table")  # y=None: the last column is the target
    np.testing.assert_allclose(
        table.predict(X), StreamLSRegressor(**params).fit(X, Y[:, 0]).predict(X), rtol=1e-10, atol=1e-8
    )

    clf = StreamLSClassifier(**params).fit(f"{path}:/X", labels)
    np.testing.assert_array_equal(clf.predict(X), StreamLSClassifier(**params).fit(X, labels).predict(X))
    clf_codes = StreamLSClassifier(**params).fit(f"{path}:/X", f"{path}:/codes")  # labels read whole
    np.testing.assert_array_equal(clf_codes.classes_, [0, 1])
    np.testing.assert_array_equal(clf_codes.predict(X) == 1, clf.predict(X) == "high")


def test_dask_array_inputs_are_streamed(regression_data):
    da = pytest.importorskip("dask.array")
    X, Y = regression_data
    params = {"hidden_units": 6, "max_iter": 4, "random_state": 3}
    streamed = StreamLSRegressor(**params).fit(da.from_array(X, chunks=(64, 5)), Y)
    np.testing.assert_allclose(
        streamed.predict(X), StreamLSRegressor(**params).fit(X, Y).predict(X), rtol=1e-10, atol=1e-8
    )


# Held-out folds hold rows beyond the training folds' range by design: the warning is expected there.
@pytest.mark.filterwarnings("ignore::streamls.errors.OutOfRangeWarning")
@pytest.mark.slow
def test_diabetes_cross_validated_r2_at_least_mlp():
    """Acceptance: on the same folds, mean R^2 at least that of MLPRegressor (speed: benchmarks/sklearn_compare.py)."""
    X, y = load_diabetes(return_X_y=True)
    folds = KFold(5)
    ours = cross_val_score(StreamLSRegressor(hidden_units=16, random_state=0), X, y, cv=folds)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # the reference stops at max_iter=2000
        mlp = cross_val_score(MLPRegressor(hidden_layer_sizes=(16,), max_iter=2000, random_state=0), X, y, cv=folds)
    assert ours.mean() >= mlp.mean()


# Held-out folds hold rows beyond the training folds' range by design: the warning is expected there.
@pytest.mark.filterwarnings("ignore::streamls.errors.OutOfRangeWarning")
@pytest.mark.slow
def test_digits_ten_classes():
    """A cheap guard on a real ten-class problem; the acceptance figure (64 hidden units, default
    iterations, 5-fold accuracy at least 0.94) costs minutes and is measured by benchmarks/sklearn_compare.py."""
    X, y = load_digits(return_X_y=True)
    scores = cross_val_score(
        StreamLSClassifier(hidden_units=32, max_iter=2, random_state=0), X, y, cv=StratifiedKFold(5)
    )
    assert scores.mean() >= 0.9
