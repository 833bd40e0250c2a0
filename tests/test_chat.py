"""harmony_np.chat: chat messages and Responses items to harmony conversations and back.

Checked: the mapping on hand-made examples; harmony_np and openai_harmony render every converted
conversation alike; round trips (chat -> harmony -> tokens -> parsed -> chat, and a parsed
completion -> chat -> harmony gives the parsed messages back), the same for Responses items;
``MessageTable.to_chat`` against the single call; the errors, each naming where.
"""

from __future__ import annotations

import doctest
import json
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import harmony_np.chat as chat
from harmony_np import Conversation, Message, RenderConversationConfig, Role
from harmony_np.chat import CONSTRAIN_JSON, from_chat, from_responses, to_chat, to_responses

from profiles import example_count


# ---------------------------------------------------------------------------
# Strategies
# ---------------------------------------------------------------------------

names = st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True)
texts = st.text(max_size=24)
# text that encode(allowed_special="all") reads as plain text, for completions written as text
plain = st.text(st.characters(blacklist_characters="<", blacklist_categories=("Cs",)), max_size=24)
argument_dicts = st.dictionaries(names, st.one_of(st.integers(-9, 99), texts, st.booleans()), max_size=3)
arguments = st.one_of(argument_dicts, argument_dicts.map(json.dumps))
# arguments written into a completion's text: their strings plain too (an argument holding
# "<|end|>" would be encoded as the special token, and the completion would not parse)
plain_argument_dicts = st.dictionaries(names, st.one_of(st.integers(-9, 99), plain, st.booleans()), max_size=3)


@st.composite
def contents(draw, text=texts):
    """A content field: a string, or text parts (the value it stands for)."""
    parts = draw(st.lists(text, min_size=1, max_size=3))
    if draw(st.booleans()):
        return parts[0], parts[0]
    return [{"type": "text", "text": p} for p in parts], "".join(parts)


@st.composite
def function_tools(draw):
    out = []
    for name in draw(st.lists(names, max_size=3, unique=True)):
        fn = {"name": name}
        if draw(st.booleans()):
            fn["description"] = draw(texts)
        if draw(st.booleans()):
            props = draw(st.dictionaries(names, st.sampled_from(["string", "number", "boolean"]), max_size=3))
            fn["parameters"] = {"type": "object", "properties": {k: {"type": v} for k, v in props.items()}}
        out.append({"type": "function", "function": fn})
    return out


def _arguments_text(args):
    return args if isinstance(args, str) else json.dumps(args, ensure_ascii=False)


@st.composite
def chat_conversations(draw):
    """``(messages, expected tool authors)``: a system or developer message perhaps, turns of a
    user message, rounds of tool calls and their results, a final answer; ends anywhere after
    the first user message. Call ids are given for some rounds (unique) and left out of others
    (the results then answer the calls in order)."""
    msgs = []
    authors = []  # the function each tool message answers, in order
    if draw(st.booleans()):
        msgs.append({"role": draw(st.sampled_from(["system", "developer"])), "content": draw(contents())[0]})
    next_id = 0
    for _turn in range(draw(st.integers(1, 3))):
        msgs.append({"role": "user", "content": draw(contents())[0]})
        for _round in range(draw(st.integers(0, 2))):
            n = draw(st.integers(1, 3))
            with_ids = draw(st.booleans())
            calls = []
            for _ in range(n):
                call = {"type": "function", "function": {"name": draw(names), "arguments": draw(arguments)}}
                if with_ids:
                    call["id"] = f"id{next_id}"
                    next_id += 1
                calls.append(call)
            a = {"role": "assistant", "tool_calls": calls}
            if draw(st.booleans()):
                a[draw(st.sampled_from(chat._REASONING_KEYS))] = draw(texts)
            if draw(st.booleans()):
                a["content"] = draw(st.one_of(st.none(), texts))
            msgs.append(a)
            for call in calls:
                result = {"role": "tool", "content": draw(contents())[0]}
                if with_ids:
                    result["tool_call_id"] = call["id"]
                msgs.append(result)
                authors.append("functions." + call["function"]["name"])
        final = {"role": "assistant", "content": draw(contents())[0]}
        if draw(st.booleans()):
            final[draw(st.sampled_from(chat._REASONING_KEYS))] = draw(texts)
        msgs.append(final)
    cut = draw(st.integers(1, len(msgs)))
    kept = msgs[:cut]
    n_tool = sum(m["role"] == "tool" for m in kept)
    return kept, authors[:n_tool]


