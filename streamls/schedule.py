"""Which rows each pass covers: a growing random sample, and when to grow it or stop.

Early iterations need only enough rows to pin down the network's unknowns; reading all n
rows for each of them is what makes a plain full-pass schedule slow on big data. The
``"sample"`` schedule (dynamic sample size, after Byrd, Chin, Nocedal and Wu, Math.
Programming 134, 2012) trains on the rows ranked below a fraction ``f_s`` (ranks hash the
row index, :func:`streamls.split.row_ranks`), doubling ``f`` in stages:

- **grow** when the stage's monitored loss improved over the last :data:`GROW_WINDOW`
  iterations by less than its standard error: the optimisation has reached the sample's
  statistical resolution, so more iterations on it would fit its noise;
- **end early** at the first pass of a stage when the rows new to the model are fitted as
  well as those it was trained on, within :data:`GAP_SE` standard errors of the difference,
  and those standard errors are fine enough to see a gap that matters
  (:data:`GAP_RESOLUTION`): more rows no longer change the model beyond noise. That stage
  is then the last; the ordinary stopping rule ends it, without reading the rest. (The
  grow rule's test does not: an improvement below the loss's standard error is still
  progress once the sample is not over-fitted.);
- the last stage is every row, and the ordinary stopping rule ends it.

``"sample-all"`` grows the same way but never ends early; ``"full"`` reads every row in
every pass (the method as first published).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from .state import IterationRecord

#: First sample: this many rows per unknown of the network (``h (d + 1) + (h + 1) k``),
#: and at least :data:`MIN_SAMPLE_ROWS`. A least-squares fit of u unknowns from m rows
#: has an excess error of about u / m of the noise; 16 rows per unknown keeps the first
#: stage's model within 6 % of the noise floor while costing a few thousand rows.
ROWS_PER_UNKNOWN = 16
MIN_SAMPLE_ROWS = 4096
#: Each stage doubles the sample: the total work of all stages stays within twice the last's.
GROWTH = 2.0
#: A stage within this factor of every row is merged into the last one.
LAST_STAGE_MARGIN = math.sqrt(2.0)
#: Fewest stages worth sampling for: with fewer (data under 8 sqrt(2) = 11.3 first samples),
#: the iterations that each new stage spends on catching up cost more than the
#: cheaper passes save, so such data trains on every row (from memory). Measured on
#: kin40k (32k rows, 4 stages): within max_iter = 100 the sampled run ended at a training
#: MSE of 0.0753 against 0.0691 on every row.
MIN_STAGES = 5
#: The same for a run whose hidden solve is matrix-free on every row: each of its iterations
#: costs 1 + about 25 product passes, so cheaper passes save far more than the catch-up
#: costs. Measured on 500k teacher rows, d = 128, h = 32 (4 stages): sampled, the held-out
#: loss was 0.0707 after 115 s; on every row 0.104 after 250 s.
MATRIX_FREE_MIN_STAGES = 3
#: The stage whose first pass judges a race of starts on sampled data (``n_init > 1``): the
#: fifth, whose sample holds 16 times the first's rows (256 per unknown), or the last sampled
#: stage if there are fewer. Losses of the first stage (16 rows per unknown) told little:
#: on the 4M-row teacher data of benchmarks/big_data.py a race judged there kept a start
#: that ended at a held-out 0.0416 where one start alone ended at 0.0404.
RACE_STAGE = 4
#: Iterations over which the grow rule compares the stage's best losses.
GROW_WINDOW = 2
#: Standard errors of the loss below which an improvement counts as noise.
GROW_SE = 1.0
#: Standard errors within which fresh rows' loss must match the fitted rows' to end early:
#: more rows must help beyond about a 2% chance of noise. With 1 (a 16% chance) the 20M-row
#: teacher data of benchmarks/big_data.py grew to 591k rows and ended at 0.0406 (held-out)
#: after 110 s; with 2 on 148k rows at 0.0407 after 64 s; its 4M rows ended on 147k either way.
GAP_SE = 2.0
#: The end test may conclude that more rows do not help only when it could have seen a gap of
#: this share of the loss (``GAP_SE`` standard errors of the gap below it). A sample's model is
#: fitted better than fresh rows by about twice its excess error, so a run ends early only
#: within about 0.5% of what more rows would give. Without it a small first stage, whose gap's
#: standard error is several per cent of the loss, ended the run on noise: the 877M-row
#: out-of-core data of benchmarks/out_of_core.py (d = 8, h = 8) ended on 8,126 rows at a
#: held-out 0.0305, with a resolution of 2% on 131k rows at 0.0302. At 2% the 4M- and 20M-row
#: teacher data of benchmarks/big_data.py ended on 147k rows at 0.04044 and 0.04082, 0.2% and
#: 0.9% above a streaming Adam's best; at 1% they grow to 590k rows and end at 0.04027 and
#: 0.04065 in about twice the time (seed 0; on the 20M data seed 1 went from 0.04089 to 0.04082,
#: seed 2 ended at 0.04016); at 0.5% the 4M data grew to 2.36M rows for 0.04025.
GAP_RESOLUTION = 0.01


@dataclass(frozen=True)
class Stage:
    """A sample stage: the rows ranked below ``fraction``; ``seen`` bounds the previous stage's rows."""

    index: int
    fraction: float
    seen: float

    @property
    def everything(self) -> bool:
        """Whether the stage covers every row."""
        return self.fraction >= 1.0


