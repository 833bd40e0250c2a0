"""Naive pure-Python references for the Numba kernels of :mod:`harmony_np.kernels`.

Each reference states its result from the definition (plain loops over lists and bytes), not by
following the kernel's code, so that a test comparing the two checks the kernel. They take the
high-level form of the input (lists of ids, lists of rows) where the kernel takes packed arrays:
the tests pack those arrays the way harmony_np's callers do. Every docstring gives the contract
the inputs must respect, the one the kernels' callers guarantee (the kernels do not bounds-check).
"""

from __future__ import annotations

from typing import List, Sequence, Tuple

# ids of the gpt-oss vocabulary, written out here rather than imported from harmony_np
START, CHANNEL, MESSAGE, END, RETURN, CALL, CONSTRAIN = 200006, 200005, 200008, 200007, 200002, 200012, 200003
N_ORDINARY = 199_998  # ids below are BPE tokens, ids from here to N_VOCAB - 1 are special
N_VOCAB = 201_089
STOPS = (END, CALL, RETURN)

Record = Tuple[int, int, int, int, int, int, int]
_U64 = (1 << 64) - 1


def naive_gather_bytes(token_bytes: Sequence[bytes], tokens: Sequence[int]) -> bytes:
    """The bytes of ``tokens`` one after the other (``kernels.gather_bytes``).

    Contract: every id is below ``len(token_bytes)`` (the callers check ids below ``N_VOCAB``);
    ``token_bytes[i]`` is the bytes of id ``i``.
    """
    out = bytearray()
    for t in tokens:
        out += token_bytes[t]
    return bytes(out)


def naive_scan(tokens, role_given, strict):
    """Token by token, as the oracle's state machine walks: records and the first structural error.

    The reference of ``kernels.scan_completion``: returns ``(records, status, pos)``, records as
    ``(kind, hs, he, cs, ce, flags, terminator)`` tuples (kind 0 a message, kind 1 a first header
    cut short by a stop token when not strict and the role is given; flags 1 an id >= N_VOCAB in
    the header, 2 one in the content; terminator the stop token, -1 at the end of input), status
    0 ok, 1 an unexpected token at ``pos`` where ``<|start|>`` was wanted, 2 input ends in a
    header (``pos`` is then its length). Contract: any ids below 2**32 (unknown ids are only
    compared, never looked up).
    """
    recs = []
    state = "header" if role_given else "expect"
    first = role_given
    hs = he = cs = 0
    flags = 0
    for i, t in enumerate(tokens):
        if state == "expect":
            if t != START:
                return recs, 1, i
            state, hs, flags = "header", i + 1, 0
        elif state == "header":
            if t == MESSAGE:
                he, cs, state, first = i, i + 1, "content", False
            elif not strict and t in (END, CALL, RETURN):
                if first and i > hs:
                    recs.append((1, hs, i, 0, 0, flags, t))
                first, state = False, "expect"
            elif t >= N_VOCAB:
                flags |= 1
        else:
            if t in (END, CALL, RETURN):
                recs.append((0, hs, he, cs, i, flags, t))
                state = "expect"
            elif t >= N_VOCAB:
                flags |= 2
    if state == "header":
        return recs, 2, len(tokens)
    if state == "content":
        recs.append((0, hs, he, cs, len(tokens), flags, -1))
    return recs, 0, 0


def naive_scan_gather(tokens: Sequence[int], role_given: bool, strict: bool, token_bytes: Sequence[bytes]):
    """``kernels.scan_gather``: :func:`naive_scan`'s ``(records, status, pos)`` and, per record,
    its content's bytes: those of a message whose content holds only known ids (below
    ``N_VOCAB``), else ``b""`` (a header-only record, or a content with an unknown id).

    Contract: ids below 2**32; ``token_bytes`` has every id below ``N_VOCAB``.
    """
    recs, status, pos = naive_scan(tokens, role_given, strict)
    contents = []
    for kind, _hs, _he, cs, ce, _flags, _stop in recs:
        content = list(tokens[cs:ce])
        if kind == 0 and all(t < N_VOCAB for t in content):
            contents.append(naive_gather_bytes(token_bytes, content))
        else:
            contents.append(b"")
    return recs, status, pos, contents


def naive_scan_batch(completions: Sequence[Sequence[int]], role_given: bool, strict: bool):
    """``kernels.scan_batch`` over the completions given one by one: ``(records, rec_starts,
    status, pos)``, the records of all completions in order (positions relative to their own
    completion), ``rec_starts[b]:rec_starts[b + 1]`` those of completion ``b``.

    Contract: as :func:`naive_scan`, for each completion.
    """
    records: List[Record] = []
    rec_starts = [0]
    status = []
    pos = []
    for tokens in completions:
        recs, st, p = naive_scan(list(tokens), role_given, strict)
        records += recs
        rec_starts.append(len(records))
        status.append(st)
        pos.append(p)
    return records, rec_starts, status, pos


