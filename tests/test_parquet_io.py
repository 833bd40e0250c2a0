"""harmony_np.parquet_io on real Parquet files with a table transform of the test's own: batches
cover the file's rows in order whatever its row groups, a row the transform raises on is set apart
by halving (in its place, with its input values and its error), row groups written and the footer
written after any number of them, and pyarrow not loaded by importing the module."""

from __future__ import annotations

import subprocess
import sys

import pytest

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")
pc = pytest.importorskip("pyarrow.compute")

from harmony_np import parquet_io  # noqa: E402


def _file(tmp_path, values, row_group_size):
    path = tmp_path / "in.parquet"
    pq.write_table(pa.table({"x": pa.array(values, pa.int64()), "tag": [f"t{v}" for v in values]}), path,
                   row_group_size=row_group_size)
    return str(path)


class Doubler:
    """Adds ``y = 2 * x``; raises ValueError on a batch holding a negative x; counts calls."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, table):
        self.calls += 1
        x = table.column("x")
        if table.num_rows and pc.min(x).as_py() < 0:
            raise ValueError(f"negative x {pc.min(x).as_py()}")
        return table.append_column("y", pc.multiply(x, 2))


@pytest.mark.parametrize("row_group_size,batch_rows", [(7, 3), (3, 7), (100, 100), (10, 10)])
def test_batches_cover_the_rows_in_order(tmp_path, row_group_size, batch_rows):
    path = _file(tmp_path, list(range(45)), row_group_size)
    with parquet_io.ParquetSource(path) as src:
        assert src.total() == 45
        seen = []
        for first, table in src.batches(batch_rows):
            assert table.num_rows <= batch_rows and first == len(seen)
            seen += table.column("x").to_pylist()
            assert src.done == len(seen)
    assert seen == list(range(45))


def test_bad_rows_in_place_with_their_input_and_error(tmp_path):
    values = list(range(64))
    values[5], values[40] = -1, -2
    table = pa.table({"x": values, "tag": [str(v) for v in values]})
    doubler = Doubler()
    out, bad = parquet_io.transform_rows(doubler, table, 1000, (ValueError,))
    assert [(b.row, b.kind, b.text, b.raised) for b in bad] == [
        (1005, "ValueError", "negative x -1", True), (1040, "ValueError", "negative x -2", True)]
    assert out.num_rows == 64
    assert out.column("x").to_pylist() == values and out.column("tag").to_pylist() == [str(v) for v in values]
    assert out.column("y").to_pylist() == [None if v < 0 else 2 * v for v in values]
    assert out.column("error").to_pylist() == [f"negative x {v}" if v < 0 else None for v in values]
    assert out.column("error_type").to_pylist() == ["ValueError" if v < 0 else None for v in values]
    assert doubler.calls <= 4 * 6 + 1  # halving: about 2·log2(64) calls per bad row, not 64


def test_errors_the_transform_reports_itself(tmp_path):
    def flagging(table):
        x = table.column("x")
        err = pc.if_else(pc.equal(x, 3), pa.scalar("three"), pa.scalar(None, pa.string()))
        return table.append_column("error", err)

    out, bad = parquet_io.transform_rows(flagging, pa.table({"x": [1, 3, 5, 3]}), 10, (ValueError,))
    assert [(b.row, b.text, b.raised) for b in bad] == [(11, "three", False), (13, "three", False)]
    assert out.column("error").to_pylist() == [None, "three", None, "three"]


def test_every_row_bad_still_has_the_output_schema():
    out, bad = parquet_io.transform_rows(Doubler(), pa.table({"x": [-1, -2], "tag": ["a", "b"]}), 0, (ValueError,))
    assert out.column_names == ["x", "tag", "y", "error", "error_type"] and len(bad) == 2
    assert out.column("y").to_pylist() == [None, None] and out.column("x").to_pylist() == [-1, -2]


def test_an_error_not_of_the_data_kind_ends_the_run():
    def broken(table):
        raise MemoryError("out of memory")

    with pytest.raises(MemoryError):
        parquet_io.transform_rows(broken, pa.table({"x": [1]}), 0, (ValueError,))


def test_a_transform_that_drops_rows_is_refused():
    with pytest.raises(RuntimeError, match="returned 1 rows for 2"):
        parquet_io.transform_rows(lambda t: t.slice(0, 1), pa.table({"x": [1, 2]}), 0, (ValueError,))


def test_streamed_output_is_one_row_group_per_batch(tmp_path):
    src_path = _file(tmp_path, [v if v != 17 else -17 for v in range(50)], 8)
    out_path = tmp_path / "out.parquet"
    doubler = Doubler()
    with parquet_io.ParquetSource(src_path) as src, open(out_path, "wb") as f:
        out = parquet_io.ParquetOutput(f)
        for first, table in src.batches(16):
            result, _ = parquet_io.transform_rows(doubler, table, first, (ValueError,), out.schema)
            out.write(result)
        out.close()
    back = pq.ParquetFile(out_path)
    assert back.metadata.num_row_groups == 4 and back.metadata.num_rows == 50
    got = back.read()
    assert got.column("y").to_pylist() == [None if v == 17 else 2 * v for v in range(50)]
    assert got.column("error").to_pylist()[17] == "negative x -17"


def test_footer_after_no_rows(tmp_path):
    path = tmp_path / "empty.parquet"
    schema = pa.schema([("x", pa.int64())])
    with open(path, "wb") as f:
        parquet_io.ParquetOutput(f, schema).close()
    assert pq.read_table(path).schema == schema and pq.read_table(path).num_rows == 0


def test_not_parquet_and_missing_column(tmp_path):
    bad = tmp_path / "x.parquet"
    bad.write_bytes(b"not parquet at all")
    with pytest.raises(ValueError, match="not a readable Parquet file"):
        parquet_io.ParquetSource(str(bad))
    with parquet_io.ParquetSource(_file(tmp_path, [1], 1)) as src:
        with pytest.raises(ValueError, match=r"no column 'tokens' \(columns: x, tag\)"):
            src.require_columns("tokens")


def test_is_parquet_path():
    assert parquet_io.is_parquet_path("a/b.parquet") and parquet_io.is_parquet_path("B.PARQUET")
    assert not parquet_io.is_parquet_path("x.jsonl") and not parquet_io.is_parquet_path(None)
    assert not parquet_io.is_parquet_path("-")


def test_importing_does_not_load_pyarrow():
    code = ("import sys, harmony_np, harmony_np.parquet_io, harmony_np.cli\n"
            "assert 'pyarrow' not in sys.modules, sorted(m for m in sys.modules if 'arrow' in m)\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr


def test_transform_file_writes_every_row_in_place_and_renames_at_the_end(tmp_path):
    values = [3, 1, -4, 1, 5, -9, 2, 6]
    src = _file(tmp_path, values, 3)
    dst = tmp_path / "out" / "in.parquet"
    dst.parent.mkdir()
    rows, bad = parquet_io.transform_file(Doubler(), src, str(dst), batch_rows=4, drop_columns=["tag"])
    assert rows == 8 and [(b.row, b.kind) for b in bad] == [(2, "ValueError"), (5, "ValueError")]
    out = pq.read_table(dst)
    assert out.column_names == ["x", "y", "error", "error_type"]  # tag dropped
    assert out.column("y").to_pylist() == [None if v < 0 else 2 * v for v in values]
    assert out.column("error").to_pylist()[5] == "negative x -9"
    assert pq.ParquetFile(dst).metadata.num_row_groups == 2  # a row group per batch
    assert sorted(p.name for p in dst.parent.iterdir()) == ["in.parquet"]  # no temporary left
    # an empty input: a valid file of the output's columns
    empty = tmp_path / "empty.parquet"
    pq.write_table(pa.table({"x": pa.array([], pa.int64()), "tag": pa.array([], pa.string())}), empty)
    assert parquet_io.transform_file(Doubler(), str(empty), str(tmp_path / "out" / "e.parquet"), drop_columns=["tag"]) == (0, [])
    assert pq.read_table(tmp_path / "out" / "e.parquet").column_names == ["x", "y", "error", "error_type"]


def test_transform_file_leaves_no_partial_file_when_it_fails(tmp_path):
    src = _file(tmp_path, [1, 2, 3], 2)
    dst = tmp_path / "out.parquet"

    def broken(table):
        if table.column("x")[0].as_py() == 3:
            raise MemoryError("not a row's error")  # not a data error: the run ends
        return table

    with pytest.raises(MemoryError):
        parquet_io.transform_file(broken, src, str(dst), batch_rows=2)
    with pytest.raises(ValueError, match="no column 'tokens' to drop"):
        parquet_io.transform_file(Doubler(), src, str(dst), drop_columns=["tokens"])
    with pytest.raises(FileNotFoundError):
        parquet_io.transform_file(Doubler(), str(tmp_path / "in.parquet") + ".missing", str(dst))
    (tmp_path / "junk.parquet").write_bytes(b"not parquet")
    with pytest.raises(ValueError, match="not a readable Parquet file"):
        parquet_io.transform_file(Doubler(), str(tmp_path / "junk.parquet"), str(dst))
    (tmp_path / "junk.parquet").unlink()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.parquet"]


def test_parquet_files_one_row_per_file(tmp_path):
    import os
    import pickle

    a = _file(tmp_path, [1, -2, 3], 2)
    (tmp_path / "b").mkdir()
    b = str(tmp_path / "b" / "b.parquet")
    pq.write_table(pa.table({"x": pa.array([7, 8], pa.int64()), "tag": ["p", "q"]}), b)
    (tmp_path / "out").mkdir()
    files = pickle.loads(pickle.dumps(parquet_io.ParquetFiles(Doubler(), str(tmp_path / "out"), batch_rows=2)))
    got = files(pa.table({"path": [a, b]})).to_pylist()
    assert got == [
        {"path": a, "output": os.path.join(str(tmp_path / "out"), "in.parquet"), "rows": 3, "bad_rows": 1, "first_error": "row 1: ValueError: negative x -2"},
        {"path": b, "output": os.path.join(str(tmp_path / "out"), "b.parquet"), "rows": 2, "bad_rows": 0, "first_error": None},
    ]
    assert pq.read_table(tmp_path / "out" / "b.parquet").column("y").to_pylist() == [14, 16]
    with pytest.raises(ValueError, match="the same name"):
        files(pa.table({"path": [a, a]}))
    with pytest.raises(ValueError, match="replace its input"):
        parquet_io.ParquetFiles(Doubler(), str(tmp_path))(pa.table({"path": [a]}))
    with pytest.raises(KeyError, match="no column 'path'"):
        files(pa.table({"file": [a]}))
    with pytest.raises(TypeError, match="table callable"):
        parquet_io.ParquetFiles("CompletionParser", str(tmp_path))
