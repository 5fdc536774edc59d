"""The row schedule: sample stages, the pool, the grow/end/stop rules, invariance and resume."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import h5py
import numpy as np
import pytest
from conftest import teacher_data

from streamls import TrainConfig, Trainer
from streamls.backends import LocalBackend
from streamls.cli.checkpoint import load_checkpoint, save_checkpoint
from streamls.schedule import GAP_RESOLUTION, GAP_SE, MIN_SAMPLE_ROWS, RowSchedule, Stage, stage_fractions
from streamls.sources import Dataset
from streamls.split import row_ranks, row_uniforms
from streamls.state import IterationRecord, TrainState
from streamls.stats import Holdout, MomentsRequest, Standardizer, StatisticsRequest
from streamls.sources import Block
from streamls.stats import sample as pool_layout
from streamls.stats.sample import POOL_BUILD_COPIES, Sample, banded, in_sample
from streamls.training import pooled_row_bytes

DATA = teacher_data(n=60000, d=5, hidden=4, seed=3)
SEED = 5
# One start: the race of several (tests/test_training.py) needs the first stage in memory, and
# these tests compare runs with and without a pool.
CONFIG = TrainConfig(hidden_units=4, random_state=SEED, max_iter=30, validation_fraction=0.2, n_init=1)


def rel_diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).max() / np.abs(b).max())


def run(dataset: Dataset, config: TrainConfig = CONFIG, **options: object):
    backend_options = {k: options.pop(k) for k in ("prefetch", "workers") if k in options}
    trainer = Trainer(dataset, config, LocalBackend(**backend_options), **options)
    return trainer.run(trainer.initial_state())


def record(loss: float, se: float, stage: int = 0, gap: float = math.nan, gap_se: float = math.nan) -> IterationRecord:
    nan = math.nan
    return IterationRecord(0, loss, nan, nan, nan, nan, nan, 0, nan, 0.0, 0.0, stage=stage, sample_rows=100,
                           loss_se=se, fresh_gap=gap, fresh_gap_se=gap_se)


# ----------------------------------------------------------------------------- stages and rules


def test_stage_fractions_double_from_a_multiple_of_the_unknowns_to_every_row() -> None:
    fractions = stage_fractions(1_000_000, unknowns=577)
    assert fractions[0] == pytest.approx(16 * 577 / 1_000_000)
    assert np.allclose(np.diff(np.log2(fractions[:-1])), 1.0)
    assert fractions[-1] == 1.0 and fractions[-2] * math.sqrt(2) < 1.0
    assert stage_fractions(100_000, unknowns=10)[0] == MIN_SAMPLE_ROWS / 100_000  # the floor
    assert stage_fractions(3000, unknowns=29) == (1.0,)  # small data: one stage, every row
    assert len(stage_fractions(12 * 4096, unknowns=29)) == 5  # the fewest stages worth sampling
    assert stage_fractions(11 * 4096, unknowns=29) == (1.0,)  # four would be too few


def test_grow_when_the_improvement_is_below_the_standard_error() -> None:
    schedule = RowSchedule("sample", (0.25, 0.5, 1.0), tol=1e-4, window=10)
    stage = Stage(0, 0.25, 0.0)
    assert schedule.decide([record(1.0, 0.01), record(0.5, 0.01)], stage, False).action == "go"
    assert schedule.decide([record(1.0, 0.01), record(0.5, 0.01), record(0.495, 0.01)], stage, False).action == "go"
    # Best of the last two (0.495) against the best before (0.5): 0.005 < 0.01.
    records = [record(1.0, 0.01), record(0.5, 0.01), record(0.497, 0.01), record(0.495, 0.01)]
    assert schedule.decide(records, stage, False).action == "grow"


def test_end_early_when_fresh_rows_fit_as_well_as_the_sample() -> None:
    schedule = RowSchedule("sample", (0.25, 0.5, 1.0), tol=1e-4, window=2)
    stage = Stage(1, 0.5, 0.25)
    fitting = [record(0.5, 0.01, 1, gap=0.9 * GAP_SE * 0.002, gap_se=0.002)]
    overfit = [record(0.5, 0.01, 1, gap=1.1 * GAP_SE * 0.002, gap_se=0.002)]
    assert schedule.decide(fitting, stage, False).final
    assert not schedule.decide(overfit, stage, False).final
    # No gap at all, but a test too coarse to see a gap of GAP_RESOLUTION of the loss: grow on.
    coarse_se = 1.1 * GAP_RESOLUTION * 0.5 / GAP_SE
    assert not schedule.decide([record(0.5, 0.01, 1, gap=0.0, gap_se=coarse_se)], stage, False).final
    assert schedule.decide([record(0.5, 0.01, 1, gap=0.0, gap_se=coarse_se / 1.2)], stage, False).final
    assert not RowSchedule("sample-all", (0.25, 0.5, 1.0), 1e-4, 2).decide(fitting, stage, False).final
    # A final stage stops by the ordinary rule only, and says it ended on a sample: an
    # improvement below the standard error (0.001 < 0.01) is still progress there.
    flat = [record(0.5, 0.01, 1), record(0.499, 0.01, 1)]
    assert schedule.decide(flat, stage, True).action == "go"
    converged = [*flat, record(0.499, 0.01, 1), record(0.499, 0.01, 1)]
    decision = schedule.decide(converged, stage, True)
    assert decision.action == "stop" and "sample of 100 rows" in str(decision.reason)
    assert schedule.decide([record(0.5, 0.01, 1), record(0.4, 0.01, 1)], stage, True).action == "go"
    # The every-row stage stops by the ordinary rule only.
    assert schedule.decide(flat, Stage(2, 1.0, 0.5), False).action == "go"


def test_pool_holds_the_largest_stage_within_the_budget() -> None:
    schedule = RowSchedule("sample", (0.1, 0.2, 0.4, 1.0), 1e-4, 10)
    assert schedule.pool_fraction(0.3) == 0.2
    assert schedule.pool_fraction(1.0) == 1.0
    assert schedule.pool_fraction(0.05) == 0.0
    assert RowSchedule.for_run("full", 10**6, 100, 1e-4, 10).pool_fraction(1.0) == 0.0


# ----------------------------------------------------------------------------- statistics of a stage


def explicit_statistics(x: np.ndarray, y: np.ndarray, W: np.ndarray, B: np.ndarray) -> dict[str, np.ndarray]:
    """G, P (from an explicitly built Kronecker design matrix), sse and e_i^2 sums, in plain numpy."""
    x_aug = np.hstack([x, np.ones((len(x), 1))])
    u = x_aug @ W.T
    a = (u > 0).astype(float)
    phi = np.hstack([a * u, np.ones((len(x), 1))])
    Z = np.stack([np.kron(a[i], x_aug[i]) for i in range(len(x))])
    e = ((y - phi @ B) ** 2).sum(axis=1)
    return {"G": phi.T @ phi, "P": Z.T @ Z, "Q": Z.T @ y, "sse": e.sum(), "sse_sq": (e**2).sum(), "e": e}


@pytest.mark.parametrize("pooled", [False, True])
def test_stage_statistics_equal_numpy_on_exactly_the_sampled_rows(pooled: bool, tmp_path: Path) -> None:
    n, f, seen = 6000, 0.3, 0.15
    rng = np.random.default_rng(0)
    X, y = DATA.X[:n].copy(), DATA.y[:n, None].copy()
    X[[7, 2000, 4500], [0, 1, 2]] = np.nan
    path = tmp_path / "data.h5"
    with h5py.File(path, "w") as handle:
        handle.create_dataset("X", data=X, chunks=(500, 5))
        handle.create_dataset("y", data=y, chunks=(500, 1))
    dataset = Dataset(f"{path}:/X", f"{path}:/y", nan_policy="drop", block_rows=1000)
    holdout = Holdout(0.2, SEED)
    standardizer = Standardizer(np.zeros(5), np.ones(5), np.zeros(1), np.ones(1))
    W, B = rng.normal(size=(3, 6)), rng.normal(size=(4, 1))
    request = StatisticsRequest(standardizer, W, B, 0.0, holdout, None, True, Sample(f, SEED), seen)
    backend = LocalBackend()
    if pooled:
        moments, pool = backend.pool(dataset, MomentsRequest(holdout, np.zeros(0, np.int64), Sample(0.5, SEED)))
        stats = backend.run_pooled(pool, request)
    else:
        stats = backend.run(dataset, request)

    # The reference selects rows by their definition, on the whole array at once.
    rows = np.arange(n)
    ranks = row_ranks(rows, SEED)
    finite = np.isfinite(X).all(axis=1)
    validation = row_uniforms(rows, SEED) < 0.2
    train = (ranks < f) & finite & ~validation
    ref = explicit_statistics(X[train], y[train], W, B)
    assert stats.n == train.sum() and stats.n_val == ((ranks < f) & finite & validation).sum()
    for name in ("G", "P", "Q"):
        np.testing.assert_allclose(getattr(stats, name), ref[name], rtol=1e-12, atol=1e-9)
    assert stats.sse.sum() == pytest.approx(ref["sse"], rel=1e-12)
    assert stats.sse_sq == pytest.approx(ref["sse_sq"], rel=1e-12)
    fresh = ranks[train] >= seen
    assert stats.fresh_n == fresh.sum()
    assert stats.fresh_sse == pytest.approx(ref["e"][fresh].sum(), rel=1e-12)
    if pooled:
        assert moments.pooled_rows == ((ranks < 0.5) & finite).sum()
        assert moments.pooled_bytes == moments.pooled_rows * pooled_row_bytes(dataset)


@pytest.mark.parametrize("min_in_place", [0, 300, 10**9], ids=["all-in-place", "mixed", "all-gathered"])
def test_a_pooled_stage_is_exactly_its_sampled_rows_and_large_bands_are_not_copied(min_in_place: int, monkeypatch) -> None:
    monkeypatch.setattr(pool_layout, "MIN_IN_PLACE_ROWS", min_in_place)
    n, pool_fraction = 20000, 0.8
    edges = (0.05, 0.1, 0.2, 0.4, pool_fraction)
    X, y = DATA.X[:n], DATA.y[:n, None]
    keep = np.ones(n, bool)
    keep[::7] = False  # rows dropped by nan_policy="drop"
    stored = [Block(lo, X[lo : lo + 1500], y[lo : lo + 1500], keep[lo : lo + 1500]) for lo in range(0, n, 1500)]
    pooled = [Sample(pool_fraction, SEED).taken(block, edges) for block in stored]
    pool = banded(list(pooled), edges, rows_per_block=700)
    ranks = row_ranks(np.arange(n), SEED)
    for f in edges:
        stage = in_sample(pool, Sample(f, SEED))
        index = np.concatenate([b.index for b in stage])
        np.testing.assert_array_equal(np.sort(index), np.flatnonzero((ranks < f) & keep))
        np.testing.assert_array_equal(np.concatenate([b.x for b in stage]), X[index])
        np.testing.assert_array_equal(np.concatenate([b.y for b in stage]), y[index])
        np.testing.assert_array_equal(np.concatenate([b.ranks for b in stage]), ranks[index])
    uncopied = [b for b in pool if any(np.shares_memory(b.x, p.x) for p in pooled)]
    if min_in_place == 0:
        assert len(uncopied) == len(pool) == len(pooled)
    elif min_in_place == 300:
        # The first three bands (about 260 rows per block) are gathered, in blocks of 700 rows.
        gathered = pool[: len(pool) - len(uncopied)]
        assert len(uncopied) == len(pooled) and all((b.ranks >= 0.2).all() for b in uncopied)
        assert all((b.ranks < 0.2).all() for b in gathered)
        sizes = [((ranks[keep] >= lo) & (ranks[keep] < hi)).sum() for lo, hi in [(0, 0.05), (0.05, 0.1), (0.1, 0.2)]]
        assert len(gathered) == sum(math.ceil(size / 700) for size in sizes)
    else:
        assert not uncopied


# ----------------------------------------------------------------------------- whole runs


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("schedule") / "data.h5"
    with h5py.File(path, "w") as handle:
        handle.create_dataset("X", data=DATA.X, chunks=(1000, 5))
        handle.create_dataset("y", data=DATA.y, chunks=(1000,))
    return str(path)


@pytest.fixture(scope="module")
def reference(stored: str):
    return run(Dataset(f"{stored}:/X", f"{stored}:/y", block_rows=4000))


def test_a_sampled_run_grows_through_stages_and_records_them(reference) -> None:
    stages = [r.stage for r in reference.history]
    assert stages == sorted(stages) and stages[-1] >= 1
    assert reference.history[0].sample_rows < 0.2 * len(DATA.y)
    # The data fits the default pool: one read from storage, by the moments pass.
    assert [r.rows_read for r in reference.history] == [len(DATA.y)] + [0] * (len(reference.history) - 1)
    summary = reference.summary
    assert summary.schedule == "sample" and summary.stage == stages[-1]
    best = reference.best_iteration
    assert stages[best] == stages[-1]  # the best iterate is of the last stage
    assert summary.n_fitted_rows == reference.history[best - 1].sample_rows


@pytest.mark.parametrize(
    "variant",
    [
        {"block_rows": 1000},
        {"block_rows": 7000, "prefetch": False},
        {"workers": 1},
        {"workers": 2},
        {"memory_limit": "pool of stage 0 only"},
        {"memory_limit": 0},
        {"in_place": 0},
    ],
    ids=["blocks-1000", "blocks-7000-no-prefetch", "1-thread", "2-threads", "partial-pool", "no-pool", "pool-in-place"],
)
def test_a_seeded_sampled_run_is_the_same_whatever_the_blocks_threads_and_pool(stored: str, reference, variant: dict, monkeypatch) -> None:
    options = dict(variant)
    if "in_place" in options:  # the pool's bands left in the stored blocks instead of gathered
        monkeypatch.setattr(pool_layout, "MIN_IN_PLACE_ROWS", options.pop("in_place"))
    dataset = Dataset(f"{stored}:/X", f"{stored}:/y", block_rows=options.pop("block_rows", 4000))
    if options.get("memory_limit") == "pool of stage 0 only":
        first = reference.history[0].sample_rows / 0.8  # training rows of stage 0, validation included
        options["memory_limit"] = int(1.5 * POOL_BUILD_COPIES * first * pooled_row_bytes(dataset))
    result = run(dataset, **options)
    assert rel_diff(result.model.W, reference.model.W) <= 1e-8
    assert rel_diff(result.model.B, reference.model.B) <= 1e-8
    assert [r.stage for r in result.history] == [r.stage for r in reference.history]
    np.testing.assert_allclose([r.train_loss for r in result.history], [r.train_loss for r in reference.history], rtol=1e-8)
    if "memory_limit" in options:
        # Stages beyond the pool read storage: more rows read than the single pool fill.
        assert sum(r.rows_read for r in result.history) > len(DATA.y)


def test_a_race_on_sampled_data_is_judged_on_the_first_pass_of_its_stage(stored: str, reference) -> None:
    judge = RowSchedule.for_run("sample", len(DATA.y), 4 * 6 + 5, CONFIG.tol, CONFIG.n_iter_no_change).race_stage()
    assert judge == 3  # five stages: the last sampled one
    raced = run(Dataset(f"{stored}:/X", f"{stored}:/y", block_rows=4000), replace(CONFIG, n_init=3, max_iter=60))
    losses, winner = raced.summary.race_losses, raced.summary.race_winner
    assert len(losses) == 3 and winner == int(np.argmin(losses))
    # The kept start's first pass of the judging stage holds its race loss (the validation loss).
    first_pass = next(r for r in raced.history if r.stage == judge)
    assert first_pass.val_loss == losses[winner]
    # Start 0 is the one start of n_init=1, judged on the same rows.
    assert losses[0] == next(r.val_loss for r in reference.history if r.stage == judge)
    # The race reads nothing from storage beyond the moments pass.
    assert sum(r.rows_read for r in raced.history) == len(DATA.y)


def test_resuming_mid_stage_from_a_checkpoint_gives_the_uninterrupted_model(stored: str, reference, tmp_path: Path) -> None:
    saved: list[TrainState] = []
    switch = next(r.iteration for r in reference.history if r.stage == 1)

    class Stop(Exception):
        pass

    def interrupt(state: TrainState, _: IterationRecord) -> None:
        if state.iteration == switch + 1:
            save_checkpoint(state, str(tmp_path / "ckpt.h5"))
            saved.append(state)
            raise Stop

    dataset = Dataset(f"{stored}:/X", f"{stored}:/y", block_rows=4000)
    with pytest.raises(Stop):
        run(dataset, callback=interrupt)
    state, _ = load_checkpoint(str(tmp_path / "ckpt.h5"))
    assert state.stage == saved[0].stage == 1 and state.pool_fraction == saved[0].pool_fraction > 0
    trainer = Trainer(dataset, CONFIG, LocalBackend())
    resumed = trainer.run(state)
    np.testing.assert_array_equal(resumed.model.W, reference.model.W)
    np.testing.assert_array_equal(resumed.model.B, reference.model.B)
    assert [r.train_loss for r in resumed.history] == [r.train_loss for r in reference.history]


def test_full_schedule_reads_every_row_in_every_pass(stored: str) -> None:
    dataset = Dataset(f"{stored}:/X", f"{stored}:/y", block_rows=4000)
    result = run(dataset, replace(CONFIG, schedule="full", max_iter=3))
    n_train = result.n_train
    assert all(r.stage == 0 and r.sample_rows == n_train for r in result.history)
    assert [r.rows_read for r in result.history] == [2 * len(DATA.y)] + [len(DATA.y)] * 3
    assert result.summary.n_fitted_rows == n_train and not result.summary.ended_early


def test_sample_all_reaches_every_row(stored: str) -> None:
    dataset = Dataset(f"{stored}:/X", f"{stored}:/y", block_rows=4000)
    result = run(dataset, replace(CONFIG, schedule="sample-all", max_iter=200))
    assert result.history[-1].stage == len(stage_fractions(len(DATA.y), 4 * 6 + 5)) - 1
    assert result.n_train + result.n_validation == len(DATA.y)
    assert not result.summary.ended_early
