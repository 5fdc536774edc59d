"""Every interface agrees with TrainConfig, the one place a hyperparameter is declared.

For each field of :class:`streamls.TrainConfig`: :func:`streamls.fit` takes it; a job file
and the ``train`` command have it under the same name (``seed``, an earlier name of
``random_state``, too) with the same default and choices; the scikit-learn estimators have it with the same default except those listed in
``ESTIMATOR_DEFAULTS``; and all of them accept each bound and refuse a value just outside
it. The docstrings and the user docs are checked against the same table.
"""

from __future__ import annotations

import argparse
import inspect
import math
import os
import re
import subprocess
import sys
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import streamls
from streamls import TrainConfig
from streamls.cli.config import KEYS, JobConfig, check_values
from streamls.cli.parser import UsageError, build_parser, flag, parse
from streamls.errors import ConfigError
from streamls.hyperparameters import Hyperparameter, hyperparameters, value_text
from streamls.sklearn import ESTIMATOR_DEFAULTS, StreamLSClassifier, StreamLSRegressor

REPO = Path(__file__).resolve().parents[1]
SPECS = {spec.name: spec for spec in hyperparameters()}
ESTIMATORS = [StreamLSRegressor, StreamLSClassifier]


def inside_and_outside(spec: Hyperparameter) -> tuple[list[Any], list[Any]]:
    """Values just inside each bound (the bounds themselves where closed) and just outside them."""
    if spec.choices:
        return list(spec.choices), [f"no-{spec.name}"]
    if spec.kind == "float":
        inside, outside = [float(spec.low)], [math.nextafter(spec.low, -math.inf)]
        if math.isinf(spec.high):
            outside.append(math.inf)
        elif spec.upper_open:
            inside.append(math.nextafter(spec.high, -math.inf))
            outside.append(float(spec.high))
        else:
            inside.append(float(spec.high))
            outside.append(math.nextafter(spec.high, math.inf))
        return inside, outside
    inside, outside = [int(spec.low)], [int(spec.low) - 1]
    if not math.isinf(spec.high):
        top = int(spec.high) - 1 if spec.upper_open else int(spec.high)
        inside.append(top)
        outside.append(top + 1)
    return inside, outside


def word(value: Any) -> str:
    """``value`` as typed on a command line (floats round-trip through repr)."""
    return repr(value) if isinstance(value, float) else str(value)


def test_the_table_is_trainconfig() -> None:
    assert list(SPECS) == [f.name for f in fields(TrainConfig)]
    assert TrainConfig() == TrainConfig(**{name: spec.default for name, spec in SPECS.items()})


def test_messages_keep_the_project_template() -> None:
    for name, value, expected in [
        ("hidden_units", 0, "an int in the range [1, inf)"),
        ("alpha", 1.0, "a float in the range [0, 1)"),
        ("l2", -1.0, "\"auto\" or a float in the range [0, inf)"),
        ("random_state", -1, "an int in the range [0, inf)"),
        ("schedule", "fast", "one of ('sample', 'sample-all', 'full')"),
        ("hidden_solver", "lu", "\"auto\" or one of ('dense', 'cg')"),
    ]:
        with pytest.raises(ConfigError) as info:
            TrainConfig(**{name: value})
        assert str(info.value) == f"The {name!r} parameter of fit must be {expected}. Got {value!r} instead."


@pytest.mark.parametrize("name", SPECS)
def test_trainconfig_takes_each_bound_and_refuses_just_outside(name: str) -> None:
    spec = SPECS[name]
    inside, outside = inside_and_outside(spec)
    for value in inside:
        assert getattr(TrainConfig(**{name: value}), name) == value
    for value in outside:
        with pytest.raises(ConfigError, match=re.escape(f"The {name!r} parameter of fit must be {spec.expected}.")):
            TrainConfig(**{name: value})


# ---------------------------------------------------------------------------------------------
# streamls.fit
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", SPECS)
def test_fit_passes_each_hyperparameter_to_trainconfig(name: str) -> None:
    """A value out of range is refused by name, before any data is read (X is not even data)."""
    spec = SPECS[name]
    parameter = inspect.signature(streamls.fit).parameters[name]
    assert parameter.kind is parameter.KEYWORD_ONLY and parameter.default == spec.default
    with pytest.raises(ConfigError, match=f"The {name!r} parameter of fit"):
        streamls.fit("never-read.h5:/X", None, **{name: inside_and_outside(spec)[1][0]})


