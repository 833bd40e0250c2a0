"""parse_batch: equal to single parses; errors collected per completion; columnar layout."""

from __future__ import annotations

import random

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harmony_np.vocab import CALL, CHANNEL, END, MESSAGE, N_VOCAB, RETURN, START

from profiles import example_count
from test_parse import _token_pool, completions as completion_draws


def single(enc, tokens, role, strict):
    try:
        return ("ok", enc.parse_messages_from_completion_tokens(tokens, role, strict=strict))
    except Exception as exc:  # noqa: BLE001 - the error is part of what is compared
        return ("error", type(exc).__name__, str(exc))


def check_batch(enc, hnp, comps, role, strict):
    r = None if role is None else hnp.Role(role)
    want = [single(enc, c, r, strict) for c in comps]
    table = enc.parse_batch(comps, role=r, strict=strict, errors="collect")
    assert table.n_completions == len(comps)
    got_msgs = table.to_messages()
    for b, w in enumerate(want):
        if w[0] == "ok":
            assert table.errors[b] is None, (b, table.errors[b])
            assert got_msgs[b] == w[1], b
        else:
            assert table.errors[b] == w[2], b
            assert table.error_types[b] == w[1]
            assert got_msgs[b] == []
    # columns agree with the messages
    texts = table.content_texts()
    flat = [m for ms in got_msgs for m in ms]
    assert len(flat) == len(table) == len(texts)
    for i, m in enumerate(flat):
        assert texts[i] == m.content[0].text
        assert hnp.parse_batch.ROLES[table.role[i]] == m.author.role
        assert table.string(table.channel[i]) == m.channel
        assert table.string(table.recipient[i]) == m.recipient
        assert table.string(table.content_type[i]) == m.content_type
        assert table.string(table.name[i]) == m.author.name
    # the same batch as one flat array with offsets
    arrays = [np.asarray(c, dtype=np.int64) for c in comps]
    if all(a.size == 0 or (a.min() >= 0 and a.max() < 2**32) for a in arrays):
        flat_tokens = np.concatenate(arrays).astype(np.uint32) if arrays else np.empty(0, np.uint32)
        offsets = np.zeros(len(comps) + 1, dtype=np.int64)
        np.cumsum([len(c) for c in comps], out=offsets[1:])
        t2 = enc.parse_batch(flat_tokens, offsets=offsets, role=r, strict=strict, errors="collect")
        assert t2.errors == table.errors
        assert t2.to_messages() == got_msgs
    # errors="raise" raises the first failing completion's error, with its index
    first_bad = next((b for b, w in enumerate(want) if w[0] == "error"), None)
    if first_bad is None:
        assert enc.parse_batch(comps, role=r, strict=strict).to_messages() == got_msgs
    else:
        with pytest.raises(Exception) as info:
            enc.parse_batch(comps, role=r, strict=strict)
        assert type(info.value).__name__ == want[first_bad][1]
        assert str(info.value) == f"completion {first_bad}: {want[first_bad][2]}"


@pytest.fixture(scope="module")
def draws(oracle, oenc, enc):
    specials, byte_tokens, partial, words = _token_pool(enc)
    pool = st.sampled_from(specials) | st.sampled_from(byte_tokens) | st.sampled_from(partial) | st.sampled_from(words)
    pool = pool | st.integers(0, N_VOCAB - 1) | st.sampled_from([N_VOCAB, 300000])
    return completion_draws(oracle, oenc, pool)


