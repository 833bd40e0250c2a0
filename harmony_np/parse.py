"""Completion tokens to messages: ``parse_messages_from_completion_tokens`` of openai_harmony.

The oracle streams every token through its ``StreamableParser`` and then signals end of stream.
The messages, and the first error, only depend on where the formatting tokens sit, so this
module finds those positions first (a comprehension for short inputs, the Numba scanner of
:mod:`harmony_np.kernels` for long ones) and then decodes each header and content span in one go:

* a header is decoded strictly and parsed by :func:`parse_header_string`; parsed headers are
  cached by their token bytes, since the same few headers recur in every completion;
* content is decoded with replacement of invalid UTF-8, which is what the oracle's token-by-token
  decoding amounts to as long as every id is in the vocabulary. A span with an unknown id takes
  the slow path that replays the oracle's per-token decoding.

Every error is the oracle's: same type, same text (anyhow's outermost message).
"""

from __future__ import annotations

import array
from typing import Any, List, Optional

import numpy as np

from .bpe import ordinary_bpe
from .caches import BoundedCache, approx_size
from .errors import HarmonyError
from .model import Message, Role, text_message
from .rust_text import decode_error, unknown_token_error
from .lazy import kernels
from .gate import parse_arguments
from .header import parse_header_string, remaining_error
from .vocab import CALL, END, MESSAGE, N_ORDINARY, N_VOCAB, RETURN, START
from .records import FLAG_CONTENT_UNKNOWN, FLAG_HEADER_UNKNOWN, NO_STOP, REC_HEADER_ONLY, REC_MESSAGE, ST_EOS_HEADER, ST_OK, ST_UNEXPECTED  # noqa: F401
from .tuning import GATHER_MIN, HEADER_CACHE_BYTES, HEADER_KEY_MAX, RECOVER_CACHE_BYTES, REENCODED_CACHE_BYTES, SCAN_GATHER_MAX, SCAN_KERNEL_MIN  # noqa: F401

__all__ = ["parse_completion", "tables", "Tables"]


STOP_TOKENS = frozenset((RETURN, CALL, END))
REPLACEMENT = "\ufffd"

ERR_EOS_HEADER = "Unexpected EOS while waiting for message header to complete"
ERR_DECODE_HEADER = "could not decode header"

def unexpected_token_error(token: int) -> HarmonyError:
    return HarmonyError(f"Unexpected token {token} while expecting start token {START}")


# -- per-vocabulary tables ----------------------------------------------------------------