def test_fit_trains_with_every_hyperparameter_given() -> None:
    rng = np.random.default_rng(0)
    X = rng.standard_normal((300, 3))
    y = np.maximum(X @ [1.0, -2.0, 0.5], 0.0) + 0.1 * rng.standard_normal(300)
    values = {
        "hidden_units": 3, "alpha": 0.1, "l2": 1e-3, "damping": 0.1, "max_iter": 2, "tol": 0.0,
        "n_iter_no_change": 2, "random_state": 1, "validation_fraction": 0.2, "schedule": "full", "n_init": 2,
        "hidden_solver": "cg", "line_search": "on",
    }
    assert set(values) == set(SPECS) and all(values[n] != s.default for n, s in SPECS.items())
    result = streamls.fit(X, y, prefetch=False, **values)  # prefetch: an option of the local backend
    assert result.model.hyperparameters == asdict(TrainConfig(**values))


def test_fit_names_the_closest_keyword() -> None:
    X, y = np.zeros((10, 2)), np.zeros(10)
    with pytest.raises(ConfigError) as info:
        streamls.fit(X, y, hiden_units=3)
    assert str(info.value) == "fit() got an unexpected keyword argument 'hiden_units'; did you mean 'hidden_units'?"
    with pytest.raises(ConfigError, match="'block_row'; did you mean 'block_rows'"):
        streamls.fit(X, y, block_row=3)
    with pytest.raises(ConfigError, match="'worker'; did you mean 'workers'"):  # a local backend option
        streamls.fit(X, y, worker=3)
    with pytest.raises(ConfigError, match="'n_worker'; did you mean 'n_workers'"):  # before any cluster starts
        streamls.fit(X, y, backend="dask", n_worker=2)
    with pytest.raises(ConfigError, match="'prefetch'"):  # not an option of the Dask backend
        streamls.fit(X, y, backend="dask", prefetch=False)


# ---------------------------------------------------------------------------------------------
# streamls train: job files and flags
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", SPECS)
def test_job_config_has_each_hyperparameter_with_its_default(name: str) -> None:
    spec = SPECS[name]
    assert name in KEYS and getattr(JobConfig(), name) == spec.default
    for value in inside_and_outside(spec)[0]:
        assert check_values({name: value}, "job.toml") == {name: value}
        assert JobConfig(**{name: value}).train_options()[name] == value


def test_job_config_takes_seed_for_random_state() -> None:
    assert "random_state" in KEYS and "seed" not in KEYS
    assert TrainConfig(**JobConfig().train_options()) == TrainConfig()
    assert check_values({"seed": 7}, "job.toml") == {"random_state": 7}
    with pytest.raises(ConfigError, match="unknown key 'hiden_units'; did you mean 'hidden_units'"):
        check_values({"hiden_units": 3}, "job.toml")
    with pytest.raises(ConfigError, match="key 'schedule' must be one of"):
        check_values({"schedule": "fast"}, "job.toml")


def train_action(key: str) -> argparse.Action:
    _, commands = build_parser()
    return next(a for a in commands["train"]._actions if flag(key) in a.option_strings)


@pytest.mark.parametrize("name", SPECS)
def test_train_flag_for_each_hyperparameter(name: str) -> None:
    spec = SPECS[name]
    action = train_action(name)
    assert action.dest == name and action.default is argparse.SUPPRESS  # laid over the --config file
    assert action.option_strings == [flag(name), *(["--seed"] if name == "random_state" else [])]  # and an earlier name
    assert action.choices == (spec.words or None)
    assert action.help is not None and action.help.endswith(")")
    assert f"(default {value_text(spec.default)}" in action.help
    if spec.default is not None:
        assert getattr(parse(["train", flag(name), word(spec.default)]), name) == spec.default
    inside, outside = inside_and_outside(spec)
    for value in inside:  # FLAG=VALUE: argparse takes "-5e-324" after a space for a flag
        assert getattr(parse(["train", f"{flag(name)}={word(value)}"]), name) == value
    names = "/".join(action.option_strings)  # argparse names an argument by all its flags: "--random-state/--seed"
    for value in outside:
        with pytest.raises(UsageError, match=re.escape(f"argument {names}: expected {spec.expected}, got")):
            parse(["train", f"{flag(name)}={word(value)}"])


