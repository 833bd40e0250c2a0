"""Recovery parsing (harmony_np.recover): one test per malformed kind of issue 6, header repairs,
and property tests over random token sequences and mutated well-formed completions: no exception,
exact tiling, streaming equal to batch, well-formed input equal to the strict parse and the
oracle's."""

from __future__ import annotations

import ast
import random
import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from profiles import example_count

START, CHANNEL, MESSAGE, END, RETURN, CALL, CONSTRAIN = 200006, 200005, 200008, 200007, 200002, 200012, 200003
N_VOCAB = 201_089
STOPS = (END, RETURN, CALL)
DOC = Path(__file__).resolve().parent.parent / "docs" / "recovery.md"


@pytest.fixture(scope="module")
def E(enc):
    return lambda s: enc.encode(s, allowed_special="all")


@pytest.fixture(scope="module")
def R():
    from harmony_np import recover

    return recover


def norm(msgs):
    out = []
    for m in msgs:
        d = m.to_dict()
        d["role"] = getattr(d["role"], "value", d["role"])
        out.append(d)
    return out


def msg(role, text, channel=None, recipient=None, content_type=None, name=None):
    """The normalised dict of a message, as :func:`norm` gives it."""
    d = {"role": role, "name": name, "content": [{"type": "text", "text": text}]}
    if channel is not None:
        d["channel"] = channel
    if recipient is not None:
        d["recipient"] = recipient
    if content_type is not None:
        d["content_type"] = content_type
    return d


def kinds(res):
    return [(d.kind, d.start, d.stop) for d in res.diagnostics]


def stream(hnp, enc, tokens, role, mode="each"):
    """A recovering parser fed ``tokens`` one by one (``each``), all at once (``bulk``) or in
    chunks of random sizes, some fed one by one (``chunks``), then EOS."""
    p = hnp.StreamableParser(enc, None if role is None else hnp.Role(role), recover=True)
    if mode == "bulk":
        p.process_tokens(tokens)
    elif mode == "chunks":
        rng = random.Random(len(tokens))
        i = 0
        while i < len(tokens):
            j = i + rng.choice([1, 3, 24, 40])
            if rng.random() < 0.3:
                for t in tokens[i:j]:
                    p.process(t)
            else:
                p.process_tokens(np.array(tokens[i:j], dtype=np.uint32))
            i = j
    else:
        for t in tokens:
            p.process(t)
    p.process_eos()
    return p


def check(hnp, enc, tokens, role=None, oracle_pair=None):
    """Every invariant of a recovery parse; returns the result."""
    hrole = None if role is None else hnp.Role(role)
    res = enc.recover_messages_from_completion_tokens(tokens, hrole)
    n = len(tokens)
    spans = res.spans
    assert spans.dtype == np.int64 and spans.shape == (len(res.messages), 2)
    # tiling: messages and unparsed ranges, in order, cover [0, n) once, none empty
    pieces = sorted([(a, b, "m") for a, b in spans.tolist()] + [(a, b, "u") for a, b, _ in res.unparsed])
    pos = 0
    for a, b, _ in pieces:
        assert a == pos and b > a, (tokens, role, pieces)
        pos = b
    assert pos == n, (tokens, role, pieces)
    assert [a for a, _ in spans.tolist()] == sorted(a for a, _ in spans.tolist())
    # every unparsed range is reported, with its reason as the kind
    diag_set = {(d.kind, d.start, d.stop) for d in res.diagnostics}
    for a, b, reason in res.unparsed:
        assert (reason, a, b) in diag_set
    from harmony_np.recover import KINDS

    for d in res.diagnostics:
        assert d.kind in KINDS and 0 <= d.start <= d.stop <= n and d.detail
    # streaming equals batch, token by token and in bulk
    for mode in ("each", "bulk", "chunks"):
        p = stream(hnp, enc, tokens, role, mode)
        assert norm(p.messages) == norm(res.messages), (tokens, role, mode)
        assert p.spans.tolist() == spans.tolist()
        assert p.unparsed == res.unparsed
        assert p.diagnostics == res.diagnostics, (tokens, role, mode)
        assert p.tokens == list(tokens)
    # well formed (the strict parser accepts) <=> nothing to report, and then the strict messages
    try:
        strict = norm(enc.parse_messages_from_completion_tokens(tokens, hrole))
    except hnp.HarmonyError:
        strict = None
    assert res.ok == (strict is not None), (tokens, role)
    if strict is not None:
        assert norm(res.messages) == strict
    if oracle_pair is not None:
        oracle, oenc = oracle_pair
        try:
            expected = norm(oenc.parse_messages_from_completion_tokens(tokens, None if role is None else oracle.Role(role)))
        except Exception:  # noqa: BLE001 - the oracle's HarmonyError
            expected = None
        assert (expected is not None) == res.ok, (tokens, role)
        if expected is not None:
            assert norm(res.messages) == expected
    return res


