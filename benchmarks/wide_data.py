"""Wide data: streamls' default (the matrix-free hidden solve) against streaming PyTorch Adam.

For each ``d x h`` of ``--configs`` (default every d in {64, 128, 256, 512} with h in {32, 64}):
a teacher dataset of ``--rows`` rows (default 500k) with ``data_tools synth --features d
--hidden 64 --noise 0.1 --seed 3``, float32 HDF5, and ``--test-rows`` held-out rows of the
same synth stream past the file's end. Then, each in its own child process (peak RSS = its
``VmHWM``), the children of ``benchmarks/big_data.py``:

- ``streamls-default``: ``streamls.fit`` with its defaults and ``hidden_units=h``, scored on
  the held-out rows after every iteration, stopped at ``--cap`` seconds if not finished
  (default :data:`DEFAULT_CAP`, longer where :data:`TARGET_CAPS` gives the run time to finish);
- ``torch-adam lr=...``: PyTorch Adam, batch 512, for ``--budget`` seconds (default 120),
  streaming shuffled 65536-row chunks of the same file.

Every figure is the standardised held-out MSE against training wall seconds (scoring
excluded). Prints one JSON object per run (with the pass rows/s and the hidden solver of
every iteration) and a ``claims`` object; writes results.json and loss_vs_time.png to ``--out``.

Targets (issue 13): at d = 128, h = 32 the default reaches Adam's best loss of its 120 s within
120 s, with peak RSS under 1 GiB; at d = 256, h = 64 the run finishes with peak RSS under 2 GiB.

    python benchmarks/wide_data.py                               # the whole grid: 2 to 3 hours
    python benchmarks/wide_data.py --configs 128x32,256x64       # the two targets: about 1 hour
    python benchmarks/wide_data.py --quick                       # 60k rows, d = 64, 20 s
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from big_data import (  # noqa: E402  (the children and their figures are big_data's)
    check_same_stream,
    dumps,
    first_time_at_or_below,
    heldout_loss,
    heldout_rows,
    ratio,
    remove_data,
    train_moments,
)
from common import machine_info  # noqa: E402
from out_of_core import mem_total, run_child  # noqa: E402

REPO = HERE.parent
BIG_DATA = HERE / "big_data.py"
TEACHER = {"hidden": 64, "noise": 0.1, "seed": 3}
GRID = [(d, h) for d in (64, 128, 256, 512) for h in (32, 64)]
GIB = 1 << 30
#: (d, h): the targets of issue 13 on that configuration.
TARGETS = {(128, 32): {"reach_seconds": 120.0, "peak_rss_bytes": 1 * GIB}, (256, 64): {"finished": True, "peak_rss_bytes": 2 * GIB}}
#: Seconds after which streamls is stopped, unless ``--cap`` says otherwise: long enough at
#: d = 256, h = 64 for the run to end by its own rule (its "finished" target): on 2 cores it
#: ended after 2233 s (79c976e, ``max_iter`` reached) and 3212 s (3629cc2, ``tol`` reached).
DEFAULT_CAP, TARGET_CAPS = 900.0, {(256, 64): 5400.0}


def synth(path: Path, rows: int, d: int) -> dict[str, Any]:
    """The teacher file (reused when one of the same settings is there)."""
    from data_tools.synth import read_metadata

    want = {"n_rows": rows, "n_features": d, "hidden_units": TEACHER["hidden"], "noise": TEACHER["noise"],
            "seed": TEACHER["seed"], "dtype": "float32", "kind": "teacher"}
    if path.exists():
        try:
            if all(read_metadata(path).get(k) == v for k, v in want.items()):
                return {"path": str(path), "reused": True}
        except Exception:  # noqa: BLE001 (an unreadable file is regenerated)
            pass
    args = ["synth", str(path), "--rows", str(rows), "--features", str(d), "--hidden", str(TEACHER["hidden"]),
            "--noise", str(TEACHER["noise"]), "--seed", str(TEACHER["seed"]), "--dtype", "float32", "--overwrite",
            "--no-progress"]
    _, rss, seconds = run_child("data_tools", args)
    return {"path": str(path), "reused": False, "synth_seconds": seconds, "synth_peak_rss_bytes": rss,
            "command": "python -m data_tools " + " ".join(args)}


def summarise(run: dict[str, Any]) -> dict[str, Any]:
    """A run without its curve, with the pass rows/s and hidden solvers over its iterations."""
    out = {k: v for k, v in run.items() if k != "curve"}
    curve = run["curve"]
    rates = [p["rows_per_second"] for p in curve if p.get("rows_per_second")]
    if rates:
        out["pass_rows_per_second_median"] = float(np.median(rates))
    solvers = [p.get("hidden_solver") for p in curve if p.get("hidden_solver")]
    if solvers:
        out["hidden_solvers"] = {s: solvers.count(s) for s in sorted(set(solvers))}
        out["cg_iterations_median"] = float(np.median([p["cg_iterations"] for p in curve if p.get("cg_iterations")] or [0]))
    if "steps" in run and run.get("seconds"):
        out["rows_per_second"] = run["steps"] * run["batch"] / run["seconds"]
    out["curve_points"] = len(curve)
    return out


def claims(runs: list[dict[str, Any]], configs: list[tuple[int, int]]) -> dict[str, Any]:
    """Per configuration: Adam's best loss of its budget, when streamls reached it, peak RSS; the targets."""
    out: dict[str, Any] = {}
    for d, h in configs:
        mine = [r for r in runs if (r["d"], r["h"]) == (d, h)]
        adam = [r for r in mine if r["method"] == "torch-adam"]
        ours = next((r for r in mine if r["label"] == "streamls-default"), None)
        if ours is None:
            continue
        entry: dict[str, Any] = {"seconds": ours["seconds"], "capped": ours["capped"], "final_loss": ours["final_loss"],
                                 "best_loss": ours["best_loss"], "peak_rss_bytes": ours["peak_rss_bytes"],
                                 "peak_rss_gib": ours["peak_rss_bytes"] / GIB}
        if adam:
            best = min(adam, key=lambda r: r["best_loss"])
            adam_time = first_time_at_or_below(best["curve"], best["best_loss"])
            reach = first_time_at_or_below(ours["curve"], best["best_loss"])
            entry.update(adam_label=best["label"], adam_best_loss=best["best_loss"], adam_seconds_to_best=adam_time,
                         seconds_to_adam_best=reach, reach_time_ratio=ratio(reach, adam_time),
                         final_loss_over_adam_best=ratio(ours["final_loss"], best["best_loss"]))
        target = TARGETS.get((d, h))
        if target is not None:
            verdicts = {"peak_rss": entry["peak_rss_bytes"] < target["peak_rss_bytes"]}
            if "reach_seconds" in target:
                reach = entry.get("seconds_to_adam_best")
                verdicts["reach_adam_best_within_seconds"] = reach is not None and reach <= target["reach_seconds"]
            if target.get("finished"):
                verdicts["finished"] = not ours["capped"]
            entry["targets"] = {**{k: (v / GIB if k == "peak_rss_bytes" else v) for k, v in target.items()},
                                "passed": verdicts, "all_passed": all(verdicts.values())}
        out[f"d={d},h={h}"] = entry
    return {"benchmark": "wide_data", "claims": out,
            "all_targets_passed": all(c["targets"]["all_passed"] for c in out.values() if "targets" in c)}


