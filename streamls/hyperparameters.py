"""Hyperparameters of a training run: :class:`TrainConfig`, the one place each is declared.

Every field of :class:`TrainConfig` declares its default and, in its metadata, a
:class:`Hyperparameter`: its kind, bounds or choices, and a line of help. The interfaces
derive from that table (:func:`hyperparameters`): the keywords and docstring of
:func:`streamls.fit`, the keys of a ``streamls train`` job file and the ``train`` flags,
and the parameter constraints and docstrings of the scikit-learn estimators. Adding a
hyperparameter is one field here, plus a parameter of the estimators' ``__init__``
(scikit-learn reads their explicit signatures).
"""

from __future__ import annotations

import argparse
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any, Literal

import numpy as np

from .errors import parameter_error

#: Row schedules: grow a random sample and end early once more rows stop helping; grow it
#: up to every row; or read every row in every pass.
SCHEDULES = ("sample", "sample-all", "full")

#: Hidden-layer solves: dense (from the Gram ``P``) or matrix-free conjugate gradients.
HIDDEN_SOLVERS = ("dense", "cg")
#: Values of ``line_search``.
LINE_SEARCHES = ("off", "on")

#: The value of a hyperparameter that the data choose (:attr:`Hyperparameter.auto`).
AUTO = "auto"

#: Random starts ``n_init="auto"`` races when the ridge is chosen from the data too. The
#: start's local optimum moves the error: on small data the test error by a quarter
#: (concrete, four seeds: test MSE 0.084 to 0.113), and the start with the lowest loss after
#: the race was the best of four on airfoil and concrete. On the 20M-row teacher data of
#: benchmarks/big_data.py one start ended at a held-out 0.0407, 0.0408 and 0.0402 (seeds 0
#: to 2), a race of four judged on the fifth sample stage at 0.0402 and 0.0398 (seeds 0 and
#: 1); on the 4M-row data the race kept the one start's 0.0403.
AUTO_STARTS = 4

#: The line of a docstring that :func:`document_hyperparameters` replaces by the entries.
MARKER = "{hyperparameters}"

_METADATA_KEY = "hyperparameter"


@dataclass(frozen=True)
class Hyperparameter:
    """How one hyperparameter is checked, converted from text and documented.

    Attributes
    ----------
    kind : {"int", "float", "str", "seed"}
        ``"seed"`` is an int or ``None`` (``None``: fresh entropy); ``"str"`` takes one of ``choices``.
    help : str
        One line on what it does, without its bounds or default.
    low, high : float
        Bounds of a number; ``low`` is included, ``high`` too unless ``upper_open``.
    upper_open : bool
    choices : tuple of str
        The values of a ``"str"`` hyperparameter.
    auto : bool
        Whether the text ``"auto"`` is also valid: the value is then chosen from the data.
    name, annotation, default
        The field's name, type annotation (text) and default, set by :func:`hyperparameters`.
    """

    kind: Literal["int", "float", "str", "seed"]
    help: str
    low: float = -math.inf
    high: float = math.inf
    upper_open: bool = False
    choices: tuple[str, ...] = ()
    auto: bool = False
    name: str = ""
    annotation: str = ""
    default: Any = None

    @property
    def words(self) -> tuple[str, ...]:
        """The values of a ``"str"`` hyperparameter as typed: its choices, and ``"auto"`` if the data may choose."""
        return (*self.choices, AUTO) if self.auto and self.choices else self.choices

    @property
    def expected(self) -> str:
        """What a valid value is, as error messages say it: ``"an int in the range [1, inf)"``."""
        if self.choices:
            allowed = f"one of {self.choices}"
        else:
            noun = "a float" if self.kind == "float" else "an int"
            close = ")" if self.upper_open or math.isinf(self.high) else "]"
            allowed = f"{noun} in the range [{value_text(self.low)}, {value_text(self.high)}{close}"
        return f'"auto" or {allowed}' if self.auto else allowed

    def is_valid(self, value: Any) -> bool:
        """Whether ``value`` is of the right kind and within the bounds or choices (bools are not numbers)."""
        if self.kind == "seed" and value is None:
            return True
        if self.auto and isinstance(value, str) and value == AUTO:
            return True
        if self.choices:
            return isinstance(value, str) and value in self.choices
        numbers = (int, np.integer) if self.kind != "float" else (int, float, np.integer, np.floating)
        if isinstance(value, bool) or not isinstance(value, numbers):
            return False
        if isinstance(value, (float, np.floating)) and not math.isfinite(value):
            return False
        return self.low <= value and (value < self.high if self.upper_open else value <= self.high)

    def check(self, value: Any, owner: str = "fit") -> None:
        """Raise :class:`~streamls.errors.ConfigError` with the project's message template unless ``value`` is valid."""
        if not self.is_valid(value):
            raise parameter_error(owner, self.name, self.expected, value)

    def parse(self, text: str) -> Any:
        """The value a command-line word stands for; raises ``ValueError`` when it is not a number of this kind."""
        if self.auto and text == AUTO:
            return AUTO
        if self.kind == "float":
            return float(text)
        return text if self.kind == "str" else int(text)

    def doc_entry(self, default: Any) -> str:
        """The numpydoc entry, unindented: ``name : type, default value`` and a line of description."""
        kind = {"seed": "int or None", "str": "{" + ", ".join(f'"{c}"' for c in self.choices) + "}"}.get(self.kind, self.kind)
        kind = f'{kind} or "auto"' if self.auto else kind
        bounds = "" if self.choices else f" Must be {self.expected}."  # the type lists the choices
        return f"{self.name} : {kind}, default {value_text(default)}\n    {self.help[0].upper()}{self.help[1:]}.{bounds}"