def _content_text(value):
    if value is None or isinstance(value, str):
        return value
    return "".join(p["text"] for p in value)


def _reasoning_of(msg):
    values = [msg[k] for k in chat._REASONING_KEYS if msg.get(k)]
    return values[0] if values else None


def expected_chat(msg):
    """What to_chat gives back for the assistant chat message ``msg`` once rendered and parsed."""
    text = _content_text(msg.get("content"))
    calls = msg.get("tool_calls") or []
    if calls:
        text = text or None  # an empty preamble is no message
    return {
        "role": "assistant",
        "content": text,
        "reasoning_content": _reasoning_of(msg) or None,
        "tool_calls": [
            {"id": f"call_{k}", "type": "function",
             "function": {"name": c["function"]["name"], "arguments": _arguments_text(c["function"]["arguments"])}}
            for k, c in enumerate(calls)
        ],
    }


@st.composite
def completions(draw):
    """A completion as the model writes it: ``(text, parts)``, parts ``(kind, text, name)``.
    Either reasoning perhaps, then a final answer; or reasoning perhaps, a preamble perhaps and
    one or more calls. At most one message of each visible kind, so that to_chat (which joins
    them) loses nothing."""
    parts = []
    if draw(st.booleans()):
        parts.append(("reasoning", draw(plain.filter(bool)), None))  # empty reasoning is no message
    if draw(st.booleans()):
        parts.append(("final", draw(plain), None))
    else:
        if draw(st.booleans()):
            parts.append(("commentary", draw(plain.filter(bool)), None))  # nor is an empty preamble
        for _ in range(draw(st.integers(1, 3))):
            parts.append(("call", json.dumps(draw(plain_argument_dicts)), draw(names)))
    return completion_text(parts), parts


def completion_text(parts):
    pieces = []
    for k, (kind, text, name) in enumerate(parts):
        head = "" if k == 0 else "<|start|>assistant"
        if kind == "reasoning":
            pieces.append(f"{head}<|channel|>analysis<|message|>{text}<|end|>")
        elif kind == "commentary":
            pieces.append(f"{head}<|channel|>commentary<|message|>{text}<|end|>")
        elif kind == "call":
            pieces.append(f"{head}<|channel|>commentary to=functions.{name} <|constrain|>json<|message|>{text}<|call|>")
        else:
            pieces.append(f"{head}<|channel|>final<|message|>{text}<|return|>")
    return "".join(pieces)


def parse_text(enc, text):
    return enc.parse_messages_from_completion_tokens(enc.encode(text, allowed_special="all"), Role.ASSISTANT)


def oracle_conversation(oracle, conv):
    return oracle.Conversation.from_json(conv.to_json())


# ---------------------------------------------------------------------------
# The mapping, on examples
# ---------------------------------------------------------------------------


def fields(conv):
    return [(m.author.role.value, m.author.name, m.channel, m.recipient, m.content_type) for m in conv.messages]


def test_docstring_examples_hold():
    result = doctest.testmod(chat)
    assert result.attempted >= 10 and result.failed == 0


