"""parse_messages_from_completion_tokens against the oracle: hand-written cases, every error,
hypothesis differential tests on mutated rendered conversations, and the scanner kernel against a
naive reference."""

from __future__ import annotations

import array

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from naive import naive_scan
from profiles import example_count

START, CHANNEL, MESSAGE, END, RETURN, CALL, CONSTRAIN = 200006, 200005, 200008, 200007, 200002, 200012, 200003
N_VOCAB = 201_089


# -- helpers ----------------------------------------------------------------------------------


def _norm_messages(msgs):
    out = []
    for m in msgs:
        d = m.to_dict()
        d["role"] = d["role"].value
        out.append(d)
    return out


def run_oracle(oenc, tokens, role=None, strict=True):
    try:
        return _norm_messages(oenc.parse_messages_from_completion_tokens(tokens, role, strict=strict))
    except Exception as exc:  # noqa: BLE001 - the type and text are what is compared
        return (type(exc).__name__, str(exc))


def run_ours(enc, tokens, role=None, strict=True):
    try:
        return _norm_messages(enc.parse_messages_from_completion_tokens(tokens, role, strict=strict))
    except Exception as exc:  # noqa: BLE001
        return (type(exc).__name__, str(exc))


def roles(oracle, hnp, name):
    if name is None:
        return None, None
    return oracle.Role(name), hnp.Role(name)


def check_same(oenc, enc, oracle, hnp, tokens, role=None, strict=True):
    orole, hrole = roles(oracle, hnp, role)
    expected = run_oracle(oenc, list(tokens), orole, strict)
    got = run_ours(enc, tokens, hrole, strict)
    assert got == expected, (list(tokens), role, strict)
    return got


@pytest.fixture(scope="module")
def E(oenc):
    return lambda s: oenc.encode(s, allowed_special="all")


# -- hand-written cases -------------------------------------------------------------------------

TOOL_CALL = (
    '<|start|>assistant<|channel|>commentary to=functions.get_weather<|constrain|>json<|message|>'
    '{"latitude":48.8566,"longitude":2.3522}<|call|>'
)