def stage_fractions(n_rows: int, unknowns: int, min_stages: int = MIN_STAGES) -> tuple[float, ...]:
    """Rank fractions of the stages for ``n_rows`` rows and a network of ``unknowns`` weights.

    Returns
    -------
    tuple of float
        Increasing, doubling, ending with 1.0 (every row); ``(1.0,)`` when that would make
        fewer than ``min_stages`` stages.
    """
    fraction = max(MIN_SAMPLE_ROWS, ROWS_PER_UNKNOWN * unknowns) / max(n_rows, 1)
    fractions = []
    while fraction * LAST_STAGE_MARGIN < 1.0:
        fractions.append(fraction)
        fraction *= GROWTH
    return (*fractions, 1.0) if len(fractions) + 1 >= min_stages else (1.0,)


@dataclass(frozen=True)
class Decision:
    """What the schedule says after a pass: ``action`` is ``"go"``, ``"grow"`` or ``"stop"``.

    Attributes
    ----------
    action : str
    reason : str or None
        Why training stops (with ``"stop"``).
    final : bool
        The current stage becomes the last (the sample ended growing early).
    """

    action: str
    reason: str | None = None
    final: bool = False


def monitored_losses(history: Sequence[IterationRecord]) -> list[float]:
    """The loss the stopping rule and best-iterate choice watch: validation if present."""
    use_val = bool(history) and not math.isnan(history[0].val_loss)
    return [r.val_loss if use_val else r.train_loss for r in history]


def stop_reason(losses: Sequence[float], tol: float, window: int) -> str | None:
    """Why to stop after these losses, or ``None`` to go on.

    Stops when the best of the last ``window`` losses improves on the best before them
    by no more than ``tol`` relatively (so a loss stuck at 0 stops too). The realised
    loss is not monotone, so single-step changes would stop too early.
    """
    if tol <= 0 or len(losses) <= window:
        return None
    before, recent = min(losses[:-window]), min(losses[-window:])
    if before - recent <= tol * abs(before):
        return f"relative improvement below tol={tol:g} over the last {window} iterations"
    return None


def validation_rising(records: Sequence[IterationRecord], window: int) -> bool:
    """Whether each of the last ``window`` validation losses exceeds the best before them by more than its standard error.

    A validation loss that only hovers near its best is noise, or the pattern settling:
    on one data set the validation loss stalled for ten iterations and then fell by a third.
    """
    losses = [r.val_loss for r in records]
    if len(losses) <= window:
        return False
    best = min(losses[:-window])
    return all(r.val_loss - best > GROW_SE * r.loss_se for r in records[-window:])