# -- the malformed kinds of issue 6 -------------------------------------------------------------

REFUSAL = "I'm sorry, but I can't help with that."


def test_headerless_refusal(hnp, enc, E):
    toks = E(REFUSAL + "<|end|>")
    n = len(toks)
    res = check(hnp, enc, toks, "assistant")
    assert norm(res.messages) == [msg("assistant", REFUSAL)]
    assert res.spans.tolist() == [[0, n]] and res.unparsed == []
    assert kinds(res) == [("missing_header", 0, n)]
    # with no role: also a message begun without <|start|>
    res = check(hnp, enc, toks, None)
    assert norm(res.messages) == [msg("assistant", REFUSAL)]
    assert kinds(res) == [("missing_start", 0, 1), ("missing_header", 0, n)]
    # after an analysis message, and after <|start|> with no header
    head = E("<|start|>assistant<|channel|>analysis<|message|>The user wants X.<|end|>")
    k = len(head)
    res = check(hnp, enc, head + toks, None)
    assert norm(res.messages) == [msg("assistant", "The user wants X.", "analysis"), msg("assistant", REFUSAL)]
    assert res.spans.tolist() == [[0, k], [k, k + n]]
    assert kinds(res) == [("missing_start", k, k + 1), ("missing_header", k, k + n)]
    res = check(hnp, enc, head + [START] + toks, None)
    assert norm(res.messages)[1] == msg("assistant", REFUSAL)
    assert kinds(res) == [("missing_header", k, k + n + 1)]


def test_junk_in_header(hnp, enc, E):
    head = E("<|start|>assistant<|channel|>analysis<|message|>Need the weather.<|end|>")
    k = len(head)
    call = E('<|start|>assistant ––commentary to=functions.get_weather <|constrain|>json<|message|>{"city": "Paris"}<|call|>')
    res = check(hnp, enc, head + call)
    assert norm(res.messages) == [
        msg("assistant", "Need the weather.", "analysis"),
        msg("assistant", '{"city": "Paris"}', "––commentary", "functions.get_weather", "<|constrain|>json"),
    ]
    he = k + call.index(MESSAGE)
    assert kinds(res) == [("header_junk", k + 1, he)]
    assert "kept as the channel" in res.diagnostics[0].detail
    assert "unexpected tokens remaining in message header" in res.diagnostics[0].detail
    # with a channel already: the junk is dropped, the fields are kept
    toks = E("<|start|>assistant<|channel|>commentary ––commentary extra to=functions.f json<|message|>{}<|call|>")
    res = check(hnp, enc, toks)
    assert norm(res.messages) == [msg("assistant", "{}", "commentary", "functions.f", "json")]
    assert [d.kind for d in res.diagnostics] == ["header_junk"] and "'––commentary extra' dropped" in res.diagnostics[0].detail
    # a garbled channel that the strict parser accepts stays as it is, with no diagnostic
    toks = E("<|start|>assistant<|channel|>––commentary<|message|>x<|end|>")
    res = check(hnp, enc, toks)
    assert norm(res.messages) == [msg("assistant", "x", "––commentary")] and res.ok


