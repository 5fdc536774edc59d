"""The training loop: invariance to storage, chunking and prefetch; accuracy; stopping; history."""

from __future__ import annotations

import math
from dataclasses import fields

import numpy as np
import pytest
from conftest import teacher_data

import streamls
from streamls import IterationRecord, TrainConfig, Trainer
from streamls.backends import LocalBackend
from streamls.errors import ConfigError
from streamls.schedule import stop_reason
from streamls.solvers import STEP_LENGTHS
from streamls.sources import Dataset
from streamls.split import row_uniforms
from streamls.state import TrainState
from streamls.strategies import AlternatingRidge
from streamls.training import RACE_ITERATIONS

DATA = teacher_data(n=3000, d=5, k=1, seed=2)
SETTINGS = {"hidden_units": 8, "max_iter": 8, "tol": 0.0, "random_state": 0, "validation_fraction": 0.2}


def rel_diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).max() / np.abs(b).max())


def assert_same_result(result: streamls.TrainResult, reference: streamls.TrainResult) -> None:
    """Same model (relative 1e-8), same best iterate, same row split, same loss history."""
    assert rel_diff(result.model.W, reference.model.W) <= 1e-8
    assert rel_diff(result.model.B, reference.model.B) <= 1e-8
    assert result.best_iteration == reference.best_iteration
    assert (result.n_train, result.n_validation) == (reference.n_train, reference.n_validation)
    assert rel_diff(result.model.predict(DATA.X), reference.model.predict(DATA.X)) <= 1e-8
    found = [r.train_loss for r in result.history]
    np.testing.assert_allclose(found, [r.train_loss for r in reference.history], rtol=1e-8)


@pytest.fixture(scope="module")
def reference_result() -> streamls.TrainResult:
    """Training on the in-memory arrays in one block."""
    return streamls.fit(DATA.X, DATA.y, **SETTINGS)


@pytest.fixture(scope="module")
def blocked_reference() -> streamls.TrainResult:
    """Training on the in-memory arrays in blocks of 500 rows."""
    return streamls.fit(DATA.X, DATA.y, block_rows=500, **SETTINGS)


@pytest.mark.parametrize(
    ("kind", "stored_chunk", "prefetch"),
    [
        ("npy", 1, True),
        ("npy", 1, False),
        ("hdf5", 1000, True),
        ("hdf5", 64, False),
        ("hdf5-contiguous", 1, True),
        ("zarr", 3000, False),
        ("zarr", 128, True),
        ("zarr-memory", 1500, True),
    ],
)
def test_same_model_from_every_format_in_one_block(
    files, reference_result, kind: str, stored_chunk: int, prefetch: bool
) -> None:
    specs = files(kind, {"X": DATA.X, "y": DATA.y}, chunk_rows=stored_chunk)
    result = streamls.fit(specs["X"], specs["y"], prefetch=prefetch, **SETTINGS)
    assert_same_result(result, reference_result)


@pytest.mark.parametrize(
    ("kind", "stored_chunk", "prefetch"),
    [
        ("npy", 1, False),
        ("hdf5", 100, True),
        ("hdf5", 250, False),
        ("hdf5-contiguous", 1, True),
        ("zarr", 500, False),
        ("zarr-memory", 125, True),
    ],
)
def test_same_model_from_every_format_in_blocks_of_500_rows(
    files, blocked_reference, kind: str, stored_chunk: int, prefetch: bool
) -> None:
    specs = files(kind, {"X": DATA.X, "y": DATA.y}, chunk_rows=stored_chunk)
    result = streamls.fit(specs["X"], specs["y"], block_rows=500, prefetch=prefetch, **SETTINGS)
    assert_same_result(result, blocked_reference)


def test_same_model_for_every_chunking(files, reference_result) -> None:
    specs = files("hdf5", {"X": DATA.X, "y": DATA.y}, chunk_rows=7)
    for block_rows in (7, 997, 1500, 2999):
        assert_same_result(streamls.fit(specs["X"], specs["y"], block_rows=block_rows, **SETTINGS), reference_result)