def _declare(default: Any, kind: Literal["int", "float", "str", "seed"], help: str, **bounds: Any) -> Any:
    """A dataclass field with ``default`` whose metadata holds its :class:`Hyperparameter`."""
    return field(default=default, metadata={_METADATA_KEY: Hyperparameter(kind, help, **bounds)})


@dataclass(frozen=True)
class TrainConfig:
    """Hyperparameters of a training run (all validated on construction).

    Attributes
    ----------
    {hyperparameters}
    """

    hidden_units: int = _declare(32, "int", "hidden neurons h", low=1)
    alpha: float = _declare(0.0, "float", "slope of the activation for negative pre-activations (0: ReLU)",
                            low=0, high=1, upper_open=True)
    l2: float | str = _declare(AUTO, "float", "ridge term of both layers, relative to the mean diagonal of each layer's "
                               "Gram matrix; \"auto\" chooses it per layer and iteration from a log grid, by the "
                               "validation loss, or by generalised cross-validation without validation rows",
                               low=0, auto=True)
    damping: float = _declare(1e-2, "float", "initial weight of the proximal term keeping each hidden solve near the current "
                              "hidden weights, relative to the mean diagonal of its Gram matrix and adapted every "
                              "iteration (0: the plain alternating solves)", low=0)
    max_iter: int = _declare(100, "int", "most iterations (solves), each reading the data once", low=0)
    tol: float = _declare(1e-4, "float", "stop when the best training loss of the last n_iter_no_change iterations improves "
                          "on the best before them by less than tol, relatively (0: run all max_iter)", low=0)
    n_iter_no_change: int = _declare(10, "int", "the window of the stopping rule, in iterations", low=1)
    random_state: int | None = _declare(None, "seed", "seed of the initialisation and of the validation split", low=0)
    validation_fraction: float = _declare(0.0, "float", "share of rows held out, chosen by a hash of the row index, whose "
                                          "loss chooses the ridge (with l2=\"auto\"; without validation rows generalised "
                                          "cross-validation does), stops training once it rises and picks the best iterate",
                                          low=0, high=1, upper_open=True)
    n_init: int | str = _declare(AUTO, "int", "random starts raced in memory, each for 25 iterations on data too small to "
                                 "sample, else up to the first pass of the fifth sample stage, the one with the lowest "
                                 "loss going on; \"auto\": 4 with l2=\"auto\" and a dense hidden solve, else 1", low=1, auto=True)
    schedule: str = _declare("sample", "str", "which rows each pass reads: a growing random sample that ends once more "
                             "rows stop lowering the loss, the same grown to every row, or every row in every pass",
                             choices=SCHEDULES)
    hidden_solver: str = _declare(AUTO, "str", "the hidden solve: \"dense\" from the (h(d+1))^2 Gram matrix P, \"cg\" "
                                  "by conjugate gradients whose products are passes over the rows (memory h(d+1)^2); "
                                  "\"auto\" takes the one of lower predicted cost whose matrices fit the memory limit",
                                  choices=HIDDEN_SOLVERS, auto=True)
    line_search: str = _declare(AUTO, "str", "\"on\": try 1.5, 2 and 3 times each hidden solve's step too, keeping "
                                "the one of lowest training loss, at the cost of one more pass over the rows that "
                                "computes only the output layer's sums; \"auto\": on for the matrix-free hidden solve, "
                                "whose iteration costs about 30 product passes, off for the dense one, where it lowers "
                                "the training loss, not the test loss", choices=LINE_SEARCHES, auto=True)

    def __post_init__(self) -> None:
        for spec in hyperparameters():
            spec.check(getattr(self, spec.name))

    @property
    def auto_l2(self) -> bool:
        """Whether the ridge is chosen from the data."""
        return self.l2 == AUTO

    def starts(self, matrix_free: bool = False) -> int:
        """Random starts of a run: ``n_init`` with ``"auto"`` resolved.

        ``"auto"`` is :data:`AUTO_STARTS` with ``l2="auto"`` and a dense hidden solve, else 1: a
        matrix-free iteration costs tens of passes, and a race of four starts would spend most
        of the run's time on the starts it drops.
        """
        if self.n_init == AUTO:
            return AUTO_STARTS if self.auto_l2 and not matrix_free else 1
        return int(self.n_init)