def test_a_tool_round_maps_as_documented():
    conv = from_chat(
        [
            {"role": "developer", "content": [{"type": "text", "text": "Be "}, {"type": "text", "text": "brief."}]},
            {"role": "user", "content": "Weather?"},
            {"role": "assistant", "content": "Checking.", "reasoning": "Use the tool.", "tool_calls": [
                {"id": "a", "type": "function", "function": {"name": "weather", "arguments": {"city": "Zürich"}}},
                {"id": "b", "type": "function", "function": {"name": "time", "arguments": "{}"}},
            ]},
            {"role": "tool", "tool_call_id": "b", "content": "noon"},
            {"role": "tool", "tool_call_id": "a", "content": [{"type": "text", "text": "sunny"}]},
        ],
        tools=[{"type": "function", "function": {"name": "weather", "description": "Now", "parameters": {"type": "object"}}}],
        reasoning_effort="HIGH",
        model_identity="You are a test.",
        conversation_start_date="2025-01-02",
    )
    assert fields(conv) == [
        ("system", None, None, None, None),
        ("developer", None, None, None, None),
        ("user", None, None, None, None),
        ("assistant", None, "analysis", None, None),
        ("assistant", None, "commentary", None, None),
        ("assistant", None, "commentary", "functions.weather", CONSTRAIN_JSON),
        ("assistant", None, "commentary", "functions.time", CONSTRAIN_JSON),
        ("tool", "functions.time", "commentary", "assistant", None),
        ("tool", "functions.weather", "commentary", "assistant", None),
    ]
    system, developer = conv.messages[0].content[0], conv.messages[1].content[0]
    assert (system.model_identity, system.reasoning_effort.value, system.conversation_start_date) == ("You are a test.", "High", "2025-01-02")
    assert developer.instructions == "Be brief."
    assert [t.name for t in developer.tools["functions"].tools] == ["weather"]
    texts = [m.content[0].text for m in conv.messages[3:]]
    assert texts == ["Use the tool.", "Checking.", '{"city": "Zürich"}', "{}", "noon", "sunny"]


def test_defaults_are_openai_harmonys(oracle):
    conv = from_chat([{"role": "user", "content": "hi"}])
    assert len(conv.messages) == 2  # no instructions, no tools: no developer message
    want = oracle.SystemContent.new().to_dict()
    assert conv.messages[0].content[0].to_dict() == want


def test_later_system_messages_and_builtin_tools():
    conv = from_chat(
        [{"role": "user", "content": "a"}, {"role": "system", "content": "b"}, {"role": "developer", "content": "c"}],
        builtin_tools=["python", "browser"],
    )
    assert fields(conv)[1:] == [("user", None, None, None, None), ("system", None, None, None, None), ("developer", None, None, None, None)]
    assert list(conv.messages[0].content[0].tools) == ["browser", "python"]


def test_tool_results_without_ids():
    base = [{"role": "user", "content": "q"}]
    two = {"role": "assistant", "tool_calls": [
        {"function": {"name": "f", "arguments": "{}"}}, {"function": {"name": "g", "arguments": "{}"}}]}
    # in order of the calls; once all are answered, the last call (the template's rule)
    conv = from_chat(base + [two, {"role": "tool", "content": "1"}, {"role": "tool", "content": "2"}, {"role": "tool", "content": "3"}])
    assert [m.author.name for m in conv.messages[-3:]] == ["functions.f", "functions.g", "functions.g"]
    # a name answers that call, and the next unnamed result the one left
    conv = from_chat(base + [two, {"role": "tool", "name": "g", "content": "1"}, {"role": "tool", "content": "2"}])
    assert [m.author.name for m in conv.messages[-2:]] == ["functions.g", "functions.f"]
    # a name of no call is taken as it is (a result of a call that the data leaves out)
    conv = from_chat(base + [{"role": "tool", "name": "h", "content": "x"}])
    assert conv.messages[-1].author.name == "functions.h"


def test_a_reused_call_id_answers_the_latest_call():
    turn = lambda name: {"role": "assistant", "tool_calls": [{"id": "call_0", "function": {"name": name, "arguments": "{}"}}]}
    conv = from_chat([
        {"role": "user", "content": "q"}, turn("f"), {"role": "tool", "tool_call_id": "call_0", "content": "1"},
        {"role": "assistant", "content": "a"}, {"role": "user", "content": "q2"},
        turn("g"), {"role": "tool", "tool_call_id": "call_0", "content": "2"},
    ])
    assert [m.author.name for m in conv.messages if m.author.role is Role.TOOL] == ["functions.f", "functions.g"]