def test_duplicate_start(hnp, enc, E):
    toks = E("<|start|>assistant<|start|>assistant<|channel|>final<|message|>Hi<|return|>")
    res = check(hnp, enc, toks)
    assert norm(res.messages) == [msg("assistant", "Hi", "final")]
    assert res.unparsed == [(0, 2, "duplicate_start")]
    assert res.spans.tolist() == [[2, len(toks)]]
    assert kinds(res) == [("duplicate_start", 0, 2)]
    # <|start|><|start|>
    toks = E("<|start|><|start|>assistant<|channel|>final<|message|>Hi<|return|>")
    res = check(hnp, enc, toks)
    assert norm(res.messages) == [msg("assistant", "Hi", "final")] and res.unparsed == [(0, 1, "duplicate_start")]
    # text written before the second <|start|> is a message cut short
    toks = E("<|start|>assistant<|channel|>final I am not sure about this one<|start|>assistant<|channel|>final<|message|>Hi<|return|>")
    s = toks.index(START, 1)
    res = check(hnp, enc, toks)
    assert norm(res.messages) == [msg("assistant", "I am not sure about this one", "final"), msg("assistant", "Hi", "final")]
    assert kinds(res) == [("missing_message", 0, s), ("missing_end", 0, s)]
    # a role given, yet the completion starts with <|start|> and a header the strict parser refuses
    toks = E("<|start|>assistant<|channel|>analysis a b c<|message|>x<|end|>")
    res = check(hnp, enc, toks, "assistant")
    assert norm(res.messages) == [msg("assistant", "x", "analysis")]
    assert [d.kind for d in res.diagnostics] == ["duplicate_start", "header_junk"]
    assert (res.diagnostics[0].start, res.diagnostics[0].stop) == (0, 0)


@pytest.mark.parametrize("stray", ["\n", "  ", "<|end|>", "<|return|>", "<|channel|>", "<|constrain|>", "<|endoftext|>", "<|message|>"])
def test_stray_token_between_messages(hnp, enc, E, stray):
    a = E("<|start|>assistant<|channel|>analysis<|message|>think<|end|>")
    b = E("<|start|>assistant<|channel|>final<|message|>answer<|return|>")
    s = E(stray)
    toks = a + s + b
    res = check(hnp, enc, toks)
    k = len(a)
    if stray == "<|message|>":
        # an empty header closed by <|message|>: the content up to <|start|>... is read as the
        # strict parser reads content, to the next stop token
        assert res.messages[0].channel == "analysis" and len(res.messages) == 2
        assert [d.kind for d in res.diagnostics] == ["missing_start", "missing_role"]
        return
    assert norm(res.messages) == [msg("assistant", "think", "analysis"), msg("assistant", "answer", "final")]
    assert res.unparsed == [(k, k + len(s), "stray_tokens")]
    assert kinds(res) == [("stray_tokens", k, k + len(s))]
    assert res.spans.tolist() == [[0, k], [k + len(s), len(toks)]]


def test_empty_channel(hnp, enc, E):
    toks = E("<|start|>assistant<|channel|><|message|>Hello<|end|>")
    res = check(hnp, enc, toks)
    assert norm(res.messages) == [msg("assistant", "Hello")]
    assert kinds(res) == [("empty_channel", 1, toks.index(MESSAGE))]
    assert "channel marker present but no channel value found in header" in res.diagnostics[0].detail
    # the value written after a space is taken
    toks = E("<|start|>assistant<|channel|> final<|message|>Hello<|end|>")
    res = check(hnp, enc, toks)
    assert norm(res.messages) == [msg("assistant", "Hello", "final")]
    assert [d.kind for d in res.diagnostics] == ["empty_channel"] and "'final'" in res.diagnostics[0].detail
    # the recipient after an empty channel is still the recipient
    toks = E("<|start|>assistant<|channel|> to=functions.f json<|message|>{}<|call|>")
    res = check(hnp, enc, toks)
    assert norm(res.messages) == [msg("assistant", "{}", None, "functions.f", "json")]
    # with the role given
    toks = E("<|channel|><|message|>Hello<|end|>")
    res = check(hnp, enc, toks, "assistant")
    assert norm(res.messages) == [msg("assistant", "Hello")] and [d.kind for d in res.diagnostics] == ["empty_channel"]


