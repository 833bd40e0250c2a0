"""Arrow arrays built from and read through their buffers (arrow_layout's primitive_array,
string_array, primitive_values, valid_mask), against pyarrow's own constructors and readers; and
that the Arrow and Parquet paths never import pandas, which ``pa.array`` and ``to_numpy`` do
where it is installed (0.3-0.5 s of a process's first call)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

pa = pytest.importorskip("pyarrow")

from harmony_np.arrow_layout import primitive_array, primitive_values, string_array, valid_mask  # noqa: E402

INT_TYPES = ["int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64"]


@settings(deadline=None)  # the first pa.array of a process imports pandas
@given(st.sampled_from(INT_TYPES + ["float32", "float64"]), st.lists(st.tuples(st.integers(0, 100), st.booleans()), max_size=40),
       st.integers(1, 3), st.booleans())
def test_primitive_array_equals_pa_array(dtype, pairs, step, with_valid):
    values = np.array([v for v, _ in pairs] * step, dtype=dtype)[::step]  # a strided view when step > 1
    valid = np.array([ok for _, ok in pairs], dtype=bool) if with_valid else None
    got = primitive_array(values, valid)
    got.validate(full=True)
    want = pa.array(values, mask=None if valid is None else ~valid)
    assert got.type == want.type and got.null_count == want.null_count
    assert got.to_pylist() == want.to_pylist()


def test_primitive_array_shares_the_buffer_and_checks_shapes():
    values = np.arange(10, dtype=np.int64)
    assert primitive_array(values).buffers()[1].address == values.ctypes.data
    with pytest.raises(ValueError, match="1-D"):
        primitive_array(np.zeros((2, 2), np.int64))
    with pytest.raises(ValueError, match="valid: shape"):
        primitive_array(values, np.ones(3, bool))


@settings(deadline=None)  # the first pa.array of a process imports pandas
@given(st.lists(st.none() | st.text(st.characters(exclude_categories=["Cs"]), max_size=8), max_size=30), st.booleans(), st.booleans())
def test_string_array_equals_pa_array(texts, large, given_rows):
    rows = [i for i, t in enumerate(texts) if t is not None] if given_rows else None
    got = string_array(texts, large=large, rows=rows)
    got.validate(full=True)
    want = pa.array(texts, pa.large_string() if large else pa.string())
    assert got.type == want.type and got.null_count == want.null_count
    assert got.to_pylist() == texts


def test_string_array_refuses_rows_that_are_not_the_texts():
    texts = ["a", None, "b", None]
    for rows in ([0, 1], [0, 0], [2, 0], [0, 2, 3], [-2, 0], [0, 4]):
        with pytest.raises(ValueError, match="rows"):
            string_array(texts, rows=rows)
    assert string_array(texts, rows=[0, 2]).to_pylist() == texts


@settings(deadline=None)  # the first pa.array of a process imports pandas
@given(st.sampled_from(INT_TYPES + ["float32", "float64"]), st.lists(st.none() | st.integers(0, 100), max_size=40),
       st.integers(0, 5), st.integers(0, 40))
def test_readers_equal_to_numpy_on_slices(dtype, values, start, length):
    array = pa.array(values, pa.from_numpy_dtype(np.dtype(dtype))).slice(start, length)
    valid = valid_mask(array)
    assert valid.tolist() == [v is not None for v in array.to_pylist()]
    got = primitive_values(array)
    assert not got.flags.writeable
    assert got[valid].tolist() == [v for v in array.to_pylist() if v is not None]


def test_readers_refuse_or_handle_other_arrays():
    with pytest.raises(TypeError, match="integers or floats"):
        primitive_values(pa.array(["a"]))
    assert valid_mask(pa.nulls(3)).tolist() == [False] * 3  # the null type has no bitmap
    union = pa.UnionArray.from_sparse(pa.array([0, 1, 0], pa.int8()), [pa.array([1, None, None]), pa.array(["a", None, "c"])])
    assert valid_mask(union).tolist() == union.is_valid().to_pylist()
    structs = pa.array([{"a": 1}, None, {"a": None}]).slice(1)
    assert valid_mask(structs).tolist() == [False, True]


CHILD = textwrap.dedent(
    """
    import sys, json
    import pyarrow as pa, pyarrow.parquet as pq
    import harmony_np as h
    from harmony_np.arrow import ChatRenderer, CompletionParser, parse_table, render_table
    from harmony_np.parquet_io import ParquetFiles, transform_file

    folder = sys.argv[1]
    enc = h.load_harmony_encoding(h.HarmonyEncodingName.HARMONY_GPT_OSS)
    read = lambda name: pq.ParquetFile(folder + name).read()  # pq.read_table imports pandas (pyarrow.dataset)
    table = read("/tokens.parquet")
    for errors in ("collect", "recover"):
        for output in ("messages", "chat"):
            parse_table(enc, table, errors=errors, output=output)
    chats = read("/chats.parquet")
    ChatRenderer(date="2025-01-01")(chats)
    render_table(enc, chats, mode="training")
    transform_file(CompletionParser(), folder + "/tokens.parquet", folder + "/out.parquet")
    ParquetFiles(CompletionParser(), folder + "/files")(read("/paths.parquet"))
    print(json.dumps(sorted(m for m in sys.modules if m == "pandas" or m.startswith("pandas."))))
    """
)


@pytest.mark.skipif(importlib.util.find_spec("pandas") is None, reason="pandas is not installed: nothing would import it")
def test_arrow_paths_never_import_pandas(enc, tmp_path):
    # the inputs are made here (pa.array imports pandas) and read in the child from Parquet
    import pyarrow.parquet as pq

    good = enc.encode("<|start|>assistant<|channel|>final<|message|>hello<|return|>", allowed_special="all")
    call = enc.encode('<|start|>assistant to=functions.f<|channel|>commentary <|constrain|>json<|message|>{"a": 1}<|call|>',
                      allowed_special="all")
    tokens = pa.array([good, None, good[:3], [], call, good], pa.large_list(pa.uint32()))
    pq.write_table(pa.table({"id": pa.array(range(len(tokens))), "tokens": tokens}), tmp_path / "tokens.parquet")
    messages = [[{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo", "thinking": "t"}]] * 20
    messages.append([{"role": "user", "content": "no thinking"}, {"role": "assistant", "content": "<|x|>", "thinking": None}])
    pq.write_table(pa.table({"messages": pa.array(messages)}), tmp_path / "chats.parquet")
    pq.write_table(pa.table({"path": [str(tmp_path / "tokens.parquet")]}), tmp_path / "paths.parquet")
    os.makedirs(tmp_path / "files")
    proc = subprocess.run([sys.executable, "-c", CHILD, str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "[]"
    # the child's outputs are those of this process, where pandas is imported
    from harmony_np.arrow import CompletionParser
    from harmony_np.parquet_io import transform_file

    transform_file(CompletionParser(), str(tmp_path / "tokens.parquet"), str(tmp_path / "here.parquet"))
    assert pq.read_table(tmp_path / "out.parquet").equals(pq.read_table(tmp_path / "here.parquet"))


@pytest.mark.parametrize("errors", ["collect", "recover"])
def test_error_rows_are_the_completions_with_an_error(enc, hnp, errors):
    from benchmarks.scenarios import completions, quarter_mutated

    comps = quarter_mutated(completions(hnp, 80, seed=5), seed=6)
    comps[2] = []
    mt = enc.parse_batch(comps, errors=errors)
    want = [i for i, e in enumerate(mt.errors) if e is not None]
    assert len(want) > 5 and mt.error_rows.dtype == np.int64 and mt.error_rows.tolist() == want
    assert not mt.error_rows.flags.writeable
    from harmony_np.arrow import parse_table

    table = parse_table(enc, pa.table({"tokens": pa.array(comps, pa.large_list(pa.uint32()))}), errors=errors)
    assert table.column("error").to_pylist() == mt.errors and table.column("error_type").to_pylist() == mt.error_types