CASES = [
    TOOL_CALL,
    # to= before / after the channel, constrain adjacency
    "<|start|>assistant to=functions.f<|channel|>commentary json<|message|>{}<|call|>",
    "<|start|>assistant<|channel|>commentary to=functions.f json<|message|>{}<|call|>",
    "<|start|>assistant to=functions.f<|constrain|>json<|channel|>commentary<|message|>{}<|call|>",
    "<|start|>assistant<|channel|>commentary<|constrain|>json to=functions.f<|message|>{}<|call|>",
    "<|start|>assistant<|constrain|>json<|message|>x<|end|>",
    "<|start|>assistant to=x<|constrain|>json<|message|>x<|end|>",
    "<|start|>assistant <|constrain|>json<|message|>x<|end|>",
    "<|start|>assistant to=x <|constrain|> json<|message|>x<|end|>",
    "<|start|>assistant x<|message|>y<|end|>",
    "<|start|>assistant to=<|message|>y<|end|>",
    # tool names as roles
    "<|start|>functions.get_weather to=assistant<|channel|>commentary<|message|>{\"t\": 20}<|end|>",
    "<|start|>functions.x tool to=y<|message|>hi<|end|>",
    "<|start|>tool<|message|>hi<|end|>",
    "<|start|>to=functions.x<|message|>hi<|end|>",
    "<|start|>browser.search<|message|>hi<|end|>",
    "<|start|>Assistant<|message|>hi<|end|>",
    # channels
    "<|start|>assistant<|channel|><|message|>hi<|end|>",
    "<|start|>assistant<|channel|> final<|message|>hi<|end|>",
    "<|start|>assistant<|channel|>a<b<|message|>hi<|end|>",
    "<|start|>assistant<|channel|>fin\u3000al<|message|>hi<|end|>",
    "<|start|>assistant<|channel|>fin\x1cal<|message|>hi<|end|>",
    "<|start|>assistant<|channel|>x<|channel|>y<|message|>hi<|end|>",
    "<|start|>\u3000assistant\u2003<|message|>hi<|end|>",
    "<|start|>assistant\x0bto=x<|message|>hi<|end|>",
    "<|start|>assistant\tto=x\njson<|message|>hi<|end|>",
    # leftovers in the header (Rust Debug quoting of the error)
    "<|start|>assistant foo bar baz<|message|>hi<|end|>",
    '<|start|>assistant "q\\\\ t\u0301 \x7f\xad \u200b \U0001F600 \x00 e\u0301<|message|>hi<|end|>',
    # several messages, stops, EOS
    "<|start|>assistant<|channel|>analysis<|message|>a<|end|><|start|>assistant<|channel|>final<|message|>b<|return|>",
    "<|start|>user<|message|>hi",
    "<|start|>user<|message|>",
    "<|start|>user<|message|>hi<|end|>x",
    "<|start|>user<|message|>hi<|end|><|start|>",
    "<|start|>user<|message|>hi<|end|><|start|>user",
    "<|start|>user<|message|>a<|start|>b<|channel|>c<|message|>d<|constrain|><|end|>",
    "<|start|><|message|>",
    "<|start|> <|message|>x",
    "<|start|>foo<|message|>",
    "<|message|>x<|end|>",
    "assistant<|message|>x<|end|>",
    "<|channel|>final<|message|>x<|end|>",
    "user<|end|>",
    "<|end|>",
    "",
    "Hello   world\u3000x<|end|>",
    "<|channel|>final Hello   world<|end|><|start|>user x<|end|>",
    "<|channel|>final<|end|>",
    "<|channel|><|end|>",
    "assistant<|end|>",
    "assistant to=x json<|call|>tail",
    "<|start|>assistant<|start|><|message|>x<|start|>y<|end|>",
    "<|start|>assistant<|end|><|start|>user<|message|>x<|end|>",
    "<|start|>assistant<|message|>caf\u00e9 \U0001F600 \u4e2d\u6587<|end|>",
]


@pytest.mark.parametrize("text", CASES)
@pytest.mark.parametrize("role", [None, "assistant", "tool", "user"])
@pytest.mark.parametrize("strict", [True, False])
def test_cases_match_oracle(oenc, enc, oracle, hnp, E, text, role, strict):
    check_same(oenc, enc, oracle, hnp, E(text), role, strict)


def test_tool_call_fields(enc, hnp, E):
    (m,) = enc.parse_messages_from_completion_tokens(E(TOOL_CALL))
    assert m.author == hnp.Author(hnp.Role.ASSISTANT)
    assert m.channel == "commentary"
    assert m.recipient == "functions.get_weather"
    assert m.content_type == "<|constrain|>json"
    assert m.content == [hnp.TextContent('{"latitude":48.8566,"longitude":2.3522}')]


def _straddling_pair(token, shift):
    """Two u32 ids whose little-endian bytes hold ``token``'s 4 bytes at byte offset ``shift``."""
    raw = bytearray(b"\x01" * 8)
    raw[shift : shift + 4] = token.to_bytes(4, "little")
    return [int.from_bytes(raw[:4], "little"), int.from_bytes(raw[4:], "little")]


@pytest.mark.parametrize("token", [START, MESSAGE, END, CALL, RETURN])
@pytest.mark.parametrize("shift", [1, 2, 3])
def test_misaligned_formatting_bytes(oenc, enc, oracle, hnp, E, token, shift):
    # the short-completion path searches the ids' bytes: a match that straddles two ids must not
    # count as a formatting token
    tool = E(TOOL_CALL)
    check_same(oenc, enc, oracle, hnp, tool)  # caches the header
    pair = _straddling_pair(token, shift)
    at_message = tool.index(MESSAGE)
    for where in (2, at_message, at_message + 1, len(tool) - 1, len(tool)):
        for role in (None, "assistant"):
            check_same(oenc, enc, oracle, hnp, tool[:where] + pair + tool[where:], role)
            check_same(oenc, enc, oracle, hnp, tool[1:where] + pair + tool[where:], role)