class Tables:
    """Lookups built once per vocabulary (lazily: the parser of a short completion needs none)."""

    def __init__(self, vocab) -> None:
        self.vocab = vocab
        self.flat = vocab.flat
        self.offsets = vocab.offsets
        self._decode_bytes = None
        self._encode_ordinary = None
        # (role, header token bytes) -> (role, name, channel, recipient, content_type) or error str
        self.headers = BoundedCache(HEADER_CACHE_BYTES)
        # (role, header token bytes) -> recovery's reading (see harmony_np.recover.lenient_header)
        self.recover_headers = BoundedCache(RECOVER_CACHE_BYTES)
        self._strs = None
        self._plain = None
        self._reencoded = BoundedCache(REENCODED_CACHE_BYTES)

    @property
    def decode_bytes(self):
        """tiktoken's ``decode_bytes`` (a list of known ids -> bytes, in Rust), made on first use:
        building tiktoken's BPE takes 0.2-0.35 s, and a batch parse, which reads its headers from
        the byte table and its contents with the gather kernels, never needs it (a Ray actor or
        the CLI starts that much sooner)."""
        fn = self._decode_bytes
        if fn is None:
            fn = self._decode_bytes = self.vocab.core_bpe.decode_bytes
        return fn

    @property
    def encode_ordinary(self):
        """The vocabulary's ordinary encode (:func:`harmony_np.bpe.ordinary_bpe`), on first use
        (for the same reason)."""
        fn = self._encode_ordinary
        if fn is None:
            fn = self._encode_ordinary = ordinary_bpe(self.vocab).encode
        return fn

    def header(self, key_bytes: bytes, buf, role: Optional[Role]):
        """The parsed header of the ids packed in ``key_bytes`` (as ``array('I')`` bytes)."""
        hit = self.headers.get((role, key_bytes))
        if hit is None:
            hit = self.parse_header(buf, role)
            self.remember_header(role, key_bytes, hit)
        if hit.__class__ is str:
            raise HarmonyError(hit)
        return hit

    def remember_header(self, role: Optional[Role], key_bytes: bytes, hit) -> None:
        """Cache a parsed header (or its error text), unless it is too long to recur."""
        if len(key_bytes) <= HEADER_KEY_MAX:
            self.headers.put((role, key_bytes), hit, approx_size(key_bytes, hit))

    def parse_header(self, ids, role):
        """The header of ``ids`` (``array('I')`` or ``uint32``) read strictly: ``(role, name,
        channel, recipient, content_type)``, or the text of the oracle's error for it."""
        ids = ids.tolist()  # array('I') or a uint32 array: Python ints, for max() and the table
        if ids and max(ids) >= N_VOCAB:
            return ERR_DECODE_HEADER
        try:  # every id below N_VOCAB has its bytes in the table
            text = b"".join([self.token_bytes(i) for i in ids]).decode("utf-8")
        except UnicodeDecodeError:
            return ERR_DECODE_HEADER
        try:
            role, name, channel, recipient, content_type, remaining = parse_header_string(text, role, True)
        except HarmonyError as exc:
            return str(exc)
        if remaining is not None:
            return str(remaining_error(remaining))
        return (role, name, channel, recipient, content_type)

    def token_bytes(self, token: int) -> bytes:
        o = self.offsets
        return self.flat[o[token] : o[token + 1]].tobytes()

    @property
    def strs(self) -> list:
        """Token id -> its text when the token alone is valid UTF-8, else None."""
        if self._strs is None:
            flat = self.flat.tobytes()
            o = self.offsets.tolist()
            out: list = [None] * N_VOCAB
            for i in range(N_VOCAB):
                try:
                    out[i] = flat[o[i] : o[i + 1]].decode("utf-8")
                except UnicodeDecodeError:
                    pass
            self._strs = out
        return self._strs

    @property
    def plain(self) -> np.ndarray:
        """bool per id (one extra entry for every unknown id): True for an ordinary token that
        is valid UTF-8 alone, i.e. one the streaming parser can take without looking closer."""
        if self._plain is None:
            strs = self.strs
            p = np.zeros(N_VOCAB + 1, dtype=np.bool_)
            p[:N_ORDINARY] = [s is not None for s in strs[:N_ORDINARY]]
            self._plain = p
        return self._plain

    def reencoded(self, token: int) -> list:
        """``encode_ordinary`` of a plain token's text (not always the token itself)."""
        r = self._reencoded.get(token)
        if r is None:
            r = self.encode_ordinary(self.strs[token])
            self._reencoded.put(token, r, approx_size(token, r))
        return r


_TABLES: dict = {}  # id(vocabulary) -> its Tables, which keep the vocabulary alive
_LAST: tuple = (None, None)  # the last (vocabulary, tables), replaced whole: one identity test per call


_LAST_ENCODING: tuple = (None, None)  # the last (encoding, tables), held: its identity stays its own


def tables(enc) -> Tables:
    """The lookup tables of ``enc.vocab`` (one per vocabulary)."""
    global _LAST_ENCODING
    last = _LAST_ENCODING
    if last[0] is enc:
        return last[1]
    t = vocabulary_tables(enc.vocab)
    _LAST_ENCODING = (enc, t)
    return t


def vocabulary_tables(vocab) -> Tables:
    """The lookup tables of a :class:`~harmony_np.vocab.Vocabulary` (built on first use)."""
    global _LAST
    last = _LAST
    if last[0] is vocab:
        return last[1]
    t = _TABLES.get(id(vocab))
    if t is None or t.vocab is not vocab:
        t = _TABLES[id(vocab)] = Tables(vocab)
    _LAST = (vocab, t)
    return t


# -- content decoding ----------------------------------------------------------------------


def decode_utf8(t: Tables, ids: list) -> str:
    """tiktoken's ``decode_utf8`` in the oracle, with its error texts."""
    for x in ids:
        if x >= N_VOCAB:
            raise unknown_token_error(x)
    data = t.decode_bytes(ids)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise decode_error(data, exc) from None