@pytest.mark.parametrize("block_rows", [1, 7, 1000, None])
def test_validation_split_does_not_depend_on_chunking(reference_result, block_rows: int | None) -> None:
    settings = {**SETTINGS, "max_iter": 0}
    result = streamls.fit(DATA.X, DATA.y, block_rows=block_rows, **settings)
    assert (result.n_train, result.n_validation) == (reference_result.n_train, reference_result.n_validation)
    first = reference_result.history[0]
    assert result.history[0].val_loss == pytest.approx(first.val_loss, rel=1e-12)
    assert result.history[0].train_loss == pytest.approx(first.train_loss, rel=1e-12)


def test_table_with_target_column_gives_the_same_model(files, reference_result) -> None:
    table = np.column_stack([DATA.y, DATA.X])
    spec = files("hdf5", {"T": table}, chunk_rows=200)["T"]
    result = streamls.fit(spec, target_cols=0, **SETTINGS)
    assert rel_diff(result.model.W, reference_result.model.W) <= 1e-8
    assert result.model.target_is_1d


def test_validation_split_is_the_row_hash(reference_result) -> None:
    held = row_uniforms(np.arange(len(DATA.y)), 0) < 0.2
    assert reference_result.n_validation == held.sum()
    assert reference_result.n_train == (~held).sum()
    # Validation loss in the history is the model's MSE on exactly those rows.
    model = reference_result.model
    best = reference_result.history[reference_result.best_iteration]
    y_scale = DATA.y[~held].std()
    val_mse = np.mean(((model.predict(DATA.X[held]) - DATA.y[held]) / y_scale) ** 2)
    train_mse = np.mean(((model.predict(DATA.X[~held]) - DATA.y[~held]) / y_scale) ** 2)
    assert best.val_loss == pytest.approx(val_mse, rel=1e-9)
    assert best.train_loss == pytest.approx(train_mse, rel=1e-9)
    # With validation rows, the best iterate is the one of lowest validation loss.
    assert reference_result.best_iteration == int(np.argmin([r.val_loss for r in reference_result.history]))


def test_teacher_student_fit_reaches_noise_level() -> None:
    data = teacher_data(n=4000, d=5, hidden=4, k=1, noise_std=0.1, seed=7)
    result = streamls.fit(data.X, data.y, hidden_units=16, max_iter=40, random_state=0)
    mse = float(np.mean((result.model.predict(data.X) - data.y) ** 2))
    assert mse < 2 * data.noise_std**2, mse


def test_multi_output_fit() -> None:
    data = teacher_data(n=2000, d=4, hidden=3, k=3, noise_std=0.05, seed=3)
    result = streamls.fit(data.X, data.y, hidden_units=12, max_iter=25, random_state=1)
    pred = result.model.predict(data.X)
    assert pred.shape == (2000, 3) and result.model.n_targets == 3
    mse = np.mean((pred - data.y) ** 2, axis=0)
    assert (mse < 10 * data.noise_std**2 + 0.05 * data.y.var(axis=0)).all(), mse


def test_best_iterate_is_kept_and_its_loss_is_the_realised_one() -> None:
    data = teacher_data(n=1500, d=5, seed=4)
    result = streamls.fit(data.X, data.y, hidden_units=10, max_iter=12, tol=0, random_state=3)
    losses = [r.train_loss for r in result.history]
    assert result.best_iteration == int(np.argmin(losses))
    standardized = (result.model.predict(data.X) - data.y) / data.y.std()
    assert np.mean(standardized**2) == pytest.approx(min(losses), rel=1e-9)
    assert result.model.summary.best_iteration == result.best_iteration
    # Every solved model is rebalanced: each live neuron has ||w_j|| = ||V[j]||.
    assert result.best_iteration > 0
    norm_w = np.linalg.norm(result.model.W, axis=1)
    norm_v = np.linalg.norm(result.model.B[:-1], axis=1)
    live = norm_v > 0
    np.testing.assert_allclose(norm_w[live], norm_v[live], rtol=1e-10)


