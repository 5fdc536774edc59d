"""Peak RSS of ``data_tools convert`` and ``synth`` does not grow with the number of rows.

Each tool runs in its own subprocess at 1M and at 8M rows; its peak RSS is the
process's own ``VmHWM`` at exit. Prints one JSON object per tool with both figures and their
ratio (the claim: within 10%, i.e. ratio <= 1.10).

    python benchmarks/data_tools_memory.py [--dir /tmp] [--small 1000000] [--large 8000000]
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
from out_of_core import run_child

FEATURES = 8
#: Distinct lines repeated to build big CSV files at disk speed.
PATTERN_ROWS = 100_000


def write_csv(path: Path, rows: int) -> None:
    """A headerless CSV of ``rows`` lines of ``FEATURES + 1`` numbers, built from a repeated pattern."""
    values = np.random.default_rng(0).standard_normal((PATTERN_ROWS, FEATURES + 1))
    pattern = "".join(",".join(f"{v:.6g}" for v in row) + "\n" for row in values)
    with open(path, "w") as handle:
        for start in range(0, rows, PATTERN_ROWS):
            count = min(PATTERN_ROWS, rows - start)
            handle.write(pattern if count == PATTERN_ROWS else "".join(pattern.splitlines(True)[:count]))


def measure(tool: str, rows: int, work: Path) -> tuple[int, float]:
    """Peak RSS (bytes) and seconds of one run of ``tool`` at ``rows`` rows."""
    out = work / f"{tool}_{rows}.h5"
    if tool == "convert":
        src = work / f"in_{rows}.csv"
        write_csv(src, rows)
        command = ["convert", str(src), str(out), "--target-col", "-1"]
    else:
        command = ["synth", str(out), "--rows", str(rows), "--features", str(FEATURES), "--workers", "2"]
    try:
        _, rss, seconds = run_child("data_tools", [*command, "--no-progress"])
    finally:
        for path in work.glob(f"*_{rows}.*"):
            path.unlink()
    return rss, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()))
    parser.add_argument("--small", type=int, default=1_000_000)
    parser.add_argument("--large", type=int, default=8_000_000)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="data_tools_memory_", dir=args.dir))
    try:
        for tool in ("convert", "synth"):
            (small, t_small), (large, t_large) = (measure(tool, n, work) for n in (args.small, args.large))
            print(json.dumps({
                "benchmark": "data_tools_memory",
                "tool": tool,
                "rows": [args.small, args.large],
                "features": FEATURES,
                "peak_rss_bytes": [small, large],
                "seconds": [t_small, t_large],
                "rss_ratio_large_over_small": large / small,
                "within_10_percent": large / small <= 1.10,
            }), flush=True)
    finally:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
