"""Rendering against the oracle: hand-picked rules, then hypothesis over random conversations.

Both libraries build the same conversation from one JSON document (``Conversation.from_json``),
render it in every mode, and must give the same tokens (or the same error).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from profiles import example_count


def both(oracle, hnp, doc):
    payload = json.dumps(doc)
    return oracle.Conversation.from_json(payload), hnp.Conversation.from_json(payload)


def outcome(fn):
    try:
        return ("ok", list(fn()))
    except Exception as exc:  # the error type and text are part of the contract
        return ("error", type(exc).__name__ if not isinstance(exc, RuntimeError) else "RuntimeError", str(exc))


MODES = ["completion", "conversation", "training"]


def render_all(lib, enc, conv, auto_drop):
    cfg = None if auto_drop is None else lib.RenderConversationConfig(auto_drop_analysis=auto_drop)
    return {
        "completion": outcome(lambda: enc.render_conversation_for_completion(conv, lib.Role.ASSISTANT, cfg)),
        "completion_user": outcome(lambda: enc.render_conversation_for_completion(conv, lib.Role.USER, cfg)),
        "conversation": outcome(lambda: enc.render_conversation(conv, cfg)),
        "training": outcome(lambda: enc.render_conversation_for_training(conv, cfg)),
    }


def check_same(oracle, oenc, hnp, enc, doc):
    oc, hc = both(oracle, hnp, doc)
    assert hc.to_dict() == oc.to_dict()
    assert hc.to_json() == oc.to_json()
    for auto_drop in (None, True, False):
        want = render_all(oracle, oenc, oc, auto_drop)
        got = render_all(hnp, enc, hc, auto_drop)
        assert got == want, (doc, auto_drop)
        # the NumPy forms give the same tokens as the list forms
        cfg = None if auto_drop is None else hnp.RenderConversationConfig(auto_drop_analysis=auto_drop)
        if want["training"][0] == "ok":
            arr = enc.render_conversation_for_training_np(hc, cfg)
            assert arr.dtype == np.uint32 and arr.tolist() == want["training"][1]
        if want["completion"][0] == "ok":
            arr = enc.render_conversation_for_completion_np(hc, hnp.Role.ASSISTANT, cfg)
            assert arr.tolist() == want["completion"][1]
            buf = np.full(len(arr) + 5, 7, dtype=np.uint32)
            n = enc.render_conversation_for_completion_np(hc, hnp.Role.ASSISTANT, cfg, out=buf)
            assert n == len(arr) and buf[:n].tolist() == want["completion"][1] and buf[n:].tolist() == [7] * 5
    for om, hm in zip(oc.messages, hc.messages):
        for has_fn in (False, True):
            want = outcome(lambda: oenc.render(om, oracle.RenderOptions(conversation_has_function_tools=has_fn)))
            got = outcome(lambda: enc.render(hm, hnp.RenderOptions(conversation_has_function_tools=has_fn)))
            assert got == want
            if want[0] == "ok":
                assert enc.render_np(hm, hnp.RenderOptions(conversation_has_function_tools=has_fn)).tolist() == want[1]


from render_cases import CASES  # noqa: E402


@pytest.mark.parametrize("name", sorted(CASES))
def test_cases_match_oracle(oracle, oenc, hnp, enc, name):
    check_same(oracle, oenc, hnp, enc, {"messages": CASES[name]})


def test_builders_match_oracle(oracle, oenc, hnp, enc):
    def build(h):
        sys_ = (
            h.SystemContent.new()
            .with_model_identity("Test model")
            .with_reasoning_effort(h.ReasoningEffort.LOW)
            .with_knowledge_cutoff("2024-06")
            .with_conversation_start_date("2025-09-20")
            .with_required_channels(["analysis", "final"])
            .with_browser_tool()
            .with_python_tool()
        )
        dev = h.DeveloperContent.new().with_instructions("Be precise.").with_function_tools(
            [h.ToolDescription.new("f", "does f", {"type": "object", "properties": {"x": {"type": "integer"}}})]
        )
        return h.Conversation.from_messages(
            [
                h.Message.from_role_and_content(h.Role.SYSTEM, sys_),
                h.Message.from_role_and_content(h.Role.DEVELOPER, dev),
                h.Message.from_role_and_content(h.Role.USER, "go").adding_content("on"),
                h.Message.from_author_and_content(h.Author.new(h.Role.TOOL, "browser.search"), "r").with_recipient("assistant"),
            ]
        )

    oc, hc = build(oracle), build(hnp)
    assert hc.to_dict() == oc.to_dict()
    assert enc.render_conversation_for_completion(hc, hnp.Role.ASSISTANT) == oenc.render_conversation_for_completion(oc, oracle.Role.ASSISTANT)


def test_out_buffer_too_small_names_sizes(hnp, enc):
    conv = hnp.Conversation.from_messages([hnp.Message.from_role_and_content(hnp.Role.USER, "hello")])
    with pytest.raises(ValueError, match="holds 2 tokens but the render needs"):
        enc.render_conversation_np(conv, out=np.zeros(2, np.uint32))
    with pytest.raises(TypeError, match="uint32"):
        enc.render_conversation_np(conv, out=np.zeros(100, np.int64))


def test_bad_values_raise_clear_errors(hnp, enc):
    # openai_harmony's pydantic validation texts (see test_leniency.py for the differential cases)
    with pytest.raises(ValueError, match="1 validation error for Author\nrole\n  Input should be 'user', 'assistant', 'system', 'developer' or 'tool'"):
        hnp.Message.from_role_and_content("boss", "x")
    with pytest.raises(ValueError, match=r"content\.0\n  Input should be a valid dictionary or instance of Content"):
        hnp.Message.from_role_and_content(hnp.Role.USER, 42)
    with pytest.raises(ValueError, match=r"messages\.1\n  Input should be a valid dictionary or instance of Message"):
        hnp.Conversation.from_messages([hnp.Message.from_role_and_content(hnp.Role.USER, "x"), "y"])
    with pytest.raises(TypeError, match="Conversation"):
        enc.render_conversation("not a conversation")


# -- hypothesis -------------------------------------------------------------------------

# text that exercises BPE edges: whitespace runs, digits, specials as text, non-ASCII
words = st.sampled_from(
    ["hello", " world", "  ", "\n", "\n\n", "\t", "123456", "<|start|>", "<|end|>", "<|constrain|>", "é", "世界", "🎉", "'s", "to=", " ", "analysis", "final", ":", "."]
)
texts = st.one_of(st.lists(words, max_size=8).map("".join), st.text(st.characters(blacklist_categories=("Cs",)), max_size=30))
opt = lambda s: st.one_of(st.none(), s)  # noqa: E731
channels = opt(st.sampled_from(["analysis", "commentary", "final", "", "weird channel", "analysis"]))
recipients = opt(st.sampled_from(["functions.get_weather", "all", "assistant", "browser.search", "user", ""]))
content_types = opt(st.sampled_from(["<|constrain|>json", "<|constrain|>", "json", "text/plain", "<|constrain|> json"]))
roles = st.sampled_from(["user", "assistant", "system", "developer", "tool"])
some_names = st.sampled_from(["functions.get_weather", "alice", "browser.open", "x y"])
names = opt(some_names)

schemas = st.fixed_dictionaries(
    {"type": st.just("object"), "properties": st.dictionaries(st.sampled_from(["a", "b", "loc"]), st.fixed_dictionaries({"type": st.sampled_from(["string", "number", "boolean", "integer"])}), max_size=3)},
    optional={"required": st.lists(st.sampled_from(["a", "b", "loc"]), max_size=2)},
)
tool_desc = st.fixed_dictionaries({"name": st.sampled_from(["f", "get_x", "run"]), "description": texts}, optional={"parameters": schemas})
namespace = st.builds(lambda name, desc, tools: {"name": name, "description": desc, "tools": tools}, st.sampled_from(["functions", "browser", "python", "ns"]), opt(texts), st.lists(tool_desc, max_size=2))
tools_map = opt(st.lists(namespace, max_size=3).map(lambda nss: {ns["name"]: ns for ns in nss}))

system_content = st.fixed_dictionaries(
    {"type": st.just("system_content")},
    optional={
        "model_identity": opt(texts),
        "reasoning_effort": opt(st.sampled_from(["Low", "Medium", "High"])),
        "conversation_start_date": opt(st.just("2025-01-02")),
        "knowledge_cutoff": opt(st.just("2024-06")),
        "channel_config": opt(st.fixed_dictionaries({"valid_channels": st.lists(st.sampled_from(["analysis", "commentary", "final"]), max_size=3), "channel_required": st.booleans()})),
        "tools": tools_map,
    },
)
developer_content = st.fixed_dictionaries({"type": st.just("developer_content")}, optional={"instructions": opt(texts), "tools": tools_map})
text_content = st.builds(lambda t: {"type": "text", "text": t}, texts)


@st.composite
def messages(draw):
    role = draw(roles)
    if role == "system":
        content = draw(st.one_of(st.lists(system_content, min_size=1, max_size=1), st.lists(text_content, min_size=1, max_size=2)))
    elif role == "developer":
        content = draw(st.one_of(st.lists(developer_content, min_size=1, max_size=1), st.lists(text_content, min_size=1, max_size=2)))
    else:
        content = draw(st.one_of(texts, st.lists(text_content, max_size=2)))
    d = {"role": role, "content": content}
    name = draw(names)
    if role == "tool" or name is not None:
        d["name"] = draw(some_names) if role == "tool" and draw(st.booleans()) else name
    for key, strat in (("channel", channels), ("recipient", recipients), ("content_type", content_types)):
        v = draw(strat)
        if v is not None:
            d[key] = v
    return d


conversations = st.lists(messages(), max_size=7).map(lambda ms: {"messages": ms})


@settings(max_examples=example_count(4), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(conversations)
def test_random_conversations_match_oracle(oracle, oenc, hnp, enc, doc):
    check_same(oracle, oenc, hnp, enc, doc)


def test_lone_surrogate_is_a_value_error_like_the_oracle(oracle, oenc, hnp, enc):
    def conv(h):
        return h.Conversation.from_messages([h.Message.from_role_and_content(h.Role.USER, "a\ud800b")])

    with pytest.raises(ValueError):
        oenc.render_conversation(conv(oracle))
    with pytest.raises(ValueError, match="lone surrogate"):
        enc.render_conversation(conv(hnp))
    with pytest.raises(ValueError, match="lone surrogate"):
        enc.render_conversation_np(conv(hnp))
    with pytest.raises(ValueError, match="lone surrogate"):
        enc.render(conv(hnp).messages[0])


def test_lone_surrogate_wins_over_a_later_rendering_error(oracle, oenc, hnp, enc):
    # the oracle reads the conversation as JSON before rendering: the surrogate is what it reports,
    # wherever it sits
    for texts in (["ok", "a\ud800b"], ["a\ud800b", "ok"]):
        def conv(h):
            return h.Conversation.from_messages(
                [
                    h.Message.from_role_and_content(h.Role.USER, texts[0]),
                    h.Message.from_role_and_content(h.Role.TOOL, "no name"),  # "Tools should have a name!"
                    h.Message.from_role_and_content(h.Role.USER, texts[1]),
                ]
            )

        with pytest.raises(ValueError):
            oenc.render_conversation(conv(oracle))
        for render in (enc.render_conversation, enc.render_conversation_for_training, enc.render_conversation_np):
            with pytest.raises(ValueError, match="lone surrogate"):
                render(conv(hnp))
    with pytest.raises(hnp.HarmonyError, match="^Tools should have a name!$"):
        enc.render_conversation(hnp.Conversation.from_messages([hnp.Message.from_role_and_content(hnp.Role.TOOL, "x")]))


def test_long_fresh_texts_match_oracle(oracle, oenc, hnp, enc):
    # a fresh text this long sends the render to the plan path, which encodes texts in parallel
    import random

    rng = random.Random()
    words = ["alpha", "beta", "gamma", "delta", "\u00e9t\u00e9", "12345", "\U0001F600", "  ", "\n"]
    big = [" ".join(rng.choice(words) for _ in range(n)) for n in (3000, 5000, 2500)]
    doc = {
        "messages": [
            {"role": "system", "content": [{"type": "system_content", "model_identity": "m", "channel_config": {"valid_channels": ["analysis", "final"], "channel_required": True}}]},
            {"role": "developer", "content": [{"type": "developer_content", "instructions": big[2]}, {"type": "text", "text": "and more"}]},
            {"role": "user", "content": [{"type": "text", "text": "short " + big[0][:20]}]},
            {"role": "assistant", "channel": "analysis", "content": [{"type": "text", "text": big[0]}]},
            {"role": "assistant", "channel": "final", "content": [{"type": "text", "text": big[1]}]},
        ]
    }
    assert min(len(t) for t in big) >= 8192
    check_same(oracle, oenc, hnp, enc, doc)
    _, conv = both(oracle, hnp, doc)
    assert len(enc.render_conversation_for_completion(conv, hnp.Role.ASSISTANT)) > 5_000  # rendered, not an error


def test_a_non_message_slipped_into_a_conversation(hnp, enc):
    conv = hnp.Conversation.from_messages([hnp.Message.from_role_and_content(hnp.Role.USER, "x")])
    conv.messages.append("not a message")  # the list is the caller's to change
    with pytest.raises(TypeError, match="conversation item 1 is not a Message: str: 'not a message'"):
        enc.render_conversation(conv)
    with pytest.raises(TypeError, match="conversation item 1 is not a Message"):
        enc.render_conversation_for_completion_np(conv, hnp.Role.ASSISTANT)
    with pytest.raises(TypeError, match="conversation 0: conversation item 1 is not a Message"):
        enc.render_batch([conv])
    with pytest.raises(TypeError, match="conversation item 0 is not a Message"):
        enc.render_conversation([42])


def test_balanced_groups():
    from harmony_np.bpe import balanced_groups

    sizes = [5, 1, 9, 3, 3, 7]
    groups = balanced_groups(sizes, 2)
    assert sorted(i for g in groups for i in g) == list(range(len(sizes)))
    totals = sorted(sum(sizes[i] for i in g) for g in groups)
    assert totals == [13, 15]  # largest first, each to the lighter group: 9+3+3 and 7+5+1
    assert balanced_groups([4], 3) == [[0]]  # never an empty group
    assert balanced_groups([], 2) == []


def test_parallel_encoding_threads_use_their_own_bpe(hnp, enc):
    # every thread of the pool encodes with a copy of the BPE of its own (threads sharing one
    # encode no faster than one thread), and the tokens are those of the serial encode
    import threading

    from harmony_np.bpe import ordinary_bpe

    r = ordinary_bpe(enc.vocab).reference  # tiktoken's side of the seam
    if r.workers < 2:
        pytest.skip("one BPE thread on this machine")
    texts = [f"text {i} " + "lorem ipsum dolor " * (600 + 37 * i) for i in range(6)]
    cores = set()
    seen = threading.Lock()

    def encode(core, group):
        with seen:
            cores.add(id(core))
        return [core.encode_ordinary(texts[i]) for i in group]

    groups = [[0, 1, 2], [3, 4, 5]]
    out = r.run_parallel(encode, groups)
    assert [toks for g in out for toks in g] == [r.encode(t) for t in texts]
    assert len(cores) == 2 and id(r.core) in cores
