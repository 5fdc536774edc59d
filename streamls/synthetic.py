"""Synthetic regression data from a random teacher network, reproducible row by row.

Rows are made in fixed generation units of :data:`UNIT_ROWS` rows; unit ``u`` draws from
its own generator seeded by ``(seed, u)``, so any row range can be regenerated on its own,
by any thread, and the first ``n`` rows do not depend on the total row count. Teacher
weights come from a separate stream of the same seed. ``data_tools synth`` writes these
rows to files in parallel; ``streamls demo`` trains on them in memory; the test suite
draws its data here too, from a teacher with ``column_spread=True`` so that standardisation
matters.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from .errors import parameter_error

#: Rows per generation unit: the granularity of seeding, fixed forever for reproducibility.
UNIT_ROWS = 4096
KINDS = ("teacher", "linear")
#: Stream tags that keep the teacher's draws, each unit's draws and the column spread apart.
_TEACHER_STREAM, _UNIT_STREAM, _SPREAD_STREAM = 0, 1, 2


@dataclass(frozen=True)
class SynthSpec:
    """What to generate.

    Attributes
    ----------
    n_rows : int
    n_features : int
        ``d``.
    hidden_units : int
        Teacher hidden units (``kind="teacher"``).
    n_targets : int
        ``k``; ``y`` is 1-D when 1.
    noise : float
        Standard deviation of the Gaussian noise added to the targets.
    kind : {"teacher", "linear"}
        ``y = relu(X W1^T + b1) W2 + b2 + noise`` or ``y = X W2 + b2 + noise``.
    seed : int
    dtype : str
        Stored dtype of ``X`` and ``y``.
    """

    n_rows: int
    n_features: int
    hidden_units: int = 16
    n_targets: int = 1
    noise: float = 0.1
    kind: str = "teacher"
    seed: int = 0
    dtype: str = "float32"

    def __post_init__(self) -> None:
        for name in ("n_rows", "n_features", "hidden_units", "n_targets", "seed"):
            value = getattr(self, name)
            low = 0 if name == "seed" else 1
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
                raise parameter_error("SynthSpec", name, f"an int in the range [{low}, inf)", value)
        if not (np.isfinite(self.noise) and self.noise >= 0):
            raise parameter_error("SynthSpec", "noise", "a float in the range [0, inf)", self.noise)
        if self.kind not in KINDS:
            raise parameter_error("SynthSpec", "kind", f"one of {KINDS}", self.kind)
        if np.dtype(self.dtype).kind != "f":
            raise parameter_error("SynthSpec", "dtype", "a floating dtype such as 'float32'", self.dtype)


@dataclass(frozen=True)
class Teacher:
    """The network behind the targets (float64 weights).

    Attributes
    ----------
    W1 : numpy.ndarray, shape (h, d), or None for the linear kind
    b1 : numpy.ndarray, shape (h,), or None
    W2 : numpy.ndarray, shape (h, k) (teacher) or (d, k) (linear)
    b2 : numpy.ndarray, shape (k,)
    x_scale, x_offset : numpy.ndarray, shape (d,), or None
        The column spread (``Teacher.draw(spec, column_spread=True)``): inputs are
        ``z * x_scale + x_offset`` for the standard normal ``z`` the network reads; ``None``
        without spread.
    """

    W1: np.ndarray | None
    b1: np.ndarray | None
    W2: np.ndarray
    b2: np.ndarray
    x_scale: np.ndarray | None = None
    x_offset: np.ndarray | None = None

    @classmethod
    def draw(cls, spec: SynthSpec, column_spread: bool = False) -> Teacher:
        """The teacher of ``spec``: a function of its seed, ``d``, ``h``, ``k`` and kind only.

        ``column_spread=True`` also gives every input column its own scale (uniform in
        [0.5, 3)) and offset (uniform in [-2, 2)), from a stream of their own (the weights stay
        as they are), so that a learner that does not standardise its inputs fits worse.
        """
        rng = np.random.default_rng(np.random.SeedSequence(spec.seed, spawn_key=(_TEACHER_STREAM,)))
        d, h, k = spec.n_features, spec.hidden_units, spec.n_targets
        spread = _column_spread(spec) if column_spread else (None, None)
        if spec.kind == "linear":
            return cls(None, None, rng.standard_normal((d, k)) / np.sqrt(d), rng.standard_normal(k), *spread)
        # Pre-activations have unit variance with X ~ N(0, I), offsets put the kinks inside the data.
        W1 = rng.standard_normal((h, d)) / np.sqrt(d)
        b1 = 0.5 * rng.standard_normal(h)
        return cls(W1, b1, rng.standard_normal((h, k)) / np.sqrt(h), rng.standard_normal(k), *spread)

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Noiseless targets, shape (m, k) float64, of inputs ``x``, shape (m, d)."""
        if self.x_scale is None:
            return self.network(x)
        return self.network((np.asarray(x, dtype=np.float64) - self.x_offset) / self.x_scale)

    def spread(self, z: np.ndarray) -> np.ndarray:
        """The inputs of standard normal ``z``: ``z`` itself, or ``z * x_scale + x_offset`` (float64) with spread."""
        if self.x_scale is None:
            return z
        return np.asarray(z, dtype=np.float64) * self.x_scale + self.x_offset

    def network(self, z: np.ndarray) -> np.ndarray:
        """Noiseless targets, shape (m, k) float64, of the inputs before the spread, ``z``, shape (m, d)."""
        features = np.asarray(z, dtype=np.float64)
        if self.W1 is not None:
            # In place, with a C-ordered W1^T: fresh (m, h) temporaries cost more in page
            # faults than the arithmetic, and synth calls this for every 4096 rows.
            features = features @ np.ascontiguousarray(self.W1.T)
            features += self.b1
            np.maximum(features, 0.0, out=features)
        return features @ self.W2 + self.b2

    def arrays(self) -> dict[str, np.ndarray]:
        """The weights by field name (``W1``, ``b1``, ``W2``, ``b2``), leaving out the None ones of the linear kind."""
        return {name: value for name, value in asdict(self).items() if value is not None}


