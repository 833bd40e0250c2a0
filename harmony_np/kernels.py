"""Numba kernels. They take and return plain NumPy arrays and never see Python objects.

Every caller validates its input first (ids below ``N_VOCAB``, offsets monotone): Numba does not
bounds-check, so an unchecked id would read outside the byte table.

Import this module through :func:`harmony_np.parse.kernels`: a fork then waits until the import
(numba's with it) is done, and the lazy imports of numba's first call are made here too.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

import numba
import numpy as np
from numba.core import config as _numba_config

from .records import (
    FLAG_CONTENT_UNKNOWN,
    FLAG_HEADER_UNKNOWN,
    NO_STOP,
    REC_CE,
    REC_CS,
    REC_FLAGS,
    REC_HE,
    REC_HEADER_ONLY,
    REC_HS,
    REC_KIND,
    REC_MESSAGE,
    REC_STOP,
    REC_WIDTH,
    ST_EOS_HEADER,
    ST_OK,
    ST_UNEXPECTED,
)
from .tuning import KERNEL_SPLIT_MIN
from .vocab import CALL, END, MESSAGE, N_ORDINARY, N_VOCAB, RETURN, START, writable_cache_folder


def _prepare_first_calls() -> None:
    # numba's first call of any kernel imports more (its extension entry points, numpy.ma to
    # type an array) outside its compiler lock: done here, under the lock a fork waits for,
    # rather than in whichever thread calls a kernel first
    try:
        from numba.core.entrypoints import init_all
    except ImportError:  # pragma: no cover - another numba layout
        pass
    else:
        init_all()
    numba.typeof(np.empty(0, np.uint8))


_prepare_first_calls()

# Where kernels are cached when numba finds no place (a read-only install used from a home that
# cannot be written): None until a kernel needs it, then a folder, or "" to compile in memory.
_fallback_cache: Optional[str] = None


def njit(fn: Optional[Callable] = None, **options: Any):
    """:func:`numba.njit`; with ``cache=True``, a kernel that numba has nowhere to cache goes to
    harmony_np's own cache folder (:func:`harmony_np.vocab.writable_cache_folder`), else is
    compiled in memory, once per process, instead of failing the import."""

    def decorate(f: Callable):
        global _fallback_cache
        if not options.get("cache"):
            return numba.njit(**options)(f)
        if _fallback_cache is None:
            try:
                return numba.njit(**options)(f)
            except RuntimeError:  # "cannot cache function ...: no locator available"
                folder = writable_cache_folder("numba")
                _fallback_cache = str(folder) if folder is not None else ""
        if not _fallback_cache:
            return numba.njit(**dict(options, cache=False))(f)
        # numba's locator of a user's cache folder reads config.CACHE_DIR when the kernel is
        # decorated and keeps the path: set for this kernel only, not for the process's others
        saved = _numba_config.CACHE_DIR
        _numba_config.CACHE_DIR = _fallback_cache
        try:
            return numba.njit(**options)(f)
        finally:
            _numba_config.CACHE_DIR = saved

    return decorate if fn is None else decorate(fn)


@njit(cache=True, nogil=True, inline="always")
def _copy_tokens(tokens, start, stop, flat, offsets, out, b):
    # bytes of tokens[start:stop] into out from b; unsigned indices spare Numba the
    # negative-index checks, which halves the time of this byte loop
    one = np.uint64(1)
    for j in range(np.uint64(start), np.uint64(stop)):
        t = tokens[j]
        q = np.uint64(offsets[t])
        z = np.uint64(offsets[t + 1])
        while q < z:
            out[b] = flat[q]
            b += one
            q += one
    return b


@njit(cache=True, nogil=True)
def _gather_bytes(flat, offsets, tokens):
    total = 0
    for i in range(tokens.shape[0]):
        t = tokens[i]
        total += offsets[t + 1] - offsets[t]
    out = np.empty(total, np.uint8)
    _copy_tokens(tokens, 0, tokens.shape[0], flat, offsets, out, np.uint64(0))
    return out


def gather_bytes(flat: np.ndarray, offsets: np.ndarray, tokens: np.ndarray) -> np.ndarray:
    """The bytes of ``tokens`` (uint32 ids, already checked to be below ``len(offsets) - 1``)."""
    return _gather_bytes(flat, offsets, np.ascontiguousarray(tokens, dtype=np.uint32))


# -- completion scanning ----------------------------------------------------------------------

# The formatting token ids are harmony_np.vocab's and the record layout harmony_np.records' (Numba
# reads module globals as compile-time constants). A message's <|start|> (if any) is at hs - 1.


@njit(cache=True, nogil=True)
def _is_stop(t):
    return t == END or t == CALL or t == RETURN


@njit(cache=True, nogil=True)
def _scan_completion(tokens, role_given, strict, recs):
    """Fill ``recs`` (at least n // 2 + 1 rows); return (rows used, status, pos)."""
    n = tokens.shape[0]
    m = 0
    i = 0
    expect = not role_given
    first = role_given
    while True:
        if expect:
            if i == n:
                return m, ST_OK, 0
            if tokens[i] != START:
                return m, ST_UNEXPECTED, i
            i += 1
        hs = i
        flags = 0
        j = hs
        tok = 0
        while j < n:
            tok = tokens[j]
            if tok == MESSAGE:
                break
            if (not strict) and _is_stop(tok):
                break
            if tok >= N_VOCAB:
                flags = FLAG_HEADER_UNKNOWN
            j += 1
        if j == n:
            return m, ST_EOS_HEADER, n
        he = j
        if tok != MESSAGE:
            if first and he > hs:
                if m == recs.shape[0]:  # see the check below
                    return m, ST_UNEXPECTED, hs
                recs[m, REC_KIND] = REC_HEADER_ONLY
                recs[m, REC_HS] = hs
                recs[m, REC_HE] = he
                recs[m, REC_CS] = 0
                recs[m, REC_CE] = 0
                recs[m, REC_FLAGS] = flags
                recs[m, REC_STOP] = tok
                m += 1
            first = False
            i = he + 1
            expect = True
            continue
        first = False
        cs = he + 1
        j = cs
        while j < n:
            tok = tokens[j]
            if tok >= N_ORDINARY:  # one comparison for the ordinary tokens of a content
                if _is_stop(tok):
                    break
                if tok >= N_VOCAB:
                    flags |= FLAG_CONTENT_UNKNOWN
            j += 1
        if m == recs.shape[0]:
            # more records than the caller counted room for: only if another thread wrote the
            # tokens (a buffer shared with the caller) while they were read; refused, not
            # written out of bounds
            return m, ST_UNEXPECTED, hs
        recs[m, REC_KIND] = REC_MESSAGE
        recs[m, REC_HS] = hs
        recs[m, REC_HE] = he
        recs[m, REC_CS] = cs
        recs[m, REC_CE] = j
        recs[m, REC_FLAGS] = flags
        recs[m, REC_STOP] = tok if j < n else NO_STOP
        m += 1
        if j == n:
            return m, ST_OK, 0
        i = j + 1
        expect = True


def scan_completion(tokens: np.ndarray, role_given: bool, strict: bool):
    """Message boundaries of a completion: ``(records, status, pos)``.

    ``records`` is a list of ``(kind, hs, he, cs, ce, flags, terminator)`` tuples (layout above); the scan
    stops at the first structural error, which ``status``/``pos`` report. Only ids are compared,
    so unknown ids are safe here (they are flagged, never looked up).
    """
    arr = np.ascontiguousarray(tokens, dtype=np.uint32)
    recs = np.empty((arr.shape[0] // 2 + 1, REC_WIDTH), dtype=np.int64)  # uninitialised: cheap at any size
    m, status, pos = _scan_completion(arr, bool(role_given), bool(strict), recs)
    return [tuple(r) for r in recs[:m].tolist()], int(status), int(pos)


@njit(cache=True, nogil=True)
def _scan_gather(tokens, role_given, strict, recs, flat, offsets, out, byte_off):
    # the scan, then the bytes of every message content that holds only known ids, in one call
    m, status, pos = _scan_completion(tokens, role_given, strict, recs)
    b = np.uint64(0)
    for k in range(m):
        byte_off[k] = b
        if recs[k, REC_KIND] == REC_MESSAGE and (recs[k, REC_FLAGS] & FLAG_CONTENT_UNKNOWN) == 0:
            b = _copy_tokens(tokens, recs[k, REC_CS], recs[k, REC_CE], flat, offsets, out, b)
    byte_off[m] = b
    return m, status, pos


_MAX_TOKEN_BYTES = 128  # the longest token of o200k_base


def scan_gather(tokens: np.ndarray, role_given: bool, strict: bool, flat: np.ndarray, offsets: np.ndarray):
    """:func:`scan_completion` plus the content bytes of its message records:
    ``(records, status, pos, data, byte_off)`` (``role_given`` and ``strict`` must be bools, records
    are lists); record k's content is
    ``data[byte_off[k]:byte_off[k + 1]]`` (empty for a record whose content holds unknown ids,
    which the caller decodes another way). ``offsets`` must have room for every id below 2**32
    that the content may hold: contents with unknown ids are skipped, the rest are in the table.
    """
    arr = tokens if tokens.dtype == np.uint32 and tokens.flags.c_contiguous else np.ascontiguousarray(tokens, dtype=np.uint32)
    n = arr.shape[0]
    recs = np.empty((n // 2 + 1, REC_WIDTH), dtype=np.int64)
    # uninitialised room for the worst case: never touched beyond what is written
    out = np.empty(n * _MAX_TOKEN_BYTES, dtype=np.uint8)
    byte_off = np.empty(n // 2 + 2, dtype=np.int64)
    m, status, pos = _scan_gather(arr, role_given, strict, recs, flat, offsets, out, byte_off)
    # records as lists, not tuples: the caller only unpacks them
    return recs[:m].tolist(), status, pos, out, byte_off[: m + 1].tolist()


@njit(cache=True, nogil=True)
def _scan_batch(tokens, starts, role_given, strict, recs, rec_starts, status, pos):
    for b in range(starts.shape[0] - 1):
        a = starts[b]
        z = starts[b + 1]
        r0 = rec_starts[b]
        m, st, p = _scan_completion(tokens[a:z], role_given, strict, recs[r0:])
        rec_starts[b + 1] = r0 + m
        status[b] = st
        pos[b] = p


def scan_batch(tokens: np.ndarray, starts: np.ndarray, role_given: bool, strict: bool):
    """:func:`scan_completion` over many completions packed back to back.

    ``starts`` (int64, len B + 1) delimits completion b as ``tokens[starts[b]:starts[b + 1]]``.
    Returns ``(records (R, REC_WIDTH) int64 with positions relative to each completion, rec_starts (B + 1),
    status (B), pos (B))``: completion b owns ``records[rec_starts[b]:rec_starts[b + 1]]``.
    """
    arr = np.ascontiguousarray(tokens, dtype=np.uint32)
    st = np.ascontiguousarray(starts, dtype=np.int64)
    nb = st.shape[0] - 1
    # every record holds a special token (its <|message|>, or the stop token that cut a header
    # short), so their count bounds the records; far tighter than k // 2 per completion
    cap = int(np.count_nonzero(arr >= N_ORDINARY)) + 1
    recs = np.empty((cap, REC_WIDTH), dtype=np.int64)
    rec_starts = np.zeros(nb + 1, dtype=np.int64)
    status = np.zeros(nb, dtype=np.int64)
    pos = np.zeros(nb, dtype=np.int64)
    _scan_batch(arr, st, bool(role_given), bool(strict), recs, rec_starts, status, pos)
    return recs[: rec_starts[-1]], rec_starts, status, pos


# -- batch rendering -----------------------------------------------------------------------


@njit(cache=True, nogil=True)
def _assemble_rows(pool, pool_off, occ, flags, row_occ_off, out_off, out_tokens, out_mask, with_mask, lo, hi):
    one = np.uint64(1)
    for r in range(lo, hi):
        pos = np.uint64(out_off[r])
        for k in range(row_occ_off[r], row_occ_off[r + 1]):
            p = occ[k]
            j = np.uint64(pool_off[p])
            b = np.uint64(pool_off[p + 1])
            f = flags[k]
            # unsigned indices: no negative-index checks in the copy loop
            while j < b:
                out_tokens[pos] = pool[j]
                if with_mask:
                    out_mask[pos] = f
                pos += one
                j += one




def assemble_rows(pool, pool_off, occ, flags, row_occ_off, out_off, out_tokens, out_mask, with_mask: bool) -> None:
    """Copy the pieces of each row into ``out_tokens`` (and their flags into ``out_mask``), rows
    split over :mod:`harmony_np.threads`.

    Callers guarantee: piece ids in ``occ`` index ``pool_off``; ``out_off`` is the running sum
    of piece lengths per row, so the writes stay inside ``out_tokens``.
    """
    from .threads import run_parallel, split_by_weight, thread_count

    ranges = split_by_weight(out_off, thread_count(), KERNEL_SPLIT_MIN)
    run_parallel(
        [
            lambda lo=lo, hi=hi: _assemble_rows(pool, pool_off, occ, flags, row_occ_off, out_off, out_tokens, out_mask, with_mask, lo, hi)
            for lo, hi in ranges
        ]
    )


@njit(cache=True, nogil=True)
def _pad_rows(values, offsets, out, attn, left):
    width = out.shape[1]
    for r in range(offsets.shape[0] - 1):
        a = offsets[r]
        n = offsets[r + 1] - a
        if n > width:
            if left:
                a += n - width
            n = width
        start = width - n if left else 0
        for j in range(n):
            out[r, start + j] = values[a + j]
            attn[r, start + j] = 1


def pad_rows(values: np.ndarray, offsets: np.ndarray, out: np.ndarray, attn: np.ndarray, left: bool) -> None:
    """Rows of a ragged array into the 2-D ``out`` (cut to its width), marking ``attn``."""
    _pad_rows(values, offsets, out, attn, left)


@njit(cache=True, nogil=True)
def _stream_positions(tokens, plain, odd, special):
    n_odd = 0
    n_special = 0
    limit = plain.shape[0] - 1
    for i in range(tokens.shape[0]):
        t = tokens[i]
        if t >= N_ORDINARY:
            special[n_special] = i
            n_special += 1
            odd[n_odd] = i
            n_odd += 1
        elif not plain[min(t, limit)]:
            odd[n_odd] = i
            n_odd += 1
    return n_odd, n_special


def stream_positions(tokens: np.ndarray, plain: np.ndarray):
    """For the streaming parser's bulk feed: positions of the tokens that are not ``plain`` (a
    bool per id; ids past its end count as not plain) and positions of the ids >= 199998."""
    n = tokens.shape[0]
    odd = np.empty(n, dtype=np.int64)
    special = np.empty(n, dtype=np.int64)
    n_odd, n_special = _stream_positions(tokens, plain, odd, special)
    return odd[:n_odd], special[:n_special]


# -- batch parsing -------------------------------------------------------------------------


@njit(cache=True, nogil=True)
def _span_hashes(tokens, span_start, span_stop, out_a, out_b):
    # two independent FNV-1a style hashes of each span's ids: spans with equal pairs are
    # treated as equal (a 128-bit collision is not a practical concern)
    for r in range(span_start.shape[0]):
        ha = np.uint64(14695981039346656037)
        hb = np.uint64(1099511628211) * np.uint64(31)
        for j in range(span_start[r], span_stop[r]):
            t = np.uint64(tokens[j])
            ha = (ha ^ t) * np.uint64(1099511628211)
            hb = (hb ^ (t + np.uint64(0x9E3779B97F4A7C15))) * np.uint64(0x100000001B3)
            hb ^= hb >> np.uint64(29)
        out_a[r] = ha ^ np.uint64(span_stop[r] - span_start[r])
        out_b[r] = hb


def span_hashes(tokens: np.ndarray, span_start: np.ndarray, span_stop: np.ndarray):
    """Two 64-bit hashes of each span ``tokens[span_start[r]:span_stop[r]]`` (spans in bounds)."""
    n = span_start.shape[0]
    a = np.empty(n, dtype=np.uint64)
    b = np.empty(n, dtype=np.uint64)
    _span_hashes(tokens, span_start, span_stop, a, b)
    return a, b


@njit(cache=True, nogil=True)
def _span_bytes(offsets, tokens, span_start, span_stop, sizes, lo, hi):
    n_ids = offsets.shape[0] - 1
    for r in range(lo, hi):
        total = 0
        for j in range(span_start[r], span_stop[r]):
            t = tokens[j]
            if t >= n_ids:  # one compare a token keeps the table read in bounds whatever the ids
                total = -1
                break
            total += offsets[t + 1] - offsets[t]
        sizes[r] = total


@njit(cache=True, nogil=True)
def _copy_spans(flat, offsets, tokens, span_start, span_stop, byte_off, out, lo, hi):
    # the ids are read a second time here, and checked again (a compare a token): a token
    # buffer shared with the caller (an Arrow column) that another thread writes between the
    # two passes can spoil its rows' bytes, but never make this read or write out of bounds
    n_ids = np.uint64(offsets.shape[0] - 1)
    one = np.uint64(1)
    spoiled = 0
    for r in range(lo, hi):
        b = np.uint64(byte_off[r])
        end = np.uint64(byte_off[r + 1])
        for j in range(np.uint64(span_start[r]), np.uint64(span_stop[r])):
            t = np.uint64(tokens[j])
            if t >= n_ids:
                spoiled += 1
                break
            q = np.uint64(offsets[t])
            z = np.uint64(offsets[t + one])
            if z - q > end - b:
                spoiled += 1
                break
            while q < z:
                out[b] = flat[q]
                b += one
                q += one
    return spoiled


def gather_spans(flat: np.ndarray, offsets: np.ndarray, tokens: np.ndarray, span_start: np.ndarray, span_stop: np.ndarray):
    """The bytes of many token spans back to back, and their byte offsets (len n + 1); the copy
    is split over :mod:`harmony_np.threads`.

    Callers guarantee the spans are in bounds; an id at or past ``len(offsets) - 1`` in a span
    raises ``ValueError`` (checked as the sizes are summed).
    """
    from .threads import run_parallel, split_by_weight, thread_count

    n = span_start.shape[0]
    threads = thread_count()
    byte_off = np.zeros(n + 1, dtype=np.int64)
    sizes = byte_off[1:]
    span_tokens = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(span_stop - span_start, out=span_tokens[1:])
    ranges = split_by_weight(span_tokens, threads, KERNEL_SPLIT_MIN // 8)
    run_parallel([lambda lo=lo, hi=hi: _span_bytes(offsets, tokens, span_start, span_stop, sizes, lo, hi) for lo, hi in ranges])
    if n and int(sizes.min()) < 0:
        r = int(np.flatnonzero(sizes < 0)[0])
        raise ValueError(f"span {r} ({span_start[r]}:{span_stop[r]}) holds an id outside the byte table")
    np.cumsum(byte_off, out=byte_off)
    data = np.empty(int(byte_off[-1]), dtype=np.uint8)
    ranges = split_by_weight(byte_off, threads, KERNEL_SPLIT_MIN)
    spoiled = run_parallel([lambda lo=lo, hi=hi: _copy_spans(flat, offsets, tokens, span_start, span_stop, byte_off, data, lo, hi) for lo, hi in ranges])
    if any(spoiled):
        raise ValueError("the token ids changed while their bytes were gathered (a buffer another thread writes)")
    return data, byte_off


@njit(cache=True, nogil=True)
def _utf8_invalid_rows(data, byte_off, bad):
    # a UTF-8 validator per row (the rules of Python's strict decoder: no overlongs, no
    # surrogates, nothing past U+10FFFF)
    for r in range(byte_off.shape[0] - 1):
        i = byte_off[r]
        z = byte_off[r + 1]
        while i < z:
            c = data[i]
            if c < 0x80:
                i += 1
                continue
            if 0xC2 <= c <= 0xDF:
                n, lo, hi = 1, 0x80, 0xBF
            elif c == 0xE0:
                n, lo, hi = 2, 0xA0, 0xBF
            elif 0xE1 <= c <= 0xEC or c == 0xEE or c == 0xEF:
                n, lo, hi = 2, 0x80, 0xBF
            elif c == 0xED:
                n, lo, hi = 2, 0x80, 0x9F
            elif c == 0xF0:
                n, lo, hi = 3, 0x90, 0xBF
            elif 0xF1 <= c <= 0xF3:
                n, lo, hi = 3, 0x80, 0xBF
            elif c == 0xF4:
                n, lo, hi = 3, 0x80, 0x8F
            else:
                bad[r] = True
                break
            if i + n >= z:  # the sequence runs past the row's end
                bad[r] = True
                break
            c1 = data[i + 1]
            if c1 < lo or c1 > hi:
                bad[r] = True
                break
            ok = True
            for k in range(2, n + 1):
                ck = data[i + k]
                if ck < 0x80 or ck > 0xBF:
                    ok = False
            if not ok:
                bad[r] = True
                break
            i += n + 1


def utf8_invalid_rows(data: np.ndarray, byte_off: np.ndarray) -> np.ndarray:
    """``bool`` per row: whether the row's bytes ``data[byte_off[r]:byte_off[r + 1]]`` are not
    valid UTF-8 (offsets in bounds and non-decreasing: checked by the caller)."""
    bad = np.zeros(byte_off.shape[0] - 1, dtype=np.bool_)
    _utf8_invalid_rows(data, byte_off, bad)
    return bad
