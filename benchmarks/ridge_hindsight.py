"""Does any data set pay for the automatic ridge? The default against fixed ridges chosen in hindsight.

On the real data sets of ``benchmarks/compare.py``, with its split and training file
(``--full`` plan: every row, 80/20 hash split, seed 0), ``streamls.fit`` runs once with its
defaults (``l2="auto"``) and once for each fixed ``l2`` of :data:`FIXED_L2`; everything else
is the defaults (``hidden_units=32``, ``max_iter=100`` as in compare.py). The claim: on
each data set the default's test MSE is at most :data:`TOLERANCE` times that of the best
fixed ridge, the one chosen in hindsight by its test MSE.

One JSON object per (data set, ``l2``), one per data set with the ratio, then the claim
check. Only test errors are measured, so the runs may share the machine. Run:
``python benchmarks/ridge_hindsight.py [--datasets airfoil,concrete] [--threads 1]``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import warnings
from pathlib import Path

import numpy as np
from compare import PLANS, load_split, write_training_file
from threadpoolctl import threadpool_limits

import streamls

FIXED_L2 = (1e-6, 1e-4, 1e-3, 1e-2)
TOLERANCE = 1.02
HIDDEN, MAX_ITER, SEED = 32, 100, 0


def test_mse(path: Path, x_test: np.ndarray, y_test: np.ndarray, l2: float | str) -> tuple[float, int]:
    """Test MSE (in the split's standardised units) of ``fit`` with ``l2`` on the training file, and its iterations."""
    result = streamls.fit(f"{path}:/X", f"{path}:/y", hidden_units=HIDDEN, max_iter=MAX_ITER, random_state=SEED, l2=l2)
    pred = result.model.predict(x_test).reshape(-1, 1)
    return float(np.mean((pred - y_test) ** 2)), result.n_iter


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    plan = PLANS["full"]
    parser.add_argument("--datasets", default=",".join(n for n in plan.datasets if n != "synthetic"),
                        help="comma-separated real data sets of compare.py's full plan")
    parser.add_argument("--threads", type=int, default=1, help="BLAS threads (compare.py runs on 1)")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp, threadpool_limits(args.threads), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # test rows beyond the training range: not news here
        for name in args.datasets.split(","):
            loaded = load_split(name, plan, SEED)
            if loaded is None:
                continue
            split, _ = loaded
            path = Path(tmp) / f"{name}-train.h5"
            write_training_file(split, path, SEED)
            errors = {}
            for l2 in ("auto", *FIXED_L2):
                errors[l2], n_iter = test_mse(path, split.x_test, split.y_test, l2)
                print(json.dumps({"benchmark": "ridge_hindsight", "dataset": name, "l2": l2, "test_mse": errors[l2],
                                  "iterations": n_iter}), flush=True)
            best = min(FIXED_L2, key=lambda l2: errors[l2])
            ratio = errors["auto"] / errors[best]
            row = {"benchmark": "ridge_hindsight", "dataset": name, "default_test_mse": errors["auto"],
                   "best_fixed_l2": best, "best_fixed_test_mse": errors[best], "ratio": ratio, "passed": ratio <= TOLERANCE}
            rows.append(row)
            print(json.dumps(row), flush=True)
    print(json.dumps({"benchmark": "ridge_hindsight", "claim": f"default test MSE <= {TOLERANCE} x the best fixed l2's",
                      "passed": sum(r["passed"] for r in rows), "of": len(rows),
                      "misses": {r["dataset"]: round(r["ratio"], 4) for r in rows if not r["passed"]}}))


if __name__ == "__main__":
    main()
