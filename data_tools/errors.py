"""The exceptions data_tools raises on purpose, inside streamls' hierarchy.

Both derive from :class:`streamls.errors.SourceFormatError` (and so from
``StreamLSError`` and ``ValueError``): an input that cannot become an array of rows.
"""

from __future__ import annotations

from streamls.errors import SourceFormatError

#: Longest excerpt of an offending line quoted in a message.
MAX_QUOTED = 200


class DataToolsError(SourceFormatError):
    """An input file data_tools cannot turn into arrays of rows."""


class CSVFormatError(DataToolsError):
    """A CSV line that is not a row of numbers: ragged, non-numeric, or missing.

    Attributes
    ----------
    path : str
    line : int
        1-based line number in the (decompressed) file.
    text : str
        The offending line, or token, without its line ending.
    problem : str
    """

    def __init__(self, path: str, line: int, text: str, problem: str) -> None:
        self.path, self.line, self.text, self.problem = path, line, text, problem
        super().__init__(f"{path}: line {line}: {problem}: {quote(text)}")


def quote(text: str) -> str:
    """``repr`` of ``text`` cut to :data:`MAX_QUOTED` characters."""
    text = text.rstrip("\r\n")
    return repr(text if len(text) <= MAX_QUOTED else text[:MAX_QUOTED] + "...")
