"""The renderer's caches and the batch's piece pool: bounded in bytes, and right across clears.

Bounds are shrunk for a test (the renderer's caches' ``max_bytes``, the module constant
``render_batch.BATCH_POOL_MAX_BYTES``), so a clear comes after a few hundred entries instead of tens of
thousands. RSS is measured in a child process, from
``/proc/self/statm``.
"""

from __future__ import annotations

import gc
import subprocess
import sys
import textwrap
import weakref
from sys import getsizeof

import numpy as np
import pytest

from harmony_np import render, render_batch


def _user(hnp, name, text="hello"):
    return hnp.Message.from_author_and_content(hnp.Author.new(hnp.Role.USER, name), text)


def _all_forms_agree(enc, hnp, conv):
    """Every ``*_np`` render of ``conv`` equals its list render."""
    A = hnp.Role.ASSISTANT
    listed = enc.render_conversation(conv)
    assert enc.render_conversation_np(conv).tolist() == listed
    assert enc.render_conversation_for_completion_np(conv, A).tolist() == enc.render_conversation_for_completion(conv, A)
    assert enc.render_conversation_for_training_np(conv).tolist() == enc.render_conversation_for_training(conv)
    for m in conv.messages:
        assert enc.render_np(m).tolist() == enc.render(m)
    return listed


def _shrink(monkeypatch, cache, bound: int) -> None:
    """Give one of the renderer's caches a smaller byte bound for a test (an entry up to the whole
    bound is still cached, as with the real bounds)."""
    monkeypatch.setattr(cache, "max_bytes", bound)
    monkeypatch.setattr(cache, "max_entry", bound)


def test_np_renders_across_header_cache_clears(monkeypatch, hnp, enc):
    """Distinct headers pass a small header-cache bound many times (with collections, so freed
    lists' addresses are reused) and every NumPy render still equals its list render. The original
    code found a header's array by the ``id()`` of its list, which a clear in the middle of a plan
    left pointing at a freed list."""
    r = enc.renderer
    _shrink(monkeypatch, r._headers, 64 << 10)
    sysm = hnp.Message.from_role_and_content(hnp.Role.SYSTEM, hnp.SystemContent.new())
    clears = 0
    last = r._headers.nbytes
    for k in range(1500):
        if k % 150 == 0:
            gc.collect()
        conv = hnp.Conversation.from_messages([sysm] + [_user(hnp, f"user{k}_{j}") for j in range(k % 4 + 1)])
        _all_forms_agree(enc, hnp, conv)
        assert r._headers.nbytes <= 64 << 10
        clears += r._headers.nbytes < last
        last = r._headers.nbytes
    assert clears >= 20, clears  # the bound was passed often enough to prove something


