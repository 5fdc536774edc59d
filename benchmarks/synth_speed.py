"""How close ``data_tools synth`` comes to disk speed.

For each feature count, writes ``--size`` bytes of teacher data with ``synth`` (its own
subprocess, default workers) and, right before, the same number of bytes with plain
sequential writes and an fsync into the same directory (the disk reference). Prints one
JSON object per feature count with both speeds and their ratio (the claim: close to 1).

    python benchmarks/synth_speed.py                          # 8 GB, d = 8 and 64, in /work/bigdata
    python benchmarks/synth_speed.py --size 2GB --dir /tmp
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path

from out_of_core import DISK_RESERVE, disk_bytes, disk_write_speed, parse_size, run_child


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=parse_size, default=parse_size("8GB"), help="bytes per run (default 8GB)")
    parser.add_argument("--dir", type=Path, default=Path("/work/bigdata"))
    parser.add_argument("--features", type=int, nargs="+", default=[8, 64])
    args = parser.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    if shutil.disk_usage(args.dir).free - args.size < DISK_RESERVE:
        raise SystemExit(f"{args.dir}: {args.size / 1e9:.1f} GB would leave under 20 GB free")
    work = Path(tempfile.mkdtemp(prefix="synth_speed_", dir=args.dir))
    try:
        for d in args.features:
            rows = args.size // (4 * (d + 1))
            disk = disk_write_speed(work, args.size)
            out = work / f"synth_{d}.h5"
            _, rss, seconds = run_child("data_tools", [
                "synth", str(out), "--rows", str(rows), "--features", str(d), "--no-progress",
            ])
            written = disk_bytes(out)
            out.unlink()
            print(json.dumps({
                "benchmark": "synth_speed", "features": d, "rows": rows, "bytes": written,
                "synth_seconds": seconds, "synth_bytes_per_second": written / seconds,
                "disk_write_reference_bytes_per_second": disk,
                "synth_speed_over_disk_reference": written / seconds / disk, "synth_peak_rss_bytes": rss,
            }), flush=True)
    finally:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
