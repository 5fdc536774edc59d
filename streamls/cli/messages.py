"""Wording shared by the command lines: library phrasings in flag form, and ``data_tools convert`` commands.

The library's messages are written for Python callers and name keywords (``pass
overwrite=True``); on the command line the same advice must name the flag (``pass
--overwrite``). :func:`cli_text` rewrites the library's phrasings, each only where the
command has the flag, so that no message advises a flag the command lacks. The CSV
reader's advice (``pass header=True``, ``pass delimiter=';'``) names ``data_tools
convert``'s flags there, and elsewhere (``streamls train`` reads a CSV file with the
default settings) the conversion that applies them.
"""

from __future__ import annotations

import ast
import os
import re
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


@dataclass(frozen=True)
class CSVPhrase:
    """Advice of the CSV reader (:mod:`data_tools.readers`) and the ``data_tools convert`` flags it stands for.

    Attributes
    ----------
    library : str
        A regular expression matching the advice; a delimiter it names is the group ``value``
        (a Python string literal).
    options : str
        The advice with flags: ``{value}`` is the delimiter as a shell word.
    flags : tuple of str
        The flags ``options`` names; a command without them is told the conversion instead.
    """

    library: str
    options: str
    flags: tuple[str, ...]


#: The CSV reader's advice (messages of :class:`data_tools.CSVFormatError`, which start with the file's path).
CSV_PHRASES = (
    CSVPhrase(
        "pass header=True if it names the columns, or header=False if it is a data row",
        "--header if it names the columns, or --no-header if it is a data row",
        ("--header", "--no-header"),
    ),
    CSVPhrase("pass delimiter=(?P<value>'[^']*'|\"[^\"]*\")", "--delimiter {value}", ("--delimiter",)),
)
#: The start of a CSV reader's message: ``PATH: line N: ``.
_CSV_MESSAGE = re.compile(r"(?P<path>.+?): line \d+: ")


def cli_text(message: str, flags: Collection[str]) -> str:
    """``message`` with the library's keyword advice in the form a command with ``flags`` can follow.

    Each phrasing of :data:`FLAG_PHRASES` whose flag is in ``flags`` takes its flag form,
    and the CSV reader's advice that of :func:`csv_advice`.

    Examples
    --------
    >>> cli_text("out.h5: exists; choose another path or pass overwrite=True", ["--overwrite"])
    'out.h5: exists; choose another path or pass --overwrite'
    """
    for phrase in FLAG_PHRASES:
        if phrase.flag in flags:
            message = message.replace(phrase.library, phrase.cli)
    return csv_advice(message, flags)


def csv_advice(message: str, flags: Collection[str]) -> str:
    """``message`` with the CSV reader's advice (:data:`CSV_PHRASES`) in flag form.

    The advice names the flags where the command has them all (``data_tools convert``),
    and otherwise the ``data_tools convert`` command of the file, which has them.

    Examples
    --------
    >>> csv_advice("a.csv: line 2: one column (pass delimiter=';')", ["--delimiter"])
    "a.csv: line 2: one column (pass --delimiter ';')"
    >>> csv_advice("a.csv: line 2: one column (pass delimiter=';')", [])
    "a.csv: line 2: one column (convert it with python -m data_tools convert a.csv a.h5 --delimiter ';')"
    """
    csv_file = _CSV_MESSAGE.match(message)
    if csv_file is None:
        return message
    for advice in CSV_PHRASES:
        match = re.search(advice.library, message)
        if match is None:
            continue
        value = match.groupdict().get("value")
        options = advice.options.format(value=_shell_word(ast.literal_eval(value)) if value else "")
        if all(flag in flags for flag in advice.flags):
            text = f"pass {options}"
        else:
            path = csv_file.group("path")
            hdf5 = os.path.splitext(path.removesuffix(".gz"))[0] + ".h5"
            text = f"convert it with {convert_command(path, hdf5, options)}"
        message = message[: match.start()] + text + message[match.end() :]
    return message


def _shell_word(text: str) -> str:
    """``text`` as one shell word: quoted where needed, ``$'\\t'`` for a character that does not print."""
    return shlex.quote(text) if text.isprintable() else "$" + repr(text)


def convert_command(spec: str, output: str, *options: str) -> str:
    """The ``python -m data_tools convert`` command copying ``spec`` into ``output``, with ``options``.

    Every column lands in ``OUTPUT:/X`` in order, so ``--target-cols`` picks the same targets
    there as in ``spec``.
    """
    return " ".join(["python -m data_tools convert", shlex.quote(spec), shlex.quote(output), *options])


def rechunk_command(spec: str, rows: int) -> str:
    """The command that copies the table ``spec`` into ``rechunked.h5`` with stored chunks of ``rows`` rows."""
    return convert_command(spec, "rechunked.h5", "--chunk-rows", str(rows))