def run_stop_reason(records: Sequence[IterationRecord], tol: float, window: int) -> str | None:
    """Why to stop after this stage's ``records``, or ``None`` to go on.

    Without validation rows: :func:`stop_reason` on the training loss. With them, either
    the training loss has converged by the same rule (the best iterate is then chosen by
    the validation loss), or the validation loss rose beyond its standard error for
    ``window`` iterations in a row (:func:`validation_rising`); a validation loss that merely
    stalls does not stop training.
    """
    reason = stop_reason([r.train_loss for r in records], tol, window)
    if not records or math.isnan(records[0].val_loss):
        return reason
    if reason is not None:
        return f"training loss: {reason}"
    if tol > 0 and validation_rising(records, window):
        return f"validation loss above its best by more than its standard error for the last {window} iterations"
    return None


def below_noise(records: Sequence[IterationRecord]) -> bool:
    """Whether the stage's last iterations improved its best loss by less than one standard error."""
    if len(records) < 2:
        return False
    losses = monitored_losses(records)
    window = min(GROW_WINDOW, len(losses) - 1)
    return min(losses[:-window]) - min(losses[-window:]) < GROW_SE * records[-1].loss_se


def more_rows_help(record: IterationRecord) -> bool:
    """Whether rows new to the model are fitted worse than those it was trained on, beyond noise,
    or the comparison is too coarse to tell (:data:`GAP_RESOLUTION`)."""
    if math.isnan(record.fresh_gap):
        return True
    threshold = GAP_SE * record.fresh_gap_se
    return threshold > GAP_RESOLUTION * record.train_loss or record.fresh_gap > threshold


@dataclass(frozen=True)
class RowSchedule:
    """The stages of one run and the decisions between passes.

    Parameters
    ----------
    kind : {"sample", "sample-all", "full"}
    fractions : tuple of float
        Rank fractions of the stages (``(1.0,)`` for ``"full"``).
    tol, window : float, int
        The stopping rule of the last stage (``TrainConfig.tol``, ``n_iter_no_change``).
    """

    kind: str
    fractions: tuple[float, ...]
    tol: float
    window: int

    @classmethod
    def for_run(
        cls, kind: str, n_rows: int, unknowns: int, tol: float, window: int, min_stages: int = MIN_STAGES
    ) -> RowSchedule:
        """The schedule of a run over ``n_rows`` rows with ``unknowns`` weights (see :func:`stage_fractions`)."""
        fractions = (1.0,) if kind == "full" else stage_fractions(n_rows, unknowns, min_stages)
        return cls(kind, fractions, tol, window)

    def stage(self, index: int) -> Stage:
        """Stage ``index``."""
        return Stage(index, self.fractions[index], self.fractions[index - 1] if index > 0 else 0.0)

    def race_stage(self) -> int:
        """The stage on which a race of starts is judged: :data:`RACE_STAGE`, at most the last sampled one; 0 for one stage."""
        return min(RACE_STAGE, max(len(self.fractions) - 2, 0))

    def pool_fraction(self, affordable: float) -> float:
        """The largest stage fraction within ``affordable`` (the memory budget's share of rows); 0: no pool.

        Rows beyond the largest pooled stage would never be read from memory, so none are kept.
        """
        if self.kind == "full":
            return 0.0
        return max((f for f in self.fractions if f <= affordable), default=0.0)

    def decide(self, records: Sequence[IterationRecord], stage: Stage, final: bool) -> Decision:
        """After a pass: go on, grow the sample, or stop.

        Parameters
        ----------
        records : sequence of IterationRecord
            The current stage's records, the last one just measured.
        stage : Stage
        final : bool
            Whether the stage was already made the last.
        """
        if stage.everything:
            reason = run_stop_reason(records, self.tol, self.window)
            return Decision("stop", reason) if reason else Decision("go")
        if final:
            # More rows would not change the model beyond noise; iterations still do.
            reason = run_stop_reason(records, self.tol, self.window)
            if reason is None:
                return Decision("go")
            return Decision("stop", f"{reason}; ended on a sample of {records[-1].sample_rows} rows, as rows new "
                                    "to the model fitted as well as those it was trained on")
        if len(records) == 1:
            ends = self.kind == "sample" and stage.index > 0 and not more_rows_help(records[0])
            return Decision("go", final=ends)
        if below_noise(records) or run_stop_reason(records, self.tol, self.window):
            return Decision("grow")
        return Decision("go")