def test_answered_reasoning_is_dropped():
    msgs = [
        {"role": "user", "content": "q1"},
        {"role": "assistant", "reasoning_content": "r1", "tool_calls": [{"id": "x", "function": {"name": "f", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "x", "content": "out"},
        {"role": "assistant", "reasoning_content": "r2", "content": "a1"},
        {"role": "user", "content": "q2"},
        {"role": "assistant", "reasoning_content": "r3", "tool_calls": [{"id": "y", "function": {"name": "f", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "y", "content": "out"},
    ]

    def analysis(conv):
        return [m.content[0].text for m in conv.messages if m.channel == "analysis"]

    # inference: the answered turn's reasoning goes, the open turn's stays
    assert analysis(from_chat(msgs)) == ["r3"]
    assert analysis(from_chat(msgs, drop_reasoning=False)) == ["r1", "r2", "r3"]
    # ending in the answer: that step's reasoning stays (a training example), earlier steps' go
    done = msgs + [{"role": "assistant", "reasoning_content": "r4", "content": "a2"}]
    assert analysis(from_chat(done)) == ["r4"]


def test_reasoning_keys_agree_or_fail():
    conv = from_chat([{"role": "user", "content": "q"}, {"role": "assistant", "thinking": "t", "reasoning_content": "t", "content": "a"}])
    assert [m.channel for m in conv.messages[2:]] == ["analysis", "final"]
    with pytest.raises(ValueError, match=r"messages\[1\]: 'reasoning' and 'thinking' differ"):
        from_chat([{"role": "user", "content": "q"}, {"role": "assistant", "reasoning": "a", "thinking": "b", "content": "a"}])


def test_tool_call_content_type_is_chosen():
    msgs = [{"role": "user", "content": "q"}, {"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": "{}"}}]}]
    assert from_chat(msgs, tool_call_content_type="json").messages[-1].content_type == "json"
    assert from_chat(msgs, tool_call_content_type=None).messages[-1].content_type is None


def test_to_chat_joins_visible_text_and_numbers_calls(enc):
    parsed = parse_text(enc, completion_text([
        ("reasoning", "r1", None), ("commentary", "p", None), ("reasoning", "r2", None),
        ("call", '{"a":1}', "f"), ("call", "{}", "g"),
    ]))
    got = to_chat(parsed, call_id_prefix="tc-")
    assert got["content"] == "p" and got["reasoning_content"] == "r1\nr2"
    assert [(c["id"], c["function"]["name"], c["function"]["arguments"]) for c in got["tool_calls"]] == [
        ("tc-0", "f", '{"a":1}'), ("tc-1", "g", "{}")]
    assert to_chat([]) == {"role": "assistant", "content": None, "reasoning_content": None, "tool_calls": []}
    # a message without a channel is an answer
    assert to_chat([Message.from_role_and_content(Role.ASSISTANT, "x")])["content"] == "x"


# ---------------------------------------------------------------------------
# Against the oracle, and round trips
# ---------------------------------------------------------------------------


@settings(max_examples=example_count(1), deadline=None)
@given(chat_conversations(), function_tools(), st.sampled_from([None, "low", "medium", "high"]), st.booleans())
def test_from_chat_renders_as_openai_harmony(enc, oenc, oracle, case, tools, effort, drop):
    messages, authors = case
    conv = from_chat(messages, tools=tools, reasoning_effort=effort, conversation_start_date="2025-06-01", drop_reasoning=drop)
    assert [m.author.name for m in conv.messages if m.author.role is Role.TOOL] == authors
    ours = enc.render_conversation_for_completion(conv, Role.ASSISTANT)
    theirs = oenc.render_conversation_for_completion(oracle_conversation(oracle, conv), oracle.Role.ASSISTANT)
    assert ours == theirs
    if messages[-1]["role"] == "assistant":
        config = RenderConversationConfig(auto_drop_analysis=False)
        ours = enc.render_conversation_for_training(conv, config)
        theirs = oenc.render_conversation_for_training(oracle_conversation(oracle, conv), oracle.RenderConversationConfig(auto_drop_analysis=False))
        assert ours == theirs


@settings(max_examples=example_count(1), deadline=None)
@given(chat_conversations())
def test_chat_render_parse_to_chat_gives_the_assistant_turn_back(enc, case):
    messages, _ = case
    if messages[-1]["role"] != "assistant":
        messages = messages + [{"role": "assistant", "content": "done"}]
    full = from_chat(messages, drop_reasoning=False)
    prefix = from_chat(messages[:-1], drop_reasoning=False)
    assert full.messages[: len(prefix.messages)] == prefix.messages
    tail = full.messages[len(prefix.messages):]
    tokens = [t for m in tail for t in enc.render(m)]
    parsed = enc.parse_messages_from_completion_tokens(tokens, None)
    assert parsed == tail
    assert to_chat(parsed) == expected_chat(messages[-1])


@settings(max_examples=example_count(1), deadline=None)
@given(completions())
def test_a_parsed_completion_to_chat_and_back_is_what_was_parsed(enc, case):
    text, parts = case
    parsed = parse_text(enc, text)
    assert [m.channel for m in parsed] == ["analysis" if k == "reasoning" else "commentary" if k in ("call", "commentary") else "final" for k, _, _ in parts]
    reply = to_chat(parsed)
    conv = from_chat([{"role": "user", "content": "q"}, reply])
    assert conv.messages[2:] == parsed
    # the next request: the reply, its tool results, answered by the ids to_chat gave
    results = [{"role": "tool", "tool_call_id": c["id"], "content": "r"} for c in reply["tool_calls"]]
    conv = from_chat([{"role": "user", "content": "q"}, reply, *results])
    assert [m.author.name for m in conv.messages if m.author.role is Role.TOOL] == ["functions." + n for k, _, n in parts if k == "call"]


# ---------------------------------------------------------------------------
# Responses API
# ---------------------------------------------------------------------------


def test_responses_items_map_as_documented():
    conv = from_responses(
        [
            {"role": "user", "content": [{"type": "input_text", "text": "q"}]},
            {"type": "reasoning", "summary": [{"type": "summary_text", "text": "s"}],
             "content": [{"type": "reasoning_text", "text": "r1"}, {"type": "reasoning_text", "text": "r2"}]},
            {"type": "message", "role": "assistant", "phase": "commentary", "content": [{"type": "output_text", "text": "p"}]},
            {"type": "function_call", "call_id": "c", "name": "f", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "c", "output": "out"},
        ],
        instructions="inst",
        tools=[{"type": "function", "name": "f", "parameters": {"type": "object"}}, {"type": "code_interpreter"}],
    )
    assert fields(conv)[2:] == [
        ("user", None, None, None, None),
        ("assistant", None, "analysis", None, None),
        ("assistant", None, "analysis", None, None),
        ("assistant", None, "commentary", None, None),
        ("assistant", None, "commentary", "functions.f", CONSTRAIN_JSON),
        ("tool", "functions.f", "commentary", "assistant", None),
    ]
    assert conv.messages[1].content[0].instructions == "inst"
    assert list(conv.messages[0].content[0].tools) == ["python"]
    # a string input is one user message; a first system item gives the instructions
    assert fields(from_responses("hi"))[1:] == [("user", None, None, None, None)]
    conv = from_responses([{"role": "system", "content": "sys"}, {"role": "assistant", "content": "a"}])
    assert conv.messages[1].content[0].instructions == "sys"
    assert fields(conv)[2:] == [("assistant", None, "final", None, None)]


@st.composite
def response_outputs(draw):
    """Parts of a completion in any order of reasoning, preambles and calls, perhaps ending in an
    answer (what to_responses keeps apart)."""
    parts = []
    for _ in range(draw(st.integers(0, 4))):
        kind = draw(st.sampled_from(["reasoning", "commentary", "call"]))
        parts.append((kind, json.dumps(draw(argument_dicts)), draw(names)) if kind == "call" else (kind, draw(plain), None))
    if not parts or draw(st.booleans()):
        parts.append(("final", draw(plain), None))
    return parts


@settings(max_examples=example_count(1), deadline=None)
@given(response_outputs())
def test_responses_round_trip(enc, oenc, oracle, parts):
    parsed = parse_text(enc, completion_text(parts))
    items = to_responses(parsed)
    assert [i["type"] for i in items] == [{"reasoning": "reasoning", "call": "function_call"}.get(k, "message") for k, _, _ in parts]
    user = {"type": "message", "role": "user", "content": "q"}
    conv = from_responses([user, *items], drop_reasoning=False)
    assert conv.messages[2:] == parsed
    # the next request answers the calls by the call ids to_responses gave
    outputs = [{"type": "function_call_output", "call_id": i["call_id"], "output": "r"} for i in items if i["type"] == "function_call"]
    conv = from_responses([user, *items, *outputs], tools=[{"type": "function", "name": "f"}])
    assert [m.author.name for m in conv.messages if m.author.role is Role.TOOL] == ["functions." + n for k, _, n in parts if k == "call"]
    ours = enc.render_conversation_for_completion(conv, Role.ASSISTANT)
    assert ours == oenc.render_conversation_for_completion(oracle_conversation(oracle, conv), oracle.Role.ASSISTANT)
    # items -> harmony -> tokens -> parsed -> items: the same items
    tail = from_responses(items, drop_reasoning=False).messages[1:]
    tokens = [t for m in tail for t in enc.render(m)]
    assert to_responses(enc.parse_messages_from_completion_tokens(tokens, None)) == items


def test_to_responses_items():
    parsed = [
        Message.from_role_and_content(Role.ASSISTANT, "r").with_channel("analysis"),
        Message.from_role_and_content(Role.ASSISTANT, "p").with_channel("commentary"),
        Message.from_role_and_content(Role.ASSISTANT, "{}").with_channel("commentary").with_recipient("functions.f"),
        Message.from_role_and_content(Role.ASSISTANT, "a").with_channel("final"),
    ]
    assert to_responses(parsed) == [
        {"type": "reasoning", "id": "rs_0", "summary": [], "content": [{"type": "reasoning_text", "text": "r"}]},
        {"type": "message", "id": "msg_0", "role": "assistant", "status": "completed",
         "content": [{"type": "output_text", "text": "p", "annotations": []}], "phase": "commentary"},
        {"type": "function_call", "id": "fc_0", "call_id": "call_0", "name": "f", "arguments": "{}", "status": "completed"},
        {"type": "message", "id": "msg_1", "role": "assistant", "status": "completed",
         "content": [{"type": "output_text", "text": "a", "annotations": []}], "phase": "final_answer"},
    ]


# ---------------------------------------------------------------------------
# Batches
# ---------------------------------------------------------------------------


@settings(max_examples=example_count(0.5), deadline=None)
@given(st.lists(completions(), min_size=1, max_size=6), st.data())
def test_message_table_to_chat_equals_single_calls(enc, cases, data):
    comps = [enc.encode(text, allowed_special="all") for text, _ in cases]
    bad = data.draw(st.integers(0, len(comps)))
    comps.insert(bad, enc.encode("<|channel|>final<|message|>x<|end|><|end|>", allowed_special="all"))  # refused
    table = enc.parse_batch(comps, role=Role.ASSISTANT, errors="collect")
    rows = table.to_chat()
    assert len(rows) == len(comps)
    for b, row in enumerate(rows):
        if b == bad:
            assert table.errors[b] is not None and row is None
        else:
            assert row == to_chat(table.messages_of(b)) == to_chat(enc.parse_messages_from_completion_tokens(comps[b], Role.ASSISTANT))


def test_message_table_to_chat_names_the_completion(enc):
    comps = [
        enc.encode("<|channel|>final<|message|>ok<|return|>", allowed_special="all"),
        enc.encode("<|channel|>analysis to=browser.search<|message|>{}<|call|>", allowed_special="all"),
    ]
    table = enc.parse_batch(comps, role=Role.ASSISTANT)
    with pytest.raises(ValueError, match=r"^completion 1: messages\[0\]: recipient 'browser.search' is not a function"):
        table.to_chat()


@pytest.mark.slow
def test_importing_harmony_np_does_not_import_chat():
    code = (
        "import sys, harmony_np\n"
        "enc = harmony_np.load_harmony_encoding('HarmonyGptOss')\n"
        "table = enc.parse_batch([[200005, 17196, 200008, 19, 200002]], role=harmony_np.Role.ASSISTANT)\n"
        "assert 'harmony_np.chat' not in sys.modules, 'chat was imported'\n"
        "assert table.to_chat()[0]['content'] == '4' and 'harmony_np.chat' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# ---------------------------------------------------------------------------
# Errors, each naming where
# ---------------------------------------------------------------------------

U = {"role": "user", "content": "q"}
CALL = {"role": "assistant", "tool_calls": [{"id": "a", "type": "function", "function": {"name": "f", "arguments": "{}"}}]}

CHAT_ERRORS = [
    ([U, {"role": "tool", "tool_call_id": "x", "content": "r"}], {}, ValueError,
     r"^messages\[1\]: tool message with tool_call_id 'x' matches no earlier tool call$"),
    ([U, {"role": "tool", "content": "r"}], {}, ValueError, r"^messages\[1\]: tool message without tool_call_id follows no tool call$"),
    ([U, CALL, {"role": "tool", "tool_call_id": "a", "name": "g", "content": "r"}], {}, ValueError,
     r"^messages\[2\]: name 'g' differs from 'f', the function of tool call 'a'$"),
    ([U, {"role": "function", "content": "r"}], {}, ValueError, r"^messages\[1\]\.role: expected one of 'system', "),
    ([U, {"content": "r"}], {}, ValueError, r"^messages\[1\]: a message needs a 'role'$"),
    (["hi"], {}, TypeError, r"^messages\[0\]: expected a message \(a dict\), got str$"),
    ("hi", {}, TypeError, r"^messages: expected a list of messages, got str$"),
    ([{"role": "user"}], {}, ValueError, r"^messages\[0\]: a user message needs 'content'$"),
    ([{"role": "user", "content": None}], {}, TypeError, r"^messages\[0\]\.content: expected a string or a list of content parts, got None$"),
    ([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}], {}, ValueError,
     r"^messages\[0\]\.content\[0\]: a content part of type 'image_url' has no harmony form"),
    ([{"role": "user", "content": [{"type": "text", "text": 3}]}], {}, TypeError, r"^messages\[0\]\.content\[0\]\.text: expected a string, got int$"),
    ([U, {"role": "assistant"}], {}, ValueError, r"^messages\[1\]: an assistant message needs content, reasoning or tool calls$"),
    ([U, {"role": "assistant", "tool_calls": [{"type": "function", "function": {"name": "f"}}]}], {}, ValueError,
     r"^messages\[1\]\.tool_calls\[0\]\.function\.arguments: a tool call needs its arguments"),
    ([U, {"role": "assistant", "tool_calls": [{"function": {"name": "a b", "arguments": "{}"}}]}], {}, ValueError,
     r"^messages\[1\]\.tool_calls\[0\]\.function\.name: a function name must be non-empty, without spaces, got 'a b'$"),
    ([U, {"role": "assistant", "tool_calls": [{"type": "custom", "custom": {}}]}], {}, ValueError,
     r"^messages\[1\]\.tool_calls\[0\]\.type: only function tool calls have a harmony form, got 'custom'$"),
    ([U, {"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": 3}}]}], {}, TypeError,
     r"^messages\[1\]\.tool_calls\[0\]\.function\.arguments: expected a JSON string or a dict, got int$"),
    ([U, {"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": {"x": object()}}}]}], {}, TypeError,
     r"^messages\[1\]\.tool_calls\[0\]\.function\.arguments: the arguments are not JSON"),
    ([U, {"role": "assistant", "tool_calls": "f"}], {}, TypeError, r"^messages\[1\]\.tool_calls: expected a list of tool calls, got str$"),
    ([U], {"tools": [{"type": "web_search"}]}, ValueError, r"^tools\[0\]\.type: expected 'function', got 'web_search'$"),
    ([U], {"tools": [{"type": "function", "function": {"description": "d"}}]}, TypeError, r"^tools\[0\]\.function\.name: expected a string, got None$"),
    ([U], {"tools": [{"type": "function", "function": {"name": "f", "parameters": "{}"}}]}, TypeError,
     r"^tools\[0\]\.function\.parameters: expected a JSON schema \(a dict\), got str$"),
    ([U], {"reasoning_effort": "none"}, ValueError, r"^reasoning_effort: expected 'low', 'medium' or 'high', got 'none'$"),
    ([U], {"builtin_tools": ["shell"]}, ValueError, r"^builtin_tools\[0\]: expected 'browser' or 'python', got 'shell'$"),
    ([U], {"builtin_tools": "browser"}, TypeError, r"^builtin_tools: expected a list of names, got str$"),
    ([U], {"model_identity": 3}, TypeError, r"^model_identity: expected a string, got int$"),
]


