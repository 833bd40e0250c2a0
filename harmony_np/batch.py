"""Batch rendering: many conversations to one ragged token array, with loss masks.

Every conversation is planned in Python as a sequence of *pieces* (a header part, a content text,
a terminator). Pieces are deduplicated across the batch, so a system prompt, developer
instructions or tool schemas shared by all conversations are encoded once; fresh texts are
encoded on a thread pool (tiktoken releases the GIL) straight into NumPy buffers. A Numba kernel
then copies pieces into the flat output, rows in parallel. No Python object per token.
"""

from __future__ import annotations

import array
import contextlib
import gc
from typing import Any, Iterable, List, Optional, Sequence, Tuple

import numpy as np

from .errors import HarmonyError
from .model import Author, Message, RenderConversationConfig, Role, TextContent
from .render import _START_LIST, _as_role, _ends_in_final, _messages_of, _not_a_message, raise_surrogate_error
from .vocab import RETURN

_ASSISTANT = Role.ASSISTANT
_MODES = ("completion", "conversation", "training")


class RaggedTokens:
    """Token rows of different lengths: ``tokens`` (flat ``uint32``) split by ``offsets``.

    Row ``i`` is ``tokens[offsets[i]:offsets[i + 1]]``. ``loss_mask`` (``uint8``, aligned with
    ``tokens``) is 1 on the tokens a model is trained to produce, when it was requested.
    """

    __slots__ = ("tokens", "offsets", "loss_mask")

    def __init__(self, tokens: np.ndarray, offsets: np.ndarray, loss_mask: Optional[np.ndarray] = None) -> None:
        self.tokens = tokens
        self.offsets = offsets
        self.loss_mask = loss_mask

    def __len__(self) -> int:
        return self.offsets.shape[0] - 1

    def __getitem__(self, i: int) -> np.ndarray:
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"row {i} out of range for {n} rows")
        i %= n
        return self.tokens[self.offsets[i] : self.offsets[i + 1]]

    def __iter__(self):
        for i in range(len(self)):
            yield self[i]

    def __repr__(self) -> str:
        return f"RaggedTokens({len(self)} rows, {self.tokens.shape[0]} tokens{', loss_mask' if self.loss_mask is not None else ''})"

    def lengths(self) -> np.ndarray:
        """Tokens per row."""
        return np.diff(self.offsets)

    def row_mask(self, i: int) -> np.ndarray:
        """The loss mask of row ``i``."""
        if self.loss_mask is None:
            raise ValueError("this result has no loss mask: render with loss_mask=True or mode='training'")
        return self.loss_mask[self.offsets[i] : self.offsets[i + 1]]

    def to_list(self) -> List[List[int]]:
        """Rows as lists of ints (as the single-call renders return them)."""
        flat = self.tokens.tolist()
        off = self.offsets.tolist()
        return [flat[off[i] : off[i + 1]] for i in range(len(self))]

    def to_padded(self, pad_id: int, *, max_len: Optional[int] = None, side: str = "right", with_loss_mask: bool = False):
        """Rows in a 2-D array padded with ``pad_id``, and the attention mask (1 on real tokens).

        ``side="right"`` pads after the tokens, ``"left"`` before (as for generation). A row
        longer than ``max_len`` is cut: its first ``max_len`` tokens are kept on the right side,
        its last on the left side. With ``with_loss_mask`` a third array, the padded loss mask,
        is returned.
        """
        if side not in ("right", "left"):
            raise ValueError(f"side must be 'right' or 'left', got {side!r}")
        lengths = self.lengths()
        width = int(lengths.max()) if lengths.size else 0
        if max_len is not None:
            if max_len < 0:
                raise ValueError(f"max_len must be >= 0, got {max_len}")
            width = int(max_len)
        if not 0 <= int(pad_id) < 2**32:
            raise ValueError(f"pad_id must fit in uint32, got {pad_id}")
        n = len(self)
        ids = np.full((n, width), pad_id, dtype=np.uint32)
        attn = np.zeros((n, width), dtype=np.uint8)
        lm = np.zeros((n, width), dtype=np.uint8) if with_loss_mask else None
        if with_loss_mask and self.loss_mask is None:
            raise ValueError("this result has no loss mask: render with loss_mask=True or mode='training'")
        from .kernels import pad_rows

        pad_rows(self.tokens, self.offsets, ids, attn, side == "left")
        if lm is not None:
            pad_rows(self.loss_mask, self.offsets, lm, np.zeros_like(attn), side == "left")
            return ids, attn, lm
        return ids, attn


