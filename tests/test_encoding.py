"""The encoding API against the oracle: encode, decode, special tokens, stop tokens, model dicts."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from profiles import example_count


def outcome(fn):
    try:
        return ("ok", fn())
    except Exception as exc:
        return ("error", type(exc).__name__ if not isinstance(exc, RuntimeError) else "RuntimeError", str(exc))


pieces = st.sampled_from(["hello", " ", "<|start|>", "<|end|>", "<|message|>", "<|reserved_200100|>", "<|endoftext|>", "é", "\n", "<|", "|>", "<|start", "x"])
texts = st.one_of(st.lists(pieces, max_size=10).map("".join), st.text(st.characters(blacklist_categories=("Cs",)), max_size=20))
special_sets = st.one_of(
    st.just("all"),
    st.just(set()),
    st.just(()),
    st.sets(st.sampled_from(["<|start|>", "<|end|>", "<|message|>", "<|endoftext|>", "<|reserved_200100|>", "notspecial"]), max_size=3),
)


@settings(max_examples=example_count(3), deadline=None)
@given(texts, special_sets, special_sets)
def test_encode_matches_oracle(oenc, enc, text, allowed, disallowed):
    kw = {}
    if allowed != set():
        kw["allowed_special"] = allowed
    if disallowed != "all":
        kw["disallowed_special"] = disallowed
    assert outcome(lambda: enc.encode(text, **kw)) == outcome(lambda: oenc.encode(text, **kw))


token_lists = st.lists(st.one_of(st.integers(0, 201_200), st.sampled_from([200006, 200008, 200007, 174, 175, 9497, 3])), max_size=12)


@settings(max_examples=example_count(3), deadline=None)
@given(token_lists)
def test_decode_matches_oracle(oenc, enc, toks):
    assert outcome(lambda: enc.decode_utf8(toks)) == outcome(lambda: oenc.decode_utf8(toks))
    assert outcome(lambda: enc.decode(toks)) == outcome(lambda: oenc.decode(toks))
    assert outcome(lambda: enc.decode(np.array(toks, dtype=np.int64))) == outcome(lambda: oenc.decode(toks))


@pytest.mark.parametrize(
    "toks",
    [[-1], [2**40], [1.5], ["a"], [None], [True, 2], [174], [174, 175], [200006, 174], [300000], [], [0xE2], [0, 2**32 - 1]],
)
def test_decode_errors_match_oracle(oenc, enc, toks):
    assert outcome(lambda: enc.decode_utf8(toks)) == outcome(lambda: oenc.decode_utf8(toks))


def test_decode_large_uses_kernel(oenc, enc, monkeypatch):
    """From ``GATHER_KERNEL_MIN`` tokens on, each decode gathers its bytes in one kernel call
    (and gets the oracle's text); a short decode calls no kernel."""
    from harmony_np import encoding
    from harmony_np.parse import kernels

    module = kernels()
    gather = module.gather_bytes
    gathered = []

    def counting_gather(flat, offsets, tokens):
        gathered.append(len(tokens))
        return gather(flat, offsets, tokens)

    monkeypatch.setattr(module, "gather_bytes", counting_gather)
    toks = oenc.encode("Large text with ünïcödé and 🎉 " * 2000)
    assert len(toks) > encoding.GATHER_KERNEL_MIN
    assert enc.decode_utf8(toks) == oenc.decode_utf8(toks)
    assert enc.decode_bytes(np.asarray(toks, dtype=np.uint32)) == enc._bpe.decode_bytes(toks)
    assert enc.decode(toks) == oenc.decode(toks)
    assert gathered == [len(toks)] * 3
    assert enc.decode_utf8(toks[:100]) == oenc.decode_utf8(toks[:100])
    assert len(gathered) == 3


@pytest.mark.parametrize("tok", [0, 5, 199997, 199998, 200006, 201088, 201089, -1, 2**33, 1.0, True, "x"])
def test_is_special_token(oenc, enc, tok):
    assert outcome(lambda: enc.is_special_token(tok)) == outcome(lambda: oenc.is_special_token(tok))


def test_stop_tokens(oenc, enc):
    assert sorted(enc.stop_tokens()) == sorted(oenc.stop_tokens())
    assert sorted(enc.stop_tokens_for_assistant_actions()) == sorted(oenc.stop_tokens_for_assistant_actions())
    assert enc.name == oenc.name == "HarmonyGptOss"


def test_load_by_string_and_bad_name(hnp, oracle):
    assert hnp.load_harmony_encoding("HarmonyGptOss").name == "HarmonyGptOss"
    with pytest.raises(ValueError, match="Invalid HarmonyEncodingName: nope"):
        hnp.load_harmony_encoding("nope")
    with pytest.raises(ValueError, match="Invalid HarmonyEncodingName: nope"):
        oracle.load_harmony_encoding("nope")


def test_public_names_cover_oracle(oracle, hnp):
    for name in oracle.__all__:
        assert hasattr(hnp, name), name
    for name in ("ToolNamespaceConfig", "ChannelConfig", "ReasoningEffort", "RenderConversationConfig", "RenderOptions"):
        assert hasattr(hnp, name)
    assert issubclass(hnp.HarmonyError, RuntimeError)
    assert [r.value for r in hnp.Role] == [r.value for r in oracle.Role]
    assert [r.value for r in hnp.StreamState] == [r.value for r in oracle.StreamState]
    assert str(hnp.HarmonyEncodingName.HARMONY_GPT_OSS) == str(oracle.HarmonyEncodingName.HARMONY_GPT_OSS)


def test_builtin_namespaces_equal_oracle(oracle, hnp):
    assert hnp.ToolNamespaceConfig.browser().model_dump() == oracle.ToolNamespaceConfig.browser().model_dump()
    assert hnp.ToolNamespaceConfig.python().model_dump() == oracle.ToolNamespaceConfig.python().model_dump()


def test_model_dicts_and_json_equal_oracle(oracle, hnp):
    def build(h):
        sys_ = h.SystemContent.new().with_browser_tool().with_reasoning_effort(h.ReasoningEffort.HIGH)
        dev = h.DeveloperContent.new().with_instructions("i").with_function_tools([h.ToolDescription.new("f", "d")])
        return [
            h.Message.from_role_and_content(h.Role.SYSTEM, sys_),
            h.Message.from_role_and_content(h.Role.DEVELOPER, dev),
            h.Message.from_author_and_content(h.Author.new(h.Role.TOOL, "functions.f"), "r").with_channel("c").with_recipient("assistant").with_content_type("json"),
            h.Message.from_role_and_contents(h.Role.USER, [h.TextContent(text="a"), h.TextContent(text="b")]),
        ]

    for om, hm in zip(build(oracle), build(hnp)):
        assert hm.to_dict() == om.to_dict()
        assert hm.to_json() == om.to_json()
        # each side reads the other's dicts back to an equal message
        assert hnp.Message.from_dict(om.to_dict()) == hm
        assert oracle.Message.from_dict(hm.to_dict()) == om
    oc = oracle.Conversation.from_messages(build(oracle))
    hc = hnp.Conversation.from_messages(build(hnp))
    assert hc.to_json() == oc.to_json()
    assert hnp.Conversation.from_json(oc.to_json()) == hc
    assert [m.to_dict() for m in hc] == [m.to_dict() for m in oc]
    assert json.loads(hc.to_json()) == json.loads(oc.to_json())


def test_message_equality_and_builders(hnp):
    a = hnp.Message.from_role_and_content(hnp.Role.USER, "x").with_channel("final")
    b = hnp.Message(author=hnp.Author(role=hnp.Role.USER), content=[hnp.TextContent(text="x")], channel="final")
    assert a == b
    assert a != b.with_recipient("y")
    assert hnp.Author(role="user") == hnp.Author(role=hnp.Role.USER)


@pytest.mark.parametrize(
    "toks",
    ["abc", [2**63], [-(2**63) - 1], [2**64], np.array([True, False]), [np.True_], np.array([[1, 2]]), 5, None, (1, 2), iter([1, 2])],
)
def test_decode_argument_errors_match_oracle(oenc, enc, toks):
    import copy

    def call(e, fn):
        t = copy.copy(toks) if not hasattr(toks, "__next__") else iter([1, 2])
        return outcome(lambda: getattr(e, fn)(t))

    for fn in ("decode_utf8", "decode"):
        assert call(enc, fn) == call(oenc, fn), fn


def test_long_decode_gathers_the_ids_it_checked(enc):
    # a long decode of the caller's array runs a kernel that does not bounds-check: it must read
    # a copy, or another thread could write an unknown id between the check and the gather
    import numpy as np

    from harmony_np.encoding import GATHER_KERNEL_MIN
    from harmony_np.gate import kernel_token_array

    a = np.array(enc.encode("hello world " * 3000), np.uint32)
    assert a.size >= GATHER_KERNEL_MIN
    checked = kernel_token_array(a, GATHER_KERNEL_MIN)
    assert not np.may_share_memory(checked, a)
    a[:] = 2**32 - 1
    assert int(checked.max()) < 2**32 - 1
    assert np.may_share_memory(kernel_token_array(a[:10], GATHER_KERNEL_MIN), a)  # short: no copy (tiktoken decodes a list of it)


class _RaisingIndex:
    def __index__(self):
        raise TypeError("no index here")


class _NoIndex:
    pass


@pytest.mark.parametrize(
    "value",
    [np.ma.masked, np.array([5]), np.array(5), np.float64(2), 1.5, "3", None, _RaisingIndex(), _NoIndex(),
     2**70, -(2**70), 2**63, 2**63 - 1, -(2**63), -(2**63) - 1, -1, True, 200006, np.int8(3), np.uint64(2**40)],
    ids=repr,
)
def test_is_special_token_errors_match_oracle(enc, oenc, value):
    # pyo3 passes operator.index's own error on, and reads a C long before the u32 range check
    assert outcome(lambda: enc.is_special_token(value)) == outcome(lambda: oenc.is_special_token(value))