def utf8_step(buf: bytes, parts: list):
    """One token's worth of the oracle's incremental decoding of ``buf`` (pending + new bytes).

    Appends what was decoded to ``parts`` (the valid prefix, then one replacement character if an
    invalid sequence follows it; each is a separate piece, as the oracle re-encodes them
    separately) and returns ``(pending bytes, delta or None)``.
    """
    try:
        s = buf.decode("utf-8")
    except UnicodeDecodeError as exc:
        valid = exc.start
        delta = None
        if valid:
            delta = buf[:valid].decode("utf-8")
            parts.append(delta)
        if exc.reason == "unexpected end of data":
            return buf[valid:], delta
        parts.append(REPLACEMENT)
        return buf[exc.end :], (delta + REPLACEMENT if delta else REPLACEMENT)
    parts.append(s)
    return b"", s


def stream_text(t: Tables, ids) -> str:
    """The text the oracle's token-by-token decoding gives ``ids`` (which may hold unknown ids)."""
    parts: list = []
    pending = b""
    for tok in ids:
        if tok >= N_VOCAB:
            # from here on nothing decodes: the oracle appends one replacement character and then
            # the bytes still pending from before
            return "".join(parts) + REPLACEMENT + pending.decode("utf-8", "replace")
        pending, _ = utf8_step(pending + t.token_bytes(tok), parts)
    return "".join(parts) + pending.decode("utf-8", "replace")


def gather_span_bytes(t: Tables, arr: np.ndarray, cs: int, ce: int) -> bytes:
    return kernels().gather_bytes(t.flat, t.offsets, arr[cs:ce]).tobytes()


# -- scanning -------------------------------------------------------------------------------

# records: harmony_np.records' layout (kind, hs, he, cs, ce, flags, terminator)


def scan_py(buf, specials: list, role_given: bool, strict: bool):
    """Message boundaries from the positions of the ids >= N_ORDINARY (special or unknown).

    Returns ``(records, status, pos)``: the same as :func:`harmony_np.kernels.scan_completion`,
    whose logic this repeats on purpose: below ``SCAN_KERNEL_MIN`` tokens this loop over the
    special positions costs less than a kernel call (tuning.py). ``tests/test_parse.py`` checks
    both against one naive reference (``tests/naive.py``).
    """
    n = len(buf)
    recs = []
    nsp = len(specials)
    k = 0
    if role_given:
        hs = 0
        expect = False
    else:
        expect = True
        hs = 0
    first = role_given
    while True:
        if expect:
            if hs == n:
                return recs, ST_OK, 0
            if buf[hs] != START:
                return recs, ST_UNEXPECTED, hs
            hs += 1
        # header: the first <|message|> (or, not strict, a stop token) at or after hs
        while k < nsp and specials[k] < hs:
            k += 1
        flags = 0
        while k < nsp:
            p = specials[k]
            tok = buf[p]
            if tok == MESSAGE:
                break
            if not strict and tok in STOP_TOKENS:
                break
            if tok >= N_VOCAB:
                flags = FLAG_HEADER_UNKNOWN
            k += 1
        else:
            return recs, ST_EOS_HEADER, n
        he = p
        k += 1
        if tok != MESSAGE:
            if first and he > hs:
                recs.append((REC_HEADER_ONLY, hs, he, 0, 0, flags, tok))
            first = False
            hs = he + 1
            expect = True
            continue
        first = False
        cs = he + 1
        while k < nsp:
            p = specials[k]
            tok = buf[p]
            if tok in STOP_TOKENS:
                break
            if tok >= N_VOCAB:
                flags |= FLAG_CONTENT_UNKNOWN
            k += 1
        else:
            recs.append((REC_MESSAGE, hs, he, cs, n, flags, NO_STOP))
            return recs, ST_OK, 0
        recs.append((REC_MESSAGE, hs, he, cs, p, flags, tok))
        k += 1
        hs = p + 1
        expect = True


