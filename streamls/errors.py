"""The exceptions streamls raises on purpose.

Every class derives from :class:`StreamLSError`, and where a built-in exception
means the same thing the class derives from it too (as zarr does), so that
``except FileNotFoundError`` keeps working for callers who do not know streamls.
Messages name the file, the array, the row range and what was expected.
"""

from __future__ import annotations


class StreamLSError(Exception):
    """Base class of every error streamls raises on purpose."""


class ConfigError(StreamLSError, ValueError):
    """A hyperparameter or option is out of range or conflicts with another."""


class SourceError(StreamLSError):
    """A data source cannot be opened or does not hold usable rows."""


class SourceNotFoundError(SourceError, FileNotFoundError):
    """A file, or an array inside a file, does not exist."""


class SourceFormatError(SourceError, ValueError):
    """A file is not HDF5, Zarr or ``.npy``, or an array has the wrong shape or dtype."""


class ShapeMismatchError(SourceError, ValueError):
    """Inputs and targets disagree (row counts, column counts)."""


class NonFiniteDataError(SourceError, ValueError):
    """A block of rows holds NaN or Inf and the policy is ``"error"``."""


class NumericalError(StreamLSError, ArithmeticError):
    """A solve produced non-finite weights even after the fallback."""


class ModelFileError(StreamLSError, OSError):
    """A model file is missing, truncated, tampered with or of another format version."""


class OutputExistsError(StreamLSError, FileExistsError):
    """An output path exists and overwriting was not asked for."""


def parameter_error(owner: str, name: str, expected: str, got: object) -> ConfigError:
    """Build a :class:`ConfigError` with the project's one message template.

    Examples
    --------
    >>> str(parameter_error("fit", "l2", "a float in the range [0, inf)", -1.0))
    "The 'l2' parameter of fit must be a float in the range [0, inf). Got -1.0 instead."
    """
    return ConfigError(f"The {name!r} parameter of {owner} must be {expected}. Got {got!r} instead.")