def test_history_records_have_every_field() -> None:
    result = streamls.fit(DATA.X, DATA.y, hidden_units=6, max_iter=4, tol=0, random_state=0, validation_fraction=0.1)
    required = {
        "iteration",
        "train_loss",
        "val_loss",
        "predicted_loss",
        "logdet",
        "flip_fraction",
        "dead_neurons",
        "seconds",
        "rows_per_second",
    }
    assert required <= {f.name for f in fields(IterationRecord)}
    assert [r.iteration for r in result.history] == list(range(5))
    first, *rest = result.history
    assert first.train_loss == pytest.approx(1.0)  # B = 0 predicts the training mean
    assert math.isnan(first.predicted_loss) and math.isnan(first.flip_fraction)
    for record in rest:
        assert all(math.isfinite(getattr(record, name)) for name in required), record
        assert 0 <= record.flip_fraction <= 1 and 0 <= record.dead_neurons <= 6
        assert record.seconds > 0 and record.rows_per_second > 0
    table = result.history_table()
    assert set(table) == {f.name for f in fields(IterationRecord)} and len(table["train_loss"]) == 5
    assert result.model.history == [vars(r) for r in result.history]


def test_tol_zero_runs_all_iterations() -> None:
    result = streamls.fit(DATA.X, DATA.y, hidden_units=4, max_iter=7, tol=0, random_state=0)
    assert result.n_iter == 7 and len(result.history) == 8
    assert result.stop_reason == "max_iter reached"


def test_early_stopping_with_tol() -> None:
    result = streamls.fit(DATA.X, DATA.y, hidden_units=4, max_iter=200, tol=0.05, n_iter_no_change=2, random_state=0)
    assert result.n_iter < 200
    assert "tol" in result.stop_reason
    losses = [r.train_loss for r in result.history]
    assert min(losses[-2:]) > min(losses[:-2]) * (1 - 0.05)


def test_early_stopping_on_validation_loss() -> None:
    result = streamls.fit(
        DATA.X,
        DATA.y,
        hidden_units=4,
        max_iter=200,
        tol=0.05,
        n_iter_no_change=2,
        random_state=0,
        validation_fraction=0.3,
    )
    assert result.n_iter < 200 and "tol" in result.stop_reason
    val = [r.val_loss for r in result.history]
    assert min(val[-2:]) > min(val[:-2]) * (1 - 0.05)


def test_same_seed_same_model_other_seed_other_model() -> None:
    runs = [streamls.fit(DATA.X, DATA.y, hidden_units=4, max_iter=3, tol=0, random_state=s) for s in (5, 5, 6)]
    np.testing.assert_array_equal(runs[0].model.W, runs[1].model.W)
    assert not np.allclose(runs[0].model.W, runs[2].model.W)


def test_warm_start_continues_from_the_model(tmp_path) -> None:
    first = streamls.fit(DATA.X, DATA.y, hidden_units=6, max_iter=5, tol=0, random_state=0)
    best = first.history[first.best_iteration].train_loss
    resumed = streamls.fit(DATA.X, DATA.y, hidden_units=6, max_iter=5, tol=0, init=first.model)
    # Iteration 0 of the resumed run is the initial model itself, measured again.
    assert resumed.history[0].train_loss == pytest.approx(best, rel=1e-10)
    assert resumed.history[resumed.best_iteration].train_loss <= best
    np.testing.assert_array_equal(resumed.model.standardizer.x_mean, first.model.standardizer.x_mean)
    path = tmp_path / "first.h5"
    first.model.save(path)
    from_file = streamls.fit(DATA.X, DATA.y, hidden_units=6, max_iter=5, tol=0, init=str(path))
    np.testing.assert_array_equal(from_file.model.W, resumed.model.W)


def test_warm_start_with_a_mismatched_model_fails() -> None:
    model = streamls.fit(DATA.X, DATA.y, hidden_units=6, max_iter=1, random_state=0).model
    with pytest.raises(ConfigError, match="init"):
        streamls.fit(DATA.X, DATA.y, hidden_units=7, max_iter=1, init=model)
    with pytest.raises(ConfigError, match="init"):
        streamls.fit(DATA.X[:, :4], DATA.y, hidden_units=6, max_iter=1, init=model)