@pytest.mark.parametrize("shift", [1, 2, 3])
def test_misaligned_message_stream(oenc, enc, oracle, hnp, E, shift):
    # a whole well-formed message whose bytes sit ``shift`` bytes off the id boundaries, after an
    # aligned one: every formatting token of the second message straddles two ids, and its
    # content ids (multiples of 256) still give known ids when read off by ``shift`` bytes
    check_same(oenc, enc, oracle, hnp, E("<|start|>assistant<|message|>x<|end|>"))  # caches the header
    first = array.array("I", E("<|start|>user<|message|>a")).tobytes()
    second = array.array("I", E("<|end|><|start|>assistant<|message|>") + [256, 512, 768]).tobytes()
    data = first + b"\x00" * shift + second + b"\x00" * (4 - shift)
    tokens = array.array("I", data).tolist()
    got = check_same(oenc, enc, oracle, hnp, tokens)
    assert not isinstance(got, list) or len(got) == 1, got


def test_tool_role_names(enc, hnp, E):
    (m,) = enc.parse_messages_from_completion_tokens(E("<|start|>functions.x tool to=y<|message|>hi<|end|>"))
    assert (m.author.role, m.author.name, m.recipient) == (hnp.Role.TOOL, "functions.x", "y")
    (m,) = enc.parse_messages_from_completion_tokens(E("<|start|>tool<|message|>hi<|end|>"))
    assert (m.author.role, m.author.name) == (hnp.Role.TOOL, "tool")
    (m,) = enc.parse_messages_from_completion_tokens(E("<|message|>hi<|end|>"), hnp.Role.TOOL)
    assert (m.author.role, m.author.name) == (hnp.Role.TOOL, None)


def test_non_strict_header_cut_short(enc, hnp, E):
    msgs = enc.parse_messages_from_completion_tokens(
        E("<|channel|>final Hello   world<|end|><|start|>user x<|end|>"), hnp.Role.ASSISTANT, strict=False
    )
    assert [(m.author.role, m.channel, m.content[0].text) for m in msgs] == [(hnp.Role.ASSISTANT, "final", "Hello world")]
    with pytest.raises(hnp.HarmonyError, match="^Unexpected EOS while waiting for message header to complete$"):
        enc.parse_messages_from_completion_tokens(E("<|channel|>final Hello<|end|>"), hnp.Role.ASSISTANT)


def test_header_errors(enc, hnp, E):
    p = enc.parse_messages_from_completion_tokens
    with pytest.raises(hnp.HarmonyError, match="^channel marker present but no channel value found in header$"):
        p(E("<|start|>assistant<|channel|><|message|>x<|end|>"))
    with pytest.raises(hnp.HarmonyError, match=r'^unexpected tokens remaining in message header: Some\("foo"\)$'):
        p(E("<|start|>assistant foo bar baz<|message|>x<|end|>"))
    with pytest.raises(hnp.HarmonyError, match="^message header did not contain a role$"):
        p(E("<|start|> <|message|>x"))
    with pytest.raises(hnp.HarmonyError, match="^Unknown role: foo$"):
        p(E("<|start|>foo<|message|>x"))
    with pytest.raises(hnp.HarmonyError, match="^could not decode header$"):
        p([START, 300000, MESSAGE])
    with pytest.raises(hnp.HarmonyError, match="^Unexpected token 5 while expecting start token 200006$"):
        p(E("<|start|>user<|message|>x<|end|>") + [5])