@settings(max_examples=example_count(1.5), deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_random_batches_equal_single_parses(enc, hnp, draws, data):
    items = data.draw(st.lists(draws, min_size=0, max_size=8))
    role = data.draw(st.sampled_from([None, "assistant"]))
    strict = data.draw(st.booleans())
    comps = []
    for tokens, _role, _ in items:
        if role is not None and tokens and tokens[0] == START:
            tokens = tokens[2:]
        comps.append(tokens)
    check_batch(enc, hnp, comps, role, strict)


def _completion(enc, hnp, rng, i):
    words = "the model weighs evidence and answers with care ünïcode 🎉 中文".split()
    conv = hnp.Conversation.from_messages(
        [
            hnp.Message.from_role_and_content(hnp.Role.ASSISTANT, f"{i} " + " ".join(rng.choice(words) for _ in range(rng.randint(5, 60)))).with_channel("analysis"),
            hnp.Message.from_role_and_content(hnp.Role.ASSISTANT, " ".join(rng.choice(words) for _ in range(rng.randint(3, 40)))).with_channel("final"),
        ]
    )
    return enc.render_conversation(conv, hnp.RenderConversationConfig(auto_drop_analysis=False))


def _mutate(rng, tokens):
    tokens = list(tokens)
    for _ in range(rng.randint(1, 3)):
        op = rng.choice(["delete", "insert", "replace"])
        pos = rng.randrange(len(tokens))
        tok = rng.choice([START, CHANNEL, MESSAGE, END, RETURN, CALL, 200013, rng.randrange(200000)])
        if op == "delete":
            del tokens[pos]
        elif op == "insert":
            tokens.insert(pos, tok)
        else:
            tokens[pos] = tok
    return tokens


def _mutated_batch(enc, hnp, seed: int, n: int):
    """``n`` completions, a quarter of them mutated: ``(completions, indices mutated)``."""
    rng = random.Random(seed)
    comps = [_completion(enc, hnp, rng, i) for i in range(n)]
    mutated = set(rng.sample(range(n), n // 4))
    return [_mutate(rng, c) if i in mutated else c for i, c in enumerate(comps)], mutated


def test_quarter_mutated_batch_collects_errors(enc, hnp):
    comps, mutated = _mutated_batch(enc, hnp, 7, 800)
    for strict in (True, False):
        table = enc.parse_batch(comps, strict=strict, errors="collect")
        msgs = table.to_messages()
        n_errors = 0
        for b, c in enumerate(comps):
            w = single(enc, c, None, strict)
            if w[0] == "ok":
                assert table.errors[b] is None and msgs[b] == w[1]
            else:
                n_errors += 1
                assert table.errors[b] == w[2] and msgs[b] == []
        assert n_errors > 50  # the mutations do break completions
        assert all(table.errors[b] is None for b in range(800) if b not in mutated)


def test_large_batch_matches(enc, hnp):
    rng = random.Random(3)
    comps = [_completion(enc, hnp, rng, i) for i in range(3000)]
    table = enc.parse_batch(comps)
    assert len(table) == 6000 and table.n_completions == 3000
    assert table.to_messages() == [enc.parse_messages_from_completion_tokens(c) for c in comps]
    assert table.completion.tolist() == [b for b in range(3000) for _ in range(2)]
    assert table.tokens.dtype == np.uint32 and table.offsets[-1] == sum(map(len, comps))


def test_input_errors(enc, hnp):
    with pytest.raises(TypeError, match="completion 1: "):
        enc.parse_batch([[START], ["x"]])
    table = enc.parse_batch([[1.5], [2**40], [START, 173781, MESSAGE, 12194, END]], errors="collect")
    assert table.error_types[:2] == ["TypeError", "OverflowError"]
    assert table.errors[2] is None and len(table) == 1
    with pytest.raises(ValueError, match="offsets must rise"):
        enc.parse_batch(np.array([START, 1], np.uint32), offsets=[0, 5])
    with pytest.raises(ValueError, match="offsets must be a 1-D integer array"):
        enc.parse_batch(np.array([START, 1], np.uint32), offsets=[[0, 2]])
    with pytest.raises(TypeError, match="needs offsets"):
        enc.parse_batch(np.array([START, 1], np.uint32))
    with pytest.raises(ValueError, match="errors must be one of"):
        enc.parse_batch([], errors="ignore")
    empty = enc.parse_batch([])
    assert len(empty) == 0 and empty.to_messages() == []


def test_recover_mode_rows(enc, hnp):
    comps, _ = _mutated_batch(enc, hnp, 11, 400)
    table = enc.parse_batch(comps, errors="recover")
    msgs = table.to_messages()
    texts = table.content_texts()
    recovered = 0
    for b, c in enumerate(comps):
        w = single(enc, c, None, True)
        if w[0] == "ok":
            assert table.errors[b] is None and msgs[b] == w[1]
            continue
        recovered += 1
        assert table.errors[b] == w[2]
        res = enc.recover_messages_from_completion_tokens(c)
        assert msgs[b] == res.messages
        rows = np.flatnonzero(table.completion == b)
        base = table.offsets[b]
        assert (np.stack([table.span_start[rows], table.span_stop[rows]], axis=1) - base).tolist() == res.spans.tolist()
        assert [texts[i] for i in rows] == [m.content[0].text for m in res.messages]
        u = table.unparsed
        sel = np.flatnonzero(u["completion"] == b)
        assert [(int(u["start"][i] - base), int(u["stop"][i] - base), u["reason"][i]) for i in sel] == [tuple(x) for x in res.unparsed]
        d = table.diagnostics
        sel = np.flatnonzero(d["completion"] == b)
        assert [(d["kind"][i], int(d["start"][i] - base), int(d["stop"][i] - base), d["detail"][i]) for i in sel] == [tuple(x) for x in res.diagnostics]
    assert recovered > 30
    # message spans and unparsed ranges of each completion tile it
    for b in range(len(comps)):
        base, end = int(table.offsets[b]), int(table.offsets[b + 1])
        rows = np.flatnonzero(table.completion == b)
        ranges = [(int(table.span_start[i]), int(table.span_stop[i])) for i in rows]
        sel = np.flatnonzero(table.unparsed["completion"] == b)
        ranges += [(int(table.unparsed["start"][i]), int(table.unparsed["stop"][i])) for i in sel]
        ranges.sort()
        pos = base
        for a, z in ranges:
            assert a == pos
            pos = z
        assert pos == end, b
    with pytest.raises(ValueError, match="strict=False"):
        enc.parse_batch(comps, errors="recover", strict=False)


# -- the table owns what it reads; any input layout ------------------------------------------


def _flat_batch(enc, hnp, n=12, seed=21):
    rng = random.Random(seed)
    comps = [_completion(enc, hnp, rng, i) for i in range(n)]
    flat = np.concatenate([np.asarray(c, np.uint32) for c in comps])
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum([len(c) for c in comps], out=offsets[1:])
    return comps, flat, offsets


def test_table_owns_its_tokens(enc, hnp):
    """The caller's buffer refilled with other valid ids after parse_batch: the texts the table
    decodes later are still those of the tokens it parsed."""
    comps, flat, offsets = _flat_batch(enc, hnp)
    want = [enc.parse_messages_from_completion_tokens(c) for c in comps]
    for source in (flat, flat.view(np.int32), memoryview(flat)):
        buf = flat.copy()
        arg = buf if source is flat else (buf.view(np.int32) if isinstance(source, np.ndarray) else memoryview(buf))
        table = enc.parse_batch(arg, offsets=offsets)
        assert not np.shares_memory(table.tokens, buf)
        buf[:] = np.asarray(comps[0] * (buf.size // len(comps[0]) + 1), np.uint32)[: buf.size]
        assert table.to_messages() == want
        assert table.messages_of(3) == want[3]
        assert table.tokens.tolist() == flat.tolist()
    # the table's tokens are read-only, and a copy of the caller's array cannot be made writeable
    table = enc.parse_batch(flat, offsets=offsets)
    with pytest.raises(ValueError):
        table.tokens[0] = 5
    with pytest.raises(ValueError):
        table.tokens.flags.writeable = True
    for built in (enc.parse_batch(comps), enc.parse_batch([np.asarray(c) for c in comps])):
        with pytest.raises(ValueError):
            built.tokens[0] = 5
        assert built.to_messages() == want


def test_flat_input_layouts(enc, hnp):
    """Any 1-D integer layout and byte order of the tokens and offsets parses as the
    contiguous uint32 array does; a 2-D array is refused clearly."""
    comps, flat, offsets = _flat_batch(enc, hnp)
    want = enc.parse_batch(comps).to_messages()
    readonly = flat.copy()
    readonly.flags.writeable = False
    layouts = {
        "strided uint32": np.repeat(flat, 2)[::2],
        "reversed twice": flat[::-1].copy()[::-1],
        "int64": flat.astype(np.int64),
        "big-endian uint32": flat.astype(">u4"),
        "big-endian int64": flat.astype(">i8"),
        "uint16 offsets ok, uint64 tokens": flat.astype(np.uint64),
        "read-only": readonly,
        "over bytes": np.frombuffer(flat.tobytes(), np.uint32),
    }
    for name, tokens in layouts.items():
        assert enc.parse_batch(tokens, offsets=offsets).to_messages() == want, name
    for offs in (np.repeat(offsets, 2)[::2], offsets.astype(np.int32), offsets.astype(np.uint64), offsets.astype(">i8"), offsets.tolist()):
        assert enc.parse_batch(flat, offsets=offs).to_messages() == want, offs.dtype if hasattr(offs, "dtype") else "list"
    with pytest.raises(TypeError, match=r"one flat \(1-D\) token array, got an array of shape \(2, "):
        enc.parse_batch(np.asfortranarray(np.stack([flat, flat])), offsets=offsets)
    with pytest.raises(ValueError, match="without masked entries"):
        enc.parse_batch(flat, offsets=np.ma.array(offsets, mask=[0] * (len(offsets) - 1) + [1]))
    assert enc.parse_batch(flat, offsets=np.ma.array(offsets)).to_messages() == want


def test_masked_token_arrays_are_refused(enc, hnp):
    """A masked entry is refused as the single calls refuse it (pyo3's __index__ error), never
    read as its fill value; a masked array with nothing masked is its data."""
    comps, flat, offsets = _flat_batch(enc, hnp, n=3)
    mask = np.zeros(flat.size, dtype=bool)
    mask[offsets[1] + 4] = True
    with pytest.raises(TypeError, match="^argument 'completions': only integer scalar arrays can be converted to a scalar index$"):
        enc.parse_batch(np.ma.array(flat, mask=mask), offsets=offsets)
    assert enc.parse_batch(np.ma.array(flat, mask=False), offsets=offsets).to_messages() == enc.parse_batch(comps).to_messages()
    items = [np.ma.array(c, mask=[i == 1 and k == 2 for k in range(len(c))]) for i, c in enumerate(comps)]
    table = enc.parse_batch(items, errors="collect")
    assert table.errors[1] == "argument 'tokens': only integer scalar arrays can be converted to a scalar index"
    assert table.error_types == [None, "TypeError", None]
    with pytest.raises(TypeError, match="^completion 1: argument 'tokens': only integer scalar"):
        enc.parse_batch(items)


def test_collected_errors_do_not_keep_the_batch_alive(enc, hnp):
    """A collected error's traceback held parse_batch's frame, whose arrays (the tokens, the
    records) then lived on in a reference cycle until a full collection."""
    import gc
    import weakref

    comps, flat, offsets = _flat_batch(enc, hnp, n=4)
    comps[1] = comps[1][:3]  # ends in a header: an error
    comps[2] = [1.5] + comps[2]  # bad input
    for errors in ("collect", "recover"):
        was = gc.isenabled()
        gc.disable()
        try:
            table = enc.parse_batch(comps, errors=errors)
            assert table.error_types[1:3] == ["HarmonyError", "TypeError"]
            ref = weakref.ref(table.tokens)
            del table
            assert ref() is None, errors
        finally:
            if was:
                gc.enable()


# -- messages_of -------------------------------------------------------------------------------


def _mixed_batch(enc, hnp):
    rng = random.Random(5)
    comps = [_completion(enc, hnp, rng, i) for i in range(120)]
    for i in rng.sample(range(120), 40):
        comps[i] = _mutate(rng, comps[i])
    comps[3] = []
    comps[7] = comps[7][:2] + [N_VOCAB + 5] + comps[7][2:]  # an unknown id in a header
    comps[8] = comps[8][:-1] + [N_VOCAB + 5, 12194, END]  # an unknown id in content
    comps[9] = [1.5]
    # with a role given and strict=False: a first header cut short by a stop token is a message
    comps.append([START] + enc.encode("assistant to=functions.x") + [END] + _completion(enc, hnp, rng, 999))
    return comps


@pytest.mark.parametrize("errors, strict", [("collect", True), ("collect", False), ("recover", True)])
def test_messages_of_equals_to_messages(enc, hnp, errors, strict):
    comps = _mixed_batch(enc, hnp)
    for role in (None, hnp.Role.ASSISTANT):
        cs = [c[2:] if role is not None and c[:1] == [START] else c for c in comps]
        fresh = enc.parse_batch(cs, role=role, strict=strict, errors=errors)
        # before anything is decoded (a completion's own rows only) and after
        got = [fresh.messages_of(b) for b in range(len(cs))]
        assert fresh._texts is None  # each call decoded its own completion, not the whole table
        table = enc.parse_batch(cs, role=role, strict=strict, errors=errors)
        want = table.to_messages()
        assert got == want
        assert [table.messages_of(b) for b in range(len(cs))] == want
        assert fresh.messages_of(-1) == want[-1] and fresh.messages_of(np.int64(5)) == want[5]
        assert sum(e is not None for e in table.errors) > 10
        for b in (len(cs), -len(cs) - 1):
            with pytest.raises(IndexError):
                table.messages_of(b)
        for b in range(len(cs)):
            lo, hi = table.rows_of(b)
            assert (table.completion[lo:hi] == b).all() and hi - lo == len(want[b])


def test_messages_of_with_many_strings(enc, hnp):
    """A table with more distinct strings than a completion has rows: messages_of looks up only
    the codes it needs, with the same result."""
    comps = []
    for i in range(40):
        m = hnp.Message.from_role_and_content(hnp.Role.ASSISTANT, '{"x": %d}' % i).with_channel("commentary")
        comps.append(enc.render_conversation(hnp.Conversation.from_messages([m.with_recipient(f"functions.f{i}").with_content_type("<|constrain|>json")])))
    table = enc.parse_batch(comps)
    assert len(table.strings) > 40
    want = [enc.parse_messages_from_completion_tokens(c) for c in comps]
    assert [table.messages_of(b) for b in range(40)] == want == table.to_messages()
    assert want[7][0].recipient == "functions.f7"


_TABLE_TAMPERING = r'''
import json
import numpy as np
import harmony_np as h

enc = h.load_harmony_encoding(h.HarmonyEncodingName.HARMONY_GPT_OSS)
msg = h.Message.from_role_and_content(h.Role.ASSISTANT, "calm seas " * 300).with_channel("final")
toks = enc.render_conversation(h.Conversation.from_messages([msg]))
out = {}

def attempt(name, fn):
    try:
        fn()
        out[name] = "no error"
    except Exception as exc:
        out[name] = f"{type(exc).__name__}: {exc}"

t = enc.parse_batch([toks] * 40)
attempt("write", lambda: t.content_stop.__setitem__(0, 10**12))
t.content_stop = np.full(40, 10**12)
attempt("span past the end", t.content_texts)
t = enc.parse_batch([toks] * 40)
t.content_start = -np.ones(40, np.int64)
attempt("negative span", lambda: t.messages_of(3))
t = enc.parse_batch([toks] * 40)
bad = t.tokens.copy()
bad[10] = 300_000
t.tokens = bad
attempt("unknown id in a span", t.content_texts)
t = enc.parse_batch([toks] * 40)
t.content_stop = t.content_stop[:5]
attempt("short column", t.content_texts)
attempt("constructor", lambda: type(t)())
rows = enc.render_batch([h.Conversation.from_messages([msg])] * 3, mode="training")
o = rows.offsets
o.flags.writeable = True  # the caller's to do: the arrays own their memory
o[1] = 10**9
attempt("ragged offsets", lambda: rows.to_padded(0))
print(json.dumps(out))
'''


@pytest.mark.slow
def test_tampered_results_raise_instead_of_crashing(tmp_path):
    # the gather kernel reads the table's spans and ids unchecked: a caller that writes into or
    # replaces a column must get an error, not a read out of bounds (a segfault before)
    import json
    import os
    import subprocess
    import sys

    script = tmp_path / "tamper.py"
    script.write_text(_TABLE_TAMPERING)
    root = str(__import__("pathlib").Path(__file__).resolve().parent.parent)
    env = dict(os.environ, PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""))
    r = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 0, (r.returncode, r.stderr[-2000:])
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["write"].startswith("ValueError: assignment destination is read-only")
    assert out["span past the end"].startswith("ValueError: row 0: content span")
    assert out["negative span"].startswith("ValueError: row 3: content span -1:")
    assert out["unknown id in a span"].startswith("ValueError: span 0 ") and "outside the byte table" in out["unknown id in a span"]
    assert out["short column"] == "ValueError: the table's tokens, content_start and content_stop no longer fit its rows"
    assert out["constructor"] == "TypeError: a MessageTable is made by HarmonyEncoding.parse_batch"
    assert out["ragged offsets"].startswith("ValueError: RaggedTokens changed after it was made: offsets must not decrease")


def test_a_batch_parse_builds_no_tiktoken_bpe(tmp_path):
    # headers come from the byte table and contents from the gather kernels, so a process that
    # only parses (a Ray actor, the CLI) never pays for tiktoken's BPE (0.2-0.35 s); the messages
    # are the single parser's, which builds it
    import subprocess
    import sys

    script = tmp_path / "parse_only.py"
    script.write_text(
        "import harmony_np as h\n"
        "enc = h.load_harmony_encoding('HarmonyGptOss')\n"
        "comps = [[200006, 173781, 200005, 17196, 200008, 12, 200002],\n"
        "         [200006, 173781, 200005, 35644, 220, 316, 28, 44580, 200008, 5, 200012]]\n"
        "table = enc.parse_batch(comps, errors='collect')\n"
        "assert not enc.vocab._bpe, 'tiktoken BPE built by a batch parse'\n"
        "got = [[m.to_dict() for m in ms] for ms in table.to_messages()]\n"
        "want = [[m.to_dict() for m in enc.parse_messages_from_completion_tokens(c)] for c in comps]\n"
        "assert got == want, (got, want)\n"
        "print('ok')\n")
    r = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr
