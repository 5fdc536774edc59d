"""The ``streamls`` command: ``train``, ``predict``, ``evaluate``, ``info`` and ``demo``.

Exit codes: 0 success; 2 usage error or bad input (every :class:`StreamLSError` but
:class:`NumericalError`, and argparse's errors); 3 numerical failure; 130 / 143 stopped
by SIGINT / SIGTERM (the last checkpoint is kept; ``streamls train --resume RUN``).
See ``docs/cli.md``.
"""

from __future__ import annotations

import argparse
import logging
import sys
import warnings
from collections.abc import Sequence

from ..errors import NumericalError, StreamLSError
from .progress import Reporter, ReporterHandler

EXIT_OK = 0
EXIT_USAGE = 2
EXIT_NUMERICAL = 3


def _reporter(args: argparse.Namespace) -> Reporter:
    verbosity = -1 if getattr(args, "quiet", False) else 1 if getattr(args, "verbose", False) else 0
    log_format = getattr(args, "log_format", "text")
    return Reporter(sys.stderr, log_format, verbosity, bar=sys.stderr.isatty())


def _dispatch(args: argparse.Namespace, reporter: Reporter) -> int:
    threads = getattr(args, "threads", None)
    if args.command == "train":
        from .train import run_train

        flags = {k: v for k, v in vars(args).items() if k not in _NOT_CONFIG}
        return run_train(flags, args.config, args.resume, args.overwrite, reporter)
    from . import commands

    if args.command == "predict":
        return commands.run_predict(args.model, args.data, args.out, args.block_rows, args.overwrite, threads, reporter)
    if args.command == "evaluate":
        return commands.run_evaluate(
            args.model, args.data, args.y, args.target_cols, args.nan_policy, args.block_rows, args.json, threads, reporter,
            sys.stdout,
        )
    if args.command == "info":
        return commands.run_info(args.model, args.json, sys.stdout)
    return commands.run_demo(args.rows, args.hidden_units, args.max_iter, args.random_state, args.out_dir, threads, reporter, sys.stdout)


#: Parsed arguments of ``train`` that are not configuration keys.
_NOT_CONFIG = frozenset({"command", "config", "resume", "overwrite", "quiet", "verbose", "log_format"})


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``streamls`` command line; returns the exit code."""
    from .messages import cli_text
    from .parser import command_flags, parse

    try:
        args = parse(argv)
    except SystemExit as exc:  # argparse: --help, --version, usage errors
        return int(exc.code) if isinstance(exc.code, int) else EXIT_USAGE
    except StreamLSError as exc:
        print(f"streamls: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    reporter = _reporter(args)
    handler = ReporterHandler(reporter)
    # The library's records and Python warnings (NumPy overflow, OutOfRangeWarning, ...) take
    # one route, so every line has the chosen format (a stray plain line would break JSON logs);
    # a warning is one line, its class and message, without the file and source line.
    library = logging.getLogger("streamls")
    previous = (library.level, library.propagate)
    library.addHandler(handler)
    library.setLevel(logging.DEBUG if reporter.verbosity > 0 else logging.WARNING)
    library.propagate = False
    shown = warnings.showwarning

    def show(message: Warning | str, category: type[Warning], *where: object) -> None:
        reporter.message(f"{category.__name__}: {message}", "warning")

    warnings.showwarning = show
    try:
        return _dispatch(args, reporter)
    except NumericalError as exc:
        reporter.message(str(exc), "error")
        return EXIT_NUMERICAL
    except StreamLSError as exc:
        # The library's advice names Python keywords; here it must name this command's flags.
        reporter.message(cli_text(str(exc), command_flags(args.command)), "error")
        return EXIT_USAGE
    except KeyboardInterrupt:  # outside training (which handles signals itself)
        reporter.message("interrupted", "error")
        return 130
    finally:
        reporter.close_bar()
        warnings.showwarning = shown
        library.removeHandler(handler)
        library.setLevel(previous[0])
        library.propagate = previous[1]


__all__ = ["EXIT_NUMERICAL", "EXIT_OK", "EXIT_USAGE", "main"]
