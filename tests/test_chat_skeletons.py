"""render_table's skeleton path: rows of plain messages filled from a template rendered once per
shape must be exactly what the template gives each row (chunk for chunk), and every other row
must take the general path."""

from __future__ import annotations

from unittest import mock

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

pa = pytest.importorskip("pyarrow")

import harmony_np.arrow as arrow_module  # noqa: E402
from harmony_np.arrow import _filled_rows, _plain_texts, _without_nulls, render_table  # noqa: E402
from harmony_np.chat_render import Filled, Skeletons  # noqa: E402
from harmony_np.chat_template import render_chunks, template_variables  # noqa: E402

DATE = "2025-08-05"
CLOCK = {"type": "function", "function": {"name": "clock", "description": "The time now."}}
TEXTS = ["hi", "", "a<|b", "<", "|x", "ends <", "ünïcode 中文", "x<|end|>y", "  spaced  ", "\ue000a1.0\ue001", "two\nlines"]
ROLES = ["system", "developer", "user", "assistant", "tool", "critic"]

message = st.fixed_dictionaries(
    {"role": st.sampled_from(ROLES), "content": st.one_of(st.none(), st.sampled_from(TEXTS))},
    optional={"thinking": st.one_of(st.none(), st.sampled_from(TEXTS)), "name": st.one_of(st.none(), st.just("bob"))},
)
PLAIN = [t for t in TEXTS if t and "<|" not in t]
plain_message = st.fixed_dictionaries({"role": st.sampled_from(ROLES), "content": st.sampled_from(PLAIN)},
                                      optional={"thinking": st.sampled_from(PLAIN)})
row = st.one_of(
    st.fixed_dictionaries({"messages": st.one_of(st.none(), st.lists(message, max_size=6)), "tools": st.one_of(st.none(), st.just([CLOCK]))}),
    st.fixed_dictionaries({"messages": st.lists(plain_message, min_size=1, max_size=6), "tools": st.none()}),
)


def _is_plain(messages, tools) -> bool:
    """The skeleton path's rule, written out per row."""
    if messages is None or not messages or tools is not None:
        return False
    for m in messages:
        m = {k: v for k, v in m.items() if v is not None}
        if set(m) - {"role", "content", "thinking"} or "role" not in m or "content" not in m:
            return False
        for key in ("content", "thinking"):
            if key in m and (not m[key] or "<|" in m[key]):
                return False
    return True


def _apply(enc, messages, tools, **kw):
    try:
        out = enc.apply_chat_template(messages, tools=tools, date=DATE, return_dict=True, return_assistant_tokens_mask=True, **kw)
    except Exception as exc:  # noqa: BLE001 - the row's error, compared with the table's
        return type(exc).__name__
    return list(out["input_ids"]), list(out["assistant_masks"])


def _every_shape():
    """A skeleton for a shape of any number of rows (the default asks for SKELETON_MIN_ROWS)."""
    return mock.patch.object(arrow_module, "SKELETON_MIN_ROWS", 1)


def _check(enc, table, rows, *, prompt=False, **options):
    with _every_shape():
        out = render_table(enc, table, date=DATE, errors="collect", add_generation_prompt=prompt, **options)
    ids, masks = out.column("input_ids").to_pylist(), out.column("assistant_masks").to_pylist()
    kinds = out.column("error_type").to_pylist()
    for i, r in enumerate(rows):
        messages = None if r["messages"] is None else [_without_nulls(m) for m in r["messages"]]
        want = _apply(enc, messages, r["tools"], add_generation_prompt=prompt, **options) if messages is not None else "TypeError"
        got = kinds[i] if kinds[i] is not None else (ids[i], masks[i])
        assert got == want, i


def _fills(table, rows, *, prompt=False, **options):
    variables = template_variables(options.get("reasoning_effort"), options.get("model_identity"), None)
    skeletons = Skeletons(prompt, DATE, variables)
    with _every_shape():
        filled = _filled_rows(table.column("messages"), [r["tools"] for r in rows], skeletons)
    for i, r in enumerate(rows):
        if filled[i] is None:
            continue
        messages = [_without_nulls(m) for m in r["messages"]]
        chunks, gen = render_chunks(messages, None, prompt, date=DATE, **variables)
        assert filled[i].__class__ is Filled
        made = filled[i].skeleton.chunks(filled[i].contents, filled[i].thinking, filled[i].start)
        assert made == (chunks, gen), i
    return filled


@settings(max_examples=60, deadline=None)
@given(rows=st.lists(row, min_size=1, max_size=8), prompt=st.booleans(), effort=st.sampled_from([None, "high"]))
def test_skeleton_rows_equal_the_template_and_other_rows_take_the_general_path(enc, rows, prompt, effort):
    table = pa.Table.from_pylist(rows)
    filled = _fills(table, rows, prompt=prompt, reasoning_effort=effort)
    for i, r in enumerate(rows):
        if not _is_plain(r["messages"], r["tools"]):
            assert filled[i] is None, i  # a value the template reads for more than printing
    _check(enc, table, rows, prompt=prompt, reasoning_effort=effort)


