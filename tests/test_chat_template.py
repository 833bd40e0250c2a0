"""``HarmonyEncoding.apply_chat_template`` against the gpt-oss chat template as transformers renders
it: text, token ids, assistant mask, and the errors (class family and message).

(a) the golden file (``golden/chat_template.json``, made by ``make_chat_golden.py`` from the
    reference): runs everywhere;
(b) the live differential against ``../shared/tools/hf_template.py`` on hypothesis-generated
    cases: skipped where the reference or jinja2 is absent;
(c) batches: every row equals the single call of its conversation.
"""

from __future__ import annotations

import copy
import datetime
import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from chat_cases import (
    DATE, FIXED_CASES, api_kwargs, cases, conversations, load_reference, loose_cases, make_case,
    mask_from_spans, python_value_cases, reference_outcome, settings_strategy,
)
from profiles import example_count

GOLDEN_PATH = Path(__file__).parent / "golden" / "chat_template.json"
GOLDEN = {row["name"]: row for row in json.loads(GOLDEN_PATH.read_text(encoding="utf-8"))["cases"]}
REF = load_reference()
needs_reference = pytest.mark.skipif(REF is None, reason="../shared/tools/hf_template.py or jinja2 is absent")
HYPOTHESIS = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def ChatTemplateError():
    from harmony_np.chat_template import ChatTemplateError

    return ChatTemplateError


def _kind(exc: BaseException, ChatTemplateError) -> str:
    if isinstance(exc, ChatTemplateError):
        return "ChatTemplateError"
    return type(exc).__name__


def api_outcome(enc, case, ChatTemplateError) -> dict:
    """What apply_chat_template gives for ``case``, in :func:`chat_cases.reference_outcome`'s form.
    The text, the ids and the dict form are three calls: they must agree (all raise alike, or
    the ids are the dict's ids), and none may change the caller's messages."""
    before = copy.deepcopy(case)
    kw = api_kwargs(case)
    results = []
    for call in (dict(tokenize=False), dict(tokenize=True), dict(tokenize=True, return_dict=True, return_assistant_tokens_mask=True)):
        try:
            results.append(("ok", enc.apply_chat_template(case["messages"], **call, **kw)))
        except Exception as exc:  # the class family and text are the contract
            results.append(("error", {"kind": _kind(exc, ChatTemplateError), "message": str(exc)}))
    assert repr(case) == repr(before), "apply_chat_template changed its input"  # (repr: NaN == NaN)
    if results[0][0] == "error":
        assert results[1] == results[0] and results[2] == results[0], results
        return {"error": results[0][1]}
    assert all(r[0] == "ok" for r in results), results
    text, ids, d = (r[1] for r in results)
    assert type(text) is str
    assert type(ids) is list and all(type(i) is int for i in ids)
    assert set(d) == {"input_ids", "assistant_masks"} and d["input_ids"] == ids
    mask = d["assistant_masks"]
    assert type(mask) is list and all(type(m) is int and m in (0, 1) for m in mask) and len(mask) == len(ids)
    # without the mask asked for, the dict has the ids only
    assert enc.apply_chat_template(case["messages"], return_dict=True, **kw) == {"input_ids": ids}
    return {"text": text, "ids": ids, "mask": mask}


def golden_outcome(row: dict) -> dict:
    if "error" in row:
        return {"error": row["error"]}
    return {"text": row["text"], "ids": row["ids"], "mask": mask_from_spans(row["mask_spans"], len(row["ids"]))}


# --- (a) golden ------------------------------------------------------------------------------


def test_golden_covers_the_fixed_cases():
    assert set(FIXED_CASES) <= set(GOLDEN), "golden/chat_template.json is stale: run tests/make_chat_golden.py"
    for name, case in FIXED_CASES.items():
        assert GOLDEN[name]["case"] == json.loads(json.dumps(case)), f"{name}: golden input differs, run tests/make_chat_golden.py"


