"""The stopping and best-iterate rule with validation rows, against the rule before it, on the same runs.

For each real data set (``../shared/data/uci``; a missing one is skipped with a message):
a seeded 80/20 split, then one ``streamls.fit`` with the library defaults,
``validation_fraction=0.1``, ``tol=0`` (every one of ``max_iter`` iterations runs) and one
start (``n_init=1``), and
the test MSE of every iterate, taken in the fit's callback. Both rules are pure functions
of the history, so each is replayed on that one run: the iteration it would have stopped
after, the iterate it would have kept (the lowest validation loss so far) and that
iterate's test MSE. The iterates before a stop do not depend on the rule, so the replay
equals a run with the rule.

- before: stop when the best validation loss of the last ``n_iter_no_change`` iterations
  improves on the best before them by less than ``tol`` (``streamls.schedule.stop_reason``
  on the validation losses);
- now: :func:`streamls.schedule.run_stop_reason` (converged training loss, or a validation
  loss above its best by more than its standard error for ``n_iter_no_change`` iterations).

One JSON object per data set, then a summary. Run: ``python benchmarks/stopping.py``.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import warnings
from collections.abc import Callable, Sequence

import numpy as np
from common import UCI_DIR, uci_table
from threadpoolctl import threadpool_limits

import streamls
from streamls.hyperparameters import TrainConfig
from streamls.model import TwoLayerModel
from streamls.schedule import run_stop_reason, stop_reason
from streamls.state import IterationRecord

DATASETS = ("airfoil", "concrete", "kin40k", "protein", "bike", "elevators", "pol")
TEST_FRACTION = 0.2


def replay(records: Sequence[IterationRecord], stops: Callable[[Sequence[IterationRecord]], bool]) -> tuple[int, int]:
    """The iteration a rule stops after (the last one if never) and the best iterate up to there."""
    last = next((t for t in range(1, len(records)) if stops(records[: t + 1])), len(records) - 1)
    losses = [r.val_loss for r in records[: last + 1]]
    return last, int(np.argmin(losses))


def run(name: str, seed: int, max_iter: int) -> dict[str, object] | None:
    table = uci_table(name)
    if table is None:
        print(f"skipping {name}: {UCI_DIR / (name + '.csv.gz')} not found", file=sys.stderr)
        return None
    table = table[np.random.default_rng(seed).permutation(len(table))]
    n_test = int(TEST_FRACTION * len(table))
    test, train = table[:n_test], table[n_test:]
    tests: list[float] = []

    def test_mse(W: np.ndarray, B: np.ndarray, standardizer) -> float:
        model = TwoLayerModel(W, B, 0.0, standardizer, target_is_1d=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # test rows beyond the training range
            return float(np.mean((model.predict(test[:, :-1]) - test[:, -1]) ** 2))

    def callback(state, record) -> None:
        if not tests:  # model 0, before the first solve
            tests.append(test_mse(state.W_prev, np.zeros_like(state.B), state.standardizer))
        tests.append(test_mse(state.W, state.B, state.standardizer))

    # One start: the rules compare stops of one trajectory, which a race's kept start joins
    # only after the race.
    result = streamls.fit(train[:, :-1], train[:, -1], validation_fraction=0.1, tol=0.0, max_iter=max_iter,
                          n_init=1, random_state=seed, callback=callback)
    records = result.history
    cfg = TrainConfig()
    before = replay(records, lambda rs: stop_reason([r.val_loss for r in rs], cfg.tol, cfg.n_iter_no_change) is not None)
    now = replay(records, lambda rs: run_stop_reason(rs, cfg.tol, cfg.n_iter_no_change) is not None)
    scale = float(np.var(test[:, -1]))  # test MSE relative to the test target's variance
    return {
        "benchmark": "stopping", "dataset": name, "n_train": len(train),
        "before_stop": before[0], "before_best": before[1], "before_test": tests[before[1]] / scale,
        "now_stop": now[0], "now_best": now[1], "now_test": tests[now[1]] / scale,
        "all_iterations_best_test": min(tests) / scale,
        "ratio_now_before": tests[now[1]] / tests[before[1]],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", default=",".join(DATASETS))
    parser.add_argument("--max-iter", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    rows = []
    with threadpool_limits(args.threads):
        for name in args.datasets.split(","):
            row = run(name, args.seed, args.max_iter)
            if row is not None:
                rows.append(row)
                print(json.dumps(row), flush=True)
    if rows:
        ratios = [float(r["ratio_now_before"]) for r in rows]
        print(json.dumps({
            "benchmark": "stopping_summary", "datasets": len(rows),
            "now_better": sum(r < 1 for r in ratios), "now_worse": sum(r > 1 for r in ratios),
            "median_ratio_now_before": statistics.median(ratios),
            "geometric_mean_ratio": math.exp(statistics.fmean(math.log(r) for r in ratios)),
        }))


if __name__ == "__main__":
    main()