def test_missing_message_token(hnp, enc, E):
    text = "The answer is 42, as computed above."
    a = E("<|start|>assistant<|channel|>analysis<|message|>Compute.<|end|>")
    b = E(f"<|start|>assistant<|channel|>final {text}<|return|>")
    res = check(hnp, enc, a + b)
    k = len(a)
    assert norm(res.messages) == [msg("assistant", "Compute.", "analysis"), msg("assistant", text, "final")]
    assert kinds(res) == [("missing_message", k, k + len(b))]
    # the header cut by a stop token although a later <|message|> follows
    c = E("<|start|>assistant<|channel|>final<|message|>Done.<|return|>")
    res = check(hnp, enc, a + b[:-1] + [END] + c)
    assert norm(res.messages) == [msg("assistant", "Compute.", "analysis"), msg("assistant", text, "final"), msg("assistant", "Done.", "final")]
    assert [d.kind for d in res.diagnostics] == ["missing_message"]
    # recipient and constrained content type before the text
    toks = E('<|start|>assistant<|channel|>commentary to=functions.f <|constrain|>json{"a": 1, "b": 2}<|call|>')
    res = check(hnp, enc, toks)
    assert norm(res.messages) == [msg("assistant", '{"a": 1, "b": 2}', "commentary", "functions.f", "<|constrain|>json")]
    # no text at all, closed by a stop token: an empty message
    toks = E("<|start|>assistant<|channel|>final<|end|>")
    res = check(hnp, enc, toks, None)
    assert norm(res.messages) == [msg("assistant", "", "final")] and [d.kind for d in res.diagnostics] == ["missing_message"]


def test_stream_ends_mid_header(hnp, enc, E):
    a = E("<|start|>assistant<|channel|>analysis<|message|>Thinking.<|end|>")
    k = len(a)
    for tail in ("<|start|>", "<|start|>assistant", "<|start|>assistant<|channel|>", "<|start|>assistant<|channel|>fin"):
        t = E(tail)
        res = check(hnp, enc, a + t)
        assert norm(res.messages) == [msg("assistant", "Thinking.", "analysis")]
        assert res.unparsed == [(k, k + len(t), "eos_in_header")]
        assert kinds(res) == [("eos_in_header", k, k + len(t))]
    # the role given, the header never completed
    res = check(hnp, enc, E("<|channel|>final"), "assistant")
    assert res.messages == [] and res.unparsed == [(0, 2, "eos_in_header")]
    res = check(hnp, enc, [], "assistant")
    assert res.messages == [] and kinds(res) == [("eos_in_header", 0, 0)]
    # text after the header fields is a message even though <|message|> never came
    res = check(hnp, enc, a + E("<|start|>assistant<|channel|>final The answer is"))
    assert norm(res.messages)[1] == msg("assistant", "The answer is", "final")
    assert [d.kind for d in res.diagnostics] == ["missing_message"]


def test_text_after_stop_token(hnp, enc, E):
    a = E("<|start|>assistant<|channel|>final<|message|>Paris.<|return|>")
    t = E(" Hope this helps!")
    k = len(a)
    res = check(hnp, enc, a + t)
    assert norm(res.messages) == [msg("assistant", "Paris.", "final"), msg("assistant", " Hope this helps!")]
    assert res.spans.tolist() == [[0, k], [k, k + len(t)]]
    assert kinds(res) == [("missing_start", k, k + 1), ("missing_header", k, k + len(t))]
    # white space only: unparsed
    res = check(hnp, enc, a + E("\n\n"))
    assert norm(res.messages) == [msg("assistant", "Paris.", "final")]
    assert res.unparsed == [(k, k + 1, "stray_tokens")]
    # a whole message without <|start|>
    b = E("assistant<|channel|>final<|message|>More.<|end|>")
    res = check(hnp, enc, a + b)
    assert norm(res.messages) == [msg("assistant", "Paris.", "final"), msg("assistant", "More.", "final")]
    assert kinds(res) == [("missing_start", k, k + 1)]


# -- header repairs -----------------------------------------------------------------------------


def test_header_repairs(hnp, enc, E):
    cases = [
        ("<|start|><|channel|>final<|message|>x<|end|>", msg("assistant", "x", "final"), ["missing_role"]),
        ("<|start|>Assistant<|channel|>final<|message|>x<|end|>", msg("assistant", "x", "final"), ["unknown_role"]),
        ("<|start|>analysis<|message|>x<|end|>", msg("assistant", "x", "analysis"), ["unknown_role"]),
        ("<|start|>functions.get_weather<|message|>{}<|end|>", msg("tool", "{}", name="functions.get_weather"), ["unknown_role"]),
        ("<|start|>––<|channel|>final<|message|>x<|end|>", msg("assistant", "x", "final"), ["unknown_role"]),
        ("<|start|>assistant<|channel|>final to=a b c d<|message|>x<|end|>", msg("assistant", "x", "final", "a", None), ["header_junk"]),
    ]
    for text, expected, diag in cases:
        res = check(hnp, enc, E(text))
        assert norm(res.messages) == [expected], text
        assert [d.kind for d in res.diagnostics] == diag, text