@pytest.mark.parametrize("messages, kwargs, kind, text", CHAT_ERRORS)
def test_from_chat_errors(messages, kwargs, kind, text):
    with pytest.raises(kind, match=text):
        from_chat(messages, **kwargs)


RESPONSES_ERRORS = [
    ([{"type": "function_call_output", "call_id": "c", "output": "r"}], {}, ValueError,
     r"^items\[0\]: function_call_output with call_id 'c' matches no earlier function_call$"),
    ([{"type": "function_call_output", "output": "r"}], {}, ValueError, r"^items\[0\]: a function_call_output needs the 'call_id' of its call$"),
    ([{"type": "function_call", "call_id": "c", "name": "f", "arguments": "{}"}, {"type": "function_call_output", "call_id": "c"}], {}, ValueError,
     r"^items\[1\]: a function_call_output needs its 'output'$"),
    ([{"type": "web_search_call"}], {}, ValueError, r"^items\[0\]\.type: expected 'message', 'reasoning', "),
    ([{"content": "x"}], {}, ValueError, r"^items\[0\]: an item needs a 'type'$"),
    ([{"type": "message", "role": "tool", "content": "x"}], {}, ValueError, r"^items\[0\]\.role: expected one of 'system', "),
    ([{"role": "assistant", "content": "x", "phase": "draft"}], {}, ValueError, r"^items\[0\]\.phase: expected 'commentary' or 'final_answer', got 'draft'$"),
    ([{"role": "assistant", "content": [{"type": "refusal", "refusal": "no"}]}], {}, ValueError,
     r"^items\[0\]\.content\[0\]: a content part of type 'refusal' has no harmony form"),
    ([{"type": "reasoning", "content": [{"type": "summary_text", "text": "s"}]}], {}, ValueError,
     r"^items\[0\]\.content\[0\]: a content part of type 'summary_text' has no harmony form"),
    ([], {"builtin_tools": "python"}, TypeError, r"^builtin_tools: expected a list of names, got str$"),
    ([{"type": "function_call", "call_id": "c", "arguments": "{}"}], {}, TypeError, r"^items\[0\]\.name: expected a string, got None$"),
    (["x"], {}, TypeError, r"^items\[0\]: expected an item \(a dict\), got str$"),
    ([], {"tools": [{"type": "file_search"}]}, ValueError, r"^tools\[0\]\.type: expected 'function', 'web_search', "),
    ([], {"instructions": 3}, TypeError, r"^instructions: expected a string, got int$"),
]


