"""The argument parser of the ``streamls`` command.

Training flags default to "not given" (``argparse.SUPPRESS``) so that they can be laid
over a ``--config`` file; their destinations are the configuration keys. The hyperparameter
flags are made from the table of :mod:`streamls.hyperparameters` (type, bounds, choices,
help and default). A flag's earlier name (:data:`~streamls.cli.config.ALIASES`, such as
``--seed`` for ``--random-state``) is a second option string of the same argument. Unknown
flags fail naming the closest valid flag; abbreviations are off so scripts stay
unambiguous; every usage error is one line.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import NoReturn

from ..backends import BACKENDS
from ..errors import ConfigError, closest
from ..hyperparameters import Hyperparameter, argument_type, hyperparameter, hyperparameters, value_text
from ..sources.dataset import DEFAULT_BLOCK_ROWS, NAN_POLICIES
from .checkpoint import KEEP_CHECKPOINTS
from .config import aliases_of
from .progress import LOG_FORMATS

S = argparse.SUPPRESS
#: Placeholders of hyperparameter values in usage lines, by kind (choices show themselves).
_METAVARS = {"int": "N", "float": "X", "seed": "N"}

#: What ``--block-rows`` means, in every command that has it.
BLOCK_ROWS_HELP = "rows per block read, rounded up to whole stored chunks"

EPILOG = """exit codes: 0 success, 2 usage error or bad input, 3 numerical failure,
130 interrupted by SIGINT, 143 interrupted by SIGTERM (resume with `streamls train --resume RUN`)"""


class UsageError(ConfigError):
    """A command line that names an unknown flag, or that argparse refuses (a bad value, a missing argument)."""


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line (no usage dump), as the rest of the command's are."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message}; see `{self.prog} --help`")


#: Counts (threads, rows, workers): ints >= 1, refused with the same message as the hyperparameters
#: (data_tools uses it too).
positive_int = argument_type(Hyperparameter("int", "a count", low=1))


def _int_list(text: str) -> list[int | str]:
    """Columns by index, or by name where the data has column names: ``3``, ``3,4``, ``-1``, ``price,4``."""
    parts = [part.strip() for part in text.split(",")]
    if not all(parts):
        raise argparse.ArgumentTypeError(f"expected column indices or names such as 3 or 3,4 or price, got {text!r}")
    return [int(part) if part.lstrip("-").isdigit() else part for part in parts]


def _output_options() -> argparse.ArgumentParser:
    common = _Parser(add_help=False, allow_abbrev=False)
    group = common.add_argument_group("output")
    loud = group.add_mutually_exclusive_group()
    loud.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    loud.add_argument("-v", "--verbose", action="store_true", help="also the library's debug messages")
    group.add_argument("--log-format", choices=LOG_FORMATS, default="text", help="log lines as text or JSON lines (default text)")
    return common


def _threads_option() -> argparse.ArgumentParser:
    parent = _Parser(add_help=False, allow_abbrev=False)
    parent.add_argument("--threads", type=positive_int, default=S, metavar="N",
                        help="cap BLAS and streamls threads at N (threadpoolctl); 1 also turns off read-ahead")
    return parent


def _add_train(sub: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "train", parents=parents, allow_abbrev=False, epilog=EPILOG,
        help="train a model into a run directory (checkpoints, report, resume)",
        description="Train a two-layer ReLU network by streaming alternating least squares.",
    )
    p.add_argument("data", nargs="?", default=S, metavar="DATA",
                   help="inputs, or a table holding the targets too: data.h5:/X, data.zarr:X, data.npy")
    target = p.add_mutually_exclusive_group()
    target.add_argument("--y", default=S, metavar="YDATA", help="targets, a data spec like DATA")
    target.add_argument(*options("target_cols"), type=_int_list, default=S, metavar="N[,N...]",
                        help="target column(s) of the DATA table (default: the last)")
    p.add_argument("--out-dir", default=S, metavar="RUN", help="run directory for model, checkpoints, logs, report")
    p.add_argument("--config", metavar="JOB.TOML", help="TOML file with these settings; flags override it")
    p.add_argument("--resume", metavar="RUN", help="continue the run in RUN from its last complete checkpoint")
    p.add_argument("--overwrite", action="store_true", help="replace a previous run in --out-dir")
    p.add_argument("--keep-checkpoints", type=positive_int, default=S, metavar="N",
                   help=f"keep the last N checkpoints in RUN/checkpoints (default {KEEP_CHECKPOINTS})")
    _add_hyperparameters(p)
    data = p.add_argument_group("data and resources")
    data.add_argument(*options("block_rows"), type=positive_int, default=S, metavar="ROWS",
                      help=f"{BLOCK_ROWS_HELP} (default {DEFAULT_BLOCK_ROWS}, fewer for rows of more than 15 inputs)")
    data.add_argument("--nan-policy", choices=NAN_POLICIES, default=S, help="rows with NaN/Inf: error (default) or drop")
    data.add_argument("--memory-limit", default=S, metavar="SIZE",
                      help="keep the estimated peak under SIZE (4GiB, 500MB) by choosing the block size; "
                           "refuse before reading data if impossible")
    data.add_argument("--backend", choices=BACKENDS, default=S, help="local (default) or dask")
    data.add_argument("--scheduler", default=S, metavar="tcp://HOST:PORT", help="Dask scheduler address (implies dask)")
    data.add_argument("--dask-workers", type=positive_int, default=S, metavar="N",
                      help="start a local Dask cluster of N workers (implies dask)")
    return p


def flag(key: str) -> str:
    """The ``train`` flag of job key ``key``: ``--hidden-units`` for ``hidden_units``."""
    return "--" + key.replace("_", "-")


def options(key: str) -> list[str]:
    """The flag of job key ``key`` followed by those of its earlier names: ``["--random-state", "--seed"]``."""
    return [flag(key), *map(flag, aliases_of(key))]


def _default_text(spec: Hyperparameter) -> str:
    # An unset seed is drawn and recorded in the run directory, so every run can be repeated.
    return "None: drawn at random and recorded" if spec.default is None else value_text(spec.default)


def _add_hyperparameters(parser: argparse.ArgumentParser) -> None:
    """A flag per hyperparameter of :class:`~streamls.TrainConfig`, its destination the job key."""
    group = parser.add_argument_group("hyperparameters (as in streamls.fit)")
    for spec in hyperparameters():
        group.add_argument(
            *options(spec.name), dest=spec.name, type=argument_type(spec), choices=spec.words or None, default=S,
            metavar=_METAVARS.get(spec.kind), help=f"{spec.help} (default {_default_text(spec)})",
        )


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    """The top-level parser and the parser of each command."""
    parser = _Parser(
        prog="streamls", allow_abbrev=False, epilog=EPILOG,
        description="Two-layer ReLU networks trained by streaming alternating least squares.",
    )
    from .. import __version__

    parser.add_argument("--version", action="version", version=f"streamls {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    output, threads = _output_options(), _threads_option()
    commands = {"train": _add_train(sub, [output, threads])}

    p = sub.add_parser("predict", parents=[output, threads], allow_abbrev=False, epilog=EPILOG,
                       help="stream predictions into a new HDF5 or Zarr array, or CSV or Parquet file")
    p.add_argument("model", metavar="MODEL", help="model file (RUN/model.h5)")
    p.add_argument("data", metavar="DATA", help="inputs, a data spec")
    p.add_argument("--out", required=True, metavar="OUT",
                   help="output: an array preds.h5:/yhat or preds.zarr:yhat, or a table preds.csv, preds.csv.gz or "
                        "preds.parquet; Zarr, CSV and Parquet also at fsspec URLs such as s3://bucket/preds.parquet")
    p.add_argument(*options("block_rows"), type=positive_int, metavar="ROWS", help=BLOCK_ROWS_HELP)
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    commands["predict"] = p

    p = sub.add_parser("evaluate", parents=[output, threads], allow_abbrev=False, epilog=EPILOG,
                       help="MSE, RMSE and R^2 per output, streamed")
    p.add_argument("model", metavar="MODEL")
    p.add_argument("data", metavar="DATA", help="inputs, or a table whose last k columns are the targets")
    target = p.add_mutually_exclusive_group()
    target.add_argument("--y", metavar="YDATA", help="targets")
    target.add_argument(*options("target_cols"), type=_int_list, metavar="N[,N...]",
                        help="target column(s) of the DATA table")
    p.add_argument("--nan-policy", choices=NAN_POLICIES, default="error")
    p.add_argument(*options("block_rows"), type=positive_int, metavar="ROWS", help=BLOCK_ROWS_HELP)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    commands["evaluate"] = p

    p = sub.add_parser("info", parents=[output], allow_abbrev=False, epilog=EPILOG,
                       help="architecture, training data, hyperparameters, history")
    p.add_argument("model", metavar="MODEL")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    commands["info"] = p

    p = sub.add_parser("demo", parents=[output, threads], allow_abbrev=False, epilog=EPILOG,
                       help="train on built-in synthetic data and print a result table")
    p.add_argument("--rows", type=positive_int, default=10000, help="training rows (default 10000)")
    p.add_argument("--hidden-units", type=argument_type(hyperparameter("hidden_units")), default=16,
                   help="hidden neurons (default 16)")
    p.add_argument("--max-iter", type=argument_type(hyperparameter("max_iter")), default=30,
                   help="most iterations (default 30)")
    p.add_argument(*options("random_state"), type=argument_type(hyperparameter("random_state")), default=0,
                   help="random seed (default 0)")
    p.add_argument("--out-dir", metavar="DIR", help="also write model, history and report here")
    commands["demo"] = p
    return parser, commands


def _flag_names(parser: argparse.ArgumentParser) -> list[str]:
    return [s for action in parser._actions for s in action.option_strings if s.startswith("--")]


def command_flags(command: str) -> list[str]:
    """The long flags of ``streamls COMMAND``, such as ``--overwrite``."""
    return _flag_names(build_parser()[1][command])


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse a command line; unknown flags raise :class:`UsageError` naming the closest flag.

    argparse's own errors (bad values, missing arguments) raise it too, in one line; ``--help``
    and ``--version`` exit with status 0.
    """
    parser, commands = build_parser()
    args, extras = parser.parse_known_args(argv)
    if extras:
        command = commands[args.command]
        unknown = next((e for e in extras if e.startswith("-")), extras[0])
        name = unknown.split("=", 1)[0]
        if not name.startswith("-"):
            raise UsageError(f"streamls {args.command}: unexpected argument {unknown!r}; see `streamls {args.command} --help`")
        guess = closest(name, _flag_names(command))
        hint = f"did you mean {guess}?" if guess else f"see `streamls {args.command} --help`"
        raise UsageError(f"streamls {args.command}: unknown option {name}; {hint}")
    return args