def test_header_invalid_utf8(hnp, enc, E):
    table = enc.vocab.token_bytes_list()
    lone = next(i for i, b in enumerate(table[:199998]) if b == b"\xc3")
    toks = E("<|start|>assistant<|channel|>fin") + [lone] + E("<|message|>x<|end|>")
    res = check(hnp, enc, toks)
    assert norm(res.messages) == [msg("assistant", "x", "fin\ufffd")]
    assert [d.kind for d in res.diagnostics] == ["header_decode"] and "could not decode header" in res.diagnostics[0].detail


def test_strict_oddities_are_kept(hnp, enc, E):
    # the strict parser accepts these (stop tokens inside a header, content spanning <|start|>):
    # recovery returns exactly its messages, with nothing to report
    for text in [
        "<|start|>assistant<|channel|>final I'm<|end|> json<|message|>x<|end|>",
        "<|start|>assistant<|channel|>analysis<|message|>a<|start|>assistant<|channel|>final<|message|>b<|return|>",
        "<|start|>assistant<|channel|>final Sorry now<|end|>",
    ]:
        toks = E(text)
        if text.endswith("now<|end|>"):
            toks = toks + E("<|start|>x<|message|>y<|end|>")
        res = check(hnp, enc, toks)
        assert res.ok and norm(res.messages) == norm(enc.parse_messages_from_completion_tokens(toks))


def test_well_formed_equals_strict(hnp, enc, E, oracle, oenc):
    toks = E(
        "<|start|>assistant<|channel|>analysis<|message|>Weather needed.<|end|>"
        '<|start|>assistant<|channel|>commentary to=functions.get_weather<|constrain|>json<|message|>{"city":"Paris"}<|call|>'
    )
    for role, cut in ((None, 0), ("assistant", 2)):
        res = check(hnp, enc, toks[cut:], role, (oracle, oenc))
        assert res.ok and res.diagnostics == [] and res.unparsed == []
        assert res.spans.tolist()[0][0] == 0


# -- inputs ---------------------------------------------------------------------------------------


def test_invalid_ids(hnp, enc, E):
    toks = E("<|start|>assistant<|message|>x<|end|>")
    for bad in (N_VOCAB, 300000, -1, 2**40):
        t = toks[:2] + [bad] + toks[2:]
        with pytest.raises(ValueError, match=rf"token id {bad} at position 2 is outside the vocabulary"):
            enc.recover_messages_from_completion_tokens(t)
        if 0 <= bad < 2**32:
            with pytest.raises(ValueError, match=str(bad)):
                enc.recover_messages_from_completion_tokens(np.array(t, dtype=np.uint32))
    long = toks * 80
    with pytest.raises(ValueError, match=rf"token id {N_VOCAB} at position 300"):
        enc.recover_messages_from_completion_tokens(np.array(long[:300] + [N_VOCAB] + long[300:], dtype=np.int64))
    with pytest.raises(ValueError, match="-5"):
        enc.recover_messages_from_completion_tokens(np.array([1, -5], dtype=np.int64))
    with pytest.raises(TypeError, match="position 1"):
        enc.recover_messages_from_completion_tokens([1, "x"])
    with pytest.raises(ValueError, match="unknown role"):
        enc.recover_messages_from_completion_tokens(toks, "robot")
    p = hnp.StreamableParser(enc, None, recover=True)
    p.process(START)
    with pytest.raises(ValueError, match=f"token id {N_VOCAB} at position 1"):
        p.process(N_VOCAB)
    with pytest.raises(ValueError, match=f"token id {N_VOCAB} at position 2"):
        p.process_tokens([1, N_VOCAB])
    assert p.tokens == [START]  # nothing consumed by the refused calls


def test_token_containers(hnp, enc, E):
    toks = E("<|start|>assistant<|channel|>final<|message|>" + "word " * 200 + "<|end|>junk<|start|>assistant<|channel|>")
    expected = enc.recover_messages_from_completion_tokens(toks)
    assert len(toks) > 200 and not expected.ok
    for form in (np.array(toks, dtype=np.uint32), np.array(toks, dtype=np.int64), tuple(toks), iter(toks)):
        got = enc.recover_messages_from_completion_tokens(form)
        assert norm(got.messages) == norm(expected.messages)
        assert got.spans.tolist() == expected.spans.tolist() and got.diagnostics == expected.diagnostics
    assert expected.unparsed == [(len(toks) - 3, len(toks), "eos_in_header")]
    assert norm(expected.messages)[1] == msg("assistant", "junk")


def test_recover_flag_and_stream_state(hnp, enc, E):
    from harmony_np.stream import RecoveringStreamableParser
    from harmony_np.stream import StreamableParser

    assert type(hnp.StreamableParser(enc, None)) is StreamableParser
    assert type(hnp.StreamableParser(enc, None, recover=False)) is StreamableParser
    p = hnp.StreamableParser(enc, None, recover=True)
    assert isinstance(p, RecoveringStreamableParser) and isinstance(p, StreamableParser)
    with pytest.raises(ValueError, match="strict=False"):
        hnp.StreamableParser(enc, None, strict=False, recover=True)
    # the plain parser still raises
    with pytest.raises(hnp.HarmonyError):
        hnp.StreamableParser(enc, None).process(E("Hi")[0])
    # recovery mode: junk header, then content streams with the repaired header
    toks = E("<|start|>assistant ––commentary to=functions.f json<|message|>")
    for t in toks:
        p.process(t)
    assert p.recovering and p.state == hnp.StreamState.CONTENT
    assert (p.current_channel, p.current_recipient, p.current_content_type) == ("––commentary", "functions.f", "json")
    assert [d.kind for d in p.diagnostics] == ["header_junk"]
    for t in E('{"a": 1}'):
        p.process(t)
    assert p.current_content == '{"a": 1}' and p.messages == []
    p.process(CALL)
    assert p.state == hnp.StreamState.EXPECT_START and len(p.messages) == 1
    # a region without <|start|>: a header state until it closes
    for t in E(" trailing"):
        p.process(t)
    assert p.state == hnp.StreamState.HEADER
    assert p.state_data == {"state": "Header", "header_tokens": E(" trailing")}
    p.process_eos()
    assert norm(p.messages)[1] == msg("assistant", " trailing")
    assert p.result.spans.tolist() == p.spans.tolist() and p.result.ok is False


# -- property tests -------------------------------------------------------------------------------


def _pool(enc):
    table = enc.vocab.token_bytes_list()
    partial = [i for i, b in enumerate(table[:199998]) if len(b) == 1 and b[0] >= 0x80][:24]
    specials = [START, CHANNEL, MESSAGE, END, RETURN, CALL, CONSTRAIN, 199999, 200013]
    words = enc.encode(" to= to=functions.x json assistant user tool analysis final commentary ––commentary \n I'm sorry <|")
    return specials, words, partial


@pytest.fixture(scope="module")
def token_pool(enc):
    specials, words, partial = _pool(enc)
    return st.sampled_from(specials) | st.sampled_from(words) | st.sampled_from(partial) | st.integers(0, N_VOCAB - 1)