@pytest.mark.parametrize("items, kwargs, kind, text", RESPONSES_ERRORS)
def test_from_responses_errors(items, kwargs, kind, text):
    with pytest.raises(kind, match=text):
        from_responses(items, **kwargs)


def _assistant(text, channel=None, recipient=None):
    m = Message.from_role_and_content(Role.ASSISTANT, text)
    if channel:
        m = m.with_channel(channel)
    return m.with_recipient(recipient) if recipient else m


TO_CHAT_ERRORS = [
    ([_assistant("{}", "analysis", "browser.search")], ValueError,
     r"^messages\[0\]: recipient 'browser.search' is not a function \(functions.NAME\); built-in tool calls have no chat form$"),
    ([_assistant("x", "final"), _assistant("{}", "commentary", "functions.")], ValueError, r"^messages\[1\]: recipient 'functions.' is not a function"),
    ([Message.from_role_and_content(Role.USER, "x")], ValueError, r"^messages\[0\]: a completion holds the assistant's messages, got one of role 'user'$"),
    ([_assistant("x", "draft")], ValueError, r"^messages\[0\]: channel 'draft' is not analysis, commentary or final$"),
    (["x"], TypeError, r"^messages\[0\]: expected a harmony Message, got str$"),
]


@pytest.mark.parametrize("messages, kind, text", TO_CHAT_ERRORS)
def test_to_chat_and_to_responses_errors(messages, kind, text):
    with pytest.raises(kind, match=text):
        to_chat(messages)
    with pytest.raises(kind, match=text):
        to_responses(messages)


def test_a_conversation_is_accepted_by_to_chat():
    msgs = [_assistant("a", "final")]
    assert to_chat(Conversation.from_messages(msgs)) == to_chat(msgs)
