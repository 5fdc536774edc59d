"""``python -m data_tools convert|synth|split|inspect ...``.

``convert``, ``synth`` and ``split`` print one JSON object describing what they did on
stdout (so scripts can read it); ``inspect`` prints a readable table, or with ``--json``
one JSON object. Logs go to stderr; a :class:`streamls.errors.StreamLSError` exits with
status 2 and a one-line message naming the flags to change.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from streamls.cli.messages import cli_text
from streamls.cli.parser import positive_int
from streamls.errors import StreamLSError
from streamls.hyperparameters import Hyperparameter, argument_type
from streamls.synthetic import KINDS, SynthSpec

from .convert import convert
from .inspection import inspect_arrays
from .readers import BAD_ROW_POLICIES, DEFAULT_BLOCK_ROWS
from .splitting import FORMATS, split
from .synth import DEFAULT_BLOCK_ROWS as SYNTH_BLOCK_ROWS
from .synth import synth

logger = logging.getLogger("data_tools")

COMPRESSIONS = ("none", "gzip", "lzf", "zstd", "blosc-lz4")
#: Seeds: ints >= 0, refused by argparse naming the flag.
_seed = argument_type(Hyperparameter("int", "a seed", low=0))


def _progress(args: argparse.Namespace) -> bool | None:
    return False if args.no_progress else None


def _run_convert(args: argparse.Namespace) -> str:
    report = convert(
        args.input,
        args.output,
        target_cols=args.target_cols,
        columns=args.columns,
        header=args.header,
        delimiter=args.delimiter,
        dtype=args.dtype,
        chunk_rows=args.chunk_rows,
        compression=args.compression,
        on_bad_row=args.on_bad_row,
        block_rows=args.block_rows,
        overwrite=args.overwrite,
        progress=_progress(args),
    )
    return _json(asdict(report))


def _run_synth(args: argparse.Namespace) -> str:
    spec = SynthSpec(
        n_rows=args.rows,
        n_features=args.features,
        hidden_units=args.hidden,
        n_targets=args.targets,
        noise=args.noise,
        kind=args.kind,
        seed=args.seed,
        dtype=args.dtype,
    )
    synth(
        args.output,
        spec,
        block_rows=args.block_rows,
        chunk_rows=args.chunk_rows,
        compression=args.compression,
        workers=args.workers,
        overwrite=args.overwrite,
        progress=_progress(args),
    )
    return _json({"output": args.output, **asdict(spec)})


def _run_split(args: argparse.Namespace) -> str:
    report = split(
        args.input,
        args.out_dir,
        test=args.test,
        validation=args.validation,
        seed=args.seed,
        arrays=args.arrays,
        output_format=args.format,
        block_rows=args.block_rows,
        compression=args.compression,
        overwrite=args.overwrite,
        progress=_progress(args),
    )
    return _json(asdict(report))


def _run_inspect(args: argparse.Namespace) -> str:
    reports = [r for path in args.paths for r in inspect_arrays(path, not args.no_stats, progress=_progress(args))]
    if args.json:
        return _json({"arrays": [r.to_dict() for r in reports]})
    return "\n\n".join(r.text() for r in reports)


def _json(payload: dict[str, Any]) -> str:
    return json.dumps(payload, default=str)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``python -m data_tools`` and its subcommands convert, synth, split and inspect."""
    parser = argparse.ArgumentParser(
        prog="python -m data_tools", description="Convert, generate, split and inspect data for streamls, streaming."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details to stderr")
    commands = parser.add_subparsers(dest="command", required=True)

    def common(sub: argparse.ArgumentParser, block_rows: int) -> None:
        sub.add_argument("--compression", choices=COMPRESSIONS, help="HDF5: gzip/lzf; Zarr: zstd/blosc-lz4")
        sub.add_argument("--block-rows", type=positive_int, default=block_rows, help="rows handled at a time")
        sub.add_argument("--overwrite", action="store_true", help="replace existing outputs")
        sub.add_argument("--no-progress", action="store_true", help="never show a progress bar")

    conv = commands.add_parser(
        "convert", help="CSV (plain or .gz) or Parquet to HDF5 (.h5) or Zarr (.zarr); or re-chunk an HDF5/Zarr/.npy array"
    )
    conv.add_argument("input", help="in.csv, in.csv.gz, in.parquet, or an array: data.h5:/X, data.zarr:X, data.npy")
    conv.add_argument("output", help="out.h5 or out.zarr; holds X (and y with --target-cols)")
    conv.add_argument("--target-cols", "--target-col", nargs="+", default=[], metavar="COL",
                      help="target columns (name or index)")
    conv.add_argument("--columns", nargs="+", metavar="COL", help="columns to keep (name or index; default all)")
    header = conv.add_mutually_exclusive_group()
    header.add_argument("--header", dest="header", action="store_true", default=None, help="first line names columns")
    header.add_argument("--no-header", dest="header", action="store_false", help="first line is data")
    conv.add_argument("--delimiter", default=",", help="field separator (default ,)")
    conv.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    conv.add_argument(
        "--chunk-rows", type=positive_int, help="rows per stored chunk (default: about 4 MiB, at most the row count)"
    )
    conv.add_argument("--on-bad-row", choices=BAD_ROW_POLICIES, default="error")
    common(conv, DEFAULT_BLOCK_ROWS)
    conv.set_defaults(run=_run_convert)

    syn = commands.add_parser("synth", help="synthetic teacher-network or linear regression data")
    syn.add_argument("output", help="out.h5 or out.zarr; holds X, y and teacher/*")
    syn.add_argument("--rows", type=positive_int, required=True)
    syn.add_argument("--features", "-d", type=positive_int, required=True)
    syn.add_argument("--hidden", type=positive_int, default=16, help="teacher hidden units")
    syn.add_argument("--targets", type=positive_int, default=1)
    syn.add_argument("--noise", type=float, default=0.1, help="standard deviation of the target noise")
    syn.add_argument("--kind", choices=KINDS, default="teacher")
    syn.add_argument("--seed", type=_seed, default=0)
    syn.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    syn.add_argument("--chunk-rows", type=positive_int, help="rows per stored chunk (default: about 4 MiB)")
    syn.add_argument("--workers", type=positive_int, help="generator threads (default: CPU count)")
    common(syn, SYNTH_BLOCK_ROWS)
    syn.set_defaults(run=_run_synth)

    spl = commands.add_parser("split", help="train/test(/validation) split by a hash of the row index")
    spl.add_argument("input", help="HDF5 file, Zarr group or .npy file")
    spl.add_argument("out_dir", help="receives train, test (and validation) files")
    spl.add_argument("--test", type=float, default=0.2)
    spl.add_argument("--validation", type=float, default=0.0)
    spl.add_argument("--seed", type=_seed, default=0)
    spl.add_argument("--arrays", nargs="+", help="arrays to split (default: all top-level arrays)")
    spl.add_argument("--format", choices=tuple(FORMATS), help="output format (default: the input's)")
    common(spl, DEFAULT_BLOCK_ROWS)
    spl.set_defaults(run=_run_split)

    ins = commands.add_parser("inspect", help="shape, storage and per-column statistics of arrays")
    ins.add_argument("paths", nargs="+", help="data.h5, data.h5:/X, data.zarr, data.zarr:X or data.npy")
    ins.add_argument("--no-stats", action="store_true", help="skip the pass over the rows")
    ins.add_argument("--no-progress", action="store_true")
    ins.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    ins.set_defaults(run=_run_inspect)
    return parser


def _flags(parser: argparse.ArgumentParser, command: str) -> list[str]:
    """The long flags of subcommand ``command``."""
    (commands,) = (a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return [s for action in commands.choices[command]._actions for s in action.option_strings if s.startswith("--")]


def main(argv: Sequence[str] | None = None) -> int:
    """Run one subcommand; return the exit status (0 success, 2 a StreamLSError)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        output = args.run(args)
    except StreamLSError as exc:
        # The library's advice names Python keywords; here it must name this subcommand's flags.
        print(f"data_tools {args.command}: error: {cli_text(str(exc), _flags(parser, args.command))}", file=sys.stderr)
        return 2
    print(output)
    return 0