def test_plain_rows_of_every_shape_take_the_skeleton_path(enc):
    rows = [
        {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
                      {"role": "assistant", "content": "Hello", "thinking": "greet"}], "tools": None},
        {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello", "thinking": "old"},
                      {"role": "user", "content": "Again"}, {"role": "assistant", "content": "Hello again"}], "tools": None},
        {"messages": [{"role": "developer", "content": "Dev"}, {"role": "critic", "content": "skipped"}, {"role": "user", "content": "x"}], "tools": None},
        {"messages": [{"role": "user", "content": "only"}], "tools": None},
    ] * 3
    table = pa.Table.from_pylist(rows)
    for prompt in (False, True):
        filled = _fills(table, rows, prompt=prompt)
        assert all(f is not None for f in filled)
        _check(enc, table, rows, prompt=prompt)
        _check(enc, table, rows, prompt=prompt, model_identity="You are a test.", reasoning_effort="low")


def test_sliced_chunked_and_large_string_columns(enc):
    rows = [{"messages": [{"role": "user", "content": f"q{i} <"}, {"role": "assistant", "content": f"|a{i}" if i % 3 else f"a{i}",
                          "thinking": None if i % 2 else f"t{i}"}], "tools": None} for i in range(12)]
    table = pa.Table.from_pylist(rows)
    chunked = pa.concat_tables([table.slice(0, 5), table.slice(5)])
    assert chunked.column("messages").num_chunks == 2
    _fills(chunked, rows)
    _check(enc, chunked, rows)
    sliced = table.slice(3, 7)
    _fills(sliced, rows[3:10])
    _check(enc, sliced, rows[3:10])
    large = pa.Table.from_pylist(rows, schema=pa.schema([
        ("messages", pa.large_list(pa.struct([("role", pa.large_string()), ("content", pa.large_string()), ("thinking", pa.large_string())]))),
        ("tools", pa.list_(pa.struct([("type", pa.string())]))),
    ]))
    assert any(f is not None for f in _fills(large, rows))
    _check(enc, large, rows)


def test_an_option_that_looks_like_a_slot_turns_the_skeletons_off(enc):
    rows = [{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}], "tools": None}] * 3
    table = pa.Table.from_pylist(rows)
    identity = "I am \ue000abc.0\ue001 here"
    filled = _fills(table, rows, model_identity=identity)
    assert all(f is None for f in filled)
    _check(enc, table, rows, model_identity=identity)


def test_plain_texts_read_from_the_buffers_equal_a_loop_over_the_values():
    values = ["", "a", "<|", "x<|y", "<", "|", "ab<", "|cd", None, "中<|文", "plain text", "<<||", "| <"]
    for typ in (pa.string(), pa.large_string()):
        array = pa.array(values, typ)
        for start in range(4):
            part = array.slice(start, len(values) - start - 1)
            got = _plain_texts(part)
            texts = part.to_pylist()
            for k, text in enumerate(texts):
                want = text is not None and text != "" and "<|" not in text
                # a "<" ending a text before a "|" starting the next may mark it not plain: that
                # row only takes the general path
                seam = text is not None and text.endswith("<") and k + 1 < len(texts) and (texts[k + 1] or "").startswith("|")
                assert got[k] == want or (seam and not got[k]), (typ, start, k, text)
            assert got.dtype == np.bool_ and got.shape == (len(part),)


def test_only_shapes_of_enough_rows_get_a_skeleton(enc):
    common = {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a", "thinking": "t"}], "tools": None}
    rare = {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}], "tools": None}
    n = arrow_module.SKELETON_MIN_ROWS
    rows = [common] * n + [rare] * (n - 1)
    table = pa.Table.from_pylist(rows)
    variables = template_variables(None, None, None)
    filled = _filled_rows(table.column("messages"), [None] * len(rows), Skeletons(False, DATE, variables))
    assert all(f is not None for f in filled[:n]) and all(f is None for f in filled[n:])
    out = render_table(enc, table, date=DATE)
    assert out.column("input_ids").to_pylist() == [_apply(enc, r["messages"], None)[0] for r in rows]


def test_skeleton_plans_outlive_the_pools_flushes(enc, monkeypatch):
    # a plan's piece ids are made once per batch; past its byte bound the pool encodes what it
    # has and forgets its dedup index: the ids stay valid, every row still its single call
    import harmony_np.chat_render as chat_render

    rows = [{"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": f"q{i % 7}"},
                          {"role": "assistant", "content": f"answer {i}", "thinking": f"t{i % 3}"}], "tools": None} for i in range(40)]
    table = pa.Table.from_pylist(rows)
    assert all(f is not None for f in _fills(table, rows))
    for bound in (1, 2_000):
        monkeypatch.setattr(chat_render, "BATCH_POOL_MAX_BYTES", bound)
        _check(enc, table, rows)
