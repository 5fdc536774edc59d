"""Products with the hidden layer's fixed-pattern matrix ``M``, formed from the rows (METHOD.md, wide data).

For a direction ``v`` (h, p), ``M vec(v) = sum_i sum_c z_ic z_ic^T vec(v)`` needs no ``P``: per
row, ``u = x~ v^T`` (h), ``t = V^T (a * u)`` (k), and the row adds ``(a * (V t)) x~^T`` (h, p).
One forward and one backward product, ``2 h (p + k)`` multiply-adds per row and direction.
Like every pass statistic the products are sums over rows, so blocks and workers add them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class HiddenProducts:
    """``M v`` for a batch of directions, summed over the training rows and over the validation rows.

    Attributes
    ----------
    train : numpy.ndarray, shape (r, h, p)
        The training rows' ``M`` times each of the ``r`` directions.
    validation : numpy.ndarray, shape (r, h, p)
        The validation rows' (zeros without them or when not asked for).
    """

    train: np.ndarray
    validation: np.ndarray

    def __add__(self, other: HiddenProducts) -> HiddenProducts:
        return HiddenProducts(self.train + other.train, self.validation + other.validation)


def hidden_products(x_aug: np.ndarray, a: np.ndarray, V: np.ndarray, directions: np.ndarray) -> np.ndarray:
    """``sum_i sum_c z_ic z_ic^T vec(v)`` over a block's rows for each direction ``v``.

    Parameters
    ----------
    x_aug : numpy.ndarray, shape (m, p)
    a : numpy.ndarray, shape (m, h)
        Activation slopes of the fixed pattern.
    V : numpy.ndarray, shape (h, k)
        Output weights (without the bias row).
    directions : numpy.ndarray, shape (r, h, p)

    Returns
    -------
    numpy.ndarray, shape (r, h, p)
    """
    (m, h), (r, _, p), k = a.shape, directions.shape, V.shape[1]
    u = (x_aug @ directions.reshape(r * h, p).T).reshape(m, r, h)  # each direction's pre-activations
    u *= a[:, None, :]
    t = u.reshape(m * r, h) @ V  # (m r, k): each direction's change of the outputs
    g = (t @ V.T).reshape(m, r, h)
    g *= a[:, None, :]
    return (g.reshape(m, r * h).T @ x_aug).reshape(r, h, p)