def test_invalid_utf8(oenc, enc, oracle, hnp, E):
    head = E("<|start|>assistant<|message|>")
    byte_tok = {}
    table = enc.vocab.token_bytes_list()
    for i, tb in enumerate(table[:199998]):
        if len(tb) == 1:
            byte_tok[tb[0]] = i
    seqs = [
        [0xE2, 0x82, 0xAC],
        [0xE2, 0x82],
        [0xFF, 0x41, 0x42],
        [0xF0, 0x9F, 0x98],
        [0xC0, 0xAF, 0xE0, 0x80],
        [0xED, 0xA0, 0x80],
        [0xF4, 0x90, 0x80, 0x80],
    ]
    for seq in seqs:
        toks = head + [byte_tok[b] for b in seq]
        for tail in ([], [END], [300000, byte_tok[0x41]], [byte_tok[0x41], 300000, END]):
            got = check_same(oenc, enc, oracle, hnp, toks + tail)
            assert isinstance(got, list) and len(got) == 1
    (m,) = enc.parse_messages_from_completion_tokens(head + [byte_tok[0xFF], byte_tok[0x41], 300000, byte_tok[0x42], END])
    assert m.content[0].text == "\ufffdA\ufffd"
    # the oracle's order: decoded text, one replacement for the unknown id, then the bytes still
    # pending from before it ("A" waits behind the invalid 0xE2 until the next token)
    (m,) = enc.parse_messages_from_completion_tokens(head + [byte_tok[0xE2], byte_tok[0x41], 300000, END])
    assert m.content[0].text == "\ufffd\ufffdA"


def test_unknown_id_in_content_swallows_rest(enc, hnp, E):
    head = E("<|start|>assistant<|message|>ab")
    (m,) = enc.parse_messages_from_completion_tokens(head + [300000] + E("cd") + [END])
    assert m.content[0].text == "ab\ufffd"


BAD_INPUTS = [
    [300000],
    [201089],
    [2**32 - 1],
    [-1],
    [2**40],
    [2**63 - 1],
    [2**63],
    [2**64],
    [-(2**70)],
    [1.0],
    [True],
    [None],
    ["a"],
    "abc",
    b"ab",
    [[1]],
    [1 + 0j],
    [1, 2.0, 2**70],
    [2**70, 1.0],
    [START, 300000],
    [START, 1, MESSAGE, 300000],
    (START,),
    [np.int8(5)],
    [np.uint64(2**64 - 1)],
    [np.True_],
    [np.float32(1)],
]


@pytest.mark.parametrize("tokens", BAD_INPUTS, ids=repr)
def test_bad_inputs_match_oracle(oenc, enc, oracle, hnp, tokens):
    got = check_same(oenc, enc, oracle, hnp, tokens)
    assert isinstance(got, tuple) or got == []


@pytest.mark.parametrize(
    "make",
    [
        lambda: np.array([START, 1, MESSAGE, 2], dtype=np.int64),
        lambda: np.array([START, 1, MESSAGE, 2], dtype=np.uint32),
        lambda: np.array([2, MESSAGE, 1, START], dtype=np.int32)[::-1],  # a strided view
        lambda: np.array([2**64 - 1], dtype=np.uint64),
        lambda: np.array([5, -1], dtype=np.int64),
        lambda: np.array([1.0]),
        lambda: np.array([True]),
        lambda: np.array(5),
        lambda: np.zeros((1, 1), dtype=np.int64),
        lambda: np.array([], dtype=np.int64),
        lambda: np.array([], dtype=np.float64),
        lambda: array.array("I", [START, 1, MESSAGE]),
        lambda: array.array("q", [START, -1]),
        lambda: iter([START, 1, MESSAGE]),
        lambda: {START: 0, 1: 0, MESSAGE: 0},
        lambda: range(3),
    ],
)
def test_token_containers(oenc, enc, make):
    expected = run_oracle(oenc, make())
    got = run_ours(enc, make())
    assert got == expected


