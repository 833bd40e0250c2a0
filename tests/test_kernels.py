"""Every kernel of harmony_np.kernels against its naive reference in tests/naive.py.

Inputs are packed the way harmony_np's callers pack them (dtypes, read-only arrays, the real byte
table) and respect what those callers check first: the kernels do not bounds-check.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from naive import (
    CALL,
    CHANNEL,
    CONSTRAIN,
    END,
    MESSAGE,
    N_ORDINARY,
    N_VOCAB,
    RETURN,
    START,
    fnv1a_64,
    naive_assemble_rows,
    naive_gather_bytes,
    naive_gather_spans,
    naive_pad_rows,
    naive_scan,
    naive_scan_batch,
    naive_utf8_invalid_rows,
    naive_scan_gather,
    naive_span_hash,
    naive_stream_positions,
)

U32_MAX = 2**32 - 1

# -- fixtures and strategies ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def kernels():
    from harmony_np.lazy import kernels as load

    return load()


@pytest.fixture(scope="module")
def vocab(enc):
    """The byte table the callers hand the kernels (read-only flat bytes and int64 offsets)."""
    return enc.vocab


@pytest.fixture(scope="module")
def token_bytes(vocab):
    """The bytes of each id, as a list: what the references read."""
    return vocab.token_bytes_list()


@pytest.fixture(scope="module")
def plain(enc):
    from harmony_np.parse import tables

    return tables(enc).plain


@pytest.fixture(scope="module")
def plain_list(plain):
    return plain.tolist()


@pytest.fixture(scope="module")
def not_plain_ids(plain):
    """Ordinary ids that are not plain (a piece of a UTF-8 sequence): random ordinary ids are
    nearly all plain."""
    return np.flatnonzero(~plain[:N_ORDINARY]).tolist()


SPECIAL_IDS = [START, END, MESSAGE, CHANNEL, CONSTRAIN, RETURN, CALL]
ordinary_ids = st.integers(0, N_ORDINARY - 1)
special_ids = st.sampled_from(SPECIAL_IDS)
other_special_ids = st.integers(N_ORDINARY, N_VOCAB - 1)
unknown_ids = st.sampled_from([N_VOCAB, 300_000, U32_MAX]) | st.integers(N_VOCAB, U32_MAX)
# ids the byte table holds; special ids drawn twice as often, as the scanners care about them
known_ids = st.one_of(special_ids, special_ids, ordinary_ids, other_special_ids)
# any uint32 the parsers accept (unknown ids are only compared by the scanners)
any_ids = st.one_of(special_ids, special_ids, ordinary_ids, other_special_ids, unknown_ids)


def completions(ids: st.SearchStrategy = any_ids) -> st.SearchStrategy:
    """Token lists mixing message-shaped runs (<|start|> header <|message|> content stop) with
    runs of loose ids, cut by 0-2 tokens at the front (a completion whose role is given starts
    after its <|start|> and role)."""
    message = st.builds(
        lambda header, content, stop: [START, *header, MESSAGE, *content, *stop],
        st.lists(ids, max_size=4),
        st.lists(ids, max_size=6),
        st.sampled_from([[END], [CALL], [RETURN], []]),
    )
    parts = st.lists(st.one_of(message, st.lists(ids, max_size=3)), max_size=5)
    return st.builds(lambda ps, cut: [t for p in ps for t in p][cut:], parts, st.sampled_from([0, 0, 1, 2]))


def u32(values) -> np.ndarray:
    return np.array(values, dtype=np.uint32)


def read_only(arr: np.ndarray) -> np.ndarray:
    arr.flags.writeable = False
    return arr


def force_threads(monkeypatch, n: int) -> None:
    """Make the kernels' wrappers split their work ``n`` ways, on any machine. The pool is
    started first, at its own size: only the split changes."""
    from harmony_np import threads

    threads.pool()
    monkeypatch.setattr(threads, "thread_count", lambda: n)


# Hand-picked cases that every run covers: each status of the scan and both record kinds
SCAN_EXAMPLES = [
    ([START, 1, MESSAGE, 2, 3, END, START, 4, MESSAGE, 5], False, True),  # two messages, EOS in content
    ([5, START, 1, MESSAGE, 2, END], False, True),  # status 1 at 0
    ([START, 1, MESSAGE, 2, CALL, 9], False, False),  # status 1 after a message
    ([START, 1, 2], False, True),  # status 2: input ends in a header
    ([1, 2, END, START, 3, MESSAGE, 4, RETURN], True, False),  # kind 1: header cut short
    ([1, N_VOCAB, MESSAGE, U32_MAX, 7, END], True, True),  # unknown ids in header and content
    ([END, START, MESSAGE, END], True, False),  # empty first header cut short: no record
    ([1, END, START, 2, MESSAGE, 3, END], True, True),  # strict: the stop stays in the header
]


def with_scan_examples(test):
    for case in SCAN_EXAMPLES:
        test = example(*case)(test)
    return test


# -- gather_bytes ------------------------------------------------------------------------------


@settings(deadline=None)
@given(st.lists(known_ids, max_size=80))
def test_gather_bytes(kernels, vocab, token_bytes, tokens):
    got = kernels.gather_bytes(vocab.flat, vocab.offsets, u32(tokens))
    assert got.dtype == np.uint8
    assert got.tobytes() == naive_gather_bytes(token_bytes, tokens)


# -- scanners ------------------------------------------------------------------------------------


@settings(deadline=None)
@with_scan_examples
@given(completions(), st.booleans(), st.booleans())
def test_scan_completion(kernels, tokens, role_given, strict):
    assert kernels.scan_completion(u32(tokens), role_given, strict) == naive_scan(tokens, role_given, strict)


@settings(deadline=None)
@with_scan_examples
@given(completions(), st.booleans(), st.booleans())
def test_scan_gather(kernels, vocab, token_bytes, tokens, role_given, strict):
    recs, status, pos, data, byte_off = kernels.scan_gather(u32(tokens), role_given, strict, vocab.flat, vocab.offsets)
    want_recs, want_status, want_pos, want_contents = naive_scan_gather(tokens, role_given, strict, token_bytes)
    assert ([tuple(r) for r in recs], status, pos) == (want_recs, want_status, want_pos)
    assert len(byte_off) == len(recs) + 1 and byte_off[0] == 0
    assert [data[byte_off[k] : byte_off[k + 1]].tobytes() for k in range(len(recs))] == want_contents


@settings(deadline=None)
@given(st.lists(completions(), max_size=6), st.booleans(), st.booleans())
@example([[START, 1, MESSAGE, 2], [], [1, END, START, 3, MESSAGE, 4, CALL], [7]], True, False)
@example([[START, 1, MESSAGE, 2, END], [START, 3], [START, MESSAGE]], False, True)
def test_scan_batch(kernels, batch, role_given, strict):
    # packed as batch._flatten packs completions: one read-only uint32 array, int64 starts
    flat = read_only(u32([t for tokens in batch for t in tokens]))
    starts = np.cumsum([0] + [len(tokens) for tokens in batch]).astype(np.int64)
    recs, rec_starts, status, pos = kernels.scan_batch(flat, starts, role_given, strict)
    want_recs, want_rec_starts, want_status, want_pos = naive_scan_batch(batch, role_given, strict)
    assert recs.shape == (len(want_recs), 7)
    assert [tuple(r) for r in recs.tolist()] == want_recs
    assert (rec_starts.tolist(), status.tolist(), pos.tolist()) == (want_rec_starts, want_status, want_pos)


# -- assemble_rows -------------------------------------------------------------------------------


@st.composite
def piece_rows(draw):
    """``(pieces, rows)``: pieces of known ids (some empty), rows of (piece id, flag) occurrences
    (pieces reused, some rows empty), as batch.render_batch collects them."""
    pieces = draw(st.lists(st.lists(known_ids, max_size=6), min_size=1, max_size=6))
    occurrence = st.tuples(st.integers(0, len(pieces) - 1), st.integers(0, 1))
    rows = draw(st.lists(st.lists(occurrence, max_size=6), max_size=8))
    return pieces, rows


def pack_pieces(pieces, rows):
    """The arrays batch.render_batch hands assemble_rows: piece pool and offsets, occurrences,
    their flags, each row's first occurrence and each row's first output position."""
    piece_len = np.array([len(p) for p in pieces], dtype=np.int64)
    piece_off = np.zeros(len(pieces) + 1, dtype=np.int64)
    np.cumsum(piece_len, out=piece_off[1:])
    pool = u32([t for p in pieces for t in p])
    occ = np.array([p for row in rows for p, _ in row], dtype=np.int64)
    flags = np.array([f for row in rows for _, f in row], dtype=np.uint8)
    row_occ_off = np.cumsum([0] + [len(row) for row in rows]).astype(np.int64)
    occ_cum = np.zeros(occ.shape[0] + 1, dtype=np.int64)
    np.cumsum(piece_len[occ], out=occ_cum[1:])
    out_off = occ_cum[row_occ_off]
    return pool, piece_off, occ, flags, row_occ_off, out_off


def run_assemble(kernels, pieces, rows, with_mask):
    pool, piece_off, occ, flags, row_occ_off, out_off = pack_pieces(pieces, rows)
    tokens = np.empty(int(out_off[-1]), dtype=np.uint32)
    mask = np.zeros(tokens.shape[0], dtype=np.uint8) if with_mask else np.zeros(0, dtype=np.uint8)
    kernels.assemble_rows(pool, piece_off, occ, flags, row_occ_off, out_off, tokens, mask, with_mask)
    return tokens, mask, out_off


@settings(deadline=None)
@given(piece_rows(), st.booleans())
def test_assemble_rows(kernels, case, with_mask):
    pieces, rows = case
    tokens, mask, _ = run_assemble(kernels, pieces, rows, with_mask)
    want_tokens, want_mask = naive_assemble_rows(pieces, rows)
    assert tokens.tolist() == want_tokens
    assert mask.tolist() == (want_mask if with_mask else [])


@settings(deadline=None)
@given(piece_rows(), st.booleans(), st.data())
def test_assemble_rows_serial_range(kernels, case, with_mask, data):
    # the serial kernel on rows lo:hi, as each thread runs it: those rows, and nothing else
    pieces, rows = case
    lo = data.draw(st.integers(0, len(rows)), label="lo")
    hi = data.draw(st.integers(lo, len(rows)), label="hi")
    pool, piece_off, occ, flags, row_occ_off, out_off = pack_pieces(pieces, rows)
    untouched_token, untouched_flag = U32_MAX, 7  # no piece holds this id, no flag is 7
    tokens = np.full(int(out_off[-1]), untouched_token, dtype=np.uint32)
    mask = np.full(tokens.shape[0] if with_mask else 0, untouched_flag, dtype=np.uint8)
    kernels._assemble_rows(pool, piece_off, occ, flags, row_occ_off, out_off, tokens, mask, with_mask, lo, hi)
    want_tokens, want_mask = naive_assemble_rows(pieces, rows[lo:hi])
    a, z = int(out_off[lo]), int(out_off[hi])
    assert tokens.tolist() == [untouched_token] * a + want_tokens + [untouched_token] * (tokens.shape[0] - z)
    if with_mask:
        assert mask.tolist() == [untouched_flag] * a + want_mask + [untouched_flag] * (tokens.shape[0] - z)
    else:
        assert mask.shape == (0,)


@pytest.mark.parametrize("seed", [1, 2])
@pytest.mark.parametrize("with_mask", [True, False])
def test_assemble_rows_split_over_threads(kernels, monkeypatch, seed, with_mask):
    from harmony_np.threads import split_by_weight

    rng = np.random.default_rng(seed)
    pieces = [rng.integers(0, N_VOCAB, int(rng.integers(0, 60))).tolist() for _ in range(300)]
    rows = [
        [(int(p), int(f)) for p, f in zip(rng.integers(0, len(pieces), k), rng.integers(0, 2, k))]
        for k in rng.integers(0, 25, 1200).tolist()
    ]
    force_threads(monkeypatch, 3)
    tokens, mask, out_off = run_assemble(kernels, pieces, rows, with_mask)
    assert len(split_by_weight(out_off, 3, kernels.KERNEL_SPLIT_MIN)) == 3  # the copy was split
    want_tokens, want_mask = naive_assemble_rows(pieces, rows)
    assert tokens.tolist() == want_tokens
    assert mask.tolist() == (want_mask if with_mask else [])


# -- pad_rows --------------------------------------------------------------------------------


@settings(deadline=None)
@given(
    st.lists(st.lists(known_ids, max_size=8), max_size=6),
    st.none() | st.integers(0, 10),
    st.booleans(),
    st.booleans(),
    st.lists(known_ids, max_size=3),
    st.lists(known_ids, max_size=3),
)
def test_pad_rows(kernels, rows, max_len, left, loss_mask, before, after):
    # as RaggedTokens.to_padded calls it: the rows of a flat array (its offsets need not start
    # at 0, nor end at its end), a width of the longest row or max_len, ids in uint32 over pad_id
    # or a 0/1 loss mask in uint8 over zeros, attention in uint8 zeros
    if loss_mask:
        rows = [[t & 1 for t in row] for row in rows]
        before, after = [t & 1 for t in before], [t & 1 for t in after]
    values = np.array(before + [t for row in rows for t in row] + after, dtype=np.uint8 if loss_mask else np.uint32)
    offsets = np.cumsum([len(before)] + [len(row) for row in rows]).astype(np.int64)
    width = max((len(row) for row in rows), default=0) if max_len is None else max_len
    pad = 0 if loss_mask else 200_017
    out = np.full((len(rows), width), pad, dtype=values.dtype)
    attn = np.zeros((len(rows), width), dtype=np.uint8)
    kernels.pad_rows(read_only(values), read_only(offsets), out, attn, left)
    want_out, want_attn = naive_pad_rows(rows, width, left, pad)
    assert out.tolist() == want_out
    assert attn.tolist() == want_attn


# -- stream_positions ----------------------------------------------------------------------------


@settings(deadline=None)
@given(st.data())
def test_stream_positions(kernels, plain, plain_list, not_plain_ids, data):
    # as the streaming parser's bulk feed calls it: any uint32 ids, the real plain table
    tokens = data.draw(st.lists(st.one_of(any_ids, st.sampled_from(not_plain_ids)), max_size=60), label="tokens")
    odd, special = kernels.stream_positions(u32(tokens), plain)
    assert odd.dtype == special.dtype == np.int64
    assert (odd.tolist(), special.tolist()) == naive_stream_positions(tokens, plain_list)


# -- span_hashes ---------------------------------------------------------------------------------


@st.composite
def tokens_and_spans(draw, ids=any_ids):
    """A token list and spans ``(start, stop)`` in its bounds (some empty, some overlapping)."""
    tokens = draw(st.lists(ids, max_size=40))
    bound = st.integers(0, len(tokens))
    spans = [tuple(sorted(pair)) for pair in draw(st.lists(st.tuples(bound, bound), max_size=10))]
    return tokens, spans


def span_arrays(spans):
    return np.array([a for a, _ in spans], dtype=np.int64), np.array([z for _, z in spans], dtype=np.int64)


def test_fnv_reference_matches_published_vectors():
    # the reference's FNV-1a is the standard one: published 64-bit FNV-1a test vectors
    assert fnv1a_64(b"") == 0xCBF29CE484222325
    assert fnv1a_64(b"a") == 0xAF63DC4C8601EC8C
    assert fnv1a_64(b"foobar") == 0x85944171F73967E8


@settings(deadline=None)
@given(tokens_and_spans())
@example(([ord(c) for c in "foobar"], [(0, 6), (0, 0), (2, 3)]))
def test_span_hashes(kernels, case):
    tokens, spans = case
    starts, stops = span_arrays(spans)
    # as batch.parse_batch calls it: the read-only flat uint32 ids, int64 header spans
    a, b = kernels.span_hashes(read_only(u32(tokens)), starts, stops)
    assert a.dtype == b.dtype == np.uint64
    want = [naive_span_hash(tokens[x:z]) for x, z in spans]
    assert list(zip(a.tolist(), b.tolist())) == want


# -- gather_spans ---------------------------------------------------------------------------------


def known_spans(tokens, spans):
    """Spans holding an unknown id made empty, as batch._decode_contents does for the rows it
    decodes another way (the ids outside the spans may be anything)."""
    return [(x, z) if all(t < N_VOCAB for t in tokens[x:z]) else (x, x) for x, z in spans]


@settings(deadline=None)
@given(tokens_and_spans())
def test_gather_spans(kernels, vocab, token_bytes, case):
    tokens, spans = case
    spans = known_spans(tokens, spans)
    starts, stops = span_arrays(spans)
    data, byte_off = kernels.gather_spans(vocab.flat, vocab.offsets, read_only(u32(tokens)), starts, stops)
    want_data, want_off = naive_gather_spans(token_bytes, [tokens[x:z] for x, z in spans])
    assert byte_off.tolist() == want_off
    assert data.tobytes() == want_data


@settings(deadline=None)
@given(tokens_and_spans())
def test_gather_spans_refuses_spans_with_unknown_ids(kernels, vocab, case):
    # the one check the kernel makes itself (a MessageTable's columns are the caller's): a span
    # holding an id past the byte table is a ValueError naming the first such span
    tokens, spans = case
    starts, stops = span_arrays(spans)
    bad = [r for r, (x, z) in enumerate(spans) if any(t >= N_VOCAB for t in tokens[x:z])]
    if not bad:
        data, _ = kernels.gather_spans(vocab.flat, vocab.offsets, read_only(u32(tokens)), starts, stops)
        assert data.dtype == np.uint8
        return
    with pytest.raises(ValueError, match=rf"^span {bad[0]} \("):
        kernels.gather_spans(vocab.flat, vocab.offsets, read_only(u32(tokens)), starts, stops)


@settings(deadline=None)
@given(tokens_and_spans(), st.data())
def test_gather_spans_serial_ranges(kernels, vocab, token_bytes, case, data):
    # the two serial kernels on spans lo:hi, as each thread runs them
    tokens, spans = case
    spans = known_spans(tokens, spans)
    lo = data.draw(st.integers(0, len(spans)), label="lo")
    hi = data.draw(st.integers(lo, len(spans)), label="hi")
    starts, stops = span_arrays(spans)
    arr = read_only(u32(tokens))
    want_data, want_off = naive_gather_spans(token_bytes, [tokens[x:z] for x, z in spans])
    sizes = np.full(len(spans), -1, dtype=np.int64)
    kernels._span_bytes(vocab.offsets, arr, starts, stops, sizes, lo, hi)
    want_sizes = [z - a for a, z in zip(want_off, want_off[1:])]
    assert sizes.tolist() == [-1] * lo + want_sizes[lo:hi] + [-1] * (len(spans) - hi)
    out = np.full(len(want_data), 0xA5, dtype=np.uint8)
    kernels._copy_spans(vocab.flat, vocab.offsets, kernels.token_slots(vocab.flat, vocab.offsets), arr, starts, stops, np.array(want_off, dtype=np.int64), out, lo, hi)
    a, z = want_off[lo], want_off[hi]
    assert out.tobytes() == b"\xa5" * a + want_data[a:z] + b"\xa5" * (len(want_data) - z)


@pytest.mark.parametrize("seed", [1, 2])
def test_gather_spans_split_over_threads(kernels, vocab, token_bytes, monkeypatch, seed):
    from harmony_np.threads import split_by_weight

    rng = np.random.default_rng(seed)
    tokens = rng.integers(0, N_VOCAB, 110_000).tolist()
    for i in rng.integers(0, len(tokens), 50).tolist():
        tokens[i] = int(rng.integers(N_VOCAB, U32_MAX))  # unknown ids, left out of the spans
    # contents of varied lengths one after the other, with gaps for their headers
    lengths = rng.integers(0, 120, 1600)
    starts = np.cumsum(lengths + 3) - lengths
    spans = known_spans(tokens, list(zip(starts.tolist(), (starts + lengths).tolist())))
    assert spans[-1][1] <= len(tokens)
    span_start, span_stop = span_arrays(spans)
    force_threads(monkeypatch, 3)
    data, byte_off = kernels.gather_spans(vocab.flat, vocab.offsets, read_only(u32(tokens)), span_start, span_stop)
    span_tokens = np.concatenate([[0], np.cumsum(span_stop - span_start)])
    # both passes were split: the size pass by tokens, the copy by bytes
    assert len(split_by_weight(span_tokens, 3, kernels.KERNEL_SPLIT_MIN // 8)) == 3
    assert len(split_by_weight(byte_off, 3, kernels.KERNEL_SPLIT_MIN)) == 3
    want_data, want_off = naive_gather_spans(token_bytes, [tokens[x:z] for x, z in spans])
    assert byte_off.tolist() == want_off
    assert data.tobytes() == want_data


# byte rows near UTF-8's edges: every lead byte, truncated and overlong sequences, surrogates,
# code points past U+10FFFF, and valid text in several scripts
_UTF8_EDGES = [b"", b"a", "é".encode(), "€".encode(), "𝄞".encode(), b"\xc0\x80", b"\xc1\xbf", b"\xe0\x80\x80",
               b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xf5\x80\x80\x80", b"\xe2\x82", b"\x80", b"\xff", b"\xf0\x9f\x98"]


@settings(deadline=None)
@given(st.lists(st.one_of(st.binary(max_size=12), st.sampled_from(_UTF8_EDGES), st.text(max_size=6).map(lambda t: t.encode("utf-8", "surrogatepass"))), max_size=30))
def test_utf8_invalid_rows(kernels, rows):
    data = np.frombuffer(b"".join(rows), dtype=np.uint8)
    byte_off = np.zeros(len(rows) + 1, dtype=np.int64)
    np.cumsum([len(r) for r in rows], out=byte_off[1:])
    assert kernels.utf8_invalid_rows(read_only(data), byte_off).tolist() == naive_utf8_invalid_rows(rows)
