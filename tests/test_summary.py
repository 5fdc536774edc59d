"""The fit's summary: one dataclass, saved with the model, read back from old files, shown by ``info``."""

from __future__ import annotations

import ast
import json
from dataclasses import asdict, fields, replace
from pathlib import Path

import numpy as np
import pytest
from conftest import teacher_data

import streamls
from streamls.cli import main
from streamls.cli.report import summary_markdown
from streamls.model import MODEL_FORMAT
from streamls.records import standardizer_arrays, write_record
from streamls.summary import FitSummary

PACKAGE = Path(streamls.__file__).parent
DATA = teacher_data(n=900, d=3, k=1, seed=21)
SUFFIXES = (".h5", ".zarr")
#: A summary whose every field differs from its default, so that a round trip checks each one.
SET = FitSummary(
    data="train.h5:/X | train.h5:/y", n_rows=900, n_features=3, n_targets=1, n_train=810, n_validation=90,
    dropped_rows=2, best_iteration=7, stop_reason="converged", schedule="sample", stage=1, n_stages=3,
    n_fitted_rows=400, ended_early=True, rows_read=2700, race_losses=(0.25, 0.125, 0.5), race_winner=1,
)


@pytest.fixture(scope="module")
def result() -> streamls.TrainResult:
    return streamls.fit(DATA.X, DATA.y, hidden_units=4, max_iter=3, random_state=0, validation_fraction=0.1)


def test_the_set_summary_leaves_no_field_at_its_default() -> None:
    default = FitSummary()
    assert [f.name for f in fields(FitSummary) if getattr(SET, f.name) == getattr(default, f.name)] == []


def test_the_result_reads_its_counts_from_the_summary(result: streamls.TrainResult) -> None:
    summary = result.summary
    assert summary is result.model.summary
    assert (result.best_iteration, result.stop_reason) == (summary.best_iteration, summary.stop_reason)
    assert (result.n_train, result.n_validation, result.dropped_rows) == (summary.n_train, summary.n_validation, 0)
    assert summary.n_train + summary.n_validation == summary.n_rows == len(DATA.y)
    assert (summary.n_features, summary.n_targets) == (3, 1)
    assert summary.rows_read == sum(r.rows_read for r in result.history)


@pytest.mark.parametrize("suffix", SUFFIXES)
@pytest.mark.parametrize("which", ["fitted", "set"])
def test_the_summary_round_trips_through_a_model_file(tmp_path: Path, result, suffix: str, which: str) -> None:
    model = result.model if which == "fitted" else replace(result.model, summary=SET)
    path = tmp_path / f"m{suffix}"
    model.save(path)
    loaded = streamls.load_model(path)
    assert isinstance(loaded.summary, FitSummary)
    assert loaded.summary == model.summary


def previous_format_file(path: Path, model: streamls.TwoLayerModel, info: dict) -> None:
    """A model file as streamls wrote it before the summary (format version 2): the summary's fields in ``info``."""
    arrays = {"W": model.W, "B": model.B, **standardizer_arrays(model.standardizer)}
    meta = {
        "alpha": model.alpha, "target_is_1d": model.target_is_1d, "hyperparameters": model.hyperparameters,
        "history": model.history, "info": info, "feature_names": None, "target_names": None,
        "streamls_version": "0.1.0",
    }
    write_record(path, MODEL_FORMAT, 2, arrays, meta)


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_a_previous_format_file_fills_the_summary_from_its_info(tmp_path: Path, result, suffix: str) -> None:
    info = {**asdict(SET), "race_losses": list(SET.race_losses)}  # the keys and JSON types version 2 wrote
    previous_format_file(tmp_path / f"old{suffix}", result.model, info)
    old = streamls.load_model(tmp_path / f"old{suffix}")
    assert old.summary == SET
    np.testing.assert_array_equal(old.W, result.model.W)
    assert json.dumps(old.history) == json.dumps(result.model.history)  # NaN losses included


def test_keys_an_older_info_lacks_take_the_defaults(tmp_path: Path, result) -> None:
    # streamls wrote neither the schedule's fields nor the race before those existed.
    info = {key: getattr(SET, key) for key in ("data", "n_rows", "n_features", "n_targets", "n_train",
                                                "n_validation", "dropped_rows", "best_iteration", "stop_reason")}
    previous_format_file(tmp_path / "older.h5", result.model, info)
    summary = streamls.load_model(tmp_path / "older.h5").summary
    assert summary == FitSummary(**info)
    assert (summary.schedule, summary.n_stages, summary.race_losses, summary.rows_read) == ("full", 1, (), 0)


def test_info_prints_every_summary_field(tmp_path: Path, capsys: pytest.CaptureFixture[str], result) -> None:
    path = str(tmp_path / "m.h5")
    replace(result.model, summary=SET).save(path)
    assert main(["info", path, "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    listed = {**shown["training_data"], **shown["fit"]}
    listed.update(best_iteration=shown["history"]["best_iteration"], stop_reason=shown["history"]["stop_reason"])
    assert FitSummary.from_dict(listed) == SET
    assert set(listed) == {f.name for f in fields(FitSummary)}  # each field once, no other key
    assert main(["info", path]) == 0
    text = capsys.readouterr().out
    assert "fit:" in text and "race_losses            [0.25, 0.125, 0.5]" in text
    assert "n_fitted_rows          400" in text and "ended_early            True" in text


def test_the_report_states_the_summary(result) -> None:
    text = summary_markdown(result.model.history, {}, SET)
    assert "Data: `train.h5:/X | train.h5:/y`: 900 rows, 3 inputs, 1 outputs; 810 training rows" in text
    assert "stage 2 of 3; the model was fitted on 400 rows, ended early" in text
    assert "2700 rows read from storage" in text and "converged" in text


def imported_modules(module: str) -> set[str]:
    """The streamls modules that ``streamls/<module>.py`` imports, relative names resolved."""
    tree = ast.parse((PACKAGE / f"{module}.py").read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            found.update([node.module] if node.module else [alias.name for alias in node.names])
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("streamls."):
            found.add(node.module.removeprefix("streamls.").split(".")[0])
    return {name.split(".")[0] for name in found}


def test_model_files_depend_one_way() -> None:
    """records <- model <- persistence: the record file knows no model, the model no persistence."""
    assert "records" in imported_modules("model") and "persistence" not in imported_modules("model")
    assert not {"model", "persistence", "training"} & imported_modules("records")
    assert "model" in imported_modules("persistence")