class _PiecePool:
    """Distinct pieces of a batch: token lists by identity, texts by value."""

    def __init__(self) -> None:
        self.ids: dict = {}
        self.lists: List[Tuple[int, list]] = []  # (piece id, token list)
        self.texts: List[Tuple[int, str]] = []  # (piece id, text to encode)
        self.count = 0
        self._keep: list = []  # token lists stay alive, so their id() stays theirs

    def of_list(self, toks: list) -> int:
        key = id(toks)
        pid = self.ids.get(key)
        if pid is None:
            pid = self.ids[key] = self.count
            self.count += 1
            self.lists.append((pid, toks))
            self._keep.append(toks)
        return pid

    def of_text(self, text: str) -> int:
        pid = self.ids.get(text)
        if pid is None:
            pid = self.ids[text] = self.count
            self.count += 1
            self.texts.append((pid, text))
        return pid


def render_batch(
    encoding,
    conversations: Iterable[Any],
    *,
    mode: str = "completion",
    next_role: Any = Role.ASSISTANT,
    config: Optional[RenderConversationConfig] = None,
    loss_mask: Optional[bool] = None,
    mask_last_assistant_only: bool = False,
) -> RaggedTokens:
    """Render many conversations; row ``i`` equals the single render of conversation ``i``.

    ``mode`` is ``"completion"`` (ends with ``<|start|>`` and ``next_role``), ``"conversation"``
    or ``"training"``. The loss mask (on by default in training mode) is 1 on each assistant
    message from after its role (and name) through its terminator; with
    ``mask_last_assistant_only`` only the last assistant message of each row counts.
    """
    if mode not in _MODES:
        raise ValueError(f"mode must be one of {_MODES}, got {mode!r}")
    with _gc_paused():
        return _render_batch(encoding, conversations, mode, next_role, config, loss_mask, mask_last_assistant_only)


def _with_index(exc: Exception, where: str) -> Exception:
    """The same kind of error, its text prefixed with which item of the batch failed."""
    try:
        return type(exc)(f"{where}: {exc}")
    except Exception:  # an exception type whose constructor wants more than a message
        return exc