@pytest.mark.parametrize("name", list(GOLDEN))
def test_golden(enc, ChatTemplateError, name):
    row = GOLDEN[name]
    assert api_outcome(enc, row["case"], ChatTemplateError) == golden_outcome(row)


def test_error_class_is_a_value_error(enc, ChatTemplateError):
    assert issubclass(ChatTemplateError, ValueError)
    with pytest.raises(ValueError, match="no previous assistant message with a tool call"):
        enc.apply_chat_template([{"role": "tool", "content": "x"}], date=DATE)


def test_date_as_date_object(enc):
    msgs = [{"role": "user", "content": "x"}]
    assert enc.apply_chat_template(msgs, tokenize=False, date=datetime.date(2024, 2, 29)) == enc.apply_chat_template(msgs, tokenize=False, date="2024-02-29")


def test_date_none_is_today(enc):
    msgs = [{"role": "user", "content": "What day is it?"}]
    days = {datetime.datetime.now().strftime("%Y-%m-%d")}
    text = enc.apply_chat_template(msgs, tokenize=False)
    days.add(datetime.datetime.now().strftime("%Y-%m-%d"))  # a run across midnight
    assert any(text == enc.apply_chat_template(msgs, tokenize=False, date=day) for day in days)
    assert any(f"Current date: {day}\n" in text for day in days)


# --- (b) live differential -------------------------------------------------------------------


@needs_reference
def test_golden_is_current(enc):
    """The golden file is what the reference gives today (else regenerate it)."""
    stale = [name for name, row in GOLDEN.items() if reference_outcome(REF, enc, row["case"]) != golden_outcome(row)]
    assert not stale, f"golden/chat_template.json differs from the reference for {stale}: run tests/make_chat_golden.py"


def plain_template_text(messages, tools, add_generation_prompt, date, options) -> str:
    """The text of the plain template (without generation blocks), as transformers renders it;
    its date is given as the template's ``strftime_now`` variable."""
    return REF.PLAIN.render(messages=messages, tools=tools, add_generation_prompt=add_generation_prompt, strftime_now=lambda fmt: date, **options)


def check_live(enc, ChatTemplateError, case, in_hypothesis=True):
    want = reference_outcome(REF, enc, case)
    if in_hypothesis:
        event("raises" if "error" in want else "renders")
    if "text" in want:
        # the plain template (what transformers renders) gives the training template's text
        assert plain_template_text(copy.deepcopy(case["messages"]), copy.deepcopy(case["tools"]), case["add_generation_prompt"], case["date"], case["options"]) == want["text"]
    got = api_outcome(enc, case, ChatTemplateError)
    assert got == want


@needs_reference
@settings(max_examples=example_count(2), **HYPOTHESIS)
@given(case=cases(raising=False))
def test_live_differential(enc, ChatTemplateError, case):
    check_live(enc, ChatTemplateError, case)


@needs_reference
@settings(max_examples=example_count(1), **HYPOTHESIS)
@given(case=cases(raising=True))
def test_live_differential_with_errors(enc, ChatTemplateError, case):
    check_live(enc, ChatTemplateError, case)


@needs_reference
@settings(max_examples=example_count(1), **HYPOTHESIS)
@given(case=loose_cases())
def test_live_differential_loose_input(enc, ChatTemplateError, case):
    """Any JSON value where the template reads a field: the same text or the same error."""
    check_live(enc, ChatTemplateError, case)


@needs_reference
@pytest.mark.parametrize("name", list(python_value_cases()))
def test_live_python_values(enc, ChatTemplateError, name):
    """Values that JSON cannot hold, as jinja reads them."""
    check_live(enc, ChatTemplateError, python_value_cases()[name], in_hypothesis=False)