def test_nan_policy_drop_skips_and_counts_rows(files) -> None:
    X, y = DATA.X.copy(), DATA.y.copy()
    bad = [5, 1234, 2999]
    X[bad[0], 2] = np.nan
    y[bad[1]] = np.inf
    X[bad[2], 0] = -np.inf
    specs = files("hdf5", {"X": X, "y": y}, chunk_rows=100)
    result = streamls.fit(specs["X"], specs["y"], hidden_units=6, max_iter=4, random_state=0, nan_policy="drop")
    assert result.dropped_rows == 3 and result.n_train == 2997
    assert result.model.summary.dropped_rows == 3
    keep = np.ones(len(y), dtype=bool)
    keep[bad] = False
    np.testing.assert_allclose(result.model.standardizer.x_mean, X[keep].mean(axis=0), rtol=1e-12)
    assert np.isfinite(result.model.predict(DATA.X)).all()


@pytest.mark.parametrize(("schedule", "passes_read"), [("full", 5), ("sample", 1)])
def test_trainer_api_and_rows_read(schedule: str, passes_read: int) -> None:
    dataset = Dataset(DATA.X, DATA.y, block_rows=500)
    config = TrainConfig(hidden_units=4, max_iter=3, tol=0, random_state=0, schedule=schedule)
    trainer = Trainer(dataset, config, LocalBackend())
    state = trainer.initial_state()
    assert state.iteration == 0 and state.W.shape == (4, 6) and not state.B.any()
    records = []
    trainer.callback = lambda st, rec: records.append((st.iteration, rec.iteration))
    result = trainer.run(state)
    assert records == [(1, 0), (2, 1), (3, 2)]
    # "full": one moments pass plus one pass per model (iterations 0..3); "sample": the data
    # fits the pool, so the moments pass is the only read from storage.
    assert result.summary.rows_read == passes_read * len(DATA.y)
    assert sum(r.rows_read for r in result.history) == passes_read * len(DATA.y)


def test_initial_hyperplanes_pass_through_training_rows() -> None:
    dataset = Dataset(DATA.X, DATA.y)
    trainer = Trainer(dataset, TrainConfig(hidden_units=8, random_state=0), LocalBackend())
    state = trainer.initial_state()
    xs = state.standardizer.inputs(DATA.X)
    u = xs @ state.W[:, :-1].T + state.W[:, -1]
    # Every neuron's hyperplane holds (or all but holds) a training row, so it splits the data.
    assert (np.abs(u).min(axis=0) <= 1e-6 * np.linalg.norm(state.W[:, :-1], axis=1)).all()
    active = (u > 0).mean(axis=0)
    assert ((active > 0) & (active < 1)).all()


@pytest.mark.parametrize("hidden_solver", ["dense", "cg"])
def test_resuming_from_a_saved_state_gives_the_uninterrupted_result(hidden_solver: str) -> None:
    """The matrix-free solve starts from the previous iteration's ridge, which the state carries."""
    config = TrainConfig(hidden_units=5, max_iter=6, tol=0, random_state=2, validation_fraction=0.1, hidden_solver=hidden_solver)
    full = Trainer(Dataset(DATA.X, DATA.y, block_rows=700), config, LocalBackend()).run(
        Trainer(Dataset(DATA.X, DATA.y, block_rows=700), config, LocalBackend()).initial_state()
    )
    states = []
    first = Trainer(Dataset(DATA.X, DATA.y, block_rows=700), config, LocalBackend(), lambda st, rec: states.append(st))
    first.run(first.initial_state())
    resumed = Trainer(Dataset(DATA.X, DATA.y, block_rows=700), config, LocalBackend()).run(states[2])
    np.testing.assert_array_equal(resumed.model.W, full.model.W)
    assert [r.train_loss for r in resumed.history] == [r.train_loss for r in full.history]
    assert resumed.best_iteration == full.best_iteration


def test_local_backend_reports_progress_per_block() -> None:
    seen: list[int] = []
    streamls.fit(DATA.X, DATA.y, hidden_units=3, max_iter=1, random_state=0, block_rows=1000, progress=seen.append)
    # Three passes (moments, model 0, model 1) of blocks 1000, 1000, 1000.
    assert seen == [1000] * 9


