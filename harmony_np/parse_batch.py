"""Batch parsing: many completions to one ``MessageTable``, the messages as columns.

The completions are flattened into one token array (through the input gate), scanned for
message boundaries by one kernel call, and their headers parsed once per distinct header (by
value, hashed in a kernel). Content text is decoded lazily, all of it in one pass. A completion
the single call refuses is reported by index (``errors="collect"``) or read by the recovery rules
(``errors="recover"``).
"""

from __future__ import annotations

import operator
from typing import Any, List, Optional, Tuple

import numpy as np

from .arrow_layout import dictionary_column, is_arrow, primitive_array, text_array, tokens_column
from .errors import HarmonyError, with_index
from .gate import completion_buffers, role_arg, strict_flag
from .lazy import kernels
from .model import Author, Message, Role, TextContent
from .header import parse_header_string
from .parse import decode_utf8, parse_completion, stream_text, tables
from .records import FLAG_CONTENT_UNKNOWN, NO_STOP, REC_CE, REC_CS, REC_FLAGS, REC_HE, REC_HEADER_ONLY, REC_HS, REC_KIND, REC_STOP, ST_OK
from .recover import recover_completion
from .threads import gc_paused

__all__ = ["parse_batch", "MessageTable", "ROLES"]

ROLES: Tuple[Role, ...] = (Role.USER, Role.ASSISTANT, Role.SYSTEM, Role.DEVELOPER, Role.TOOL)
_ROLE_CODE = {r: i for i, r in enumerate(ROLES)}
_ERRORS = ("raise", "collect", "recover")


