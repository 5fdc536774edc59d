"""Train on a teacher dataset bigger than physical memory and measure the trainer's peak RSS.

Generates ``X`` (float32, d columns) and ``y`` with ``data_tools synth`` (default size:
1.25x MemTotal on disk), then trains ``h = 8`` hidden units with ``streamls.fit`` in a
subprocess, whose peak RSS is its own ``VmHWM`` read at exit: by default with the library's
defaults (the sample schedule and its stopping rules); ``--schedule full --max-iter 3``
repeats the earlier fixed run of three full passes. Prints one JSON object: dataset bytes,
RAM bytes, peak RSS and its ratio to the dataset, rows read, rows/s of every pass, the
training loss per iteration, and the held-out loss of the model on 200k rows of the same
synth stream past the file's end (standardised MSE).

    python benchmarks/out_of_core.py                       # 1.25x RAM (tens of GB)
    python benchmarks/out_of_core.py --schedule full --max-iter 3
    python benchmarks/out_of_core.py --size 2GB --dir /tmp

The data file is written outside the repository and deleted afterwards (``--keep`` keeps it).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
UNITS = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12, "KIB": 2**10, "MIB": 2**20, "GIB": 2**30}
#: Disk space left free whatever the size asked for.
DISK_RESERVE = 20 * 10**9


def parse_size(text: str) -> int:
    """Bytes of ``"2GB"``, ``"1.5GiB"``, ``"500MB"`` or a plain number."""
    match = re.fullmatch(r"\s*([0-9.]+)\s*([A-Za-z]*)\s*", text)
    if not match or match.group(2).upper() not in UNITS:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (use e.g. 2GB, 1.5GiB, 500MB)")
    return int(float(match.group(1)) * UNITS[match.group(2).upper()])


def mem_total() -> int:
    """Physical memory in bytes, from /proc/meminfo."""
    with open("/proc/meminfo") as handle:
        for line in handle:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no MemTotal in /proc/meminfo")


def disk_bytes(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def disk_write_speed(directory: Path, nbytes: int = 1 << 30) -> float:
    """Bytes/s of plain sequential writes (with fsync) into ``directory``: synth's reference."""
    block = np.random.default_rng(0).integers(0, 256, 64 << 20, dtype=np.uint8).tobytes()
    count = max(nbytes // len(block), 1)
    path = directory / "disk_reference.bin"
    start = time.perf_counter()
    try:
        with open(path, "wb") as handle:
            handle.writelines(block for _ in range(count))
            handle.flush()
            os.fsync(handle.fileno())
        return count * len(block) / (time.perf_counter() - start)
    finally:
        path.unlink(missing_ok=True)


#: Runs a module or script and, at exit, writes the process's own peak RSS (VmHWM) to stderr.
#: VmHWM belongs to the address space made by exec, unlike wait4's ru_maxrss, which also
#: counts the parent's RSS at fork time.
PEAK_RSS_WRAPPER = """
import atexit, runpy, sys
def report():
    with open("/proc/self/status") as status:
        sys.stderr.write(next(line for line in status if line.startswith("VmHWM:")))
atexit.register(report)
sys.argv = sys.argv[1:]
if sys.argv[0].endswith(".py"):
    runpy.run_path(sys.argv[0], run_name="__main__")
else:
    runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)
"""


def run_child(target: str, args: list[str]) -> tuple[str, int, float]:
    """Run a module (``"data_tools"``) or script with ``args``; return stdout, peak RSS bytes, seconds."""
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", PEAK_RSS_WRAPPER, target, *args], capture_output=True, text=True, cwd=REPO, check=False
    )
    seconds = time.perf_counter() - start
    lines = done.stderr.splitlines()
    sys.stderr.write("".join(line + "\n" for line in lines if not line.startswith("VmHWM:")))
    if done.returncode:
        raise SystemExit(f"{target} {' '.join(args[:3])} failed with status {done.returncode}")
    hwm = next(int(line.split()[1]) * 1024 for line in reversed(lines) if line.startswith("VmHWM:"))
    return done.stdout, hwm, seconds


#: Held-out rows scored after training: rows of the synth stream just past the file's end.
HELDOUT_ROWS = 200_000