def test_stop_rule_on_loss_histories() -> None:
    assert stop_reason([1.0, 0.5, 0.4, 0.39], tol=0.1, window=2) is None  # 0.5 -> 0.39 is 22%
    assert stop_reason([1.0, 0.5, 0.49, 0.48], tol=0.1, window=2) is not None
    assert stop_reason([1.0, 0.5, 0.6, 0.55], tol=0.1, window=2) is not None  # no improvement at all
    assert stop_reason([1.0, 0.5, 0.49], tol=0.0, window=1) is None  # tol = 0 never stops
    assert stop_reason([1.0, 0.5], tol=0.1, window=2) is None  # not enough history yet
    # A loss stuck at exactly 0 (a constant target) stops too.
    assert stop_reason([0.0, 0.0, 0.0], tol=1e-4, window=2) is not None


def test_constant_target_stops_early() -> None:
    result = streamls.fit(DATA.X, np.full(len(DATA.y), 4.0), hidden_units=4, max_iter=100, random_state=0)
    assert result.n_iter < 100 and "tol" in result.stop_reason
    np.testing.assert_allclose(result.model.predict(DATA.X), 4.0, rtol=1e-12)


def test_predicted_loss_is_the_fixed_pattern_loss_of_the_new_model() -> None:
    """Record t's predicted loss: model t's MSE with the activation pattern of model t - 1."""
    config = TrainConfig(hidden_units=5, alpha=0.1, max_iter=4, tol=0, random_state=1)
    trainer = Trainer(Dataset(DATA.X, DATA.y, block_rows=400), config, LocalBackend())
    states = [trainer.initial_state()]
    trainer.callback = lambda st, rec: states.append(st)
    result = trainer.run(states[0])
    xs = np.hstack([states[0].standardizer.inputs(DATA.X), np.ones((len(DATA.X), 1))])
    ys = states[0].standardizer.targets(DATA.y[:, None])
    for t in range(1, len(states)):
        old, new = states[t - 1], states[t]
        a = np.where(xs @ old.W.T > 0, 1.0, 0.1)  # the pattern held fixed by the solve
        fixed = (a * (xs @ new.W.T)) @ new.B[:-1] + new.B[-1]
        realised = (np.where(xs @ new.W.T > 0, 1.0, 0.1) * (xs @ new.W.T)) @ new.B[:-1] + new.B[-1]
        record = result.history[t]
        assert record.predicted_loss == pytest.approx(np.mean((ys - fixed) ** 2), rel=1e-9)
        assert record.train_loss == pytest.approx(np.mean((ys - realised) ** 2), rel=1e-9)
        flips = ((xs @ old.W.T > 0) != (xs @ new.W.T > 0)).mean()
        assert record.flip_fraction == pytest.approx(flips, rel=1e-12)


def test_a_searched_step_predicts_its_realised_loss_and_is_never_worse_than_the_plain_step() -> None:
    """With the step search, record t's predicted loss is model t's exact training loss (its own pattern
    and output layer); and one searched iteration from a start fits at least as well as one plain step."""
    settings = {"hidden_units": 5, "alpha": 0.1, "tol": 0, "random_state": 1, "validation_fraction": 0.2, "n_init": 1}
    searched = streamls.fit(DATA.X, DATA.y, max_iter=12, line_search="on", **settings)
    lengths = [r.step_length for r in searched.history[1:]]
    assert set(lengths) <= set(STEP_LENGTHS) and max(lengths) > 1  # the search was not idle
    for record in searched.history[1:]:
        assert record.train_loss == pytest.approx(record.predicted_loss, rel=1e-9)
    assert not AlternatingRidge("auto", 1e-2).searches(matrix_free=True)
    # The default ("auto") searches after the matrix-free solve only.
    by_solver = {solver: streamls.fit(DATA.X, DATA.y, max_iter=6, hidden_solver=solver, **settings)
                 for solver in ("dense", "cg")}
    assert TrainConfig().line_search == "auto"
    assert {r.step_length for r in by_solver["dense"].history[1:]} == {1.0}
    assert max(r.step_length for r in by_solver["cg"].history[1:]) > 1
    for start in range(3):
        first = {"max_iter": 1, **settings, "random_state": start}
        plain = streamls.fit(DATA.X, DATA.y, line_search="off", **first).history[1].train_loss
        assert streamls.fit(DATA.X, DATA.y, line_search="on", **first).history[1].train_loss <= plain