class MessageTable:
    """Parsed messages of many completions, one row per message, as columns.

    Columns (NumPy arrays, one entry per message): ``completion`` (index of the completion),
    ``role`` (code into :data:`ROLES`), ``name``, ``channel``, ``recipient``, ``content_type``
    (codes into ``strings``; -1 is None), ``content_start``/``content_stop`` (the content's token
    span in ``tokens``). ``tokens``/``offsets`` are the input completions (completion ``b`` is
    ``tokens[offsets[b]:offsets[b + 1]]``), in read-only memory of the table's own: a caller's
    array changed afterwards changes nothing here (except for a pyarrow column of ``uint32``
    ids, which is not copied: ``tokens`` is a read-only view of its buffer, and the ids are
    checked again whenever contents are decoded, so a buffer its owner changes later gives the
    new text or a ``ValueError``, never a read out of bounds). ``errors[b]`` is None, or the error text the single
    call raises for completion ``b`` (its messages are then not in the table); ``error_rows``
    (``int64``, ascending) are the completions with an error. Content text is
    decoded on first use, all of it in one pass. ``span_start``/``span_stop``: each message's
    whole token range, ``<|start|>`` through its terminator.

    With ``errors="recover"``, a completion the strict parser refuses is read by the recovery
    rules (:mod:`harmony_np.recover`): its messages are in the table (``errors[b]`` still names
    what the strict parser refused), ``content_start``/``content_stop`` are -1 for them, and
    ``unparsed`` and ``diagnostics`` hold, as columns (a dict of arrays and lists, one entry per
    range), the ranges that belong to no message and every repair, with positions in ``tokens``.
    In the other modes both are None.
    """

    __slots__ = (
        "tokens", "offsets", "completion", "role", "name", "channel", "recipient", "content_type",
        "content_start", "content_stop", "span_start", "span_stop", "strings", "errors", "error_types",
        "unparsed", "diagnostics", "_overrides", "_encoding", "_texts", "_override_rows", "error_rows",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise TypeError("a MessageTable is made by HarmonyEncoding.parse_batch")

    def __len__(self) -> int:
        return self.completion.shape[0]

    def __repr__(self) -> str:
        bad = sum(e is not None for e in self.errors)
        return f"MessageTable({len(self)} messages from {len(self.errors)} completions, {bad} with errors)"

    @property
    def n_completions(self) -> int:
        return len(self.errors)

    def content_texts(self) -> List[str]:
        """The content text of every message (decoded once, then cached)."""
        if self._texts is None:
            with gc_paused():
                self._texts = _decode_contents(self)
        return self._texts

    def content_text(self, i: int) -> str:
        """The content text of message ``i``."""
        return self.content_texts()[i]

    def string(self, code: int) -> Optional[str]:
        """The string of a code in the name/channel/recipient/content_type columns."""
        return None if code < 0 else self.strings[code]

    def to_messages(self) -> List[List[Message]]:
        """A list of :class:`Message` per completion, each equal to the single-call parse
        (empty for a completion with an error)."""
        with gc_paused():
            return self._to_messages()

    def _to_messages(self) -> List[List[Message]]:
        out: List[List[Message]] = [[] for _ in range(len(self.errors))]
        self._build(0, len(self), self.content_texts(), out, 0)
        return out

    def _build(self, lo: int, hi: int, texts: List[str], out: List[List[Message]], b0: int) -> None:
        """Append the messages of rows ``lo:hi`` (``texts``: their content texts) to
        ``out[completion - b0]``."""
        names, channels = self.name[lo:hi].tolist(), self.channel[lo:hi].tolist()
        recipients, ctypes = self.recipient[lo:hi].tolist(), self.content_type[lo:hi].tolist()
        strings = self.strings
        if 4 * (hi - lo) < len(strings):
            # a few rows of a table with many strings: look up only the codes they use
            sv: Any = {c: (strings[c] if c >= 0 else None) for c in {*names, *channels, *recipients, *ctypes}}
        else:
            sv = strings + [None]  # code -1 indexes the trailing None
        new = object.__new__
        cols = zip(self.completion[lo:hi].tolist(), self.role[lo:hi].tolist(), names, channels, recipients, ctypes, texts)
        for b, rc, nc, cc, rcp, ctc, text in cols:
            # model.text_message, inlined: a call per message is a tenth of this loop
            author = new(Author)
            author.role = ROLES[rc]
            author.name = sv[nc]
            content = new(TextContent)
            content.text = text
            m = new(Message)
            m.author = author
            m.content = [content]
            m.channel = sv[cc]
            m.recipient = sv[rcp]
            m.content_type = sv[ctc]
            out[b - b0].append(m)

    def rows_of(self, b: int) -> Tuple[int, int]:
        """``(lo, hi)``: the rows of completion ``b`` are ``lo:hi`` (rows are in completion
        order). ``b`` indexes as a list does (negative counts from the end)."""
        n = len(self.errors)
        b = operator.index(b)
        if not -n <= b < n:
            raise IndexError("list index out of range")
        b %= n
        comp = self.completion
        return int(np.searchsorted(comp, b, "left")), int(np.searchsorted(comp, b, "right"))

    def messages_of(self, b: int) -> List[Message]:
        """The messages of completion ``b`` (``to_messages()[b]``), at the cost of that
        completion alone: only its rows are read and, unless every text is decoded already,
        only its contents decoded."""
        lo, hi = self.rows_of(b)
        if lo == hi:
            return []
        texts = self._texts[lo:hi] if self._texts is not None else _decode_contents(self, lo, hi)
        out: List[List[Message]] = [[]]
        self._build(lo, hi, texts, out, int(self.completion[lo]))
        return out[0]

    def to_arrow(self) -> Any:
        """The messages as a ``pyarrow.Table``, one row per message: ``completion`` (int64),
        ``role``, ``name``, ``channel``, ``recipient``, ``content_type`` (dictionary-encoded
        strings, null for None) and ``content`` (``large_string``). Row for row equal to
        :meth:`to_messages` and :meth:`content_texts`; the contents are the gathered bytes
        themselves (no Python string per message; only contents that are not valid UTF-8 are
        decoded, with replacement characters as :meth:`content_texts` has them)."""
        import pyarrow as pa

        data, byte_off, rows = _gathered_contents(self)
        cache: list = []
        content = text_array(data, byte_off, {i: _override_text(self, i, cache) for i in rows.tolist()})
        return pa.table({
            "completion": primitive_array(self.completion),
            "role": dictionary_column(self.role, [r.value for r in ROLES]),
            "name": dictionary_column(self.name, self.strings),
            "channel": dictionary_column(self.channel, self.strings),
            "recipient": dictionary_column(self.recipient, self.strings),
            "content_type": dictionary_column(self.content_type, self.strings),
            "content": content,
        })

    def to_chat(self, *, call_id_prefix: str = "call_") -> List[Optional[dict]]:
        """The assistant's chat message of every completion: ``to_chat(self.messages_of(b))``
        of :func:`harmony_np.chat.to_chat` for completion ``b``, or None for a completion with an
        error and no messages (an empty answer would hide the error). An error of one
        completion's conversion is raised with its index (``completion 3: messages[1]: ...``)."""
        from .chat import to_chat  # here, not at import: importing harmony_np does not load chat

        out: List[Optional[dict]] = []
        for b, messages in enumerate(self.to_messages()):
            if not messages and self.errors[b] is not None:
                out.append(None)
                continue
            try:
                out.append(to_chat(messages, call_id_prefix=call_id_prefix))
            except (TypeError, ValueError) as exc:
                raise with_index(exc, f"completion {b}") from exc
        return out


def parse_batch(encoding, completions: Any, *, offsets: Any = None, role: Any = None, strict: Any = True, errors: str = "raise") -> MessageTable:
    """Parse many completions at once; see :meth:`HarmonyEncoding.parse_batch`."""
    if errors not in _ERRORS:
        raise ValueError(f"errors must be one of {_ERRORS}, got {errors!r}")
    if errors == "recover" and strict is False:
        raise ValueError("errors='recover' reads completions by the strict rules first; it cannot be combined with strict=False")
    with gc_paused():
        return _parse_batch(encoding, completions, offsets, role, strict, errors)


def _parse_batch(encoding, completions, offsets, role, strict, errors) -> MessageTable:
    scan_batch, span_hashes = kernels().scan_batch, kernels().span_hashes
    r = role_arg(role)
    strict = strict_flag(strict)
    if offsets is None and is_arrow(completions):
        # read from the Arrow buffers; uint32 values are not copied (see MessageTable.tokens)
        flat, starts, bad_input = tokens_column(completions, errors)
    else:
        flat, starts, bad_input = completion_buffers(completions, offsets, errors)
    n_comp = starts.shape[0] - 1
    recs, rec_starts, status, _pos = scan_batch(flat, starts, r is not None, strict)
    n_rec = recs.shape[0]
    comp = np.repeat(np.arange(n_comp, dtype=np.int64), np.diff(rec_starts))
    base = starts[:-1][comp]
    kind = recs[:, REC_KIND]
    hs = recs[:, REC_HS] + base
    he = recs[:, REC_HE] + base
    cs = recs[:, REC_CS] + base
    ce = recs[:, REC_CE] + base
    first = recs[:, REC_HS] == 0  # only a role-given first header starts at 0

    t = tables(encoding)
    strings: List[str] = []
    string_code: dict = {}

    def code(s: Optional[str]) -> int:
        if s is None:
            return -1
        c = string_code.get(s)
        if c is None:
            c = string_code[s] = len(strings)
            strings.append(s)
        return c

    # distinct headers are parsed once: group the records by a pair of hashes of their ids
    ha, hb = span_hashes(flat, hs, he)
    hb = hb + first.astype(np.uint64)
    order = np.lexsort((hb, ha))
    if n_rec:
        sa, sb = ha[order], hb[order]
        new_group = np.empty(n_rec, dtype=bool)
        new_group[0] = True
        new_group[1:] = (sa[1:] != sa[:-1]) | (sb[1:] != sb[:-1])
        group_sorted = np.cumsum(new_group) - 1
        group = np.empty(n_rec, dtype=np.int64)
        group[order] = group_sorted
        reps = order[new_group]
    else:
        group = np.zeros(0, dtype=np.int64)
        reps = np.zeros(0, dtype=np.int64)
    n_groups = reps.shape[0]
    g_role = np.zeros(n_groups, dtype=np.int8)
    g_codes = np.full((n_groups, 4), -1, dtype=np.int32)
    g_error = np.zeros(n_groups, dtype=bool)
    g_error_text: dict = {}  # group -> its header's error text
    flat_bytes = flat.view(np.uint8)
    headers = t.headers
    for g, rec in enumerate(reps.tolist()):
        if kind[rec] == REC_HEADER_ONLY:
            continue  # read below, per record
        a, z = int(hs[rec]), int(he[rec])
        rr = r if first[rec] else None
        key = flat_bytes[4 * a : 4 * z].tobytes()
        hit = headers.get((rr, key))
        if hit is None:
            hit = t.parse_header(flat[a:z], rr)
            t.remember_header(rr, key, hit)
        if hit.__class__ is str:
            g_error[g] = True
            g_error_text[g] = hit
            continue
        mrole, name, channel, recipient, ctype = hit
        g_role[g] = _ROLE_CODE[mrole]
        g_codes[g] = (code(name), code(channel), code(recipient), code(ctype))

    # completions whose single call raises: a failed header, a structural error, bad input
    bad = np.zeros(n_comp, dtype=bool)
    bad[status != ST_OK] = True
    if n_rec:
        bad[comp[g_error[group] & (kind != REC_HEADER_ONLY)]] = True
    for i in bad_input:
        bad[i] = True
    overrides: dict = {}
    header_only = np.flatnonzero(kind == REC_HEADER_ONLY)
    role_col = g_role[group] if n_rec else np.zeros(0, np.int8)
    codes = g_codes[group] if n_rec else np.zeros((0, 4), np.int32)
    if header_only.size:
        role_col = role_col.copy()
        codes = codes.copy()
        for k in header_only.tolist():
            if bad[comp[k]]:
                continue
            try:
                text = decode_utf8(t, flat[hs[k] : he[k]].tolist())
                mrole, name, channel, recipient, ctype, remaining = parse_header_string(text, r if first[k] else None, False)
            except HarmonyError:
                bad[comp[k]] = True
                continue
            role_col[k] = _ROLE_CODE[mrole]
            codes[k] = (code(name), code(channel), code(recipient), code(ctype))
            overrides[k] = remaining or ""
    error_text: List[Optional[str]] = [None] * n_comp
    error_type: List[Optional[str]] = [None] * n_comp
    recovered: dict = {}
    # a single call raises at the first failing header, unless a header-only record (only ever
    # the first) raised before it: then its error is the group's, known without parsing again
    # (a long malformed header is not cached, and parsing it twice doubled the cost of junk)
    header_error: dict = {}
    if g_error_text:
        fails = np.flatnonzero(g_error[group] & (kind != REC_HEADER_ONLY))
        fb, first_fail = np.unique(comp[fails], return_index=True)  # records are in order
        for b, k in zip(fb.tolist(), fails[first_fail].tolist()):
            if kind[rec_starts[b]] != REC_HEADER_ONLY:
                header_error[b] = g_error_text[int(group[k])]
    for b in np.flatnonzero(bad).tolist():
        exc = bad_input.get(b)
        if exc is None and b in header_error:
            exc = HarmonyError(header_error[b])
        elif exc is None:
            try:
                # a copy: flat may be an Arrow buffer that its owner can still write
                parse_completion(encoding, flat[starts[b] : starts[b + 1]].copy(), r, strict)
            except Exception as e:  # the single call's error is the row's error
                exc = e
            else:  # pragma: no cover - the scan and the single call disagree: a bug
                raise AssertionError(f"completion {b} was flagged but parses alone")
        if errors == "raise":
            raise with_index(exc, f"completion {b}") from exc
        error_text[b] = str(exc)
        error_type[b] = type(exc).__name__
        # its traceback holds this frame (flat, records...): a cycle that would keep every
        # batch's arrays alive until a full collection
        exc = None
        if errors == "recover" and b not in bad_input:
            try:
                recovered[b] = recover_completion(encoding, flat[starts[b] : starts[b + 1]].copy(), r)
            except ValueError as e:  # an id outside the vocabulary: nothing to read
                error_text[b] = str(e)
                error_type[b] = type(e).__name__

    keep = ~bad[comp] if n_rec else np.zeros(0, dtype=bool)
    table = object.__new__(MessageTable)
    table.tokens = flat
    table.offsets = starts
    table.completion = comp[keep]
    table.role = role_col[keep]
    table.name = codes[keep, 0]
    table.channel = codes[keep, 1]
    table.recipient = codes[keep, 2]
    table.content_type = codes[keep, 3]
    table.content_start = cs[keep]
    table.content_stop = ce[keep]
    # per kept message: the text of a header-only record, or None where the content holds
    # unknown ids (decoded the oracle's slow way)
    kept_index = np.flatnonzero(keep)
    table._overrides = {int(np.searchsorted(kept_index, k)): v for k, v in overrides.items() if keep[k]}
    if n_rec:
        for i in np.flatnonzero(recs[:, REC_FLAGS][keep] & FLAG_CONTENT_UNKNOWN).tolist():
            table._overrides.setdefault(i, None)
    # whole-message spans: from <|start|> (or 0 for a role-given first message) through the
    # terminator (or to the end of the completion)
    ends = starts[1:][comp] if n_rec else np.zeros(0, np.int64)
    table.span_start = np.where(recs[:, REC_HS] == 0, base, hs - 1)[keep] if n_rec else np.zeros(0, np.int64)
    table.span_stop = np.where(recs[:, REC_STOP] != NO_STOP, ce + 1, ends)[keep] if n_rec else np.zeros(0, np.int64)
    table.strings = strings
    table.errors = error_text
    table.error_types = error_type
    table.error_rows = np.flatnonzero(bad)
    table.error_rows.setflags(write=False)
    table.unparsed = None
    table.diagnostics = None
    table._encoding = encoding
    table._texts = None
    table._override_rows = None
    if errors == "recover":
        _add_recovered(table, recovered, starts, code)
    _freeze(table)
    return table


_ARRAY_COLUMNS = (
    "tokens", "offsets", "completion", "role", "name", "channel", "recipient", "content_type",
    "content_start", "content_stop", "span_start", "span_stop",
)


def _freeze(table: MessageTable) -> None:
    """Every column read-only: a caller's write into a span column would otherwise reach the
    gather kernel (which the spans are re-checked for anyway, see :func:`_decode_contents`)."""
    for name in _ARRAY_COLUMNS:
        getattr(table, name).setflags(write=False)
    for cols in (table.unparsed, table.diagnostics):
        for v in (cols or {}).values():
            if isinstance(v, np.ndarray):
                v.setflags(write=False)


def _add_recovered(table: MessageTable, recovered: dict, starts: np.ndarray, code) -> None:
    """Merge the recovered completions' messages into the table, in completion order, and fill
    the unparsed and diagnostics columns."""
    n_old = len(table)
    rows = []  # (completion, role code, name, channel, recipient, content type, start, stop, text)
    unparsed = {"completion": [], "start": [], "stop": [], "reason": []}
    diags = {"completion": [], "kind": [], "start": [], "stop": [], "detail": []}
    for b, res in sorted(recovered.items()):
        base = int(starts[b])
        for m, (a, z) in zip(res.messages, res.spans.tolist()):
            rows.append((b, _ROLE_CODE[m.author.role], code(m.author.name), code(m.channel), code(m.recipient),
                         code(m.content_type), base + a, base + z, m.content[0].text))
        for a, z, reason in res.unparsed:
            unparsed["completion"].append(b)
            unparsed["start"].append(base + a)
            unparsed["stop"].append(base + z)
            unparsed["reason"].append(reason)
        for d in res.diagnostics:
            diags["completion"].append(b)
            diags["kind"].append(d.kind)
            diags["start"].append(base + d.start)
            diags["stop"].append(base + d.stop)
            diags["detail"].append(d.detail)
    for cols in (unparsed, diags):
        for key in ("completion", "start", "stop"):
            cols[key] = np.asarray(cols[key], dtype=np.int64)
    table.unparsed = unparsed
    table.diagnostics = diags
    if not rows:
        return
    add = list(zip(*rows))
    order = np.argsort(np.concatenate([table.completion, np.asarray(add[0], np.int64)]), kind="stable")

    def merged(old, new, dtype):
        return np.concatenate([old, np.asarray(new, dtype=dtype)])[order]

    table.completion = merged(table.completion, add[0], np.int64)
    table.role = merged(table.role, add[1], np.int8)
    table.name = merged(table.name, add[2], np.int32)
    table.channel = merged(table.channel, add[3], np.int32)
    table.recipient = merged(table.recipient, add[4], np.int32)
    table.content_type = merged(table.content_type, add[5], np.int32)
    table.span_start = merged(table.span_start, add[6], np.int64)
    table.span_stop = merged(table.span_stop, add[7], np.int64)
    none = [-1] * len(rows)
    table.content_start = merged(table.content_start, none, np.int64)
    table.content_stop = merged(table.content_stop, none, np.int64)
    # message texts known already (the recovered ones) ride as overrides at their new rows
    where = np.empty(order.shape[0], dtype=np.int64)
    where[order] = np.arange(order.shape[0])
    overrides = {int(where[i]): v for i, v in table._overrides.items()}
    for k, text in enumerate(add[8]):
        overrides[int(where[n_old + k])] = text
    table._overrides = overrides


def _decode_contents(table: MessageTable, lo: int = 0, hi: Optional[int] = None) -> List[str]:
    """The content texts of rows ``lo:hi`` (default: every row)."""
    data, byte_off, rows = _gathered_contents(table, lo, hi)
    hi = lo + byte_off.shape[0] - 1
    # invalid UTF-8 replaced, as the oracle's token-by-token decoding does when every id is known
    view = memoryview(data)
    bo = byte_off.tolist()
    texts = [str(view[bo[i] : bo[i + 1]], "utf-8", "replace") for i in range(hi - lo)]
    if rows.size:
        cache: list = []
        for i in rows.tolist():
            texts[i - lo] = _override_text(table, i, cache)
    return texts


def _override_text(table: MessageTable, i: int, cache: list) -> str:
    """The content text of override row ``i`` (``cache``: an empty list, for the tables)."""
    text = table._overrides[i]
    if text is None:  # unknown ids: decoded the oracle's slow way
        if not cache:
            cache.append(tables(table._encoding))
        text = stream_text(cache[0], table.tokens[table.content_start[i] : table.content_stop[i]].tolist())
    return text


def _gathered_contents(table: MessageTable, lo: int = 0, hi: Optional[int] = None) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(bytes, byte offsets, override rows)`` of the contents of rows ``lo:hi``: row ``lo + i``
    is ``bytes[offsets[i]:offsets[i + 1]]``, except the override rows (absolute, sorted), which
    are empty there and whose text :func:`_override_text` gives."""
    gather_spans = kernels().gather_spans
    if hi is None:
        hi = len(table)
    # re-checked here, where the kernel reads them: the columns are the caller's to replace
    tokens = np.ascontiguousarray(table.tokens, dtype=np.uint32)
    cs = np.ascontiguousarray(table.content_start[lo:hi], dtype=np.int64)
    ce = np.ascontiguousarray(table.content_stop[lo:hi], dtype=np.int64)
    if tokens.ndim != 1 or cs.shape != (hi - lo,) or ce.shape != (hi - lo,):
        raise ValueError("the table's tokens, content_start and content_stop no longer fit its rows")
    overrides = table._overrides
    rows = np.zeros(0, dtype=np.int64)
    if overrides:
        # spans that are not decoded from the byte table: header-only records, unknown ids and
        # recovered messages; their rows, sorted once, are searched for this range's
        every = table._override_rows
        if every is None:
            every = table._override_rows = np.sort(np.fromiter(overrides.keys(), dtype=np.int64, count=len(overrides)))
        rows = every[np.searchsorted(every, lo) : np.searchsorted(every, hi)]
        if rows.size:
            cs = cs.copy()
            ce = ce.copy()
            cs[rows - lo] = 0
            ce[rows - lo] = 0
    if cs.size and (int(cs.min()) < 0 or int(ce.max()) > tokens.shape[0] or bool((ce < cs).any())):
        i = int(np.flatnonzero((cs < 0) | (ce > tokens.shape[0]) | (ce < cs))[0])
        raise ValueError(f"row {lo + i}: content span {cs[i]}:{ce[i]} is not within the {tokens.shape[0]} tokens")
    vocab = table._encoding.vocab
    try:
        data, byte_off = gather_spans(vocab.flat, vocab.offsets, tokens, cs, ce)
    except ValueError as exc:
        # the ids were checked when parsed: only a buffer shared with an Arrow input's owner
        # can have changed since
        raise ValueError(f"{exc}: the table's tokens changed after parsing (replaced, or an Arrow input's buffer written by its owner)") from None
    return data, byte_off, rows