@needs_reference
def test_live_generation_marks_in_text(enc):
    """U+0001 and U+0002 in content (which the reference's mask uses as marks): the text is the
    plain template's, the ids its encoding, the mask the turns' tokens."""
    msgs = [{"role": "user", "content": "a\x01b\x02c"}, {"role": "assistant", "content": "\x02x\x01", "thinking": "\x01"}]
    text = plain_template_text(msgs, None, False, DATE, {})
    assert enc.apply_chat_template(msgs, tokenize=False, date=DATE) == text
    d = enc.apply_chat_template(msgs, return_dict=True, return_assistant_tokens_mask=True, date=DATE)
    assert d["input_ids"] == enc.encode(text, allowed_special="all")
    user_end = text.index("<|end|>", text.index("<|start|>user")) + len("<|end|>")
    prompt_len = len(enc.encode(text[:user_end], allowed_special="all"))
    assert d["assistant_masks"] == [0] * prompt_len + [1] * (len(d["input_ids"]) - prompt_len)


# --- (c) batches -----------------------------------------------------------------------------


def _single_or_error(enc, messages, kw, ChatTemplateError):
    try:
        return ("ok", enc.apply_chat_template(messages, return_dict=True, return_assistant_tokens_mask=True, **kw))
    except Exception as exc:
        return ("error", (_kind(exc, ChatTemplateError), str(exc)))


def check_batch(enc, ChatTemplateError, batch, kw):
    """Every form of the batch call against the single calls of its conversations."""
    singles = [_single_or_error(enc, m, kw, ChatTemplateError) for m in batch]
    bad = [i for i, s in enumerate(singles) if s[0] == "error"]
    if bad:
        # the first failing conversation's error, said of that conversation
        kind, message = singles[bad[0]][1]
        for call in (dict(tokenize=False), dict(tokenize=True), dict(return_dict=True, return_assistant_tokens_mask=True)):
            with pytest.raises(Exception) as info:
                enc.apply_chat_template(batch, **call, **kw)
            assert _kind(info.value, ChatTemplateError) == kind
            assert str(info.value).endswith(message) and f"conversation {bad[0]}" in str(info.value), (str(info.value), message)
        return
    ids = [s[1]["input_ids"] for s in singles]
    masks = [s[1]["assistant_masks"] for s in singles]
    assert enc.apply_chat_template(batch, tokenize=False, **kw) == [enc.apply_chat_template(m, tokenize=False, **kw) for m in batch]

    rows = enc.apply_chat_template(batch, **kw)
    assert type(rows).__name__ == "RaggedTokens" and len(rows) == len(batch)
    assert rows.tokens.dtype == np.uint32 and rows.loss_mask is None
    assert rows.to_list() == ids

    masked = enc.apply_chat_template(batch, return_assistant_tokens_mask=True, **kw)
    assert masked.to_list() == ids
    assert [masked.row_mask(i).tolist() for i in range(len(batch))] == masks

    d = enc.apply_chat_template(batch, return_dict=True, return_assistant_tokens_mask=True, **kw)
    assert set(d) == {"input_ids", "assistant_masks"}
    assert d["input_ids"].to_list() == ids and d["assistant_masks"].to_list() == masks
    assert d["assistant_masks"].offsets.tolist() == d["input_ids"].offsets.tolist()
    only_ids = enc.apply_chat_template(batch, return_dict=True, **kw)
    assert set(only_ids) == {"input_ids"} and only_ids["input_ids"].to_list() == ids
    # a tuple of conversations is a batch too (transformers' rule)
    assert enc.apply_chat_template(tuple(batch), **kw).to_list() == ids


def _plain_fixed(name: str) -> bool:
    case = FIXED_CASES[name]
    return "error" not in GOLDEN[name] and case["tools"] is None and not case["options"] and not case["add_generation_prompt"] and case["date"] == DATE


def test_batch_fixed_cases(enc, ChatTemplateError):
    """Rows of many lengths, the same conversation twice (one object, and an equal copy), and the
    one-row batch."""
    names = [n for n in FIXED_CASES if _plain_fixed(n)]
    assert len(names) > 15
    batch = [FIXED_CASES[n]["messages"] for n in names]
    batch += [batch[0], copy.deepcopy(batch[1]), batch[1]]
    kw = dict(date=DATE)
    check_batch(enc, ChatTemplateError, batch, kw)
    check_batch(enc, ChatTemplateError, batch[:1], kw)


