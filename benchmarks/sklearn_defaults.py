"""How the scikit-learn estimators' defaults were chosen: cross-validated R^2 per ``l2`` setting.

Shuffled 5-fold cross-validation (``KFold(5, shuffle=True, random_state=1)``, not the folds
of ``sklearn_compare.py``) of ``StreamLSRegressor`` at ``hidden_units`` 16 and 32, averaged
over seeds 0, 1, 2, on diabetes (scikit-learn) and airfoil, concrete and a 3000-row random
sample of elevators (``../shared/data/uci``; skipped with a message when absent).

One JSON object per (hidden_units, l2, dataset), then one per (hidden_units, l2) with the mean
over the datasets. Run: ``python benchmarks/sklearn_defaults.py [--l2 auto,0.01] [--max-iter 20]``.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings

import numpy as np
from common import UCI_DIR, uci_table
from sklearn.datasets import load_diabetes
from sklearn.model_selection import KFold, cross_val_score
from threadpoolctl import threadpool_limits

from streamls.sklearn import StreamLSRegressor

ELEVATORS_ROWS = 3000
SEEDS = (0, 1, 2)


def datasets() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The four data sets as ``(X, y)``; a missing UCI file is skipped with a message."""
    out = {"diabetes": load_diabetes(return_X_y=True)}
    for name in ("airfoil", "concrete", "elevators"):
        table = uci_table(name)
        if table is None:
            print(f"skipping {name}: {UCI_DIR / (name + '.csv.gz')} not found", file=sys.stderr)
            continue
        if name == "elevators":
            table = table[np.random.default_rng(0).permutation(len(table))[:ELEVATORS_ROWS]]
        out[name] = (table[:, :-1], table[:, -1])
    return out


def l2_value(text: str) -> float | str:
    return text if text == "auto" else float(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--l2", default="auto,0.01", help="comma-separated l2 settings")
    parser.add_argument("--max-iter", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    data = datasets()
    cv = KFold(5, shuffle=True, random_state=1)
    with threadpool_limits(args.threads), warnings.catch_warnings():
        # Held-out folds reach a little beyond the training range; that warning is not news here.
        warnings.simplefilter("ignore", UserWarning)
        for h in (16, 32):
            for l2 in map(l2_value, args.l2.split(",")):
                means = []
                for name, (X, y) in data.items():
                    scores = [
                        cross_val_score(StreamLSRegressor(h, l2=l2, max_iter=args.max_iter, random_state=s), X, y, cv=cv).mean()
                        for s in SEEDS
                    ]
                    means.append(float(np.mean(scores)))
                    print(json.dumps({"benchmark": "sklearn_defaults", "hidden_units": h, "l2": l2, "dataset": name,
                                      "r2": means[-1], "r2_per_seed": scores}), flush=True)
                print(json.dumps({"benchmark": "sklearn_defaults", "hidden_units": h, "l2": l2, "dataset": "mean",
                                  "r2": float(np.mean(means))}), flush=True)


if __name__ == "__main__":
    main()
