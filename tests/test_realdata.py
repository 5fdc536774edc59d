"""Real UCI regression data (skipped when ../shared/data/uci is absent).

Acceptance: h = 32, alpha = 0, 30 iterations, seed 0, the "full" schedule (every row in every
pass, as in the paper); the standardised training MSE of the
best iterate is at most the bound below. The loss is checked twice: from the history, and
recomputed independently from the returned model's predictions on the whole array.
"""

from __future__ import annotations

import h5py
import numpy as np
import pytest
from conftest import load_uci

import streamls

BOUNDS = {"protein": 0.52, "kin40k": 0.10, "elevators": 0.13}


@pytest.mark.slow
@pytest.mark.realdata
@pytest.mark.parametrize("name", list(BOUNDS))
def test_training_mse_on_real_data(uci_dir, tmp_path, name: str) -> None:
    X, y = load_uci(uci_dir, name)
    # Read through a chunked HDF5 file, as a user with data on disk would.
    path = tmp_path / f"{name}.h5"
    with h5py.File(path, "w") as handle:
        handle.create_dataset("X", data=X, chunks=(4096, X.shape[1]))
        handle.create_dataset("y", data=y, chunks=(4096,))
    # The paper's training-loss protocol: every row in every pass.
    result = streamls.fit(
        f"{path}:/X", f"{path}:/y", hidden_units=32, alpha=0.0, max_iter=30, tol=0, random_state=0, schedule="full"
    )
    assert len(result.history) == 31
    best = result.history[result.best_iteration].train_loss
    assert best == min(r.train_loss for r in result.history)
    assert best <= BOUNDS[name], best
    recomputed = np.mean(((result.model.predict(X) - y) / y.std()) ** 2)
    assert recomputed == pytest.approx(best, rel=1e-8)
