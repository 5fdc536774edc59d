"""data_tools: convert, synth, split and inspect against NumPy references, on real files."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import zarr
from conftest import write_csv

import streamls
from data_tools import CSVFormatError, SynthSpec, convert, generate_rows, inspect_arrays, load_teacher, split, synth
from streamls.errors import OutputExistsError, SourceFormatError, StreamLSError
from streamls.sources import open_source
from streamls.split import row_uniforms
from streamls.synthetic import UNIT_ROWS

REPO = Path(__file__).resolve().parents[1]
UCI = REPO.parent / "shared/data/uci"
FORMATS = ("h5", "zarr")


def read(path: Path, name: str) -> np.ndarray:
    """Array ``name`` of an HDF5 file or Zarr group, whole (test-sized files only)."""
    if str(path).endswith(".zarr"):
        return zarr.open_group(str(path), mode="r")[name][...]
    with h5py.File(path, "r") as handle:
        return handle[name][...]


def leftovers(directory: Path) -> list[str]:
    """Everything in ``directory`` that is not a CSV input: outputs and temporary files."""
    return sorted(p.name for p in directory.iterdir() if not p.name.endswith((".csv", ".csv.gz")))


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "data_tools", *args], check=False, capture_output=True, text=True, cwd=REPO)


@pytest.fixture(scope="module")
def table() -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.standard_normal((2500, 5)) * [1.0, 10.0, 1e-3, 1e4, 1.0]


# --- convert -----------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("header", [True, False])
@pytest.mark.parametrize("gz", [True, False])
def test_csv_round_trip_equals_loadtxt(tmp_path: Path, table: np.ndarray, fmt: str, header: bool, gz: bool) -> None:
    names = ["a", "b", "c", "d", "target"]
    src = write_csv(tmp_path / ("in.csv.gz" if gz else "in.csv"), table, names if header else None)
    out = tmp_path / f"out.{fmt}"
    report = convert(src, out, target_cols=[-1], block_rows=333, chunk_rows=256)
    expected = np.loadtxt(src, delimiter=",", skiprows=int(header)).astype(np.float32)
    np.testing.assert_array_equal(read(out, "X"), expected[:, :4])
    np.testing.assert_array_equal(read(out, "y"), expected[:, 4])
    assert report.n_rows == len(table) and report.skipped_rows == 0
    assert report.target_names == (("target",) if header else ("4",))
    assert leftovers(tmp_path) == [out.name]


def test_columns_by_name_and_index_and_float64(tmp_path: Path, table: np.ndarray) -> None:
    src = write_csv(tmp_path / "in.csv", table, ["a", "b", "c", "d", "t"])
    out = tmp_path / "out.h5"
    convert(src, out, columns=["d", 0], target_cols=["t", "b"], dtype="float64", header=True)
    expected = np.loadtxt(src, delimiter=",", skiprows=1)
    np.testing.assert_array_equal(read(out, "X"), expected[:, [3, 0]])
    np.testing.assert_array_equal(read(out, "y"), expected[:, [4, 1]])


def test_without_targets_writes_only_X(tmp_path: Path, table: np.ndarray) -> None:
    src = write_csv(tmp_path / "in.csv", table)
    out = tmp_path / "out.zarr"
    report = convert(src, out)
    assert sorted(zarr.open_group(str(out), mode="r").array_keys()) == ["X"] and report.y_spec is None
    np.testing.assert_array_equal(read(out, "X"), np.loadtxt(src, delimiter=",").astype(np.float32))


def test_converted_file_trains(tmp_path: Path, table: np.ndarray) -> None:
    src = write_csv(tmp_path / "in.csv", table)
    report = convert(src, tmp_path / "out.h5", target_cols=[4])
    result = streamls.fit(report.x_spec, report.y_spec, hidden_units=2, max_iter=1, random_state=0)
    assert result.n_train == len(table)


def test_unknown_column_names_the_columns(tmp_path: Path, table: np.ndarray) -> None:
    src = write_csv(tmp_path / "in.csv", table, ["a", "b", "c", "d", "t"])
    with pytest.raises(SourceFormatError, match=r"no column named 'zz'.*'a', 'b'"):
        convert(src, tmp_path / "out.h5", target_cols=["zz"])
    assert leftovers(tmp_path) == []


@pytest.mark.realdata
@pytest.mark.parametrize("name", ["airfoil", "bike", "concrete", "elevators", "kin40k", "pol", "protein"])
def test_real_uci_files_convert(tmp_path: Path, name: str) -> None:
    src = UCI / f"{name}.csv.gz"
    if not src.exists():
        pytest.skip(f"{src} is absent (the shared UCI data is not on this machine)")
    report = convert(src, tmp_path / "out.h5", target_cols=[-1])
    expected = np.loadtxt(src, delimiter=",").astype(np.float32)
    assert report.n_rows == len(expected)
    np.testing.assert_array_equal(read(tmp_path / "out.h5", "X"), expected[:, :-1])
    np.testing.assert_array_equal(read(tmp_path / "out.h5", "y"), expected[:, -1])


# --- malformed CSV -----------------------------------------------------------------------


def malformed_lines(n: int = 6000, cols: int = 3) -> list[str]:
    rng = np.random.default_rng(1)
    return [",".join(f"{v:.6f}" for v in row) + "\n" for row in rng.standard_normal((n, cols))]


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("block_rows", [1024, 65536])
def test_ragged_row_at_line_5000(tmp_path: Path, fmt: str, block_rows: int) -> None:
    lines = malformed_lines()
    lines[4999] = "1.0,2.0\n"
    src = tmp_path / "bad.csv"
    src.write_text("".join(lines))
    with pytest.raises(CSVFormatError) as info:
        convert(src, tmp_path / f"out.{fmt}", target_cols=[-1], block_rows=block_rows, chunk_rows=512)
    assert info.value.line == 5000
    assert "line 5000" in str(info.value) and "'1.0,2.0'" in str(info.value) and "2 fields" in str(info.value)
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("gz", [False, True])
def test_non_numeric_token_names_line_and_token(tmp_path: Path, gz: bool) -> None:
    lines = ["x1,x2,y\n", *malformed_lines(300)]
    lines[122] = "0.5,abc,1.5\n"  # line 123 of the file
    src = tmp_path / ("bad.csv.gz" if gz else "bad.csv")
    with (gzip.open(src, "wt") if gz else open(src, "w")) as handle:
        handle.write("".join(lines))
    with pytest.raises(CSVFormatError, match=r"line 123: column 1 \('x2'\) holds 'abc', not a number") as info:
        convert(src, tmp_path / "out.h5", block_rows=64)
    assert info.value.text == "0.5,abc,1.5\n"
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("content", ["", "\n\n", "a,b,c\n"])
def test_empty_file_fails_with_line_number(tmp_path: Path, content: str) -> None:
    src = tmp_path / "empty.csv"
    src.write_text(content)
    expected_line = content.count("\n") + 1
    with pytest.raises(CSVFormatError, match=rf"line {expected_line}: .*(empty|no data rows)"):
        convert(src, tmp_path / "out.zarr")
    assert leftovers(tmp_path) == []


def test_skip_bad_rows_reports_them(tmp_path: Path) -> None:
    lines = malformed_lines(2000)
    bad = {10: "1,2\n", 700: "1,nan?,3\n", 1500: "4,5,6,7\n", 1999: "#comment\n"}
    for index, text in bad.items():
        lines[index] = text
    src = tmp_path / "bad.csv"
    src.write_text("".join(lines))
    report = convert(src, tmp_path / "out.h5", on_bad_row="skip", block_rows=256, dtype="float64")
    good = [line for i, line in enumerate(lines) if i not in bad]
    np.testing.assert_array_equal(read(tmp_path / "out.h5", "X"), np.loadtxt(good, delimiter=","))
    assert report.skipped_rows == 4
    assert [b.line for b in report.examples] == [11, 701, 1501, 2000]


@pytest.mark.parametrize("fmt", FORMATS)
def test_chunks_are_sized_to_a_small_table(tmp_path: Path, fmt: str) -> None:
    """A 3,338-row table of 19 float32 columns is 254 KB of values; one default chunk of 32,768 rows
    would make the HDF5 file ten times that."""
    data = np.random.default_rng(4).standard_normal((3338, 19))
    src = write_csv(tmp_path / "small.csv", data)
    out = tmp_path / f"small.{fmt}"
    convert(src, out, target_cols=[-1])
    values = data.size * 4
    on_disk = out.stat().st_size if fmt == "h5" else sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    assert on_disk < 1.1 * values + 16_384, (on_disk, values)
    (x_report, y_report) = inspect_arrays(out, stats=False)
    assert x_report.chunks == (3338, 18) and y_report.chunks == (3338,)
    # A table of several blocks keeps the default chunk (4 MiB of rows), and an explicit one wins.
    convert(src, tmp_path / f"blocks.{fmt}", target_cols=[-1], block_rows=1000)
    assert inspect_arrays(tmp_path / f"blocks.{fmt}", stats=False)[0].chunks == (32768, 18)
    convert(src, tmp_path / f"explicit.{fmt}", target_cols=[-1], chunk_rows=500)
    assert inspect_arrays(tmp_path / f"explicit.{fmt}", stats=False)[0].chunks == (500, 18)


@pytest.mark.parametrize("fmt", FORMATS)
def test_convert_rechunks_an_array(tmp_path: Path, table: np.ndarray, fmt: str) -> None:
    """An HDF5/Zarr/.npy array as input: its columns are copied in order, in the chunks asked for."""
    with h5py.File(tmp_path / "in.h5", "w") as handle:
        handle.create_dataset("T", data=table, chunks=(2000, 5))
    report = convert(f"{tmp_path / 'in.h5'}:/T", tmp_path / f"out.{fmt}", chunk_rows=256, dtype="float64")
    np.testing.assert_array_equal(read(tmp_path / f"out.{fmt}", "X"), table)
    assert report.feature_names == ("0", "1", "2", "3", "4") and report.y_spec is None
    assert inspect_arrays(tmp_path / f"out.{fmt}", stats=False)[0].chunks == (256, 5)
    np.save(tmp_path / "in.npy", table)
    convert(tmp_path / "in.npy", tmp_path / f"split.{fmt}", target_cols=[-1], dtype="float64")
    np.testing.assert_array_equal(read(tmp_path / f"split.{fmt}", "y"), table[:, -1])


def test_refuses_to_overwrite(tmp_path: Path, table: np.ndarray) -> None:
    src = write_csv(tmp_path / "in.csv", table)
    convert(src, tmp_path / "out.h5")
    with pytest.raises(OutputExistsError):
        convert(src, tmp_path / "out.h5")
    convert(src, tmp_path / "out.h5", overwrite=True)


def test_cli_convert_success_and_failure(tmp_path: Path, table: np.ndarray) -> None:
    src = write_csv(tmp_path / "in.csv", table, ["a", "b", "c", "d", "t"])
    done = run_cli("convert", str(src), str(tmp_path / "out.zarr"), "--target-cols", "t", "--compression", "zstd")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["y_spec"] == f"{tmp_path / 'out.zarr'}:y"
    np.testing.assert_array_equal(read(tmp_path / "out.zarr", "y"), table[:, 4].astype(np.float32))
    lines = malformed_lines()
    lines[4999] = "1.0,2.0\n"
    (tmp_path / "bad.csv").write_text("".join(lines))
    failed = run_cli("convert", str(tmp_path / "bad.csv"), str(tmp_path / "bad.h5"))
    assert failed.returncode == 2 and "line 5000" in failed.stderr and "Traceback" not in failed.stderr
    assert not (tmp_path / "bad.h5").exists()


def test_parquet_round_trip(tmp_path: Path, table: np.ndarray) -> None:
    pa = pytest.importorskip("pyarrow", reason="pyarrow (the parquet extra) is not installed")
    import pyarrow.parquet as pq

    columns = {name: table[:, j] for j, name in enumerate("abcd")}
    columns["n"] = np.arange(len(table), dtype=np.int64)
    columns["t"] = table[:, 4]
    pq.write_table(pa.table(columns), tmp_path / "in.parquet", row_group_size=700)
    convert(tmp_path / "in.parquet", tmp_path / "out.h5", target_cols=["t"], columns=["a", "n", "d"], block_rows=300)
    np.testing.assert_array_equal(
        read(tmp_path / "out.h5", "X"), np.column_stack([table[:, 0], columns["n"], table[:, 3]]).astype(np.float32)
    )
    np.testing.assert_array_equal(read(tmp_path / "out.h5", "y"), table[:, 4].astype(np.float32))


# --- synth -------------------------------------------------------------------------------


def test_synth_identical_for_block_sizes_workers_and_formats(tmp_path: Path) -> None:
    spec = SynthSpec(n_rows=70_001, n_features=3, hidden_units=5, noise=0.3, seed=7)
    synth(tmp_path / "a.h5", spec, block_rows=1000, workers=1, chunk_rows=1000)
    synth(tmp_path / "b.zarr", spec, block_rows=65536, workers=3)
    for name in ("X", "y"):
        np.testing.assert_array_equal(read(tmp_path / "a.h5", name), read(tmp_path / "b.zarr", name))
    x, y = read(tmp_path / "a.h5", "X"), read(tmp_path / "a.h5", "y")
    assert x.shape == (70_001, 3) and x.dtype == np.float32 and y.shape == (70_001,)
    # A row's values do not depend on the total row count, and any row range can be regenerated.
    smaller = SynthSpec(n_rows=5000, n_features=3, hidden_units=5, noise=0.3, seed=7)
    synth(tmp_path / "c.h5", smaller)
    np.testing.assert_array_equal(read(tmp_path / "c.h5", "X"), x[:5000])
    part_x, part_y = generate_rows(spec, load_teacher(tmp_path / "a.h5"), UNIT_ROWS - 5, 3 * UNIT_ROWS + 7)
    np.testing.assert_array_equal(part_x, x[UNIT_ROWS - 5 : 3 * UNIT_ROWS + 7])
    np.testing.assert_array_equal(part_y[:, 0], y[UNIT_ROWS - 5 : 3 * UNIT_ROWS + 7])


@pytest.mark.parametrize("kind", ["teacher", "linear"])
@pytest.mark.parametrize("fmt", FORMATS)
def test_teacher_reproduces_noiseless_targets(tmp_path: Path, kind: str, fmt: str) -> None:
    out = tmp_path / f"t.{fmt}"
    synth(out, SynthSpec(n_rows=9000, n_features=6, hidden_units=4, n_targets=2, noise=0.0, kind=kind, seed=3))
    teacher = load_teacher(out)
    x, y = read(out, "X"), read(out, "y")
    assert y.shape == (9000, 2)
    expected = teacher.predict(x)
    np.testing.assert_allclose(y, expected.astype(np.float32), rtol=1e-6, atol=1e-6)
    if kind == "teacher":
        assert teacher.W1 is not None and teacher.W1.shape == (4, 6)
        # Independent reference: the stored weights, read with h5py/zarr, in NumPy.
        W1, b1, W2, b2 = (read(out, f"teacher/{n}") for n in ("W1", "b1", "W2", "b2"))
        np.testing.assert_allclose(y, np.maximum(x @ W1.T + b1, 0) @ W2 + b2, rtol=1e-5, atol=1e-5)


def test_noise_has_the_requested_scale(tmp_path: Path) -> None:
    out = tmp_path / "n.h5"
    synth(out, SynthSpec(n_rows=40_000, n_features=4, noise=0.5, seed=1))
    residual = read(out, "y") - load_teacher(out).predict(read(out, "X"))[:, 0]
    assert abs(residual.std() - 0.5) < 0.01 and abs(residual.mean()) < 0.01


def test_cli_synth_and_inspect(tmp_path: Path) -> None:
    out = tmp_path / "s.zarr"
    done = run_cli("synth", str(out), "--rows", "5000", "-d", "3", "--seed", "2", "--compression", "blosc-lz4")
    assert done.returncode == 0, done.stderr
    shown = run_cli("inspect", f"{out}:X", "--json")
    assert shown.returncode == 0, shown.stderr
    (report,) = json.loads(shown.stdout)["arrays"]
    x = read(out, "X").astype(np.float64)
    assert report["shape"] == [5000, 3] and report["compression"] == "lz4"
    np.testing.assert_allclose(report["columns"]["mean"], x.mean(axis=0), rtol=1e-9, atol=1e-12)


def test_cli_inspect_prints_a_table(tmp_path: Path) -> None:
    x = np.column_stack([np.arange(1000.0), np.full(1000, 2.5)])
    with h5py.File(tmp_path / "t.h5", "w") as handle:
        handle.create_dataset("X", data=x, chunks=(250, 2))
        handle.create_dataset("y", data=x[:, 0])
    shown = run_cli("inspect", str(tmp_path / "t.h5"))
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[0] == f"{tmp_path / 't.h5'}:/X"
    assert lines[1].startswith("  1000 x 2 float64; chunks 250 x 2; compression none;") and "15.6 KiB of values" in lines[1]
    assert lines[2].split() == ["column", "min", "max", "mean", "std"]
    assert lines[3].split() == ["0", "0", "999", "499.5", f"{x[:, 0].std():.6g}"]
    assert lines[4].split() == ["1", "2.5", "2.5", "2.5", "0"]
    assert lines[5] == "  1000 rows counted, 0 with NaN or Inf left out"
    assert lines[6] == "" and lines[7] == f"{tmp_path / 't.h5'}:/y"  # one block per array
    assert "not chunked" in lines[8]


def test_synth_rejects_bad_parameters(tmp_path: Path) -> None:
    with pytest.raises(StreamLSError, match="'n_rows' parameter of SynthSpec"):
        SynthSpec(n_rows=0, n_features=3)
    with pytest.raises(StreamLSError, match="'kind' parameter of SynthSpec"):
        SynthSpec(n_rows=10, n_features=3, kind="cubic")


# --- split -------------------------------------------------------------------------------


def indexed_file(path: Path, n: int, chunk_rows: int) -> np.ndarray:
    """A file whose X column 0 is the row index, so each output row says where it came from."""
    rng = np.random.default_rng(5)
    x = np.column_stack([np.arange(n), rng.standard_normal((n, 2))])
    y = rng.standard_normal(n)
    if str(path).endswith(".zarr"):
        group = zarr.open_group(str(path), mode="w")
        group.create_array("X", data=x, chunks=(chunk_rows, 3))
        group.create_array("y", data=y, chunks=(chunk_rows,))
    else:
        with h5py.File(path, "w") as handle:
            handle.create_dataset("X", data=x, chunks=(chunk_rows, 3))
            handle.create_dataset("y", data=y, chunks=(chunk_rows,))
    return x


def test_split_is_the_same_for_two_chunkings(tmp_path: Path) -> None:
    n, seed = 20_000, 11
    x = indexed_file(tmp_path / "a.h5", n, chunk_rows=333)
    indexed_file(tmp_path / "b.zarr", n, chunk_rows=4096)
    first = split(tmp_path / "a.h5", tmp_path / "one", test=0.2, validation=0.1, seed=seed, block_rows=1000)
    second = split(tmp_path / "b.zarr", tmp_path / "two", test=0.2, validation=0.1, seed=seed, block_rows=65536)
    u = row_uniforms(np.arange(n), seed)
    expected = {"test": u < 0.2, "validation": (u >= 0.2) & (u < 0.3), "train": u >= 0.3}
    for part, mask in expected.items():
        for report in (first, second):
            got = read(Path(report.outputs[part]), "X")
            np.testing.assert_array_equal(got, x[mask])
            assert report.rows[part] == mask.sum()
        np.testing.assert_array_equal(read(Path(first.outputs[part]), "y"), read(Path(second.outputs[part]), "y"))
    assert sum(first.rows.values()) == n


def test_split_rejects_bad_fractions_and_cli_writes_parts(tmp_path: Path) -> None:
    indexed_file(tmp_path / "a.h5", 3000, chunk_rows=500)
    with pytest.raises(StreamLSError, match="'validation' parameter of split"):
        split(tmp_path / "a.h5", tmp_path / "out", test=0.5, validation=0.6)
    done = run_cli("split", str(tmp_path / "a.h5"), str(tmp_path / "cli"), "--test", "0.25", "--format", "zarr")
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)["rows"]
    assert set(rows) == {"train", "test"} and sum(rows.values()) == 3000
    assert open_source(f"{tmp_path / 'cli' / 'test.zarr'}:X").n_rows == rows["test"]


# --- inspect -----------------------------------------------------------------------------


def test_inspect_statistics_match_numpy(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    x = rng.standard_normal((10_000, 4)) * [1, 5, 0.1, 100] + [0, 1, 2, 3]
    x[17, 2] = np.nan
    x[9000, 0] = np.inf
    with h5py.File(tmp_path / "d.h5", "w") as handle:
        handle.create_dataset("X", data=x, chunks=(700, 4), compression="gzip")
    np.save(tmp_path / "d.npy", x)
    finite = x[np.isfinite(x).all(axis=1)]
    for spec in (str(tmp_path / "d.h5"), str(tmp_path / "d.npy")):
        (report,) = inspect_arrays(spec, block_rows=1000)
        stats = report.columns
        assert stats is not None and stats.nonfinite_rows == 2 and stats.finite_rows == len(finite)
        np.testing.assert_allclose(stats.min, finite.min(axis=0))
        np.testing.assert_allclose(stats.max, finite.max(axis=0))
        np.testing.assert_allclose(stats.mean, finite.mean(axis=0), rtol=1e-12)
        np.testing.assert_allclose(stats.std, finite.std(axis=0), rtol=1e-10)
    (h5,) = inspect_arrays(tmp_path / "d.h5", stats=False)
    assert h5.chunks == (700, 4) and h5.compression.startswith("gzip") and h5.columns is None


def test_data_tools_errors_are_streamls_errors() -> None:
    assert issubclass(CSVFormatError, SourceFormatError) and issubclass(CSVFormatError, ValueError)
    assert os.fspath(UCI).endswith("shared/data/uci")


@pytest.mark.parametrize("kind", ["csv", "parquet"])
def test_inspect_reads_tables_with_their_column_names(tmp_path: Path, kind: str) -> None:
    table = np.random.default_rng(3).normal(size=(300, 3))
    if kind == "csv":
        path = write_csv(tmp_path / "t.csv", table, ["a", "b", "y"])
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        path = tmp_path / "t.parquet"
        pq.write_table(pa.table({"a": table[:, 0], "b": table[:, 1], "y": table[:, 2]}), path, row_group_size=100)
    (report,) = inspect_arrays(path)
    assert report.shape == (300, 3) and report.column_names == ("a", "b", "y")
    assert report.stored_bytes == os.path.getsize(path)
    np.testing.assert_allclose(report.columns.mean, table.mean(axis=0), rtol=1e-12)
    assert "  0 a" in report.text() or " 0 a " in report.text()