@contextlib.contextmanager
def _gc_paused():
    """Pause the cyclic GC: a batch allocates many small acyclic containers, and each full
    collection would walk the caller's whole heap (often millions of objects) for nothing."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _render_batch(encoding, conversations, mode, next_role, config, loss_mask, mask_last_assistant_only) -> RaggedTokens:
    want_mask = (mode == "training") if loss_mask is None else bool(loss_mask)
    role = _as_role(next_role) if mode == "completion" else None
    renderer = encoding.renderer
    pool = _PiecePool()
    occ_piece: List[int] = []
    occ_flag: List[int] = []
    row_occ: List[int] = [0]
    return_rows: List[int] = []
    of_list, of_text = pool.of_list, pool.of_text
    header_entry, content_texts, terminator = renderer.header_entry, renderer.content_texts, renderer.terminator
    start_pid = of_list(_START_LIST)
    role_pid = of_text(role.value) if role is not None else -1
    memo: dict = {}
    head_memo: dict = {}

    for index, conv in enumerate(conversations):
        try:
            msgs, kept, has_fn = renderer.select(conv, config)
            last_assistant = -1
            if want_mask and mask_last_assistant_only:
                for k in range(len(kept) - 1, -1, -1):
                    if kept[k].author.role is _ASSISTANT:
                        last_assistant = k
                        break
            for k, m in enumerate(kept):
                r = m.author.role
                flag = 1 if (want_mask and r is _ASSISTANT and (not mask_last_assistant_only or k == last_assistant)) else 0
                content = m.content
                if len(content) == 1 and content[0].__class__ is TextContent:
                    # the common message: a header seen before and one text
                    hkey = (r, m.author.name, m.recipient, m.channel, m.content_type, flag)
                    head = head_memo.get(hkey)
                    if head is None:
                        _, author_part, rest = header_entry(r, m.author.name, m.recipient, m.channel, m.content_type)
                        head = head_memo[hkey] = (of_list(author_part), of_list(rest), of_list(terminator(r, m.recipient)))
                    occ_piece += (head[0], head[1], of_text(content[0].text), head[2])
                    occ_flag += (0, flag, flag, flag)
                    continue
                # a message object shared by many conversations (a system prompt, developer
                # instructions) is planned once per batch
                key = (id(m), flag, has_fn)
                entry = memo.get(key)
                if entry is None:
                    entry = memo[key] = _message_pieces(m, r, flag, has_fn, header_entry, content_texts, terminator, of_list, of_text)
                occ_piece += entry[0]
                occ_flag += entry[1]
            if role is not None:
                occ_piece.append(start_pid)
                occ_piece.append(role_pid)
                occ_flag.append(0)
                occ_flag.append(0)
            elif mode == "training" and _ends_in_final(msgs):
                return_rows.append(index)
        except UnicodeEncodeError:
            raise  # a lone surrogate: the caller turns it into the oracle's ValueError
        except (HarmonyError, ValueError, TypeError) as exc:
            if isinstance(exc, HarmonyError):
                try:
                    raise_surrogate_error(conv)  # reported first, as by a single render
                except ValueError as surrogate:
                    raise _with_index(surrogate, f"conversation {index}") from exc
            raise _with_index(exc, f"conversation {index}") from exc
        except AttributeError as exc:
            bad = _not_a_message(_messages_of(conv))
            if bad is None:
                raise
            raise _with_index(bad, f"conversation {index}") from exc
        row_occ.append(len(occ_piece))

    # piece table: every distinct piece's tokens back to back, joined as bytes (no Python int
    # per token: fresh texts come from tiktoken as uint32 buffers)
    blobs: List[Any] = [None] * pool.count
    for pid, toks in pool.lists:
        blobs[pid] = array.array("I", toks)
    if pool.texts:
        for (pid, _), blob in zip(pool.texts, _encode_texts(renderer, [t for _, t in pool.texts])):
            blobs[pid] = blob
    piece_len = np.fromiter((memoryview(b).nbytes >> 2 for b in blobs), dtype=np.int64, count=pool.count)
    piece_off = np.zeros(pool.count + 1, dtype=np.int64)
    np.cumsum(piece_len, out=piece_off[1:])
    piece_pool = np.frombuffer(b"".join(blobs), dtype=np.uint32)

    occ = np.asarray(occ_piece, dtype=np.int64)
    flags = np.asarray(occ_flag, dtype=np.uint8)
    row_occ_off = np.asarray(row_occ, dtype=np.int64)
    occ_cum = np.zeros(occ.shape[0] + 1, dtype=np.int64)
    np.cumsum(piece_len[occ], out=occ_cum[1:])
    offsets = occ_cum[row_occ_off]

    from .kernels import assemble_rows

    tokens = np.empty(int(offsets[-1]), dtype=np.uint32)
    mask = np.zeros(tokens.shape[0], dtype=np.uint8) if want_mask else np.zeros(0, dtype=np.uint8)
    assemble_rows(piece_pool, piece_off, occ, flags, row_occ_off, offsets, tokens, mask, want_mask)
    if return_rows:
        rows = np.asarray(return_rows, dtype=np.int64)
        ends = offsets[rows + 1]
        nonempty = ends > offsets[rows]
        tokens[ends[nonempty] - 1] = RETURN
    return RaggedTokens(tokens, offsets, mask if want_mask else None)


def _message_pieces(m, r, flag, has_fn, header_entry, content_texts, terminator, of_list, of_text) -> tuple:
    """Piece ids and mask flags of one message: author part, rest of header, texts, terminator."""
    _, author_part, rest = header_entry(r, m.author.name, m.recipient, m.channel, m.content_type)
    pieces = [of_list(author_part), of_list(rest)]
    flags = [0, flag]
    for text in content_texts(m, r, has_fn):
        pieces.append(of_text(text))
        flags.append(flag)
    pieces.append(of_list(terminator(r, m.recipient)))
    flags.append(flag)
    return pieces, flags


# Fresh texts are joined by this special token and encoded in one tiktoken call: tiktoken encodes
# the text between special tokens on its own, so each text gets exactly its encode_ordinary
# tokens, without one Python-to-Rust call per text. (A text holding the separator itself is
# encoded on its own. The separator cannot arise across a text boundary: no proper prefix of it
# is also a suffix of it.)
_JOIN_TEXT = "<|reserved_200999|>"
_JOIN_ID = 200999
_JOIN_SET = frozenset([_JOIN_TEXT])


def _encode_joined(buf, texts: List[str]) -> List[np.ndarray]:
    arr = np.frombuffer(buf(_JOIN_TEXT.join(texts), _JOIN_SET), dtype=np.uint32)
    cuts = np.flatnonzero(arr == _JOIN_ID)
    starts = [0] + (cuts + 1).tolist()
    stops = cuts.tolist() + [arr.shape[0]]
    return [arr[a:z] for a, z in zip(starts, stops)]


def _encode_texts(renderer, texts: Sequence[str]) -> list:
    """uint32 buffers of ``texts``: cached ones from the renderer's text cache, fresh ones in
    joined tiktoken calls, split over the thread pool when there is enough text."""
    out: List[Any] = [None] * len(texts)
    fresh = []
    cached = renderer._texts
    for i, t in enumerate(texts):
        toks = cached.get(t)
        if toks is not None:
            out[i] = array.array("I", toks)
        elif _JOIN_TEXT in t:
            out[i] = array.array("I", renderer._encode(t))
        else:
            fresh.append(i)
    if not fresh:
        return out
    buf = renderer._encode_buffer
    if buf is None:  # pragma: no cover - tiktoken without the buffer API
        for i in fresh:
            out[i] = array.array("I", renderer._encode(texts[i]))
        return out
    total = 0
    for i in fresh:
        total += len(texts[i])
    workers = renderer._workers
    if workers > 1 and total >= 65_536:
        # contiguous chunks of similar size, one joined call each, one per thread
        chunks: List[List[int]] = []
        share = total / workers
        chunk: List[int] = []
        size = 0
        for i in fresh:
            chunk.append(i)
            size += len(texts[i])
            if size >= share and len(chunks) < workers - 1:
                chunks.append(chunk)
                chunk, size = [], 0
        chunks.append(chunk)
        results = renderer.run_parallel(lambda core, c: _encode_joined(core.encode_to_tiktoken_buffer, [texts[i] for i in c]), chunks)
        for chunk, arrays in zip(chunks, results):
            for i, a in zip(chunk, arrays):
                out[i] = a
    else:
        for i, a in zip(fresh, _encode_joined(buf, [texts[i] for i in fresh])):
            out[i] = a
    return out


# -- batch parsing -------------------------------------------------------------------------

ROLES: Tuple[Role, ...] = (Role.USER, Role.ASSISTANT, Role.SYSTEM, Role.DEVELOPER, Role.TOOL)
_ROLE_CODE = {r: i for i, r in enumerate(ROLES)}
_ERRORS = ("raise", "collect", "recover")


class MessageTable:
    """Parsed messages of many completions, one row per message, as columns.

    Columns (NumPy arrays, one entry per message): ``completion`` (index of the completion),
    ``role`` (code into :data:`ROLES`), ``name``, ``channel``, ``recipient``, ``content_type``
    (codes into ``strings``; -1 is None), ``content_start``/``content_stop`` (the content's token
    span in ``tokens``). ``tokens``/``offsets`` are the input completions (completion ``b`` is
    ``tokens[offsets[b]:offsets[b + 1]]``). ``errors[b]`` is None, or the error text the single
    call raises for completion ``b`` (its messages are then not in the table). Content text is
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
        "unparsed", "diagnostics", "_overrides", "_encoding", "_texts",
    )

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
            with _gc_paused():
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
        with _gc_paused():
            return self._to_messages()

    def _to_messages(self) -> List[List[Message]]:
        texts = self.content_texts()
        sv = self.strings + [None]  # code -1 indexes the trailing None
        out: List[List[Message]] = [[] for _ in range(len(self.errors))]
        new = object.__new__
        cols = zip(
            self.completion.tolist(), self.role.tolist(), self.name.tolist(), self.channel.tolist(),
            self.recipient.tolist(), self.content_type.tolist(), texts,
        )
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
            out[b].append(m)
        return out

    def messages_of(self, b: int) -> List[Message]:
        """The messages of completion ``b``."""
        return self.to_messages()[b]


