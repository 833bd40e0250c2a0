"""The parse caches are bounded in bytes: unique malformed headers (a completion that forgot
``<|message|>`` has a long header that never recurs) must not grow memory without end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from harmony_np import parse as P
from harmony_np import rust_text as R
from harmony_np.vocab import CHANNEL, END, MESSAGE, N_ORDINARY, START

# The head and tail of a completion whose first message forgot <|message|>: its header runs
# through the analysis text (random ids) into the final message's header.
_HEAD = [START, 173781, CHANNEL, 35644]  # <|start|>assistant<|channel|>analysis
_TAIL = [END, START, 173781, CHANNEL, 17196, MESSAGE, 525, END]  # ...final<|message|>ok<|end|>


def malformed(enc, n: int, body: int, seed: int):
    """``n`` such completions, each with ``body`` random ids in its header: flat and offsets.
    The ids each decode alone, so the header decodes and its error quotes all of its text."""
    pool = np.flatnonzero(P.tables(enc).plain[1000:50000]) + 1000
    rng = np.random.default_rng(seed)
    per = len(_HEAD) + body + len(_TAIL)
    flat = np.empty((n, per), np.uint32)
    flat[:, : len(_HEAD)] = _HEAD
    flat[:, len(_HEAD) : len(_HEAD) + body] = rng.choice(pool, (n, body))
    flat[:, len(_HEAD) + body :] = _TAIL
    return flat.ravel(), np.arange(n + 1, dtype=np.int64) * per


def test_bounded_cache():
    c = P.BoundedCache(1000)
    for i in range(100):
        c.put(i, "x", 30)
        assert c.nbytes <= 1000 and c.nbytes == 30 * len(c)
    assert 0 < len(c) <= 33 and c[99] == "x"
    c.put("big", "y", 1000 // 16 + 1)  # over a sixteenth of the bound: not kept
    assert "big" not in c
    for bad in (lambda: c.__setitem__(1, 2), lambda: c.setdefault(1, 2), lambda: c.update({1: 2})):
        with pytest.raises(TypeError, match="put"):
            bad()
    c.clear()
    assert c.nbytes == 0 and not c
    assert P.approx_size(b"abcd", ("a", None, P.Role.USER)) > P.approx_size(b"", ())


def test_header_cache_bounded_in_bytes(enc, hnp):
    t = P.tables(enc)
    flat, offs = malformed(enc, 5000, 150, seed=1)  # ~2.5 KB an entry: 12 MB if all were kept
    table = enc.parse_batch(flat, offsets=offs, errors="collect")
    assert all(e.startswith("unexpected tokens remaining in message header") for e in table.errors)
    assert t.headers.nbytes <= P.HEADER_CACHE_BYTES and len(t.headers) < 5000
    # the accounting is not a fiction: at least the keys and values held
    held = sum(len(k[1]) + (len(v) if isinstance(v, str) else 0) for k, v in t.headers.items())
    assert held <= t.headers.nbytes
    # single calls share the cache and its bound
    for b in range(0, 5000, 5):
        with pytest.raises(hnp.HarmonyError):
            enc.parse_messages_from_completion_tokens(flat[offs[b] : offs[b + 1]])
    assert t.headers.nbytes <= P.HEADER_CACHE_BYTES
    # a header too long to recur is never cached; the common ones are again after a flood
    flat, offs = malformed(enc, 20, 400, seed=2)
    n = len(t.headers)
    enc.parse_batch(flat, offsets=offs, errors="collect")
    assert len(t.headers) == n
    good = enc.render_conversation(hnp.Conversation.from_messages([hnp.Message.from_role_and_content(hnp.Role.ASSISTANT, "hi").with_channel("final")]))
    enc.parse_messages_from_completion_tokens(good)
    assert (None, np.asarray(good[1:4], np.uint32).tobytes()) in t.headers


def test_recover_header_cache_bounded_in_bytes(enc):
    t = P.tables(enc)
    flat, offs = malformed(enc, 3000, 200, seed=3)  # ~4 KB an entry with its repaired reading
    enc.parse_batch(flat, offsets=offs, errors="recover")
    c = t.recover_headers
    assert 0 < len(c) < 3000 and c.nbytes <= P.RECOVER_CACHE_BYTES


def test_debug_char_cache_bounded_in_bytes():
    text = "".join(chr(0x4E00 + i) for i in range(12000)) + "\u0301"
    assert R.rust_debug_str(text).endswith('\\u{301}"')
    c = R._debug_char_cache
    assert c.nbytes <= R.DEBUG_CHAR_CACHE_BYTES and len(c) < 12000
    assert R.rust_debug_str("é\u0301") == '"é\\u{301}"'


def test_reencoded_cache_bounded_in_bytes(enc):
    t = P.tables(enc)
    plain = np.flatnonzero(t.plain[:N_ORDINARY])[:30000].tolist()
    for tok in plain:
        assert t.reencoded(tok) == t.encode_ordinary(t.strs[tok])
    assert t._reencoded.nbytes <= P.REENCODED_CACHE_BYTES and len(t._reencoded) < 30000


RSS_CHILD = textwrap.dedent(
    r'''
    import json, os, sys
    import harmony_np as H
    from harmony_np import parse as P
    sys.path.insert(0, sys.argv[1])
    from test_parse_caches import malformed

    enc = H.load_harmony_encoding(H.HarmonyEncodingName.HARMONY_GPT_OSS)

    def rss():
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def chunk(i, body, errors):
        flat, offs = malformed(enc, 1000, body, seed=100 + i)
        enc.parse_batch(flat, offsets=offs, errors=errors)
        for b in range(0, 1000, 50):  # single calls and the streaming parser share the tables
            try:
                enc.parse_messages_from_completion_tokens(flat[offs[b] : offs[b + 1]])
            except H.HarmonyError:
                pass
            p = H.StreamableParser(enc, None)
            try:
                p.process_tokens(flat[offs[b] : offs[b + 1]])
            except H.HarmonyError:
                pass

    # warm up: kernels compiled, tables built, the allocator at its working size
    chunk(0, 800, "collect")
    chunk(1, 150, "recover")
    r0 = rss()
    for i in range(8):  # 8,000 unique headers of 800 ids: ~12 KB each if kept
        chunk(10 + i, 800, "collect")
    for i in range(6):  # 6,000 unique headers of 150 ids, cached up to the bound
        chunk(40 + i, 150, "collect" if i % 2 else "recover")
    t = P.tables(enc)
    print(json.dumps({"growth": rss() - r0, "headers": [len(t.headers), getattr(t.headers, "nbytes", None)]}))
    '''
)


@pytest.mark.slow
def test_rss_bounded_under_unique_malformed_headers():
    """Memory after warm-up grows by at most what the caches may hold: the sum of their byte
    bounds, times 1.5 for what the accounting leaves out (allocator headers, the dict's spare
    slots), plus 16 MiB for the allocator keeping freed chunks. Unbounded (as before the
    bound), these 14,000 unique headers kept ~120 MiB."""
    proc = subprocess.run(
        [sys.executable, "-c", RSS_CHILD, os.path.dirname(__file__)], capture_output=True, text=True, timeout=300, env=dict(os.environ)
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    caches = P.HEADER_CACHE_BYTES + P.RECOVER_CACHE_BYTES + P.REENCODED_CACHE_BYTES + R.DEBUG_CHAR_CACHE_BYTES
    assert out["headers"][1] is not None and out["headers"][1] <= P.HEADER_CACHE_BYTES
    assert out["growth"] < 1.5 * caches + (16 << 20), out
