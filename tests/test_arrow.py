"""Arrow in and out: RaggedTokens <-> large_list, parse_batch on Arrow columns, MessageTable.to_arrow.

Every Arrow path is compared with the list path row for row; zero-copy is asserted by buffer
addresses; bad Arrow input (tampered offsets, bad ids, a caller's buffer changed afterwards) runs
in a child process.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

pa = pytest.importorskip("pyarrow")

from benchmarks.scenarios import completions, quarter_mutated  # noqa: E402
from harmony_np.vocab import END, N_VOCAB, START  # noqa: E402


def _invalid_utf8_token(enc) -> int:
    """An ordinary id whose bytes alone are not valid UTF-8 (a piece of a multi-byte character)."""
    for i in range(256, 5000):
        try:
            enc.decode_bytes([i]).decode("utf-8")
        except UnicodeDecodeError:
            return i
    raise AssertionError("no partial-character token found")


@pytest.fixture(scope="module")
def batch(enc, hnp):
    """Completions of every kind: good, a quarter mutated, empty, unknown ids in a header and
    in a content, contents with invalid UTF-8 and non-ASCII text, a header cut short."""
    comps = quarter_mutated(completions(hnp, 60, seed=3), seed=4)
    comps[3] = []
    comps[7] = comps[7][:2] + [N_VOCAB + 5] + comps[7][2:]
    comps[8] = comps[8][:-1] + [N_VOCAB + 5, 12194, END]
    odd = _invalid_utf8_token(enc)
    final = enc.encode("<|start|>assistant<|channel|>final<|message|>", allowed_special="all")
    comps.append(final + [odd, odd] + enc.encode("ok") + [END])
    comps.append(final + enc.encode("ünïcode 🎉 中文") + [odd] + [END])
    comps.append(enc.encode("<|start|>assistant<|channel|>final<|message|>ünïcode 中文 🎉<|return|>", allowed_special="all"))
    comps.append([START] + enc.encode("assistant to=functions.x") + [END] + comps[0])
    return comps


def _strip_role(comps, role):
    return [c[2:] if role is not None and c[:1] == [START] else c for c in comps]


def _arrow_forms(comps, with_null: bool = False):
    """The same rows as Arrow columns of several layouts: ``(name, column, None rows)``."""
    rows = [None if with_null and i % 11 == 5 else c for i, c in enumerate(comps)]
    nulls = [i for i, r in enumerate(rows) if r is None]
    forms = []
    for type_ in (pa.large_list(pa.uint32()), pa.list_(pa.uint32()), pa.list_(pa.int64()), pa.large_list(pa.int32()), pa.list_(pa.uint64())):
        forms.append((str(type_), pa.array(rows, type_)))
    # sliced (a non-zero array offset), and chunked: several chunks, one of them sliced
    padded = pa.array([[1, 2, 3]] * 3 + rows + [[9]], pa.large_list(pa.uint32()))
    forms.append(("sliced", padded.slice(3, len(rows))))
    third = len(rows) // 3
    padded32 = pa.array([[7]] * 2 + rows, pa.list_(pa.uint32()))
    forms.append(("chunked", pa.chunked_array([
        pa.array(rows[:third], pa.list_(pa.uint32())),
        padded32.slice(2 + third, len(rows) - 2 * third),
        pa.array(rows[len(rows) - third :], pa.list_(pa.uint32())),
    ])))
    return forms, nulls


def _same_tables(got, want, nulls=()):
    assert got.n_completions == want.n_completions
    for b in range(want.n_completions):
        if b in nulls:
            assert got.errors[b] is not None and "null" in got.errors[b] and got.error_types[b] == "TypeError"
            assert got.messages_of(b) == []
        else:
            assert got.errors[b] == want.errors[b] and got.error_types[b] == want.error_types[b], b
    expect = want.to_messages()
    for b in nulls:
        expect[b] = []
    assert got.to_messages() == expect


@pytest.mark.parametrize("errors, strict", [("collect", True), ("collect", False), ("recover", True)])
def test_parse_batch_arrow_equals_lists(enc, hnp, batch, errors, strict):
    for role in (None, hnp.Role.ASSISTANT):
        comps = _strip_role(batch, role)
        forms, nulls = _arrow_forms(comps, with_null=True)
        want = enc.parse_batch([[] if i in nulls else c for i, c in enumerate(comps)], role=role, strict=strict, errors=errors)
        assert sum(e is not None for e in want.errors) >= 5
        for name, column in forms:
            got = enc.parse_batch(column, role=role, strict=strict, errors=errors)
            _same_tables(got, want, nulls)
            if errors == "recover":
                assert got.unparsed.keys() == want.unparsed.keys()
                for k in ("completion", "start", "stop"):
                    assert got.unparsed[k].tolist() == want.unparsed[k].tolist(), name


def test_parse_batch_arrow_raise_mode(enc, hnp, batch):
    good = [c for c in completions(hnp, 20, seed=8)]
    for name, column in _arrow_forms(good)[0]:
        assert enc.parse_batch(column).to_messages() == enc.parse_batch(good).to_messages(), name
    with pytest.raises(TypeError, match=r"completion 4: the row is null"):
        enc.parse_batch(pa.array(good[:4] + [None] + good[5:], pa.list_(pa.uint32())))
    with pytest.raises(OverflowError, match=r"completion 2: token id -7 at position 5 is not in uint32 range"):
        enc.parse_batch(pa.array(good[:2] + [good[2][:5] + [-7]] + good[3:], pa.list_(pa.int64())))
    with pytest.raises(OverflowError, match=r"completion 1: token id 4294967296 at position 0"):
        enc.parse_batch(pa.array([good[0], [2**32]], pa.list_(pa.uint64())))
    with pytest.raises(TypeError, match=r"completion 1: token at position 2 is null"):
        enc.parse_batch(pa.array([good[0], [1, 2, None]], pa.list_(pa.uint32())))
    # the list path's error for the same bad ids is an OverflowError too
    with pytest.raises(OverflowError):
        enc.parse_batch([good[0], [-7]])
    with pytest.raises(TypeError, match="list<int>"):
        enc.parse_batch(pa.array(["a", "b"]))
    with pytest.raises(TypeError, match="lists of integers"):
        enc.parse_batch(pa.array([[1.5]]))
    empty = enc.parse_batch(pa.array([], pa.list_(pa.uint32())))
    assert empty.n_completions == 0 and len(empty) == 0


def test_parse_batch_arrow_bad_rows_collected(enc, hnp):
    good = completions(hnp, 6, seed=9)
    column = pa.array([good[0], [-1, 5], good[1], None, [3, 2**32], good[2]], pa.list_(pa.int64()))
    table = enc.parse_batch(column, errors="collect")
    assert [t for t in table.error_types] == [None, "OverflowError", None, "TypeError", "OverflowError", None]
    assert table.to_messages() == [enc.parse_messages_from_completion_tokens(good[0]), [], enc.parse_messages_from_completion_tokens(good[1]), [], [], enc.parse_messages_from_completion_tokens(good[2])]
    # a null row that spans values (legal in Arrow: they are ignored) is an empty error row too
    values = pa.array(np.concatenate([good[0], good[1]]).astype(np.uint32))
    offsets = pa.array([0, len(good[0]), len(good[0]) + len(good[1])], pa.int32())
    with_null = pa.ListArray.from_arrays(offsets, values, mask=pa.array([True, False]))
    t2 = enc.parse_batch(with_null, errors="collect")
    assert t2.error_types == ["TypeError", None] and t2.to_messages()[1] == enc.parse_messages_from_completion_tokens(good[1])


def test_parse_batch_arrow_uint32_is_not_copied(enc, hnp):
    comps = completions(hnp, 30, seed=2)
    column = pa.array(comps, pa.large_list(pa.uint32()))
    table = enc.parse_batch(column)
    values = column.buffers()[3]
    assert table.tokens.ctypes.data == values.address and table.tokens.nbytes == values.size
    assert not table.tokens.flags.writeable
    # a sliced column: the view starts at the first row's first value
    sliced = column.slice(4, 10)
    t2 = enc.parse_batch(sliced)
    first = sum(len(c) for c in comps[:4])
    assert t2.tokens.ctypes.data == values.address + 4 * first
    assert t2.to_messages() == enc.parse_batch(comps[4:14]).to_messages()
    # other integer types are converted once: a copy
    t3 = enc.parse_batch(pa.array(comps, pa.list_(pa.int64())))
    assert not np.shares_memory(t3.tokens, np.frombuffer(column.buffers()[3], np.uint32))


def test_ragged_to_arrow_shares_buffers(enc, hnp):
    convs = [hnp.Conversation.from_messages([hnp.Message.from_role_and_content(hnp.Role.USER, f"hello {i}"),
                                             hnp.Message.from_role_and_content(hnp.Role.ASSISTANT, "hi " * i).with_channel("final")]) for i in range(7)]
    rows = enc.render_batch(convs, mode="training")
    arr = rows.to_arrow()
    assert arr.type == pa.large_list(pa.uint32()) and len(arr) == 7
    assert arr.buffers()[1].address == rows.offsets.ctypes.data
    assert arr.buffers()[3].address == rows.tokens.ctypes.data
    assert arr.to_pylist() == rows.to_list()
    mask = rows.to_arrow_mask()
    assert mask.type == pa.large_list(pa.uint8())
    assert mask.buffers()[3].address == rows.loss_mask.ctypes.data
    assert mask.to_pylist() == [rows.row_mask(i).tolist() for i in range(7)]
    arr.validate(full=True)
    mask.validate(full=True)
    plain = enc.render_batch(convs)
    with pytest.raises(ValueError, match="no loss mask"):
        plain.to_arrow_mask()
    # a RaggedTokens whose offsets start past 0 is still a valid Arrow array
    part = hnp.ragged.RaggedTokens(np.arange(10), [2, 5, 9])
    assert part.to_arrow().to_pylist() == [[2, 3, 4], [5, 6, 7, 8]]


def test_ragged_from_arrow(enc, hnp):
    RaggedTokens = hnp.ragged.RaggedTokens
    rows = [[1, 2, 3], [], [4, 5], [6]]
    masks = [[0, 1, 1], [], [1, 0], [1]]
    for type_ in (pa.large_list(pa.uint32()), pa.list_(pa.int64()), pa.list_(pa.uint16())):
        r = RaggedTokens.from_arrow(pa.array(rows, type_), pa.array(masks, pa.list_(pa.uint8())))
        assert r.to_list() == rows and [r.row_mask(i).tolist() for i in range(4)] == masks
        assert r.tokens.dtype == np.uint32 and r.offsets.dtype == np.int64
    col = pa.array(rows, pa.large_list(pa.uint32()))
    m = pa.array(masks, pa.large_list(pa.uint8()))
    r = RaggedTokens.from_arrow(col, m)
    assert r.tokens.ctypes.data == col.buffers()[3].address and r.loss_mask.ctypes.data == m.buffers()[3].address
    assert not r.tokens.flags.writeable
    chunked = pa.chunked_array([col.slice(1, 2), col.slice(3, 1), col.slice(0, 1)])
    assert RaggedTokens.from_arrow(chunked).to_list() == [[], [4, 5], [6], [1, 2, 3]]
    # a round trip keeps the rows
    rendered = enc.render_batch([hnp.Conversation.from_messages([hnp.Message.from_role_and_content(hnp.Role.USER, "x")])] * 3, mode="training")
    back = RaggedTokens.from_arrow(rendered.to_arrow(), rendered.to_arrow_mask())
    assert back.to_list() == rendered.to_list() and np.array_equal(back.loss_mask, rendered.loss_mask)
    with pytest.raises(TypeError, match=r"tokens row 1: the row is null"):
        RaggedTokens.from_arrow(pa.array([[1], None]))
    with pytest.raises(OverflowError, match=r"tokens row 1: token id -2 at position 1"):
        RaggedTokens.from_arrow(pa.array([[1], [0, -2]]))
    with pytest.raises(ValueError, match=r"mask row 2 has 1 values for 2 tokens"):
        RaggedTokens.from_arrow(col, pa.array([[0, 1, 1], [], [1], [1]], pa.list_(pa.uint8())))
    with pytest.raises(ValueError, match=r"mask row 0: value 2 at position 1 is not 0 or 1"):
        RaggedTokens.from_arrow(col, pa.array([[0, 2, 1], [], [1, 0], [1]], pa.list_(pa.uint8())))
    with pytest.raises(OverflowError, match=r"mask row 0: value 300"):
        RaggedTokens.from_arrow(col, pa.array([[0, 300, 1], [], [1, 0], [1]], pa.list_(pa.int32())))


def _messages_rows(table):
    """The rows ``to_arrow`` must give, from the list path."""
    out = []
    for b, messages in enumerate(table.to_messages()):
        for m in messages:
            out.append({"completion": b, "role": m.author.role.value, "name": m.author.name, "channel": m.channel,
                        "recipient": m.recipient, "content_type": m.content_type, "content": m.content[0].text})
    return out


@pytest.mark.parametrize("errors, strict", [("collect", True), ("collect", False), ("recover", True)])
def test_message_table_to_arrow_equals_messages(enc, hnp, batch, errors, strict):
    for role in (None, hnp.Role.ASSISTANT):
        table = enc.parse_batch(_strip_role(batch, role), role=role, strict=strict, errors=errors)
        got = table.to_arrow()
        assert got.schema.field("completion").type == pa.int64()
        assert got.schema.field("content").type == pa.large_string()
        for name in ("role", "name", "channel", "recipient", "content_type"):
            assert pa.types.is_dictionary(got.schema.field(name).type)
        got.validate(full=True)
        want = _messages_rows(table)
        assert got.to_pylist() == want
        assert got.column("content").to_pylist() == table.content_texts()
        texts = table.content_texts()
        assert any("\ufffd" in t for t in texts) and any("中文" in t for t in texts)


def test_message_table_to_arrow_edge_tables(enc, hnp):
    empty = enc.parse_batch([])
    t = empty.to_arrow()
    assert t.num_rows == 0 and t.column_names == ["completion", "role", "name", "channel", "recipient", "content_type", "content"]
    errors_only = enc.parse_batch([[START, START], [1.5]], errors="collect")
    assert errors_only.to_arrow().num_rows == 0
    # every content invalid UTF-8, or empty
    odd = _invalid_utf8_token(enc)
    head = enc.encode("<|start|>assistant<|channel|>final<|message|>", allowed_special="all")
    table = enc.parse_batch([head + [odd] * k + [END] for k in range(5)])
    assert table.to_arrow().to_pylist() == _messages_rows(table)


_BAD_ARROW = r'''
import json
import numpy as np
import pyarrow as pa
import harmony_np as h
from harmony_np.ragged import RaggedTokens

enc = h.load_harmony_encoding(h.HarmonyEncodingName.HARMONY_GPT_OSS)
msg = h.Message.from_role_and_content(h.Role.ASSISTANT, "calm seas " * 300).with_channel("final")
toks = np.asarray(enc.render_conversation(h.Conversation.from_messages([msg])), dtype=np.uint32)
out = {}

def attempt(name, fn):
    try:
        r = fn()
        out[name] = "no error: " + repr(r)[:80]
    except Exception as exc:
        out[name] = f"{type(exc).__name__}: {exc}"

values = pa.array(np.tile(toks, 3))
n = len(values)
for dtype, typ in ((np.int32, pa.list_(pa.uint32())), (np.int64, pa.large_list(pa.uint32()))):
    for label, offs in (("past the end", [0, 10, n + 10**6]), ("decreasing", [0, 50, 20]), ("negative", [-5, 10, 20])):
        # from_buffers checks its offsets' ends: they are written after it, through the NumPy
        # array the offsets buffer shares
        shared = np.array([0, 10, 20], dtype)
        arr = pa.Array.from_buffers(typ, 2, [None, pa.py_buffer(shared)], children=[values])
        shared[:] = offs
        attempt(f"{typ} offsets {label}: parse", lambda: enc.parse_batch(arr).to_messages())
        attempt(f"{typ} offsets {label}: ragged", lambda: RaggedTokens.from_arrow(arr).to_padded(0))
# a values buffer shorter than the child array claims
def short_values():
    short = pa.Array.from_buffers(pa.uint32(), 10**6, [None, pa.py_buffer(toks[:10].copy())])
    arr = pa.Array.from_buffers(pa.list_(pa.uint32()), 1, [None, pa.py_buffer(np.array([0, 10**6], np.int32))], children=[short])
    return enc.parse_batch(arr).to_messages()
attempt("short values buffer", short_values)
attempt("negative ids", lambda: enc.parse_batch(pa.array([[-1, 5]], pa.list_(pa.int32()))))
attempt("huge ids", lambda: enc.parse_batch(pa.array([[2**40]], pa.list_(pa.int64()))))
attempt("ids past the vocabulary", lambda: enc.parse_batch(pa.array([[START_, N_VOCAB_ + 7, 1]], pa.list_(pa.uint32())), errors="collect").errors)

# the caller's memory, shared: pa.array over a NumPy array does not copy
mine = np.tile(toks, 50)
offs = np.arange(0, 50 * len(toks) + 1, len(toks), dtype=np.int64)
col = pa.LargeListArray.from_arrays(pa.array(offs), pa.array(mine))
table = enc.parse_batch(col)
out["shares"] = bool(np.shares_memory(table.tokens, mine))
mine[:] = 4_000_000_000  # every id now far past the vocabulary
attempt("mutated: to_messages", lambda: len(table.to_messages()))
attempt("mutated: to_arrow", lambda: table.to_arrow().num_rows)
attempt("mutated: messages_of", lambda: table.messages_of(3))
mine[:] = np.tile(toks, 50)
mine[5::7] = 12194  # ordinary ids: other text, no error
attempt("changed to other ids", lambda: len(table.content_texts()))
print(json.dumps(out))
'''


@pytest.mark.slow
def test_bad_arrow_input_in_child_process(tmp_path):
    from harmony_np.vocab import START as start

    script = _BAD_ARROW.replace("START_", str(start)).replace("N_VOCAB_", str(N_VOCAB))
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    for key, value in out.items():
        if "offsets" in key:
            assert value.startswith("ValueError:"), (key, value)
    assert "past the end" in out["list<item: uint32> offsets past the end: parse"]
    assert "offsets[0] = -5 is negative" in out["large_list<item: uint32> offsets negative: ragged"]
    assert "must not decrease" in out["list<item: uint32> offsets decreasing: parse"]
    assert out["short values buffer"].startswith(("ArrowInvalid:", "ValueError:"))
    assert out["negative ids"].startswith("OverflowError: completion 0: token id -1 at position 0")
    assert out["huge ids"].startswith("OverflowError: completion 0: token id 1099511627776")
    assert out["ids past the vocabulary"].startswith("no error: ['")  # an error row, as on the list path
    assert out["shares"] is True
    for key in ("mutated: to_messages", "mutated: to_arrow", "mutated: messages_of"):
        assert out[key].startswith("ValueError: span ") and "the table's tokens changed after parsing" in out[key], (key, out[key])
    assert out["changed to other ids"] == "no error: 50"


def test_import_loads_no_pyarrow():
    code = textwrap.dedent('''
        import sys
        import harmony_np as h
        enc = h.load_harmony_encoding(h.HarmonyEncodingName.HARMONY_GPT_OSS)
        convo = h.Conversation.from_messages([h.Message.from_role_and_content(h.Role.USER, "hi")])
        rows = enc.render_batch([convo] * 3, mode="training")
        table = enc.parse_batch([enc.render_conversation(convo)] * 3)
        table.to_messages()
        enc.apply_chat_template([{"role": "user", "content": "hi"}], date="2025-01-01")
        bad = sorted(m for m in sys.modules if m.split(".")[0] in ("pyarrow", "ray", "datasets"))
        print(bad)
    ''')
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"