def _flatten(completions: Any, offsets: Any, errors: str):
    """``(flat uint32 tokens, int64 offsets, {index: exception})`` of the batch input."""
    from .tokens import token_array

    if offsets is not None:
        flat = token_array(completions, "completions")
        offs = np.asarray(offsets)
        if offs.ndim != 1 or offs.dtype.kind not in "iu" or offs.shape[0] < 1:
            raise ValueError(f"offsets must be a 1-D integer array of len n + 1, got {offs.dtype} with shape {offs.shape}")
        offs = offs.astype(np.int64)
        if offs[0] < 0 or offs[-1] > flat.shape[0] or np.any(np.diff(offs) < 0):
            raise ValueError(
                f"offsets must rise from >= 0 to <= {flat.shape[0]} (the number of tokens); "
                f"got first {int(offs[0])}, last {int(offs[-1])}"
            )
        return flat, offs, {}
    if isinstance(completions, (str, bytes)) or not hasattr(completions, "__len__"):
        raise TypeError(f"completions must be a list of token lists or arrays (or a flat array with offsets), got {type(completions).__name__}")
    if isinstance(completions, np.ndarray):
        raise TypeError("a flat token array needs offsets=; a 2-D array is not a list of completions")
    items = list(completions)
    lengths = np.zeros(len(items) + 1, dtype=np.int64)
    if all(c.__class__ is list for c in items):
        buf = array.array("I")
        try:
            for c in items:
                buf.fromlist(c)  # twice as fast as one array over a chain of the lists
        except (TypeError, OverflowError, ValueError):
            buf = None
        if buf is not None:
            np.cumsum([len(c) for c in items], out=lengths[1:])
            return (np.frombuffer(buf, dtype=np.uint32) if len(buf) else np.empty(0, np.uint32)), lengths, {}
    bad: dict = {}
    parts = []
    for i, c in enumerate(items):
        try:
            arr = token_array(c)
        except (TypeError, OverflowError, ValueError) as exc:
            if errors == "raise":
                raise _with_index(exc, f"completion {i}") from exc
            bad[i] = exc
            arr = np.empty(0, np.uint32)
        parts.append(arr)
        lengths[i + 1] = lengths[i] + arr.shape[0]
    flat = np.concatenate(parts) if parts else np.empty(0, np.uint32)
    return flat.astype(np.uint32, copy=False), lengths, bad