def _column_spread(spec: SynthSpec) -> tuple[np.ndarray, np.ndarray]:
    """Scales and offsets of ``spec``'s input columns (see :meth:`Teacher.draw`)."""
    rng = np.random.default_rng(np.random.SeedSequence(spec.seed, spawn_key=(_SPREAD_STREAM,)))
    return rng.uniform(0.5, 3.0, spec.n_features), rng.uniform(-2.0, 2.0, spec.n_features)


def generate_unit(spec: SynthSpec, teacher: Teacher, unit: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows of generation unit ``unit``: ``X`` (m, d) and ``y`` (m, k) in the stored dtype.

    The unit is always drawn whole (then cut at ``n_rows``), so a row's values never
    depend on the total row count.
    """
    rng = np.random.default_rng(np.random.SeedSequence(spec.seed, spawn_key=(_UNIT_STREAM, unit)))
    z = rng.standard_normal((UNIT_ROWS, spec.n_features), dtype=np.float32)
    noise = rng.standard_normal((UNIT_ROWS, spec.n_targets))
    y = teacher.network(z) + spec.noise * noise
    m = min(UNIT_ROWS, spec.n_rows - unit * UNIT_ROWS)
    return teacher.spread(z[:m]).astype(spec.dtype, copy=False), y[:m].astype(spec.dtype)


def generate_rows(spec: SynthSpec, teacher: Teacher, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows ``[start, stop)`` of the dataset: ``X`` (m, d) and ``y`` (m, k)."""
    first, last = start // UNIT_ROWS, -(-stop // UNIT_ROWS)
    units = [generate_unit(spec, teacher, u) for u in range(first, last)]
    offset = start - first * UNIT_ROWS
    x = np.concatenate([u[0] for u in units])[offset : offset + stop - start]
    y = np.concatenate([u[1] for u in units])[offset : offset + stop - start]
    return x, y
