"""The exceptions streamls raises on purpose.

Every class derives from :class:`StreamLSError`, and where a built-in exception
means the same thing the class derives from it too (as zarr does), so that
``except FileNotFoundError`` keeps working for callers who do not know streamls.
Messages name the file, the array, the row range and what was expected.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence


class StreamLSError(Exception):
    """Base class of every error streamls raises on purpose."""


class ConfigError(StreamLSError, ValueError):
    """A hyperparameter or option is out of range or conflicts with another."""


class SourceError(StreamLSError):
    """A data source cannot be opened or does not hold usable rows."""


class SourceNotFoundError(SourceError, FileNotFoundError):
    """A file, or an array inside a file, does not exist."""


class SourceFormatError(SourceError, ValueError):
    """A file is not HDF5, Zarr, ``.npy``, Parquet or CSV, or an array has the wrong shape or dtype."""


class ShapeMismatchError(SourceError, ValueError):
    """Inputs and targets disagree (row counts, column counts)."""


class NonFiniteDataError(SourceError, ValueError):
    """A block of rows holds NaN or Inf and the policy is ``"error"``."""


class RowRangeError(SourceError, IndexError):
    """Rows ``[start, stop)`` asked of a source are not within ``[0, n_rows)``."""


class StatisticsError(StreamLSError, ValueError):
    """Pass statistics that cannot be formed or added: an empty row range, or sums of different kinds of pass."""


class NumericalError(StreamLSError, ArithmeticError):
    """A solve produced non-finite weights even after the fallback."""


class ModelFileError(StreamLSError, OSError):
    """A model file is missing, truncated, tampered with or of another format version."""


class OutputExistsError(StreamLSError, FileExistsError):
    """An output path exists and overwriting was not asked for."""


class OutOfRangeWarning(UserWarning):
    """Rows given to a model hold inputs beyond the minimum or maximum of its training rows."""


def parameter_error(owner: str, name: str, expected: str, got: object) -> ConfigError:
    """Build a :class:`ConfigError` with the project's one message template.

    Examples
    --------
    >>> str(parameter_error("fit", "l2", "a float in the range [0, inf)", -1.0))
    "The 'l2' parameter of fit must be a float in the range [0, inf). Got -1.0 instead."
    """
    return ConfigError(f"The {name!r} parameter of {owner} must be {expected}. Got {got!r} instead.")


def closest(name: str, valid: Sequence[str]) -> str | None:
    """The valid name closest to a misspelt one, or ``None`` when nothing is close."""
    matches = difflib.get_close_matches(name, valid, n=1, cutoff=0.6)
    return matches[0] if matches else None


def unexpected_keyword_error(owner: str, name: str, valid: Sequence[str]) -> ConfigError:
    """A :class:`ConfigError` for an unknown keyword argument, naming the closest valid one.

    Examples
    --------
    >>> str(unexpected_keyword_error("fit", "hiden_units", ["hidden_units", "alpha"]))
    "fit() got an unexpected keyword argument 'hiden_units'; did you mean 'hidden_units'?"
    """
    guess = closest(name, valid)
    hint = f"did you mean {guess!r}?" if guess else f"valid keywords: {', '.join(valid)}"
    return ConfigError(f"{owner}() got an unexpected keyword argument {name!r}; {hint}")