def test_random_token_sequences(hnp, enc, token_pool):
    seen = {"ok": 0, "recovered": 0}
    n = example_count(30)

    @settings(max_examples=n, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
    @given(st.lists(token_pool, max_size=40), st.sampled_from([None, None, "assistant", "user"]))
    def inner(tokens, role):
        res = check(hnp, enc, tokens, role)
        seen["ok" if res.ok else "recovered"] += 1

    inner()
    assert seen["recovered"] > n * 2 // 3 and seen["ok"] > n // 150, seen  # thorough: 2000 and 20 of 3000


def _render(enc, hnp, rng, k):
    toks = []
    for _ in range(k):
        role = rng.choice(["assistant", "assistant", "user", "tool"])
        name = "functions.get_weather" if role == "tool" else None
        text = rng.choice(["Hello there.", "", " spaced  out ", "caf\u00e9 \U0001F600", '{"a": 1}', "I'm sorry, but I can't.", "a\nb"])
        m = hnp.Message.from_author_and_content(hnp.Author(role=hnp.Role(role), name=name), text)
        ch = rng.choice([None, "analysis", "final", "commentary"])
        if ch:
            m = m.with_channel(ch)
        if rng.random() < 0.3:
            m = m.with_recipient("functions.get_weather")
        if rng.random() < 0.2:
            m = m.with_content_type("<|constrain|>json")
        toks += enc.render(m)
    return toks


def mutate(rng, toks, pool, enc):
    toks = list(toks)
    for _ in range(rng.randrange(0, 4)):
        op = rng.choice(["delete", "insert", "replace", "duplicate", "truncate", "append", "swap"])
        i = rng.randrange(0, len(toks) + 1)
        if op == "insert":
            toks.insert(i, rng.choice(pool))
        elif op == "append":
            toks += enc.encode(rng.choice([" Hope this helps!", "\n", "assistant<|channel|>final", "<|start|>"]), allowed_special="all")
        elif not toks or i >= len(toks):
            continue
        elif op == "delete":
            del toks[i]
        elif op == "replace":
            toks[i] = rng.choice(pool)
        elif op == "duplicate":
            j = min(len(toks), i + rng.randrange(1, 4))
            toks[i:i] = toks[i:j]
        elif op == "truncate":
            toks = toks[:i]
        else:
            j = rng.randrange(0, len(toks))
            toks[i], toks[j] = toks[j], toks[i]
    return toks


@pytest.mark.slow
def test_mutated_well_formed_completions(hnp, enc, oracle, oenc):
    """Rendered conversations with a few mutations (some none): all invariants, the oracle's
    messages whenever it accepts the tokens."""
    specials, words, partial = _pool(enc)
    pool = specials * 4 + words + partial + [random.Random(1).randrange(N_VOCAB) for _ in range(20)]
    rng = random.Random(6)
    seen = {"ok": 0, "recovered": 0}
    for _ in range(4000):
        toks = _render(enc, hnp, rng, rng.randrange(1, 4))
        role = rng.choice([None, None, "assistant"])
        if role is not None and toks[:1] == [START] and rng.random() < 0.9:
            toks = toks[2:]
        if rng.random() < 0.8:
            toks = mutate(rng, toks, pool, enc)
        res = check(hnp, enc, toks, role, (oracle, oenc))
        seen["ok" if res.ok else "recovered"] += 1
    assert seen["ok"] > 800 and seen["recovered"] > 1600, seen


def test_mutated_long_completions(hnp, enc, E):
    """Completions past the scanner kernel's threshold (the Numba path), mutated."""
    specials, words, partial = _pool(enc)
    pool = specials * 4 + words + partial
    body = E(" ".join(f"w{i} caf\u00e9 \U0001F600" for i in range(40)))
    base = E("<|start|>assistant<|channel|>analysis<|message|>") + body + E("<|end|><|start|>assistant<|channel|>final<|message|>") + body + [RETURN]
    assert len(base) > 200
    rng = random.Random(3)
    for _ in range(300):
        toks = mutate(rng, base, pool, enc)
        res = check(hnp, enc, toks)
        arr = enc.recover_messages_from_completion_tokens(np.array(toks, dtype=np.uint32))
        assert norm(arr.messages) == norm(res.messages) and arr.diagnostics == res.diagnostics


@pytest.fixture(scope="module")
def rendered(oracle):
    roles = ["assistant", "user", "tool", "developer", "system"]

    @st.composite
    def conv(draw):
        out = []
        for _ in range(draw(st.integers(1, 3))):
            role = draw(st.sampled_from(roles))
            name = "functions.get_weather" if role == "tool" else None
            text = draw(st.text(max_size=12))
            m = oracle.Message.from_author_and_content(oracle.Author(role=oracle.Role(role), name=name), text)
            ch = draw(st.sampled_from([None, "analysis", "commentary", "final"]))
            if ch:
                m = m.with_channel(ch)
            rc = draw(st.sampled_from([None, None, "functions.get_weather", "browser.open"]))
            if rc:
                m = m.with_recipient(rc)
            ct = draw(st.sampled_from([None, None, "json", "<|constrain|>json"]))
            if ct:
                m = m.with_content_type(ct)
            out.append(m)
        return out

    return conv()


def test_rendered_conversations_equal_oracle(hnp, enc, oracle, oenc, rendered):
    """Well-formed input: exactly the oracle's messages, no diagnostics; spans cover each
    rendered message exactly."""

    @settings(max_examples=example_count(6), deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
    @given(rendered, st.booleans())
    def inner(msgs, with_role):
        parts = []
        for m in msgs:
            try:
                parts.append(oenc.render(m))
            except Exception:  # noqa: BLE001 - a combination the renderer refuses
                continue
        toks = [t for p in parts for t in p]
        role = None
        if with_role and parts:
            role = msgs[0].author.role.value if msgs[0].author.role.value != "tool" else None
            if role is not None:
                toks = toks[2:]
        try:
            oenc.parse_messages_from_completion_tokens(toks, None if role is None else oracle.Role(role))
        except Exception:  # noqa: BLE001 - e.g. a rendered text that itself holds a stop token
            return
        res = check(hnp, enc, toks, role, (oracle, oenc))
        assert res.ok
        bounds = np.cumsum([0] + [len(p) for p in parts]) - (2 if role else 0)
        bounds[0] = 0
        if all(t not in STOPS for p in parts for t in p[:-1]):
            assert res.spans.tolist() == [[int(a), int(b)] for a, b in zip(bounds[:-1], bounds[1:])]

    inner()


# -- the documentation's examples are this code's output ---------------------------------------------


def test_doc_examples_are_current(enc):
    from harmony_np.recover import explain

    text = DOC.read_text(encoding="utf-8")
    blocks = re.findall(r"```text\n(tokens \(role=[^)]*\): .*?)\n```", text, flags=re.S)
    assert len(blocks) >= 9
    for block in blocks:
        first, _, rest = block.partition("\n")
        m = re.match(r"tokens \(role=(\w+)\): (.*)\Z", first)
        role = None if m.group(1) == "None" else m.group(1)
        toks = enc.encode(ast.literal_eval(m.group(2)), allowed_special="all")
        assert explain(enc, toks, role) == rest, first


def test_masked_arrays(hnp, enc, E):
    """A masked entry is not an integer (the oracle's single calls refuse it too), never its
    fill value; a masked array with nothing masked reads as its data."""
    toks = E("<|start|>assistant<|channel|>final<|message|>" + "word " * 200 + "<|end|>")
    expected = enc.recover_messages_from_completion_tokens(toks)
    for dt in (np.uint32, np.int64, ">u4"):
        for n in (10, len(toks)):  # the short path and the kernel path
            part = toks[: n - 1] + [END]
            want = enc.recover_messages_from_completion_tokens(part)
            got = enc.recover_messages_from_completion_tokens(np.ma.array(part, mask=False, dtype=dt))
            assert norm(got.messages) == norm(want.messages) and got.spans.tolist() == want.spans.tolist()
            mask = np.zeros(n, dtype=bool)
            mask[n - 3] = True
            with pytest.raises(TypeError, match=rf"^token at position {n - 3} is not an integer: masked$"):
                enc.recover_messages_from_completion_tokens(np.ma.array(part, mask=mask, dtype=dt))
            p = hnp.StreamableParser(enc, None, recover=True)
            with pytest.raises(TypeError, match=rf"^token at position {n - 3} is not an integer: masked$"):
                p.process_tokens(np.ma.array(part, mask=mask, dtype=dt))
            assert p.tokens == []  # nothing consumed by the refused call
    # an id outside the vocabulary under the mask is not read
    hidden = np.ma.array(toks[:5] + [300000] + toks[6:], mask=[i == 5 for i in range(len(toks))], dtype=np.uint32)
    with pytest.raises(TypeError, match="position 5 is not an integer"):
        enc.recover_messages_from_completion_tokens(hidden)
    assert norm(enc.recover_messages_from_completion_tokens(np.ma.array(toks)).messages) == norm(expected.messages)


def test_result_does_not_keep_the_callers_array(hnp, enc, E):
    """A RecoveryResult (its spans are built when first read) and the recovering parser hold no
    reference to the caller's array: changing it afterwards changes nothing."""
    toks = E("<|start|>assistant<|channel|>final<|message|>" + "word " * 200 + "<|end|>junk<|start|>assistant")
    want = enc.recover_messages_from_completion_tokens(toks)
    arr = np.array(toks, dtype=np.uint32)
    got = enc.recover_messages_from_completion_tokens(arr)
    p = hnp.StreamableParser(enc, None, recover=True).process_tokens(arr)
    arr[:] = 2**32 - 1
    p.process_eos()
    for res in (got, p.result):
        assert norm(res.messages) == norm(want.messages)
        assert res.spans.tolist() == want.spans.tolist()
        assert res.unparsed == want.unparsed and res.diagnostics == want.diagnostics