_TABLE = tuple(
    replace(f.metadata[_METADATA_KEY], name=f.name, annotation=str(f.type), default=f.default) for f in fields(TrainConfig)
)


def hyperparameters() -> tuple[Hyperparameter, ...]:
    """Every hyperparameter of :class:`TrainConfig`, in field order, with its name, annotation and default."""
    return _TABLE


def hyperparameter(name: str) -> Hyperparameter:
    """The hyperparameter called ``name``; raises ``KeyError`` for another name."""
    for spec in _TABLE:
        if spec.name == name:
            return spec
    raise KeyError(name)


def value_text(value: Any) -> str:
    """A default or bound as docs and help texts show it: ``32``, ``0.01``, ``1e-6``, ``inf``, ``"sample"``."""
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, float):
        # "1e-06" -> "1e-6": the exponent as people write it.
        return re.sub(r"e([+-])0*(\d)", lambda m: f"e{m.group(1).lstrip('+')}{m.group(2)}", f"{value:g}")
    return str(value)


def argument_type(spec: Hyperparameter) -> Callable[[str], Any]:
    """An argparse ``type=`` converter for ``spec``: the value, or an error saying what was expected.

    argparse shows the message after the flag: ``argument --hidden-units: expected an int in
    the range [1, inf), got 'abc'``.
    """

    def convert(text: str) -> Any:
        try:
            value = spec.parse(text)
            valid = spec.is_valid(value)
        except ValueError:  # not a number at all
            valid = False
        if not valid:
            raise argparse.ArgumentTypeError(f"expected {spec.expected}, got {text!r}")
        return value

    return convert


def document_hyperparameters(doc: str | None, defaults: Mapping[str, Any] | None = None) -> str | None:
    """``doc`` with its :data:`MARKER` line replaced by a numpydoc entry per hyperparameter.

    Parameters
    ----------
    doc : str or None
        A docstring with a line that is :data:`MARKER`, indented as the entries are to be.
        Without one it is returned as it is: under ``python -OO`` docstrings are ``None``, or
        for a dataclass its signature (tests/test_hyperparameters.py checks the real ones).
    defaults : mapping, optional
        Defaults that differ from :class:`TrainConfig`'s, by name.
    """
    if doc is None:
        return None
    defaults = defaults or {}

    def entries(match: re.Match[str]) -> str:
        text = "\n".join(spec.doc_entry(defaults.get(spec.name, spec.default)) for spec in _TABLE)
        return "\n".join(match.group(1) + line for line in text.splitlines())

    return re.sub(rf"^([ \t]*){re.escape(MARKER)}$", entries, doc, flags=re.MULTILINE)


TrainConfig.__doc__ = document_hyperparameters(TrainConfig.__doc__)