# ----------------------------------------------------------------------------- the race of starts

RACE_CONFIG = {"hidden_units": 5, "max_iter": RACE_ITERATIONS + 5, "tol": 0, "random_state": 4}


def test_a_race_keeps_the_start_with_the_lowest_first_stage_loss() -> None:
    raced = streamls.fit(DATA.X, DATA.y, block_rows=700, n_init=3, **RACE_CONFIG)
    single = streamls.fit(DATA.X, DATA.y, block_rows=700, n_init=1, **RACE_CONFIG)
    losses, winner = raced.summary.race_losses, raced.summary.race_winner
    assert len(losses) == 3 and winner == int(np.argmin(losses))
    # Start 0 is the one start of n_init=1: its race loss is that run's best of the race's iterations.
    assert losses[0] == min(r.train_loss for r in single.history[:RACE_ITERATIONS])
    assert min(r.train_loss for r in raced.history[:RACE_ITERATIONS]) == losses[winner]
    assert raced.history[0].rows_read == len(DATA.y)  # the moments pass, counted for the kept start
    assert single.summary.race_losses == ()


def test_a_race_is_the_same_whatever_the_blocks_and_threads() -> None:
    runs = [streamls.fit(DATA.X, DATA.y, block_rows=rows, workers=workers, **RACE_CONFIG)
            for rows, workers in ((500, 1), (1700, 2))]
    np.testing.assert_allclose(runs[1].model.W, runs[0].model.W, rtol=1e-8, atol=1e-10)
    assert runs[0].summary.race_winner == runs[1].summary.race_winner


def test_resuming_after_a_race_gives_the_uninterrupted_result() -> None:
    config = TrainConfig(**RACE_CONFIG)
    full = streamls.fit(DATA.X, DATA.y, block_rows=700, **RACE_CONFIG)
    states: list[TrainState] = []
    first = Trainer(Dataset(DATA.X, DATA.y, block_rows=700), config, LocalBackend(), lambda st, rec: states.append(st))
    first.run(first.initial_state())
    kept = [state for state in states if state.race_start is None]
    assert kept[0].iteration == RACE_ITERATIONS  # the state to resume from: the kept start, after the race
    resumed = Trainer(Dataset(DATA.X, DATA.y, block_rows=700), config, LocalBackend()).run(kept[2])
    np.testing.assert_array_equal(resumed.model.W, full.model.W)


def test_the_callback_sees_every_start_of_a_race_then_the_kept_one() -> None:
    seen: list[tuple[int | None, int, float]] = []
    raced = streamls.fit(DATA.X, DATA.y, block_rows=700, n_init=3, callback=lambda st, rec: seen.append(
        (st.race_start, st.iteration, rec.train_loss)), **RACE_CONFIG)
    race = seen[: 3 * RACE_ITERATIONS]
    assert [start for start, _, _ in race] == [s for s in range(3) for _ in range(RACE_ITERATIONS)]
    assert [it for _, it, _ in race] == list(range(1, RACE_ITERATIONS + 1)) * 3
    for start in range(3):  # each start's best loss is its race loss
        losses = [loss for s, _, loss in race if s == start]
        assert min(losses) == raced.summary.race_losses[start]
    winner = raced.summary.race_winner
    after = seen[3 * RACE_ITERATIONS:]
    assert {start for start, _, _ in after} == {None} and len(after) == raced.n_iter - RACE_ITERATIONS + 1
    # The kept start is reported once more as the state to resume from, with its last race record.
    assert after[0] == (None, RACE_ITERATIONS, [loss for s, _, loss in race if s == winner][-1])