def test_header_cache_accounts_long_names(monkeypatch, hnp, enc):
    """Headers with long unique names: the accounted bytes cover the names and tokens of every
    cached header and never pass the bound; a header bigger than the bound is not cached, and
    renders right."""
    bound = 256 << 10
    r = enc.renderer
    _shrink(monkeypatch, r._headers, bound)
    for k in range(300):
        name = f"{k} " + " ".join(f"n{i}" for i in range(k % 7 * 100))
        conv = hnp.Conversation.from_messages([_user(hnp, name, "hi")])
        _all_forms_agree(enc, hnp, conv)
        assert r._headers.nbytes <= bound
        names = sum(getsizeof(key[1]) for key in r._headers)
        tokens = sum(len(e[0]) for e in r._headers.values())
        assert r._headers.nbytes >= names + tokens * 8 * 3
    huge = "x " * (bound // 2)
    conv = hnp.Conversation.from_messages([_user(hnp, huge, "hi")])
    before = r._headers.nbytes
    listed = _all_forms_agree(enc, hnp, conv)
    assert (hnp.Role.USER, huge, None, None, None) not in r._headers
    assert r._headers.nbytes == before
    assert listed[:2] == [200006, enc.encode("user")[0]]


def test_text_caches_bounded_in_bytes(monkeypatch, hnp, enc):
    """Many distinct texts, some with 4-byte characters: both text caches (token lists, arrays)
    stay under the byte bound, counting their keys' real size, and renders stay right."""
    bound = 256 << 10
    r = enc.renderer
    _shrink(monkeypatch, r._texts, bound)
    _shrink(monkeypatch, r._arrays, bound)
    clears = 0
    last = r._texts.nbytes
    for k in range(400):
        text = f"{k}: " + ("\U0001f600 smile " if k % 2 else "plain words ") * 300
        conv = hnp.Conversation.from_messages([hnp.Message.from_role_and_content(hnp.Role.USER, text)])
        _all_forms_agree(enc, hnp, conv)
        for cache, used in ((r._texts, r._texts.nbytes), (r._arrays, r._arrays.nbytes)):
            assert used <= bound
            assert used >= sum(getsizeof(t) for t in cache)
        clears += r._texts.nbytes < last
        last = r._texts.nbytes
    assert clears >= 5, clears
    assert r._texts.nbytes >= sum(len(v) for v in r._texts.values()) * 40
    assert r._arrays.nbytes >= sum(a.nbytes for a in r._arrays.values())
    # cached arrays are shared by later renders: nobody may write into them
    a = next(iter(r._arrays.values()))
    with pytest.raises(ValueError):
        a[0] = 1


def test_header_cache_rss_stays_bounded():
    """3,000 headers with long unique names (about 1,000 tokens each), rendered in list and
    NumPy forms, with the real bounds: RSS grows by about the header cache's bound, not by what
    the cache would hold unbounded (the original cache, counted in entries, grew by about
    150 MiB here)."""
    code = textwrap.dedent(
        """
        import harmony_np as h
        enc = h.load_harmony_encoding(h.HarmonyEncodingName.HARMONY_GPT_OSS)
        def rss():
            with open("/proc/self/statm") as f:
                return int(f.read().split()[1]) * 4096
        name = " ".join(f"w{i}" for i in range(500))
        def conv(k):
            return h.Conversation.from_messages([h.Message.from_author_and_content(
                h.Author.new(h.Role.USER, f"{k} {name}"), "hi")])
        for k in range(200):
            enc.render_conversation(conv(k)); enc.render_conversation_np(conv(k))
        base = rss()
        for k in range(200, 3000):
            c = conv(k)
            enc.render_conversation(c); enc.render_conversation_np(c)
        print((rss() - base) / 2**20, flush=True)
        r = enc.renderer
        assert r._headers.nbytes <= 32 << 20 and r._texts.nbytes <= 64 << 20 and r._arrays.nbytes <= 64 << 20
        """
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert p.stdout, p.stderr[-3000:]
    grown = float(p.stdout.split()[0])
    # the header cache's 32 MiB, plus allocator slack
    assert grown < 64, f"RSS grew by {grown:.0f} MiB"
    assert p.returncode == 0, p.stderr[-3000:]


class _Text(str):
    """A text the test can hold a weak reference to."""


def _pool_rows(hnp, n, texts, collect=False):
    sysm = {"role": "system", "content": [{"type": "system_content", "reasoning_effort": "Low"}]}
    for i in range(n):
        if collect and i % 50 == 0:
            gc.collect()  # freed objects' ids are reused
        t = _Text(f"question {i}: " + "why " * (i % 30))
        texts.append(weakref.ref(t))
        yield hnp.Conversation.from_messages([
            hnp.Message.from_dict(sysm),  # equal in every row, a new object each time
            hnp.Message.from_role_and_content(hnp.Role.DEVELOPER, hnp.DeveloperContent.new().with_instructions(f"Use language #{i % 5}")),
            hnp.Message.from_role_and_content(hnp.Role.USER, t),
            hnp.Message.from_role_and_content(hnp.Role.ASSISTANT, f"answer {i}").with_channel("final"),
        ])


@pytest.mark.parametrize("mode", ["completion", "conversation", "training"])
@pytest.mark.slow
def test_batch_pool_flushes_keep_rows_right_and_free_texts(monkeypatch, hnp, enc, mode):
    """With a tiny pool bound the batch encodes its pending texts and forgets its dedup index
    and memos every few rows: rows (and loss masks) equal the single calls, and the texts of
    rows already encoded are no longer held (the original pool held every text to the end)."""
    monkeypatch.setattr(render_batch, "BATCH_POOL_MAX_BYTES", 4096)
    n = 600
    texts: list = []
    alive_at_end = []

    def rows():
        yield from _pool_rows(hnp, n, texts, collect=True)
        gc.collect()
        alive_at_end.append(sum(ref() is not None for ref in texts))

    rb = enc.render_batch(rows(), mode=mode, loss_mask=True)
    assert alive_at_end and alive_at_end[0] < 50, alive_at_end
    single = {
        "completion": lambda c: enc.render_conversation_for_completion(c, hnp.Role.ASSISTANT),
        "conversation": enc.render_conversation,
        "training": enc.render_conversation_for_training,
    }[mode]
    again = list(_pool_rows(hnp, n, []))
    assert rb.to_list() == [single(c) for c in again]
    monkeypatch.undo()
    ref = enc.render_batch(again, mode=mode, loss_mask=True)  # one pool, never flushed
    assert np.array_equal(rb.loss_mask, ref.loss_mask) and np.array_equal(rb.offsets, ref.offsets)