def test_non_iterables(oenc, enc):
    for bad in (5, None, 1.5):
        expected = run_oracle(oenc, bad)
        assert expected[0] == "TypeError"
        assert run_ours(enc, bad) == expected


def test_argument_order_and_role_errors(oenc, enc, oracle, hnp):
    class FakeRole:
        value = "nope"

    for tokens, role, strict in [
        ([1], "assistant", True),  # str has no .value
        ([1], FakeRole(), True),  # unknown role
        ([1], FakeRole(), 3),  # strict checked before the role name
        ([1.0], "x", 3),  # role.value before the tokens
        (5, "x", 3),  # list(tokens) first
        ([2**40], FakeRole(), 3),  # tokens before strict
        ([], None, np.True_),
        ([], None, np.int64(1)),
        ([], None, "yes"),
        ([], None, None),
        ([], FakeRole(), None),
    ]:
        expected = run_oracle(oenc, tokens, role, strict)
        got = run_ours(enc, tokens, role, strict)
        assert got == expected, (tokens, role, strict)
    assert run_ours(enc, [1], "assistant") == ("AttributeError", "'str' object has no attribute 'value'")
    # oracle roles work too (anything with a .value naming a role)
    assert run_ours(enc, [MESSAGE], oracle.Role.USER) == run_oracle(oenc, [MESSAGE], oracle.Role.USER)


# -- Rust Debug quoting ---------------------------------------------------------------------------


def test_rust_debug_str():
    from harmony_np.rust_text import rust_debug_str

    assert rust_debug_str("foo") == '"foo"'
    assert rust_debug_str('a"b\\c') == '"a\\"b\\\\c"'
    assert rust_debug_str("\t\r\n\0") == '"\\t\\r\\n\\0"'
    assert rust_debug_str("e\u0301") == '"e\\u{301}"'
    assert rust_debug_str("\x7f\xad\u200b\u2028") == '"\\u{7f}\\u{ad}\\u{200b}\\u{2028}"'
    assert rust_debug_str("\U0001F600 caf\u00e9 \u4e2d") == '"\U0001F600 caf\u00e9 \u4e2d"'
    assert rust_debug_str("\u3000") == '"\\u{3000}"'
    assert rust_debug_str("\U000E0041") == '"\\u{e0041}"'


@settings(max_examples=example_count(1.5), deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(st.characters(exclude_characters=" \t\n\x0c\r<"), min_size=1, max_size=6))
def test_rust_debug_str_matches_oracle(oenc, enc, oracle, hnp, chars):
    text = "assistant " + " ".join("Q" + c + "Q" for c in chars) + " b c"
    tokens = [START] + oenc.encode(text, allowed_special="all") + [MESSAGE]
    check_same(oenc, enc, oracle, hnp, tokens)


# -- hypothesis: mutated rendered conversations ---------------------------------------------------

_TEXTS = ["Hello", "", " spaced  out ", "caf\u00e9 \U0001F600", "\u4e2d\u6587\u6d4b\u8bd5", '{"a": 1}', "line\nbreak", "<|start|> text", "a\u0301b"]


@st.composite
def oracle_messages(draw, oracle):
    role = draw(st.sampled_from(["assistant", "user", "tool", "developer", "system"]))
    name = draw(st.sampled_from(["functions.get_weather", "browser.search"])) if role == "tool" else None
    text = draw(st.sampled_from(_TEXTS) | st.text(max_size=12))
    msg = oracle.Message.from_author_and_content(oracle.Author(role=oracle.Role(role), name=name), text)
    channel = draw(st.sampled_from([None, "analysis", "commentary", "final"]))
    if channel:
        msg = msg.with_channel(channel)
    recipient = draw(st.sampled_from([None, None, "functions.get_weather", "assistant", "browser.open"]))
    if recipient:
        msg = msg.with_recipient(recipient)
    ctype = draw(st.sampled_from([None, None, "json", "<|constrain|>json"]))
    if ctype:
        msg = msg.with_content_type(ctype)
    return msg


def _token_pool(enc):
    table = enc.vocab.token_bytes_list()
    byte_tokens = []
    partial = []
    for i, b in enumerate(table[:199998]):
        if len(b) == 1 and b[0] >= 0x80:
            byte_tokens.append(i)
        elif len(b) > 1 and len(partial) < 64:
            try:
                b.decode("utf-8")
            except UnicodeDecodeError:
                partial.append(i)
    specials = [START, CHANNEL, MESSAGE, END, RETURN, CALL, CONSTRAIN, 199999, 200013]
    words = enc.encode(" to= to=functions.x json assistant tool \n\t <| |> analysis")
    return specials, byte_tokens, partial, words


@st.composite
def completions(draw, oracle, oenc, pool):
    msgs = draw(st.lists(oracle_messages(oracle), min_size=1, max_size=3))
    tokens = []
    for m in msgs:
        try:
            tokens += oenc.render(m)
        except Exception:  # noqa: BLE001 - a combination the renderer refuses: leave it out
            continue
    role = draw(st.sampled_from([None, None, "assistant", "tool", "user"]))
    if role is not None and tokens and tokens[0] == START:
        cut = draw(st.sampled_from([1, 2]))
        tokens = tokens[cut:]
    mutate(draw, tokens, pool, 4)
    strict = draw(st.booleans())
    return tokens, role, strict


def mutate(draw, tokens: list, pool, max_ops: int) -> None:
    """Up to ``max_ops`` deletions, insertions and replacements (tokens drawn from ``pool``)."""
    for _ in range(draw(st.integers(0, max_ops))):
        op = draw(st.sampled_from(["delete", "insert", "replace"]))
        pos = draw(st.integers(0, len(tokens)))
        if op == "insert":
            tokens.insert(pos, draw(pool))
        elif tokens and pos < len(tokens):
            if op == "delete":
                del tokens[pos]
            else:
                tokens[pos] = draw(pool)


@pytest.fixture(scope="module")
def completion_strategy(oracle, oenc, enc):
    specials, byte_tokens, partial, words = _token_pool(enc)
    pool = st.sampled_from(specials) | st.sampled_from(byte_tokens) | st.sampled_from(partial) | st.sampled_from(words)
    pool = pool | st.integers(0, N_VOCAB - 1) | st.sampled_from([N_VOCAB, 300000, 2**32 - 1])
    return completions(oracle, oenc, pool)


@pytest.fixture(scope="module")
def long_tail(oracle, oenc):
    text = " ".join(f"w{i} caf\u00e9 \U0001F600 \u4e2d" for i in range(60))
    msg = oracle.Message.from_role_and_content(oracle.Role.ASSISTANT, text).with_channel("final")
    return oenc.render(msg)