def naive_assemble_rows(pieces: Sequence[Sequence[int]], rows: Sequence[Sequence[Tuple[int, int]]]):
    """``kernels.assemble_rows``: the rows one after the other, each the concatenation of its
    pieces, and a mask giving each token the flag of the piece occurrence it came from.

    ``rows[r]`` lists ``(piece id, flag)`` occurrences; returns ``(tokens, mask)`` as lists.
    Contract: piece ids index ``pieces`` (a piece may occur many times, or be empty).
    """
    tokens: List[int] = []
    mask: List[int] = []
    for row in rows:
        for piece_id, flag in row:
            piece = list(pieces[piece_id])
            tokens += piece
            mask += [flag] * len(piece)
    return tokens, mask


def naive_pad_rows(rows: Sequence[Sequence[int]], width: int, left: bool, pad: int):
    """``kernels.pad_rows``: each row in ``width`` columns, ``(out, attn)`` as lists of lists.

    A row longer than ``width`` keeps its first ``width`` values (``left`` false) or its last
    (``left`` true); a shorter one is filled with ``pad`` after (``left`` false) or before
    (``left`` true) its values. ``attn`` is 1 where a value of the row is, 0 on padding.
    Contract: ``width >= 0``.
    """
    out = []
    attn = []
    for row in rows:
        row = list(row)
        kept = (row[len(row) - width :] if left else row[:width]) if len(row) > width else row
        fill = width - len(kept)
        if left:
            out.append([pad] * fill + kept)
            attn.append([0] * fill + [1] * len(kept))
        else:
            out.append(kept + [pad] * fill)
            attn.append([1] * len(kept) + [0] * fill)
    return out, attn


def naive_stream_positions(tokens: Sequence[int], plain: Sequence[bool]):
    """``kernels.stream_positions``: ``(odd, special)``, the positions (ascending) of the tokens
    that are not plain (``plain[id]`` false, or the id past the end of ``plain``, or an id >=
    N_ORDINARY) and of the ids >= N_ORDINARY.

    Contract: ids below 2**32; ``plain`` as harmony_np builds it (N_VOCAB + 1 entries, False
    from N_ORDINARY on).
    """
    odd = []
    special = []
    for i, t in enumerate(tokens):
        if t >= N_ORDINARY:
            special.append(i)
        if t >= N_ORDINARY or t >= len(plain) or not plain[t]:
            odd.append(i)
    return odd, special


# FNV-1a's 64-bit parameters
FNV64_OFFSET_BASIS = 0xCBF29CE484222325
FNV64_PRIME = 0x100000001B3
_GOLDEN_64 = 0x9E3779B97F4A7C15  # 2**64 / golden ratio, the usual odd constant for mixing


def fnv1a_64(words: Sequence[int], basis: int = FNV64_OFFSET_BASIS) -> int:
    """FNV-1a over ``words`` (each XORed in whole, then multiplied by the prime, mod 2**64); on
    bytes this is the standard 64-bit FNV-1a."""
    h = basis
    for w in words:
        h = ((h ^ w) * FNV64_PRIME) % (1 << 64)
    return h


def naive_span_hash(ids: Sequence[int]) -> Tuple[int, int]:
    """``kernels.span_hashes`` of one span: ``(a, b)``.

    ``a`` is FNV-1a over the ids XOR the span's length; ``b`` starts from ``31 * prime`` and
    takes each id plus the golden-ratio constant by one FNV-1a step followed by an xorshift
    ``h ^= h >> 29`` (all mod 2**64). Contract: ids below 2**32.
    """
    a = fnv1a_64(ids) ^ len(ids)
    b = (31 * FNV64_PRIME) & _U64
    for t in ids:
        b = fnv1a_64([(t + _GOLDEN_64) & _U64], basis=b)
        b ^= b >> 29
    return a, b


def naive_gather_spans(token_bytes: Sequence[bytes], spans: Sequence[Sequence[int]]):
    """``kernels.gather_spans``: ``(data, byte_off)``, the bytes of every span back to back
    and where each begins (``byte_off`` has one more entry, the total, and starts at 0).

    Contract: spans hold only ids below ``len(token_bytes)``.
    """
    parts = [naive_gather_bytes(token_bytes, span) for span in spans]
    byte_off = [0]
    for p in parts:
        byte_off.append(byte_off[-1] + len(p))
    return b"".join(parts), byte_off


def naive_utf8_invalid_rows(rows: Sequence[bytes]) -> List[bool]:
    """``utf8_invalid_rows``: whether each row's bytes fail Python's strict UTF-8 decoder."""
    out = []
    for row in rows:
        try:
            row.decode("utf-8")
            out.append(False)
        except UnicodeDecodeError:
            out.append(True)
    return out