def streamls_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.run(
        [sys.executable, "-m", "streamls", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120, check=False
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--hidden-units", "abc"], "argument --hidden-units: expected an int in the range [1, inf), got 'abc'"),
        (["--alpha", "1"], "argument --alpha: expected a float in the range [0, 1), got '1'"),
    ],
)
def test_bad_flag_value_is_one_line_without_traceback(tmp_path: Path, args: list[str], message: str) -> None:
    proc = streamls_cli("train", "data.h5:/X", "--out-dir", "run", *args, cwd=tmp_path)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr == f"streamls: error: streamls train: {message}; see `streamls train --help`\n"
    assert not (tmp_path / "run").exists()


# ---------------------------------------------------------------------------------------------
# scikit-learn estimators
# ---------------------------------------------------------------------------------------------
def test_estimator_defaults_are_real_exceptions() -> None:
    """Each listed default names a hyperparameter, is valid, and differs from fit's (else drop it)."""
    for name, value in ESTIMATOR_DEFAULTS.items():
        assert SPECS[name].is_valid(value) and value != SPECS[name].default


@pytest.mark.parametrize("make", ESTIMATORS)
@pytest.mark.parametrize("name", SPECS)
def test_estimator_has_each_hyperparameter_and_its_bounds(make: type, name: str) -> None:
    spec = SPECS[name]
    assert make().get_params()[name] == ESTIMATOR_DEFAULTS.get(name, spec.default)
    inside, outside = inside_and_outside(spec)
    for value in inside:
        make(**{name: value})._validate_params()
    for value in outside:
        with pytest.raises(ValueError, match=f"The {name!r} parameter of {make.__name__} must be"):
            make(**{name: value})._validate_params()


# ---------------------------------------------------------------------------------------------
# docstrings and docs
# ---------------------------------------------------------------------------------------------
def documented_default(doc: str, name: str) -> str:
    match = re.search(rf"^\s*{name} : .*, default (.+)$", doc, flags=re.MULTILINE)
    assert match, f"{name} is not documented"
    return match.group(1)


@pytest.mark.parametrize("name", SPECS)
def test_docstrings_state_the_defaults_in_use(name: str) -> None:
    assert documented_default(streamls.fit.__doc__ or "", name) == value_text(SPECS[name].default)
    assert documented_default(TrainConfig.__doc__ or "", name) == value_text(SPECS[name].default)
    documented = documented_default(StreamLSRegressor.__doc__ or "", name)
    assert documented == value_text(StreamLSRegressor().get_params()[name])


def table_cells(markdown: str, first: str) -> list[str]:
    """The cells of the table row whose first cell is ``first`` in backticks, maybe followed by a placeholder."""
    rows = [line for line in markdown.splitlines() if re.match(rf"\| `{re.escape(first)}[` ]", line)]
    assert len(rows) == 1, f"one table row for {first}, found {len(rows)}"
    return [cell.strip() for cell in rows[0].strip("|").split("|")]


def same_default(cell: str, default: Any) -> bool:
    text = cell.strip("`").strip('"')
    if default is None or isinstance(default, str):
        return text == str(default)
    return float(text) == default


def test_cli_docs_list_every_train_flag_with_its_default() -> None:
    doc = (REPO / "docs" / "cli.md").read_text()
    _, commands = build_parser()
    flags = [s for a in commands["train"]._actions for s in a.option_strings if s.startswith("--") and s != "--help"]
    for option in flags:
        assert f"`{option}" in doc, f"docs/cli.md does not list {option}"
    for name, spec in SPECS.items():
        cell = table_cells(doc, flag(name))[1]
        assert "drawn" in cell if spec.default is None else same_default(cell, spec.default), (name, cell)


def test_sklearn_docs_state_the_estimator_defaults() -> None:
    doc = (REPO / "docs" / "sklearn.md").read_text()
    for name, default in StreamLSRegressor().get_params().items():
        assert same_default(table_cells(doc, name)[1], default), name
