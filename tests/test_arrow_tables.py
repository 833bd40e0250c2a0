"""render_table, parse_table and decode_table: every row equal to its list path, through real
Parquet files written and read back."""

from __future__ import annotations

import copy

import numpy as np
import pytest

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

from benchmarks.scenarios import chat_rows, completions, quarter_mutated  # noqa: E402
from harmony_np.arrow import decode_table, parse_table, render_table  # noqa: E402
from harmony_np.vocab import END, N_VOCAB, START  # noqa: E402

DATE = "2025-08-05"
WEATHER = {"type": "function", "function": {"name": "weather", "description": "Weather of a city.",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["c", "f"]}}, "required": ["city"]}}}
CLOCK = {"type": "function", "function": {"name": "clock", "description": "The time now."}}


def _chat_dataset():
    """Rows with and without tools, thinking, tool calls and tool results: a struct column
    then holds keys that most rows lack (null there)."""
    rows = [{"messages": m, "tools": None} for m in chat_rows(12, seed=5)]
    call = {"role": "assistant", "thinking": "Need the weather.", "content": "",
            "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "weather", "arguments": '{"city": "Paris"}'}}]}
    rows.append({"messages": [{"role": "user", "content": "Weather in Paris? ünïcode 中文"}, call,
                              {"role": "tool", "tool_call_id": "c1", "content": '{"temp": 21}'},
                              {"role": "assistant", "content": "21 degrees."}], "tools": [WEATHER, CLOCK]})
    rows.append({"messages": [{"role": "developer", "content": "Be brief."}, {"role": "user", "content": "Time?"}], "tools": [CLOCK]})
    return rows


def _roundtrip(tmp_path, table, name="t.parquet"):
    path = tmp_path / name
    pq.write_table(table, path, row_group_size=5)
    return pq.read_table(path)


def _chat_table(tmp_path, rows):
    return _roundtrip(tmp_path, pa.Table.from_pylist(rows))


@pytest.mark.parametrize("mode", ["training", "completion"])
def test_render_table_hf_equals_apply_chat_template(enc, tmp_path, mode):
    rows = _chat_dataset()
    table = _chat_table(tmp_path, rows)
    # the struct column gave absent keys as nulls: the template must not see them
    assert table.column("messages").to_pylist()[0][0]["thinking"] is None
    out = render_table(enc, table, date=DATE, mode=mode, reasoning_effort="high")
    assert out.schema.field("input_ids").type == pa.large_list(pa.uint32())
    assert out.schema.field("assistant_masks").type == pa.large_list(pa.uint8())
    assert out.column_names == ["messages", "tools", "input_ids", "assistant_masks"]
    for i, row in enumerate(rows):
        want = enc.apply_chat_template(row["messages"], tools=row["tools"], date=DATE, return_dict=True, return_assistant_tokens_mask=True,
                                       add_generation_prompt=mode == "completion", reasoning_effort="high")
        assert out.column("input_ids")[i].as_py() == list(want["input_ids"]), i
        assert out.column("assistant_masks")[i].as_py() == list(want["assistant_masks"]), i
    back = _roundtrip(tmp_path, out, "out.parquet")
    assert back.column("input_ids").to_pylist() == out.column("input_ids").to_pylist()


def test_render_table_harmony_equals_from_chat(enc, hnp, tmp_path):
    from harmony_np.chat import from_chat

    rows = _chat_dataset()
    table = _chat_table(tmp_path, rows)
    out = render_table(enc, table, template="harmony", date=DATE, model_identity="You are a test.")
    convs = [from_chat(r["messages"], tools=r["tools"], model_identity="You are a test.", conversation_start_date=DATE) for r in rows]
    want = enc.render_batch(convs, mode="training", next_role=hnp.Role.ASSISTANT,
                            config=hnp.RenderConversationConfig(auto_drop_analysis=True), loss_mask=True)
    assert out.column("input_ids").to_pylist() == want.to_list()
    assert out.column("assistant_masks").to_pylist() == [want.row_mask(i).tolist() for i in range(len(rows))]


def test_render_table_bad_rows(enc, tmp_path):
    rows = _chat_dataset()[:5]
    bad = copy.deepcopy(rows)
    bad[1]["messages"][1]["role"] = "tool"  # a tool result before any call: the template raises
    bad[3]["messages"] = None
    table = _chat_table(tmp_path, bad)
    with pytest.raises(Exception, match=r"^row 1: "):
        render_table(enc, table, date=DATE)
    out = render_table(enc, table, date=DATE, errors="collect")
    errors = out.column("error").to_pylist()
    assert errors[0] is None and errors[2] is None and errors[4] is None
    assert "no previous assistant message with a tool call" in errors[1]
    assert errors[3] == "the row is null (a missing value in the Arrow column), not a list of chat messages"
    kinds = out.column("error_type").to_pylist()
    assert kinds[0] is None and kinds[2] is None and kinds[4] is None
    with pytest.raises(Exception) as single:
        enc.apply_chat_template(bad[1]["messages"], tools=bad[1]["tools"], date=DATE)
    assert kinds[1] == type(single.value).__name__ and kinds[3] == "TypeError"
    ids = out.column("input_ids").to_pylist()
    assert ids[1] is None and ids[3] is None
    for i in (0, 2, 4):
        assert ids[i] == enc.apply_chat_template(rows[i]["messages"], tools=rows[i]["tools"], date=DATE)
    with pytest.raises(ValueError, match="template must be"):
        render_table(enc, table, template="jinja")
    with pytest.raises(KeyError, match="no column 'chats'"):
        render_table(enc, table, column="chats")


def _comps(enc, hnp):
    comps = quarter_mutated(completions(hnp, 50, seed=11), seed=12)
    comps[2] = []
    comps[5] = comps[5][:-1] + [N_VOCAB + 3, END]
    call = enc.encode('<|start|>assistant<|channel|>commentary to=functions.weather <|constrain|>json<|message|>{"city": "Paris"}<|call|>', allowed_special="all")
    comps[6] = comps[6] + call
    return comps


@pytest.mark.parametrize("errors, strict", [("collect", True), ("collect", False), ("recover", True)])
def test_parse_table_messages_equal_to_messages(enc, hnp, tmp_path, errors, strict):
    comps = _comps(enc, hnp)
    rows = [None if i == 9 else c for i, c in enumerate(comps)]
    table = _roundtrip(tmp_path, pa.table({"id": list(range(len(rows))), "tokens": pa.array(rows, pa.list_(pa.int32()))}))
    out = parse_table(enc, table, errors=errors, strict=strict)
    assert out.column_names == ["id", "tokens", "messages", "error", "error_type"]
    want = enc.parse_batch([[] if r is None else r for r in rows], errors=errors, strict=strict)
    got_errors, got_kinds = out.column("error").to_pylist(), out.column("error_type").to_pylist()
    for b, messages in enumerate(want.to_messages()):
        if b == 9:
            assert "null" in got_errors[b] and got_kinds[b] == "TypeError" and out.column("messages")[b].as_py() == []
            continue
        assert got_errors[b] == want.errors[b] and got_kinds[b] == want.error_types[b]
        expect = [{"role": m.author.role.value, "name": m.author.name, "channel": m.channel, "recipient": m.recipient,
                   "content_type": m.content_type, "content": m.content[0].text} for m in messages]
        assert out.column("messages")[b].as_py() == expect, b
    assert sum(e is not None for e in got_errors) >= 5
    back = _roundtrip(tmp_path, out, "parsed.parquet")
    assert back.column("messages").to_pylist() == out.column("messages").to_pylist()


def test_parse_table_chat_output(enc, hnp, tmp_path):
    comps = _comps(enc, hnp)
    table = _roundtrip(tmp_path, pa.table({"tokens": comps}))
    out = parse_table(enc, table, output="chat")
    from harmony_np.chat import to_chat

    mt = enc.parse_batch(comps, errors="collect")
    want, want_errors = [], list(mt.errors)
    for b in range(len(comps)):
        messages = mt.messages_of(b)
        try:
            want.append(None if not messages and mt.errors[b] else to_chat(messages))
        except ValueError as exc:  # mutated rows: a stray recipient has no chat form
            want.append(None)
            want_errors[b] = str(exc)
    assert any(e is None for e in want_errors) and sum(e is not None for e in want_errors) >= 3
    assert out.schema.field("tool_calls").type == pa.list_(pa.struct([("id", pa.string()), ("type", pa.string()), ("function", pa.struct([("name", pa.string()), ("arguments", pa.string())]))]))
    for b, chat in enumerate(want):
        row = out.slice(b, 1).to_pylist()[0]
        if chat is None:
            assert row["content"] is None and row["tool_calls"] is None and row["error"] == want_errors[b]
        else:
            assert row["error"] is None
            assert (row["content"], row["reasoning_content"], row["tool_calls"]) == (chat["content"], chat["reasoning_content"], chat["tool_calls"])
    assert out.column("tool_calls")[6].as_py()[0]["function"] == {"name": "weather", "arguments": '{"city": "Paris"}'}
    # a completion whose messages have no chat form: an error row, not a failed table
    browser = enc.encode("<|start|>assistant<|channel|>analysis to=browser.search<|message|>{}<|call|>", allowed_special="all")
    out2 = parse_table(enc, pa.table({"tokens": [comps[0], browser]}), output="chat")
    assert out2.column("error").to_pylist()[0] is None and "built-in" in out2.column("error").to_pylist()[1]
    assert out2.column("error_type").to_pylist() == [None, "ValueError"]
    with pytest.raises(ValueError, match="completion 1: "):
        parse_table(enc, pa.table({"tokens": [comps[0], browser]}), output="chat", errors="raise")
    # role as its string value
    stripped = [c[2:] for c in completions(hnp, 5, seed=1)]
    assert parse_table(enc, pa.table({"tokens": stripped}), role="assistant").column("messages").to_pylist() == \
        parse_table(enc, pa.table({"tokens": stripped}), role=hnp.Role.ASSISTANT).column("messages").to_pylist()


def test_decode_table_equals_decode(enc, hnp, tmp_path):
    comps = completions(hnp, 20, seed=4)
    odd = next(i for i in range(256, 5000) if not _valid(enc.decode_bytes([i])))
    comps += [[odd], [odd, 12194, odd], [], enc.encode("ünïcode 中文 🎉")]
    table = _roundtrip(tmp_path, pa.table({"tokens": pa.array(comps, pa.large_list(pa.uint32()))}))
    out = decode_table(enc, table)
    assert out.schema.field("text").type == pa.large_string()
    assert out.column("text").to_pylist() == [enc.decode(c) for c in comps]
    bad = pa.table({"tokens": [comps[0], [START, N_VOCAB + 1], None, comps[1]]})
    with pytest.raises(hnp.HarmonyError, match=rf"row 1: Invalid token for decoding: {N_VOCAB + 1}"):
        decode_table(enc, bad)
    got = decode_table(enc, bad, errors="collect", output_column="decoded")
    assert got.column("decoded").to_pylist() == [enc.decode(comps[0]), None, None, enc.decode(comps[1])]
    errs = got.column("error").to_pylist()
    assert errs[0] is None and errs[3] is None and str(N_VOCAB + 1) in errs[1] and "null" in errs[2]
    assert got.column("error_type").to_pylist() == [None, "HarmonyError", "TypeError", None]


def _valid(b: bytes) -> bool:
    try:
        b.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


def test_message_rows_read_by_field_equal_to_pylist_with_nulls_dropped():
    # render_table reads a list<struct> column a field at a time: the same rows as to_pylist with
    # every null key left out, on sliced and chunked columns, null rows, null messages and
    # nested fields (tool calls with null arguments)
    import pyarrow as pa

    from harmony_np import arrow as A

    rows = [[{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": f"a{i}", "thinking": f"t{i}" if i % 2 else None}] for i in range(40)]
    rows[3] = None
    rows[7] = [{"role": "user", "content": "x", "thinking": None}, None,
               {"role": "assistant", "content": "y", "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": {"a": None, "b": 1}}}]}]
    rows[9] = []
    table = pa.table({"messages": rows})
    chunked = pa.concat_tables([table.slice(0, 15), table.slice(15, 25)])
    for t in (table, table.slice(5, 20), chunked, chunked.slice(10, 12)):
        column = t.column("messages")
        got, cleaned = A._message_rows(column)
        assert cleaned
        assert got == [None if r is None else A._without_nulls(r) for r in column.to_pylist()]
    assert got[0] is not None and "thinking" not in got[0][1]  # a null key is left out, not kept as None
    # the keys are written into a dict display: odd names stay themselves, in the schema's order
    odd = [{"role": "user", "it's \"x\"\n": "v", "{}": None, "\\": 2}]
    got, _ = A._message_rows(pa.table({"messages": [odd]}).column("messages"))
    assert got == [[{"role": "user", "it's \"x\"\n": "v", "\\": 2}]] and list(got[0][0]) == ["role", "it's \"x\"\n", "\\"]
    long = "k" * 5000  # names too long to keep compiled: built each time, the same rows
    info = A._cached_dicts_of.cache_info().currsize
    got, _ = A._message_rows(pa.table({"messages": [[{"role": "user", long: "v"}]]}).column("messages"))
    assert got == [[{"role": "user", long: "v"}]] and A._cached_dicts_of.cache_info().currsize == info
    # a struct that repeats a name: refused, naming it (no dict holds both)
    twice = pa.StructArray.from_arrays([pa.array(["user"]), pa.array(["a"]), pa.array([None], pa.string())], names=["role", "content", "content"])
    column = pa.chunked_array([pa.ListArray.from_arrays(pa.array([0, 1], pa.int32()), twice)])
    with pytest.raises(ValueError, match="repeats the field name\\(s\\) 'content'"):
        A._message_rows(column)