def build_messages(t: Tables, buf, src, arr, recs, status: int, pos: int, role: Optional[Role], gathered=None) -> List[Message]:
    """Messages of scanned records (``src``: the ids as a list, or None; ``arr``: a uint32 view;
    ``gathered``: ``(data, byte_off)`` of :func:`kernels.scan_gather`, or None)."""
    out = []
    if gathered is not None:
        view = memoryview(gathered[0])
        bo = gathered[1]
    for k, (kind, hs, he, cs, ce, flags, _) in enumerate(recs):
        r = role if hs == 0 else None
        if kind == REC_MESSAGE:
            key = buf[hs:he].tobytes()
            hit = t.headers.get((r, key))
            if hit is None:
                hit = t.header(key, buf[hs:he], r)
            elif hit.__class__ is str:
                raise HarmonyError(hit)
            if flags & FLAG_CONTENT_UNKNOWN:
                text = stream_text(t, buf[cs:ce])
            elif gathered is not None:
                text = str(view[bo[k] : bo[k + 1]], "utf-8", "replace")
            elif ce - cs < GATHER_MIN:
                text = t.decode_bytes(src[cs:ce] if src is not None else buf[cs:ce].tolist()).decode("utf-8", "replace")
            else:
                if arr is None:
                    arr = np.frombuffer(buf, dtype=np.uint32)
                text = gather_span_bytes(t, arr, cs, ce).decode("utf-8", "replace")
        else:
            *hit, remaining = parse_header_string(decode_utf8(t, buf[hs:he].tolist()), r, False)
            text = remaining or ""
        out.append(text_message(*hit, text))
    if status == ST_UNEXPECTED:
        raise unexpected_token_error(buf[pos])
    if status == ST_EOS_HEADER:
        raise HarmonyError(ERR_EOS_HEADER)
    return out


_START_BYTES = array.array("I", [START]).tobytes()
_MESSAGE_BYTES = array.array("I", [MESSAGE]).tobytes()
_END_BYTES = array.array("I", [END]).tobytes()
_CALL_BYTES = array.array("I", [CALL]).tobytes()
_RETURN_BYTES = array.array("I", [RETURN]).tobytes()


def _parse_short(t: Tables, src: list, data: bytes, role: Optional[Role]) -> Optional[List[Message]]:
    """Strict parse of a short, well-formed completion with ``bytes.find`` on its uint32 bytes;
    None when anything is unusual (the general path then gives the answer or the error).

    A match of a 4-byte pattern at an offset that is not a multiple of 4 needs a token of at
    least 2**24 next to it, so every aligned match is a real token and a misaligned one sends the
    input to the general path. An unknown id in a content span makes ``decode_bytes`` raise.
    """
    n4 = len(data)
    if not n4:
        return None  # with a role given, that is an error
    out: list = []
    find = data.find
    headers = t.headers
    decode = t.decode_bytes
    hs = 0
    r = role
    while hs < n4:
        if r is None:
            if data[hs : hs + 4] != _START_BYTES:
                return None
            hs += 4
        he = find(_MESSAGE_BYTES, hs)
        if he < 0 or he & 3:
            return None
        key = data[hs:he]
        hit = headers.get((r, key))
        if hit is None or hit.__class__ is str:
            return None
        cs = he + 4
        ce = find(_END_BYTES, cs)
        stop = n4 if ce < 0 else ce
        c = find(_CALL_BYTES, cs, stop)
        if c >= 0:
            stop = ce = c
        c = find(_RETURN_BYTES, cs, stop)
        if c >= 0:
            ce = c
        elif ce < 0:
            ce = n4
        if ce & 3:
            return None
        try:
            text = decode(src[cs >> 2 : ce >> 2]).decode("utf-8", "replace")
        except KeyError:
            return None
        out.append(text_message(*hit, text))
        hs = ce + 4
        r = None
    return out


def parse_completion(enc, tokens: Any, role: Any = None, strict: Any = True) -> List[Message]:
    """Messages of ``tokens`` exactly as openai_harmony parses them (or its error)."""
    buf, src, r, strict = parse_arguments(tokens, role, strict)  # the input gate
    t = tables(enc)
    n = len(buf)
    if n < SCAN_KERNEL_MIN:
        if src is None:
            src = buf.tolist()
        if strict is True:
            out = _parse_short(t, src, buf.tobytes(), r)
            if out is not None:
                return out
        specials = [i for i, x in enumerate(src) if x >= N_ORDINARY]
        recs, status, pos = scan_py(src, specials, r is not None, strict)
        return build_messages(t, buf, src, None, recs, status, pos, r)
    arr = np.frombuffer(buf, dtype=np.uint32)
    if n <= SCAN_GATHER_MAX:
        # one kernel call finds the boundaries and gathers the contents' bytes
        recs, status, pos, data, byte_off = kernels().scan_gather(arr, r is not None, strict, t.flat, t.offsets)
        return build_messages(t, buf, src, arr, recs, status, pos, r, (data, byte_off))
    recs, status, pos = kernels().scan_completion(arr, r is not None, strict)
    return build_messages(t, buf, src, arr, recs, status, pos, r)