def plot(runs: list[dict[str, Any]], configs: list[tuple[int, int]], budget: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(configs), figsize=(5.2 * len(configs), 4.2), squeeze=False)
    for ax, (d, h) in zip(axes[0], configs):
        for r in (r for r in runs if (r["d"], r["h"]) == (d, h)):
            pts = [p for p in r["curve"] if p["seconds"] > 0 and np.isfinite(p["loss"])]
            style = {"lw": 2.0, "marker": "o", "ms": 3, "color": "black"} if r["method"] == "streamls" else {"lw": 1.2}
            ax.plot([p["seconds"] for p in pts], [p["loss"] for p in pts], label=r["label"], **style)
        ax.axvline(budget, color="grey", ls="--", lw=0.8)
        ax.set(xscale="log", yscale="log", title=f"d = {d}, h = {h}", xlabel="training seconds")
        ax.legend(fontsize=8)
    axes[0][0].set_ylabel("held-out MSE (standardised)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", help="comma-separated DxH, e.g. 128x32,256x64 (default: the whole grid)")
    parser.add_argument("--rows", type=int, default=500_000)
    parser.add_argument("--test-rows", type=int, default=50_000)
    parser.add_argument("--budget", type=float, default=120.0, help="Adam's training seconds")
    own = ", ".join(f"{d}x{h}: {cap:g}" for (d, h), cap in TARGET_CAPS.items())
    parser.add_argument("--cap", type=float, help=f"seconds after which streamls is stopped (default {DEFAULT_CAP:g}; {own})")
    parser.add_argument("--lrs", default="1e-3,3e-3")
    parser.add_argument("--methods", default="streamls-default,torch-adam")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="60k rows, d = 64, h = 32, 20 s budget")
    parser.add_argument("--dir", type=Path, help="data folder (default: a temporary one); same-settings files are reused")
    parser.add_argument("--keep", action="store_true", help="keep the data files")
    parser.add_argument("--out", type=Path, help="output folder (default benchmarks/results/wide_data)")
    args = parser.parse_args(argv)
    if args.quick:
        args.rows, args.test_rows, args.budget, args.cap = 60_000, 10_000, 20.0, 60.0
        args.configs = args.configs or "64x32"
    args.config_list = [tuple(int(v) for v in c.split("x")) for c in args.configs.split(",")] if args.configs else GRID
    args.out = args.out or REPO / "benchmarks" / "results" / ("wide_data-quick" if args.quick else "wide_data")
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    made_dir = args.dir is None
    data_dir = Path(tempfile.mkdtemp(prefix="wide_data_")) if made_dir else args.dir
    data_dir.mkdir(parents=True, exist_ok=True)
    need = args.rows * 4 * (max(d for d, _ in args.config_list) + 1) * 1.05
    if shutil.disk_usage(data_dir).free < need + 2e9:
        raise SystemExit(f"{data_dir}: too little disk for {need / 1e9:.1f} GB of data")
    args.out.mkdir(parents=True, exist_ok=True)
    lrs = [float(v) for v in args.lrs.split(",") if v]
    methods = args.methods.split(",")
    meta: dict[str, Any] = {"args": {k: str(v) for k, v in vars(args).items()}, "teacher": TEACHER,
                            "machine": machine_info(mem_total_bytes=mem_total()), "load_average_start": os.getloadavg()}
    runs: list[dict[str, Any]] = []
    written: list[Path] = []
    started = time.perf_counter()
    try:
        for d in sorted({d for d, _ in args.config_list}):
            path = data_dir / f"teacher_d{d}_{args.rows}.h5"
            info = synth(path, args.rows, d)
            if not info["reused"]:
                written.append(path)
            teacher, fields = check_same_stream([path])
            x, y, clean = heldout_rows(teacher, fields, args.rows, args.test_rows)
            heldout = data_dir / f"heldout_d{d}_{args.rows}_{args.test_rows}.npz"
            np.savez(heldout, x=x, y=y)
            written.append(heldout)
            stats = train_moments(path)
            noise_floor = heldout_loss(clean, y.astype(np.float64), stats["y_scale"][0])
            meta.setdefault("datasets", {})[str(d)] = {**info, "noise_floor": noise_floor}
            for h in sorted(h for dd, h in args.config_list if dd == d):
                common = {"train": str(path), "heldout": str(heldout), "stats": stats, "hidden": h, "seed": args.seed}
                specs = []
                if "streamls-default" in methods:
                    cap = args.cap if args.cap is not None else TARGET_CAPS.get((d, h), DEFAULT_CAP)
                    specs.append({**common, "label": "streamls-default", "method": "streamls", "schedule": None, "cap": cap})
                if "torch-adam" in methods:
                    specs += [{**common, "label": f"torch-adam lr={lr:g}", "method": "torch-adam", "lr": lr,
                               "budget": args.budget, "eval_every": max(1.0, args.budget / 60)} for lr in lrs]
                for spec in specs:
                    output, rss, wall = run_child(str(BIG_DATA), ["--run-one", dumps(spec)])
                    result = json.loads(output.strip().splitlines()[-1])
                    run = {"benchmark": "wide_data", "d": d, "h": h, "rows": args.rows, "label": spec["label"],
                           "method": spec["method"], **result, "peak_rss_bytes": rss, "process_seconds": wall,
                           "noise_floor": noise_floor}
                    runs.append(run)
                    print(dumps(summarise(run)), flush=True)
                    meta["elapsed_seconds"] = time.perf_counter() - started
                    (args.out / "results.json").write_text(dumps({"meta": meta, "runs": runs}, indent=1))
        check = claims(runs, args.config_list)
        print(dumps(check), flush=True)
        meta["elapsed_seconds"] = time.perf_counter() - started
        report = {"meta": meta, "claims": check, "runs": runs}
        (args.out / "results.json").write_text(dumps(report, indent=1))
        plot(runs, args.config_list, args.budget, args.out / "loss_vs_time.png")
        return report
    finally:
        if not args.keep:
            remove_data(written, data_dir if made_dir else None)


if __name__ == "__main__":
    main()
