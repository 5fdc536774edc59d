"""The scikit-learn estimators against scikit-learn's MLP on scikit-learn's toy datasets.

Results, one JSON object per line:

- ``diabetes``: ``cross_validate`` of ``StreamLSRegressor(hidden_units=16)`` and of
  ``MLPRegressor(hidden_layer_sizes=(16,), max_iter=2000, random_state=0)`` on the same
  folds (``KFold(5)``, what ``cross_val_score`` uses by default): mean R^2 of each and the
  ratio of their total fit times. StreamLS runs with its default ``random_state=None`` and
  with the seeds ``0 .. seeds - 1``, so the spread over initialisations is visible.
- ``digits``: 5-fold (``StratifiedKFold(5)``) accuracy of ``StreamLSClassifier(hidden_units=64)``
  and, as the time reference, of ``MLPClassifier(hidden_layer_sizes=(64,), max_iter=2000,
  random_state=0)``.

Both estimators run under the same BLAS thread limit (``--threads``, default 1).

Run: ``python benchmarks/sklearn_compare.py [--threads 1] [--seeds 5] [--skip-digits]``.
"""

from __future__ import annotations

import argparse
import json
import warnings
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.datasets import load_diabetes, load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import KFold, StratifiedKFold, cross_validate
from sklearn.neural_network import MLPClassifier, MLPRegressor
from threadpoolctl import threadpool_limits

from streamls.errors import OutOfRangeWarning
from streamls.sklearn import StreamLSClassifier, StreamLSRegressor


def cv_summary(estimator: BaseEstimator, X: np.ndarray, y: np.ndarray, cv: Any) -> dict[str, Any]:
    """Per-fold test scores, their mean, and the total fit time in seconds."""
    with warnings.catch_warnings():
        # MLP reaching max_iter is part of the reference protocol, not news; nor are test folds
        # beyond the training folds' range, which every seed's run would repeat.
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.simplefilter("ignore", OutOfRangeWarning)
        result = cross_validate(estimator, X, y, cv=cv)
    scores = result["test_score"]
    return {
        "scores": [round(float(s), 4) for s in scores],
        "mean": float(scores.mean()),
        "fit_seconds": float(result["fit_time"].sum()),
    }


def diabetes(seeds: int) -> list[dict[str, Any]]:
    X, y = load_diabetes(return_X_y=True)
    cv = KFold(5)
    mlp = cv_summary(MLPRegressor(hidden_layer_sizes=(16,), max_iter=2000, random_state=0), X, y, cv)
    results = []
    for seed in [None, *range(seeds)]:
        ours = cv_summary(StreamLSRegressor(hidden_units=16, random_state=seed), X, y, cv)
        results.append(
            {
                "benchmark": "diabetes_cv_r2",
                "random_state": seed,
                "streamls_r2": ours["mean"],
                "mlp_r2": mlp["mean"],
                "r2_at_least_mlp": ours["mean"] >= mlp["mean"],
                "fit_time_ratio_streamls_over_mlp": ours["fit_seconds"] / mlp["fit_seconds"],
                "streamls_fit_seconds": ours["fit_seconds"],
                "mlp_fit_seconds": mlp["fit_seconds"],
                "streamls_fold_r2": ours["scores"],
                "mlp_fold_r2": mlp["scores"],
            }
        )
    return results


def digits() -> dict[str, Any]:
    X, y = load_digits(return_X_y=True)
    cv = StratifiedKFold(5)
    ours = cv_summary(StreamLSClassifier(hidden_units=64), X, y, cv)
    mlp = cv_summary(MLPClassifier(hidden_layer_sizes=(64,), max_iter=2000, random_state=0), X, y, cv)
    return {
        "benchmark": "digits_cv_accuracy",
        "streamls_accuracy": ours["mean"],
        "accuracy_at_least_0.94": ours["mean"] >= 0.94,
        "mlp_accuracy": mlp["mean"],
        "fit_time_ratio_streamls_over_mlp": ours["fit_seconds"] / mlp["fit_seconds"],
        "streamls_fit_seconds": ours["fit_seconds"],
        "mlp_fit_seconds": mlp["fit_seconds"],
        "streamls_fold_accuracy": ours["scores"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="BLAS threads for both estimators")
    parser.add_argument("--seeds", type=int, default=5, help="extra StreamLS seeds on diabetes")
    parser.add_argument("--skip-digits", action="store_true")
    args = parser.parse_args()
    with threadpool_limits(args.threads):
        for result in diabetes(args.seeds):
            print(json.dumps({**result, "threads": args.threads}), flush=True)
        if not args.skip_digits:
            print(json.dumps({**digits(), "threads": args.threads}), flush=True)


if __name__ == "__main__":
    main()