def parse_batch(encoding, completions: Any, *, offsets: Any = None, role: Any = None, strict: Any = True, errors: str = "raise") -> MessageTable:
    """Parse many completions at once; see :meth:`HarmonyEncoding.parse_batch`."""
    if errors not in _ERRORS:
        raise ValueError(f"errors must be one of {_ERRORS}, got {errors!r}")
    if errors == "recover" and strict is False:
        raise ValueError("errors='recover' reads completions by the strict rules first; it cannot be combined with strict=False")
    with _gc_paused():
        return _parse_batch(encoding, completions, offsets, role, strict, errors)


def _parse_batch(encoding, completions, offsets, role, strict, errors) -> MessageTable:
    from .kernels import scan_batch, span_hashes
    from .parse import (
        FLAG_CONTENT_UNKNOWN,
        REC_HEADER_ONLY,
        check_strict,
        parse_completion,
        role_from_value,
        tables,
    )

    r = None if role is None else role_from_value(str(role.value) if isinstance(role, Role) else str(role))
    strict = check_strict(strict)
    flat, starts, bad_input = _flatten(completions, offsets, errors)
    n_comp = starts.shape[0] - 1
    recs, rec_starts, status, _pos = scan_batch(flat, starts, r is not None, strict)
    n_rec = recs.shape[0]
    comp = np.repeat(np.arange(n_comp, dtype=np.int64), np.diff(rec_starts))
    base = starts[:-1][comp]
    kind = recs[:, 0]
    hs = recs[:, 1] + base
    he = recs[:, 2] + base
    cs = recs[:, 3] + base
    ce = recs[:, 4] + base
    first = recs[:, 1] == 0  # only a role-given first header starts at 0

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
            hit = t._parse_header(flat[a:z], rr)
            headers[(rr, key)] = hit
        if hit.__class__ is str:
            g_error[g] = True
            continue
        mrole, name, channel, recipient, ctype = hit
        g_role[g] = _ROLE_CODE[mrole]
        g_codes[g] = (code(name), code(channel), code(recipient), code(ctype))

    # completions whose single call raises: a failed header, a structural error, bad input
    bad = np.zeros(n_comp, dtype=bool)
    bad[status != 0] = True
    if n_rec:
        bad[comp[g_error[group] & (kind != REC_HEADER_ONLY)]] = True
    for i in bad_input:
        bad[i] = True
    overrides: dict = {}
    header_only = np.flatnonzero(kind == REC_HEADER_ONLY)
    role_col = g_role[group] if n_rec else np.zeros(0, np.int8)
    codes = g_codes[group] if n_rec else np.zeros((0, 4), np.int32)
    if header_only.size:
        from .parse import decode_utf8, parse_header_string

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
    for b in np.flatnonzero(bad).tolist():
        exc = bad_input.get(b)
        if exc is None:
            try:
                parse_completion(encoding, flat[starts[b] : starts[b + 1]], r, strict)
            except Exception as e:  # the single call's error is the row's error
                exc = e
            else:  # pragma: no cover - the scan and the single call disagree: a bug
                raise AssertionError(f"completion {b} was flagged but parses alone")
        if errors == "raise":
            raise _with_index(exc, f"completion {b}") from exc
        error_text[b] = str(exc)
        error_type[b] = type(exc).__name__
        if errors == "recover" and b not in bad_input:
            from .recover import recover_completion

            try:
                recovered[b] = recover_completion(encoding, flat[starts[b] : starts[b + 1]], r)
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
        for i in np.flatnonzero(recs[:, 5][keep] & FLAG_CONTENT_UNKNOWN).tolist():
            table._overrides.setdefault(i, None)
    # whole-message spans: from <|start|> (or 0 for a role-given first message) through the
    # terminator (or to the end of the completion)
    ends = starts[1:][comp] if n_rec else np.zeros(0, np.int64)
    table.span_start = np.where(recs[:, 1] == 0, base, hs - 1)[keep] if n_rec else np.zeros(0, np.int64)
    table.span_stop = np.where(recs[:, 6] >= 0, ce + 1, ends)[keep] if n_rec else np.zeros(0, np.int64)
    table.strings = strings
    table.errors = error_text
    table.error_types = error_type
    table.unparsed = None
    table.diagnostics = None
    table._encoding = encoding
    table._texts = None
    if errors == "recover":
        _add_recovered(table, recovered, starts, code)
    return table


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


def _decode_contents(table: MessageTable) -> List[str]:
    from .kernels import gather_spans
    from .parse import stream_text, tables

    n = len(table)
    cs = table.content_start
    ce = table.content_stop
    overrides = table._overrides
    if overrides:
        # spans that are not decoded from the byte table: header-only records and unknown ids
        cs = cs.copy()
        ce = ce.copy()
        special = np.fromiter(overrides.keys(), dtype=np.int64, count=len(overrides))
        ce[special] = cs[special]
    vocab = table._encoding._vocab
    data, byte_off = gather_spans(vocab.flat, vocab.offsets, table.tokens, cs, ce)
    # invalid UTF-8 replaced, as the oracle's token-by-token decoding does when every id is known
    view = memoryview(data)
    bo = byte_off.tolist()
    texts = [str(view[bo[i] : bo[i + 1]], "utf-8", "replace") for i in range(n)]
    if overrides:
        t = None
        for i, text in overrides.items():
            if text is None:
                if t is None:
                    t = tables(table._encoding)
                text = stream_text(t, table.tokens[table.content_start[i] : table.content_stop[i]].tolist())
            texts[i] = text
    return texts

