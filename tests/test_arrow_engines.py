"""The table callables on the real engines: pickled, a Hugging Face ``datasets`` map with two
processes, and Ray Data's ``map_batches`` on a local cluster."""

from __future__ import annotations

import datetime
import pickle

import pytest

pa = pytest.importorskip("pyarrow")

from benchmarks.scenarios import chat_rows, completions  # noqa: E402
from harmony_np.arrow import ChatRenderer, CompletionParser, TokenDecoder, parse_table, render_table  # noqa: E402

DATE = "2025-08-05"


def test_callables_pickle_and_equal_the_functions(enc, hnp):
    chat = pa.table({"messages": chat_rows(6, seed=2)})
    renderer = ChatRenderer(date=datetime.date(2025, 8, 5), reasoning_effort="low")
    parser = CompletionParser(role=hnp.Role.ASSISTANT, errors="recover")
    decoder = TokenDecoder(column="input_ids")
    for fn in (renderer, parser, decoder):
        back = pickle.loads(pickle.dumps(fn))
        assert type(back) is type(fn) and back.options == fn.options and back.encoding_name == "HarmonyGptOss"
    assert parser.options["role"] == "assistant"  # a plain string travels anywhere
    rendered = pickle.loads(pickle.dumps(renderer))(chat)
    assert rendered.equals(render_table(enc, chat, date=DATE, reasoning_effort="low"))
    decoded = pickle.loads(pickle.dumps(decoder))(rendered)
    assert decoded.column("text").to_pylist() == [enc.decode(r) for r in rendered.column("input_ids").to_pylist()]
    stripped = pa.table({"tokens": [c[2:] for c in completions(hnp, 8, seed=3)]})
    assert pickle.loads(pickle.dumps(parser))(stripped).equals(parse_table(enc, stripped, role="assistant", errors="recover"))
    # a RecordBatch, as some engines hand over
    assert parser(stripped.to_batches()[0]).num_rows == 8
    with pytest.raises(TypeError, match=r"unknown options \['colum'\]"):
        CompletionParser(colum="tokens")
    with pytest.raises(TypeError, match="pyarrow.Table"):
        parser([[1, 2]])


@pytest.mark.slow
def test_datasets_map_with_two_processes(enc, hnp, tmp_path):
    datasets = pytest.importorskip("datasets")
    rows = chat_rows(40, seed=6)
    ds = datasets.Dataset.from_list([{"messages": m} for m in rows])
    out = ds.with_format("arrow").map(ChatRenderer(date=DATE), batched=True, batch_size=8, num_proc=2,
                                       cache_file_name=str(tmp_path / "rendered.arrow"))
    assert out.num_rows == 40
    got = out.with_format(None)
    for i, m in enumerate(rows):
        want = enc.apply_chat_template(m, date=DATE, return_dict=True, return_assistant_tokens_mask=True)
        assert got[i]["input_ids"] == list(want["input_ids"]) and got[i]["assistant_masks"] == list(want["assistant_masks"])
    comps = completions(hnp, 40, seed=7)
    parsed = datasets.Dataset.from_dict({"tokens": comps}).with_format("arrow").map(
        CompletionParser(), batched=True, batch_size=16, num_proc=2, cache_file_name=str(tmp_path / "parsed.arrow"))
    messages = parsed.with_format(None)["messages"]
    want = enc.parse_batch(comps).to_messages()
    assert [[m["content"] for m in row] for row in messages] == [[m.content[0].text for m in row] for row in want]


@pytest.fixture(scope="module")
def ray_cluster():
    ray = pytest.importorskip("ray")
    # the actors hold a logical CPU each, and Ray Data's read and split tasks need some too: a
    # 2-core machine is given 4 logical CPUs so that two actors cannot starve them
    # address="local": a cluster of its own, never one that another process on the machine runs
    ray.init(address="local", num_cpus=4, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.mark.slow
def test_ray_map_batches_both_callables(enc, hnp, ray_cluster, tmp_path):
    import ray.data

    import pyarrow.parquet as pq

    comps = completions(hnp, 300, seed=8)
    path = tmp_path / "comps.parquet"
    pq.write_table(pa.table({"id": list(range(300)), "tokens": pa.array(comps, pa.large_list(pa.uint32()))}), path, row_group_size=50)
    ds = ray.data.read_parquet(str(path)).repartition(4)  # blocks for both actors
    parsed = ds.map_batches(CompletionParser, fn_constructor_kwargs={"output": "chat"}, batch_format="pyarrow",
                            batch_size=64, compute=ray.data.ActorPoolStrategy(size=2))
    rows = sorted(parsed.take_all(), key=lambda r: r["id"])
    want = enc.parse_batch(comps).to_chat()
    assert [r["id"] for r in rows] == list(range(300))
    assert [(r["content"], r["reasoning_content"]) for r in rows] == [(w["content"], w["reasoning_content"]) for w in want]
    assert all(r["error"] is None for r in rows)

    chats = chat_rows(60, seed=9)
    cds = ray.data.from_arrow(pa.Table.from_pylist([{"id": i, "messages": m} for i, m in enumerate(chats)])).repartition(4)
    rendered = cds.map_batches(ChatRenderer, fn_constructor_kwargs={"date": DATE}, batch_format="pyarrow",
                               batch_size=16, compute=ray.data.ActorPoolStrategy(size=2))
    out = sorted(rendered.take_all(), key=lambda r: r["id"])
    for r, m in zip(out, chats):
        want = enc.apply_chat_template(m, date=DATE, return_dict=True, return_assistant_tokens_mask=True)
        assert list(r["input_ids"]) == list(want["input_ids"]) and list(r["assistant_masks"]) == list(want["assistant_masks"])


@pytest.mark.slow
def test_ray_actors_parse_whole_files_with_parquet_files(enc, hnp, ray_cluster, tmp_path):
    # the recipe for when Ray's read is the bottleneck: each actor reads, parses and writes its
    # files itself; every output row equal to parse_table's of its input
    import ray.data

    import pyarrow.parquet as pq

    from harmony_np.parquet_io import ParquetFiles

    comps = completions(hnp, 240, seed=10)
    comps[17] = [5, 10**9, 7]  # one bad row (an id out of the vocabulary), kept in its place
    (tmp_path / "in").mkdir()
    (tmp_path / "out").mkdir()
    paths = []
    for k in range(4):
        part = comps[k * 60 : (k + 1) * 60]
        paths.append(str(tmp_path / "in" / f"part-{k}.parquet"))
        pq.write_table(pa.table({"id": list(range(k * 60, (k + 1) * 60)), "tokens": pa.array(part, pa.large_list(pa.uint32()))}), paths[-1], row_group_size=25)
    summary = ray.data.from_items([{"path": p} for p in paths]).map_batches(
        ParquetFiles, fn_constructor_kwargs=dict(transform=CompletionParser(), output_dir=str(tmp_path / "out"), batch_rows=32, drop_columns=["tokens"]),
        batch_size=1, batch_format="pyarrow", compute=ray.data.ActorPoolStrategy(size=2)).take_all()
    assert sorted(r["path"] for r in summary) == paths
    assert sum(r["rows"] for r in summary) == 240 and sum(r["bad_rows"] for r in summary) == 1
    for path in paths:
        got = pq.read_table(str(tmp_path / "out" / path.rsplit("/", 1)[1]))
        want = parse_table(enc, pq.read_table(path)).drop_columns(["tokens"])
        assert got.column_names == ["id", "messages", "error", "error_type"]
        assert got.to_pylist() == want.to_pylist()