def test_differential_mutated_completions(oenc, enc, oracle, hnp, completion_strategy, long_tail):
    from harmony_np import parse

    assert len(long_tail) > parse.GATHER_MIN
    seen = {"ok": 0, "err": 0, "long": 0}
    n = example_count(8)

    @settings(max_examples=n, deadline=None, suppress_health_check=list(HealthCheck))
    @given(completion_strategy)
    def inner(case):
        tokens, role, strict = case
        got = check_same(oenc, enc, oracle, hnp, tokens, role, strict)
        seen["ok" if isinstance(got, list) else "err"] += 1
        # the numpy form agrees with the list form
        orole, hrole = roles(oracle, hnp, role)
        assert run_ours(enc, np.array(tokens, dtype=np.uint32), hrole, strict) == got
        # long forms (scanner kernel, gathered content)
        for longer in (tokens + long_tail, tokens * (parse.SCAN_KERNEL_MIN // max(len(tokens), 1) + 1)):
            if len(longer) >= parse.SCAN_KERNEL_MIN:
                seen["long"] += 1
            check_same(oenc, enc, oracle, hnp, longer, role, strict)

    inner()
    # floors that scale with the profile (thorough: 50, 50 and 400 of 800)
    assert seen["ok"] > n // 16 and seen["err"] > n // 16 and seen["long"] > n // 2, seen


def test_long_completions_use_kernel_path(oenc, enc, oracle, hnp, E, monkeypatch):
    from harmony_np import parse

    # every parse below must reach one of the two scanning kernels
    module = parse.kernels()
    scans = []
    for name in ("scan_gather", "scan_completion"):
        def counting(*args, _name=name, _real=getattr(module, name)):
            scans.append(_name)
            return _real(*args)

        monkeypatch.setattr(module, name, counting)
    body = " ".join(f"word{i} caf\u00e9" for i in range(400))
    text = (
        "<|start|>assistant<|channel|>analysis<|message|>" + body + "<|end|>"
        "<|start|>assistant<|channel|>final<|message|>" + body[:500] + "<|return|>"
    )
    toks = E(text)
    assert len(toks) > parse.SCAN_KERNEL_MIN
    got = check_same(oenc, enc, oracle, hnp, toks)
    assert [m["channel"] for m in got] == ["analysis", "final"]
    # errors found by the kernel path
    check_same(oenc, enc, oracle, hnp, toks + [5])
    check_same(oenc, enc, oracle, hnp, toks + [START] + E("assistant"))
    check_same(oenc, enc, oracle, hnp, toks[:300] + [300000] + toks[300:])
    check_same(oenc, enc, oracle, hnp, toks[2:], "assistant", False)
    cut = toks.index(MESSAGE)
    check_same(oenc, enc, oracle, hnp, toks[:cut] + [END] + toks[cut:], "assistant", False)
    assert len(scans) == 6, scans  # one kernel scan per parse above


# -- the scanner kernel against the naive reference of tests/naive.py ---------------------------------


_scan_tokens = st.lists(
    st.sampled_from([START, MESSAGE, END, CALL, RETURN, CHANNEL, 1, 2, 3, N_VOCAB, 2**32 - 1]), max_size=40
)


@settings(max_examples=example_count(4), deadline=None)
@given(_scan_tokens, st.booleans(), st.booleans())
def test_scanners_match_naive(tokens, role_given, strict):
    from harmony_np import kernels, parse

    expected = naive_scan(tokens, role_given, strict)
    arr = np.array(tokens, dtype=np.uint32)
    assert kernels.scan_completion(arr, role_given, strict) == expected
    buf = array.array("I", tokens)
    specials = [i for i, t in enumerate(tokens) if t >= 199998]
    assert parse.scan_py(buf, specials, role_given, strict) == expected


@settings(deadline=None)
@given(st.lists(_scan_tokens, min_size=1, max_size=6), st.booleans(), st.booleans())
def test_scan_batch_matches_single(batch, role_given, strict):
    from harmony_np import kernels

    flat = np.array([t for seq in batch for t in seq], dtype=np.uint32)
    starts = np.cumsum([0] + [len(s) for s in batch]).astype(np.int64)
    recs, rec_starts, status, pos = kernels.scan_batch(flat, starts, role_given, strict)
    assert rec_starts[0] == 0 and len(rec_starts) == len(batch) + 1
    for b, seq in enumerate(batch):
        exp_recs, exp_status, exp_pos = naive_scan(seq, role_given, strict)
        got = [tuple(r) for r in recs[rec_starts[b] : rec_starts[b + 1]].tolist()]
        assert (got, int(status[b]), int(pos[b])) == (exp_recs, exp_status, exp_pos)


def test_header_cache_returns_fresh_objects(enc, E):
    toks = E(TOOL_CALL)
    a = enc.parse_messages_from_completion_tokens(toks)
    a[0].author.name = "mutated"
    a[0].content[0].text = "mutated"
    b = enc.parse_messages_from_completion_tokens(toks)
    assert b[0].author.name is None
    assert b[0].content[0].text.startswith("{")


def test_non_strict_header_cut_short_decode_errors(oenc, enc, oracle, hnp, E):
    table = enc.vocab.token_bytes_list()
    byte_tok = {b[0]: i for i, b in enumerate(table[:199998]) if len(b) == 1}
    for header in ([300000], [byte_tok[0xFF]], E("ab") + [byte_tok[0xE2]], E("<|channel|>"), E("x<|channel|> y")):
        got = check_same(oenc, enc, oracle, hnp, header + [END], "assistant", False)
        assert isinstance(got, tuple)
    got = run_ours(enc, [byte_tok[0xE2], END], hnp.Role.ASSISTANT, False)
    assert got == ("HarmonyError", "Could not decode tokens: Invalid utf-8 sequence: incomplete utf-8 byte sequence from index 0")


# -- masked arrays: refused as the oracle refuses them, never read as their fill values ---------

_GOOD = [START, 173781, CHANNEL, 17196, MESSAGE, 12194, 1354, END]


def _masked_inputs():
    out = {}
    for dt in (np.uint32, np.int64, np.int32, np.uint64, ">u4"):
        for name, mask in (("first", [0] * 0 + [1] + [0] * 7), ("content", [0] * 6 + [1, 0]),
                           ("header", [0, 0, 1] + [0] * 5), ("all", True), ("none", False), ("none set", [0] * 8)):
            out[f"{np.dtype(dt).str} {name}"] = lambda dt=dt, mask=mask: np.ma.array(_GOOD, mask=mask, dtype=dt)
    out["negative before the mask"] = lambda: np.ma.array([-1, 5, 6], mask=[0, 1, 0], dtype=np.int64)
    out["mask before negative"] = lambda: np.ma.array([-1, 5, 6], mask=[1, 0, 0], dtype=np.int64)
    out["too large after the mask"] = lambda: np.ma.array([5, 2**40], mask=[1, 0], dtype=np.int64)
    out["unknown id under the mask"] = lambda: np.ma.array(_GOOD[:5] + [300000] + _GOOD[6:], mask=[0] * 5 + [1, 0, 0], dtype=np.uint32)
    out["long, masked late"] = lambda: np.ma.array(_GOOD[:6] + [12194] * 300 + [END], mask=[0] * 200 + [1] + [0] * 107, dtype=np.uint32)
    out["float masked"] = lambda: np.ma.array([1.0, 2.0], mask=[1, 0])
    out["2-D masked"] = lambda: np.ma.array([_GOOD], mask=[[0] * 7 + [1]])
    return out


MASKED = _masked_inputs()


def _outcome(fn):
    try:
        v = fn()
    except Exception as exc:  # noqa: BLE001 - the type and text are what is compared
        return ("error", type(exc).__name__, str(exc))
    return ("ok", _norm_messages(v) if isinstance(v, list) else v)


@pytest.mark.parametrize("name", list(MASKED))
def test_masked_arrays_match_oracle(oenc, enc, oracle, hnp, name):
    make = MASKED[name]
    calls = [
        ("parse", lambda e, R, t: e.parse_messages_from_completion_tokens(t)),
        ("parse non-strict", lambda e, R, t: e.parse_messages_from_completion_tokens(t, strict=False)),
        ("parse role", lambda e, R, t: e.parse_messages_from_completion_tokens(t[2:] if t.ndim == 1 else t, R.ASSISTANT)),
        ("decode", lambda e, R, t: e.decode(t)),
        ("decode_utf8", lambda e, R, t: e.decode_utf8(t)),
    ]
    for label, call in calls:
        want = _outcome(lambda: call(oenc, oracle.Role, make()))
        got = _outcome(lambda: call(enc, hnp.Role, make()))
        assert got == want, (name, label)
