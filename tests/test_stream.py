"""StreamableParser against the oracle's, observed after every token; process_tokens against
process; constructor and token errors."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from profiles import example_count
from test_parse import mutate

START, CHANNEL, MESSAGE, END, RETURN, CALL, CONSTRAIN = 200006, 200005, 200008, 200007, 200002, 200012, 200003
N_VOCAB = 201_089

ATTRS = (
    "state_data",
    "current_role",
    "current_channel",
    "current_recipient",
    "current_content_type",
    "current_content",
    "last_content_delta",
    "tokens",
)


def observe(p):
    out = {}
    for a in ATTRS:
        try:
            v = getattr(p, a)
        except Exception as exc:  # noqa: BLE001
            v = (type(exc).__name__, str(exc))
        if a == "current_role" and v is not None:
            v = v.value
        out[a] = v
    out["state"] = p.state.value
    msgs = []
    for m in p.messages:
        d = m.to_dict()
        d["role"] = d["role"].value
        msgs.append(d)
    out["messages"] = msgs
    return out


def call(f, *args):
    try:
        f(*args)
        return None
    except Exception as exc:  # noqa: BLE001
        return (type(exc).__name__, str(exc))


def make_pair(oracle, oenc, hnp, enc, role, strict):
    orole = None if role is None else oracle.Role(role)
    hrole = None if role is None else hnp.Role(role)
    return oracle.StreamableParser(oenc, orole, strict=strict), hnp.StreamableParser(enc, hrole, strict=strict)


def check_stream(oracle, oenc, hnp, enc, tokens, role=None, strict=True):
    """Feed both parsers token by token (then EOS); all observables equal after each step."""
    po, ph = make_pair(oracle, oenc, hnp, enc, role, strict)
    assert observe(ph) == observe(po)
    errors = 0
    for tok in list(tokens) + [None]:
        if tok is None:
            eo, eh = call(po.process_eos), call(ph.process_eos)
        else:
            eo, eh = call(po.process, tok), call(ph.process, tok)
        assert eh == eo, (tokens, tok)
        errors += eo is not None
        assert observe(ph) == observe(po), (tokens, tok)
    return ph, errors


@pytest.fixture(scope="module")
def E(oenc):
    return lambda s: oenc.encode(s, allowed_special="all")


@pytest.fixture(scope="module")
def byte_tok(enc):
    table = enc.vocab.token_bytes_list()
    return {b[0]: i for i, b in enumerate(table[:199998]) if len(b) == 1}


# -- hand-written -------------------------------------------------------------------------------

CASES = [
    "<|start|>functions.x to=assistant<|channel|>commentary<|message|>h\u00e9llo \U0001F600<|end|>",
    '<|start|>assistant<|channel|>commentary to=functions.get_weather<|constrain|>json<|message|>{"a": 1}<|call|>',
    "<|start|>assistant<|channel|>analysis<|message|>a b<|end|><|start|>assistant<|channel|>final<|message|>c<|return|>",
    "<|start|>tool<|message|>hi<|end|>",
    "<|start|>assistant<|channel|><|message|>hi<|end|>",
    "<|start|>assistant foo bar<|message|>hi<|end|>",
    "<|start|>user<|message|>hi",
    "<|start|>user<|message|>hi<|end|>x",
    "<|start|>user<|message|>a<|start|>b<|channel|>c<|constrain|><|end|>",
    "<|channel|><|message|>x<|end|>y",
    "<|channel|>final Hello   world<|end|><|start|>user x<|end|>",
    "Hello world<|end|>",
    "<|start|>user",
    "",
    "<|start|>assistant<|message|>\u4e2d\u6587\u6d4b\u8bd5 \U0001F600\U0001F680 caf\u00e9<|end|>",
]


@pytest.mark.parametrize("text", CASES)
@pytest.mark.parametrize("role", [None, "assistant"])
@pytest.mark.parametrize("strict", [True, False])
def test_cases_match_oracle(oracle, oenc, hnp, enc, E, text, role, strict):
    ph, _ = check_stream(oracle, oenc, hnp, enc, E(text), role, strict)
    assert ph.tokens == E(text)


def test_deltas_and_state(hnp, enc, E):
    p = hnp.StreamableParser(enc, None)
    for t in E("<|start|>assistant<|channel|>final<|message|>"):
        p.process(t)
    assert p.state == hnp.StreamState.CONTENT
    assert (p.current_role, p.current_channel) == (hnp.Role.ASSISTANT, "final")
    deltas = []
    for t in E("Hello world"):
        p.process(t)
        deltas.append(p.last_content_delta)
    assert "".join(deltas) == "Hello world" == p.current_content
    assert p.state_data["content_tokens"] == E("Hello world")
    assert p.process(END) is p
    assert p.state == hnp.StreamState.EXPECT_START and p.last_content_delta is None
    assert [m.content[0].text for m in p.messages] == ["Hello world"]
    assert p.process_eos() is p


def test_utf8_split_across_tokens(oracle, oenc, hnp, enc, E, byte_tok):
    head = E("<|start|>assistant<|message|>")
    euro = [byte_tok[b] for b in "\u20ac".encode()]
    ph, _ = check_stream(oracle, oenc, hnp, enc, head + euro + [END])
    assert ph.messages[0].content[0].text == "\u20ac"
    p = hnp.StreamableParser(enc, None)
    for t in head + euro[:2]:
        p.process(t)
    assert p.last_content_delta is None and p.current_content == ""
    p.process(euro[2])
    assert p.last_content_delta == "\u20ac"


@pytest.mark.parametrize(
    "seq",
    [
        [0xE2, 0x82],
        [0xFF, 0x41, 0x42],
        [0xE2, 0x41],
        [0xF0, 0x9F, 0x98, 0x80, 0x80],
        [0xC0, 0xAF, 0xE0, 0x80, 0xBF],
        [0xED, 0xA0, 0x80, 0x41],
        [0xF4, 0x90, 0x80, 0x80],
        [0x41, 0xF0, 0x9F],
    ],
)
@pytest.mark.parametrize("tail", [[], [END], ["bad", 0x41], [0x41, "bad", END]])
def test_invalid_utf8(oracle, oenc, hnp, enc, E, byte_tok, seq, tail):
    toks = E("<|start|>assistant<|message|>") + [byte_tok[b] for b in seq]
    toks += [300000 if t == "bad" else t if t == END else byte_tok[t] for t in tail]
    ph, _ = check_stream(oracle, oenc, hnp, enc, toks)
    assert len(ph.messages) == 1


def test_header_error_leaves_expect_start_with_role(oracle, oenc, hnp, enc, E):
    ph, errors = check_stream(oracle, oenc, hnp, enc, E("<|channel|><|message|>"), "assistant")
    assert errors == 1
    assert ph.state == hnp.StreamState.EXPECT_START
    assert ph.current_role == hnp.Role.ASSISTANT  # the oracle keeps the role after the failure


def test_non_strict_stop_in_header_with_bad_bytes(oracle, oenc, hnp, enc, E, byte_tok):
    for hdr in ([300000], [byte_tok[0xFF]], E("<|channel|>"), E("x<|channel|> y")):
        ph, _ = check_stream(oracle, oenc, hnp, enc, hdr + [END, START] + E("user<|message|>x"), "assistant", False)


# -- errors --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "token",
    [1.0, -1, 2**32, 2**40, 2**63, 2**64, -(2**64), None, "a", True, np.int64(5), np.uint8(7), np.True_, np.float32(1),
     np.array([1]), 300000, 2**32 - 1, START],
    ids=repr,
)
def test_process_errors(oracle, oenc, hnp, enc, token):
    po, ph = make_pair(oracle, oenc, hnp, enc, None, True)
    eo, eh = call(po.process, token), call(ph.process, token)
    assert eh == eo
    assert observe(ph) == observe(po)


@pytest.mark.parametrize("token", [1.0, None, 2**40, 300000, 5])
def test_process_errors_in_content(oracle, oenc, hnp, enc, E, token):
    po, ph = make_pair(oracle, oenc, hnp, enc, None, True)
    for t in E("<|start|>user<|message|>ab"):
        po.process(t)
        ph.process(t)
    assert call(ph.process, token) == call(po.process, token)
    assert observe(ph) == observe(po)


def test_constructor_errors(oracle, oenc, hnp, enc):
    class FakeRole:
        value = "nope"

    class GoodRole:
        value = "assistant"

    for role, kw in [
        ("assistant", {}),
        (FakeRole(), {}),
        (FakeRole(), {"strict": 1}),
        (None, {"strict": "x"}),
        (None, {"strict": np.int64(1)}),
        (None, {"strict": np.True_}),
        (None, {"strict": None}),
        (GoodRole(), {}),
    ]:
        eo = call(lambda: oracle.StreamableParser(oenc, role, **kw))
        eh = call(lambda: hnp.StreamableParser(enc, role, **kw))
        assert eh == eo, (role, kw)
    with pytest.raises(TypeError, match="missing 1 required positional argument: 'role'"):
        hnp.StreamableParser(enc)
    p = hnp.StreamableParser(enc, GoodRole(), strict=np.False_)
    assert p.current_role == hnp.Role.ASSISTANT and p.state == hnp.StreamState.HEADER


_LAZY_IMPORT_CHILD = r"""
import json, sys
import harmony_np
from harmony_np import stream

HEAVY = ("numba", "harmony_np.kernels")
report = {"same_class": harmony_np.StreamableParser is stream.StreamableParser}
enc = harmony_np.load_harmony_encoding(harmony_np.HarmonyEncodingName.HARMONY_GPT_OSS)
short = enc.encode("<|start|>assistant<|channel|>final<|message|>hi there<|end|>", allowed_special="all")
one, bulk = harmony_np.StreamableParser(enc, None), harmony_np.StreamableParser(enc, None)
for t in short:
    one.process(t)
bulk.process_tokens(short)
report["short_messages"] = [len(one.messages), len(bulk.messages)]
report["heavy_after_short"] = [m for m in HEAVY if m in sys.modules]
longer = harmony_np.StreamableParser(enc, None)
longer.process_tokens(short * (stream.STREAM_BULK_MIN // len(short) + 1))  # the kernel path
report["heavy_after_long"] = [m for m in HEAVY if m in sys.modules]
print(json.dumps(report))
"""


def test_lazy_import_from_package():
    """The package's StreamableParser is harmony_np.stream's (imported with the package since
    42e5093; a lazy module ``__getattr__`` cost every access), and the heavy imports stay lazy:
    numba and the kernels are first imported when a chunk long enough for the kernel path
    arrives, never by importing the package or streaming a short completion. In a fresh
    interpreter, since this session imported them long ago."""
    r = subprocess.run([sys.executable, "-c", _LAZY_IMPORT_CHILD], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    report = json.loads(r.stdout.strip().splitlines()[-1])
    assert report["same_class"]
    assert report["short_messages"] == [1, 1]
    assert report["heavy_after_short"] == []
    # the check sees an import when there is one
    assert report["heavy_after_long"] == ["numba", "harmony_np.kernels"]


# -- hypothesis: mutated completions, every token observed -------------------------------------

_TEXTS = ["Hello", "", " spaced  out ", "caf\u00e9 \U0001F600", "\u4e2d\u6587", '{"a": 1}', "a\u0301b\nc"]


@st.composite
def completions(draw, oracle, oenc, enc, pool_tokens):
    tokens = []
    for _ in range(draw(st.integers(1, 2))):
        role = draw(st.sampled_from(["assistant", "user", "tool"]))
        name = "functions.f" if role == "tool" else None
        text = draw(st.sampled_from(_TEXTS) | st.text(max_size=8))
        m = oracle.Message.from_author_and_content(oracle.Author(role=oracle.Role(role), name=name), text)
        ch = draw(st.sampled_from([None, "analysis", "final"]))
        if ch:
            m = m.with_channel(ch)
        rc = draw(st.sampled_from([None, "functions.get_weather"]))
        if rc:
            m = m.with_recipient(rc)
        if draw(st.booleans()):
            m = m.with_content_type("<|constrain|>json")
        tokens += oenc.render(m)
    role = draw(st.sampled_from([None, None, "assistant", "user"]))
    if role is not None and tokens and tokens[0] == START:
        tokens = tokens[draw(st.sampled_from([1, 2])) :]
    pool = st.sampled_from(pool_tokens) | st.integers(0, N_VOCAB - 1)
    mutate(draw, tokens, pool, 3)
    return tokens, role, draw(st.booleans())


@pytest.fixture(scope="module")
def completion_strategy(oracle, oenc, enc, byte_tok):
    table = enc.vocab.token_bytes_list()
    partial = []
    for i, b in enumerate(table[:199998]):
        if len(b) > 1 and len(partial) < 48:
            try:
                b.decode("utf-8")
            except UnicodeDecodeError:
                partial.append(i)
    pool = [START, CHANNEL, MESSAGE, END, RETURN, CALL, CONSTRAIN, 199999, N_VOCAB, 300000]
    pool += [byte_tok[b] for b in (0x80, 0xBF, 0xC3, 0xE2, 0xF0, 0xFF, 0x20, 0x0A)] + partial
    pool += enc.encode(" to=x json assistant")
    return completions(oracle, oenc, enc, pool)


def test_differential_every_token(oracle, oenc, hnp, enc, completion_strategy):
    seen = {"errors": 0, "clean": 0}
    n = example_count(6)

    @settings(max_examples=n, deadline=None, suppress_health_check=list(HealthCheck))
    @given(completion_strategy)
    def inner(case):
        tokens, role, strict = case
        _, errors = check_stream(oracle, oenc, hnp, enc, tokens, role, strict)
        seen["errors" if errors else "clean"] += 1

    inner()
    assert seen["errors"] > n // 12 and seen["clean"] > n // 12, seen  # thorough: 50 of 600 each


# -- process_tokens ---------------------------------------------------------------------------------


@pytest.mark.parametrize("bulk_min", [24, None])
def test_process_tokens_matches_process(hnp, enc, completion_strategy, monkeypatch, bulk_min):
    from harmony_np import stream

    bulk_calls = []
    small_calls = []
    real_feed = stream.StreamableParser._feed
    real_small = stream.StreamableParser._feed_small
    monkeypatch.setattr(stream.StreamableParser, "_feed", lambda self, buf: (bulk_calls.append(len(buf)), real_feed(self, buf)))
    monkeypatch.setattr(stream.StreamableParser, "_feed_small", lambda self, buf: (small_calls.append(len(buf)), real_small(self, buf)))
    if bulk_min is not None:  # the kernel path on shorter chunks too, so that it is exercised
        monkeypatch.setattr(stream, "STREAM_BULK_MIN", bulk_min)

    n = example_count(4)

    @settings(max_examples=n, deadline=None, suppress_health_check=list(HealthCheck))
    @given(completion_strategy, st.lists(st.integers(1, 60), max_size=4), st.booleans())
    def inner(case, cuts, as_numpy):
        tokens, role, strict = case
        tokens = tokens * 3  # long enough for the bulk path
        hrole = None if role is None else hnp.Role(role)
        one = hnp.StreamableParser(enc, hrole, strict=strict)
        bulk = hnp.StreamableParser(enc, hrole, strict=strict)
        bounds = sorted({0, len(tokens), *[min(c * 5, len(tokens)) for c in cuts]})
        for a, b in zip(bounds, bounds[1:]):
            chunk = tokens[a:b]
            e1 = None
            for t in chunk:
                e1 = call(one.process, t)
                if e1:
                    break
            e2 = call(bulk.process_tokens, np.array(chunk, dtype=np.int64) if as_numpy else chunk)
            assert e2 == e1
            assert observe(bulk) == observe(one)
            if e1:
                break

    inner()
    # floors that scale with the profile (thorough: 50 calls in 400 examples)
    if bulk_min is not None:
        assert len(bulk_calls) > n // 8
    else:
        assert len(small_calls) > n // 8


def test_process_tokens_against_oracle(oracle, oenc, hnp, enc, E):
    text = (
        "<|start|>assistant<|channel|>analysis<|message|>" + "caf\u00e9 \U0001F600 \u4e2d\u6587 " * 40 + "<|end|>"
        "<|start|>assistant<|channel|>final<|message|>" + "done " * 30
    )
    toks = E(text)
    po = oracle.StreamableParser(oenc, None)
    for t in toks:
        po.process(t)
    ph = hnp.StreamableParser(enc, None)
    assert ph.process_tokens(toks) is ph
    assert observe(ph) == observe(po)
    po.process_eos()
    ph.process_eos()
    assert observe(ph) == observe(po)
    assert len(ph.messages) == 2


def test_process_tokens_bad_item_midway(oracle, oenc, hnp, enc, E):
    toks = E("<|start|>user<|message|>" + "word " * 30)
    for bad in (1.5, -1, 2**64, "x"):
        po, ph = make_pair(oracle, oenc, hnp, enc, None, True)
        eo = None
        for t in toks + [bad] + toks:
            eo = call(po.process, t)
            if eo:
                break
        eh = call(ph.process_tokens, toks + [bad] + toks)
        assert eh == eo
        assert observe(ph) == observe(po)
        assert len(ph.tokens) == len(toks)


def test_process_tokens_non_iterable(hnp, enc):
    p = hnp.StreamableParser(enc, None)
    with pytest.raises(TypeError, match="'int' object is not iterable"):
        p.process_tokens(5)
    assert p.tokens == []


def test_process_tokens_odd_int_types(hnp, enc, E):
    toks = E("<|start|>user<|message|>" + "word caf\u00e9 " * 20) + [END] + E("<|start|>assistant<|message|>x")
    mixed = [np.int64(t) if i % 3 == 0 else t for i, t in enumerate(toks)]
    mixed[toks.index(MESSAGE) + 1] = True  # token 1, as a bool
    plain = list(toks)
    plain[toks.index(MESSAGE) + 1] = 1
    one = hnp.StreamableParser(enc, None)
    for t in plain:
        one.process(t)
    bulk = hnp.StreamableParser(enc, None).process_tokens(mixed)
    assert observe(bulk) == observe(one)
    assert all(type(t) is int for t in bulk.tokens)
    assert all(type(t) is int for t in bulk.state_data["content_tokens"])


@pytest.mark.parametrize("bad", [-1, 2**32, 2**63 - 1])
def test_process_tokens_numpy_out_of_range(oracle, oenc, hnp, enc, E, bad):
    toks = E("<|start|>user<|message|>" + "word " * 30)
    po, ph = make_pair(oracle, oenc, hnp, enc, None, True)
    for t in toks:
        po.process(t)
    eo = call(po.process, bad)
    eh = call(ph.process_tokens, np.array(toks + [bad] + toks, dtype=np.int64))
    assert eh == eo and eo[0] == "OverflowError"
    assert observe(ph) == observe(po)
    big = np.array(toks + [2**64 - 1], dtype=np.uint64)
    ph2 = hnp.StreamableParser(enc, None)
    assert call(ph2.process_tokens, big) == ("OverflowError", "Python int too large to convert to C long")
    assert ph2.tokens == toks


@pytest.mark.parametrize("dtype", [np.uint32, np.int64, ">u4"])
@pytest.mark.parametrize("where", ["header", "content", "none", "long content"])
def test_process_tokens_masked_array(oracle, oenc, hnp, enc, E, dtype, where):
    """A masked entry is refused as the oracle's process refuses it (the tokens before it are
    consumed), never read as its fill value; each masked item given to process is refused too."""
    toks = E("<|start|>assistant<|channel|>final<|message|>" + "word caf\u00e9 " * (100 if where == "long content" else 10))
    mask = np.zeros(len(toks), dtype=bool)
    if where == "header":
        mask[2] = True
    elif where != "none":
        mask[len(toks) - 3] = True
    arr = np.ma.array(toks, mask=mask, dtype=dtype)
    po, ph = make_pair(oracle, oenc, hnp, enc, None, True)
    eo = None
    for t in arr:
        eo = call(po.process, t)
        if eo:
            break
    assert call(ph.process_tokens, arr) == eo
    assert observe(ph) == observe(po)
    assert (eo is None) == (where == "none")
    # item by item: the masked constant itself
    ph1 = hnp.StreamableParser(enc, None)
    e1 = None
    for t in arr:
        e1 = call(ph1.process, t)
        if e1:
            break
    assert e1 == eo
    assert observe(ph1) == observe(po)


def test_parser_does_not_keep_the_callers_array(hnp, enc, E):
    """process_tokens copies what it is given: the caller's array changed afterwards (ids past
    the byte table included) changes nothing in the parser, mid-message or later."""
    toks = E("<|start|>assistant<|channel|>final<|message|>" + "caf\u00e9 word " * 150)
    for n in (20, len(toks)):  # the Python loop and the kernel path
        want = hnp.StreamableParser(enc, None).process_tokens(list(toks[:n])).process_eos()
        arr = np.array(toks[:n], dtype=np.uint32)
        p = hnp.StreamableParser(enc, None).process_tokens(arr)
        arr[:] = 2**32 - 1
        assert p.current_content == want.messages[0].content[0].text
        p.process_eos()
        assert observe(p) == observe(want)
