"""Initial hidden weights: He-scaled random directions through randomly chosen training rows."""

from __future__ import annotations

import numpy as np


def anchor_candidates(n_rows: int, hidden_units: int, rng: np.random.Generator) -> np.ndarray:
    """Row indices, sorted, from which the first pass collects anchor rows.

    Four candidates per neuron leave room for rows that turn out to be validation
    rows or to hold NaN; choosing indices up front keeps the choice independent of
    chunking and of which worker reads which rows.

    Returns
    -------
    numpy.ndarray of int64, shape (min(n_rows, 4 h),)
    """
    count = min(n_rows, 4 * hidden_units)
    return np.sort(rng.choice(n_rows, size=count, replace=False)).astype(np.int64)


def initial_weights(anchors: np.ndarray, hidden_units: int, rng: np.random.Generator) -> np.ndarray:
    """Hidden weights whose hyperplanes pass through the given standardised rows.

    Neuron ``j`` gets a direction ``w_j ~ N(0, 2/d)`` (He scaling) and the bias
    ``-w_j . x_j`` (plus ``1e-8 ||w_j||``) for anchor row ``x_j``, so every neuron splits the data.

    Parameters
    ----------
    anchors : numpy.ndarray, shape (r, d), r >= 1
        Standardised training rows; reused cyclically when ``r < h``.
    hidden_units : int

    Returns
    -------
    numpy.ndarray, shape (h, d + 1)
    """
    d = anchors.shape[1]
    directions = rng.standard_normal((hidden_units, d)) * np.sqrt(2.0 / d)
    points = anchors[np.arange(hidden_units) % len(anchors)]
    # The anchor sits just on the active side rather than exactly on the hyperplane:
    # a pre-activation of 0 +- rounding would make the first pattern, and so the whole
    # run, depend on how the moments pass happened to be chunked.
    bias = -(directions * points).sum(axis=1, keepdims=True) + 1e-8 * np.linalg.norm(directions, axis=1, keepdims=True)
    return np.hstack([directions, bias])