def test_batch_shared_settings(enc, ChatTemplateError):
    """Tools, builtin tools and options apply to every row."""
    case = FIXED_CASES["builtin_both_and_functions"]
    kw = api_kwargs(case)
    batch = [case["messages"], FIXED_CASES["tool_chain"]["messages"], FIXED_CASES["user_only"]["messages"], case["messages"]]
    check_batch(enc, ChatTemplateError, batch, kw)
    check_batch(enc, ChatTemplateError, batch, dict(kw, add_generation_prompt=True))


def test_batch_error_names_the_row(enc, ChatTemplateError):
    good = FIXED_CASES["multi_turn"]["messages"]
    for name in ("raise_tool_first", "error_user_content_none", "error_user_no_content"):
        check_batch(enc, ChatTemplateError, [good, FIXED_CASES[name]["messages"], good], dict(date=DATE))


@settings(max_examples=example_count(0.5), **HYPOTHESIS)
@given(settings_=settings_strategy(), convs=st.lists(conversations(raising=True), min_size=1, max_size=4), repeat=st.booleans())
def test_batch_rows_equal_single_calls(enc, ChatTemplateError, settings_, convs, repeat):
    tools, add_generation_prompt, options, date = settings_
    kw = api_kwargs(make_case([], tools=tools, add_generation_prompt=add_generation_prompt, date=date, **options))
    if repeat:  # equal rows: the same list again and an equal copy
        convs = convs + [convs[0], copy.deepcopy(convs[-1])]
    check_batch(enc, ChatTemplateError, convs, kw)


def test_batch_lone_surrogate(enc, ChatTemplateError):
    """A lone surrogate (which no UTF-8 text holds) is encoded as the single call encodes it, also
    among other rows and repeated."""
    odd = [{"role": "user", "content": "a\ud800b"}, {"role": "assistant", "content": "\udfff", "thinking": "x\ud83d"}]
    good = FIXED_CASES["multi_turn"]["messages"]
    check_batch(enc, ChatTemplateError, [good, odd, good, odd], dict(date=DATE))


def test_batch_pool_flushes(enc, ChatTemplateError, monkeypatch):
    """Past its byte bound the batch encodes what it has and starts its dedup index over: rows
    stay equal to single calls with the bound at one row (every row flushes) and at a few."""
    import harmony_np.chat_render as chat_render

    batch = [FIXED_CASES[n]["messages"] for n in FIXED_CASES if _plain_fixed(n)]
    batch = batch + batch[::-1]
    for bound in (1, 20_000):
        monkeypatch.setattr(chat_render, "BATCH_POOL_MAX_BYTES", bound)
        check_batch(enc, ChatTemplateError, batch, dict(date=DATE))


def test_rows_with_their_own_tools_equal_single_calls(enc):
    # render_rows (the CLI's path for dataset rows): each row its own tools, more distinct tools
    # objects than the batch remembers, some rows sharing one object; every row is its single call
    from harmony_np.chat_render import render_rows

    shared = [{"type": "function", "function": {"name": "shared", "description": "d", "parameters": {"type": "object", "properties": {"x": {"type": "string"}}}}}]
    rows = []
    for i in range(200):
        own = [{"type": "function", "function": {"name": f"tool_{i % 97}", "description": f"d{i}", "parameters": {"type": "object", "properties": {"n": {"type": "integer", "default": i}}}}}]
        tools = shared if i % 3 == 0 else (None if i % 7 == 0 else own)
        rows.append(([{"role": "user", "content": f"question {i}"}, {"role": "assistant", "thinking": "t", "content": f"answer {i}"}], tools))
    rb = render_rows(enc, rows, date="2025-08-05")
    for i, (messages, tools) in enumerate(rows):
        want = enc.apply_chat_template(messages, tools=tools, return_dict=True, return_assistant_tokens_mask=True, date="2025-08-05")
        assert rb[i].tolist() == want["input_ids"] and rb.row_mask(i).tolist() == want["assistant_masks"], i
