"""Wording shared by the command lines: library phrasings in flag form, and the re-chunk command.

The library's messages are written for Python callers and name keywords (``pass
overwrite=True``); on the command line the same advice must name the flag (``pass
--overwrite``). :func:`cli_text` rewrites the library's phrasings, each only where the
command has the flag, so that no message advises a flag the command lacks.
"""

from __future__ import annotations

import shlex
from collections.abc import Collection
from dataclasses import dataclass


@dataclass(frozen=True)
class FlagPhrase:
    """A library phrasing, its command-line form, and the flag that form needs."""

    library: str
    cli: str
    flag: str


#: Every keyword advice the library gives in its messages (streamls.sources), in flag form.
FLAG_PHRASES = (
    FlagPhrase("pass overwrite=True", "pass --overwrite", "--overwrite"),
    FlagPhrase("pass nan_policy='drop'", "pass --nan-policy drop", "--nan-policy"),
    FlagPhrase("nan_policy='error'", "--nan-policy error", "--nan-policy"),
)


def cli_text(message: str, flags: Collection[str]) -> str:
    """``message`` with each library phrasing of :data:`FLAG_PHRASES` whose flag is in ``flags`` in flag form.

    Examples
    --------
    >>> cli_text("out.h5: exists; choose another path or pass overwrite=True", ["--overwrite"])
    'out.h5: exists; choose another path or pass --overwrite'
    """
    for phrase in FLAG_PHRASES:
        if phrase.flag in flags:
            message = message.replace(phrase.library, phrase.cli)
    return message


def rechunk_command(spec: str, rows: int) -> str:
    """The command that copies the table ``spec`` into ``rechunked.h5`` with stored chunks of ``rows`` rows.

    Every column lands in ``rechunked.h5:/X`` in order, so ``--target-col`` picks the same
    targets there as in ``spec``.
    """
    return f"python -m data_tools convert {shlex.quote(spec)} rechunked.h5 --chunk-rows {rows}"