def train_child(path: str, spec_x: str, spec_y: str, hidden_units: int, max_iter: int | None, schedule: str | None) -> None:
    """In the child: train (timed), score the held-out rows, print the history as JSON."""
    import streamls
    from data_tools.synth import load_teacher, read_metadata
    from streamls.synthetic import SynthSpec, generate_rows

    settings: dict[str, Any] = {"hidden_units": hidden_units, "random_state": 0}
    if max_iter is not None:
        settings.update(max_iter=max_iter, tol=0.0)
    if schedule is not None:
        settings["schedule"] = schedule
    start = time.perf_counter()
    result = streamls.fit(spec_x, spec_y, **settings)
    fit_seconds = time.perf_counter() - start
    meta = read_metadata(Path(path))
    fields = {k: meta[k] for k in ("n_features", "hidden_units", "n_targets", "noise", "kind", "seed", "dtype")}
    n = int(meta["n_rows"])
    x, y = generate_rows(SynthSpec(n_rows=n + HELDOUT_ROWS, **fields), load_teacher(Path(path)), n, n + HELDOUT_ROWS)
    scale = result.model.standardizer.y_scale
    heldout = float(np.mean(((result.model.predict(x).reshape(y.shape) - y) / scale) ** 2))
    table = result.history_table()
    print(json.dumps({
        "rows_per_second": [float(v) for v in table["rows_per_second"]],
        "train_loss": [float(v) for v in table["train_loss"]],
        "seconds": [float(v) for v in table["seconds"]],
        "stage": [int(v) for v in table["stage"]],
        "sample_rows": [int(v) for v in table["sample_rows"]],
        "rows_read": result.summary.rows_read,
        "fit_seconds": fit_seconds,
        "iterations": result.n_iter,
        "stop_reason": result.stop_reason,
        "best_train_loss": float(table["train_loss"][result.best_iteration]),
        "heldout_loss": heldout,
        "n_fitted_rows": result.summary.n_fitted_rows,
        "ended_early": result.summary.ended_early,
        "schedule": result.summary.schedule,
    }))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=parse_size, help="dataset bytes on disk (default: 1.25x MemTotal)")
    parser.add_argument("--dir", type=Path, default=Path("/work/bigdata"), help="where the data file goes")
    parser.add_argument("--format", choices=("h5", "zarr"), default="h5")
    parser.add_argument("--features", type=int, default=8)
    parser.add_argument("--hidden-units", type=int, default=8)
    parser.add_argument("--max-iter", type=int, help="most iterations, run with tol=0 (default: the library's rules)")
    parser.add_argument("--schedule", choices=("sample", "sample-all", "full"), help="row schedule (default: the library's)")
    parser.add_argument("--workers", type=int, default=2, help="synth generator threads")
    parser.add_argument("--keep", action="store_true", help="keep the data file")
    parser.add_argument("--train-child", nargs=3, metavar=("PATH", "X", "Y"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.train_child:
        train_child(*args.train_child, args.hidden_units, args.max_iter, args.schedule)
        return

    ram = mem_total()
    size = args.size or int(1.25 * ram)
    row_bytes = 4 * (args.features + 1)
    rows = size // row_bytes
    args.dir.mkdir(parents=True, exist_ok=True)
    if REPO in args.dir.resolve().parents or args.dir.resolve() == REPO:
        raise SystemExit(f"{args.dir}: write the data outside the repository")
    free = shutil.disk_usage(args.dir).free
    if free - size < DISK_RESERVE:
        raise SystemExit(f"{args.dir}: {free / 1e9:.1f} GB free; {size / 1e9:.1f} GB would leave under 20 GB")
    path = args.dir / f"out_of_core_{rows}.{args.format}"
    sep = ":/" if args.format == "h5" else ":"
    disk_speed = disk_write_speed(args.dir)
    try:
        _, synth_rss, synth_seconds = run_child("data_tools", [
            "synth", str(path), "--rows", str(rows), "--features", str(args.features), "--workers",
            str(args.workers), "--overwrite", "--no-progress",
        ])
        dataset = disk_bytes(path)
        options = [f"--{k.replace('_', '-')}={v}" for k, v in (("max_iter", args.max_iter), ("schedule", args.schedule)) if v is not None]
        output, train_rss, train_seconds = run_child(__file__, [
            "--train-child", str(path), f"{path}{sep}X", f"{path}{sep}y", "--hidden-units", str(args.hidden_units), *options,
        ])
    finally:
        if not args.keep and path.exists():
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    history: dict[str, Any] = json.loads(output.strip().splitlines()[-1])
    print(json.dumps({
        "benchmark": "out_of_core",
        "rows": rows,
        "features": args.features,
        "hidden_units": args.hidden_units,
        "format": args.format,
        "dataset_bytes": dataset,
        "ram_bytes": ram,
        "dataset_over_ram": dataset / ram,
        "peak_rss_bytes": train_rss,
        "peak_rss_over_dataset": train_rss / dataset,
        "synth_seconds": synth_seconds,
        "synth_bytes_per_second": dataset / synth_seconds,
        "disk_write_reference_bytes_per_second": disk_speed,
        "synth_speed_over_disk_reference": dataset / synth_seconds / disk_speed,
        "synth_peak_rss_bytes": synth_rss,
        "train_seconds": train_seconds,
        "fit_seconds": history["fit_seconds"],
        "schedule": history["schedule"],
        "iterations": history["iterations"],
        "stop_reason": history["stop_reason"],
        "rows_read": history["rows_read"],
        "rows_read_over_rows": history["rows_read"] / rows,
        "n_fitted_rows": history["n_fitted_rows"],
        "ended_early": history["ended_early"],
        "best_train_loss": history["best_train_loss"],
        "heldout_loss": history["heldout_loss"],
        "stage_per_iteration": history["stage"],
        "sample_rows_per_iteration": history["sample_rows"],
        "rows_per_second_per_pass": history["rows_per_second"],
        "train_loss_per_iteration": history["train_loss"],
    }))


if __name__ == "__main__":
    main()
