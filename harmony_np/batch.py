"""Batch rendering: many conversations to one ragged token array, with loss masks.

Every conversation is planned in Python as a sequence of *pieces* (a header part, a content text,
a terminator). Pieces are deduplicated across the batch by value, so a system prompt, developer
instructions or tool schemas shared by all conversations (the same objects, or equal copies read
from JSON) are encoded once; fresh texts are
encoded on a thread pool (tiktoken releases the GIL) straight into NumPy buffers. A Numba kernel
then copies pieces into the flat output, rows in parallel. No Python object per token.
"""

from __future__ import annotations

import array
import bisect
import contextlib
import gc
import json
import operator
from sys import getsizeof
from typing import Any, Iterable, List, Optional, Sequence, Tuple

import numpy as np

from .errors import HarmonyError
from .rust_text import surrogate_error
from .model import Author, DeveloperContent, Message, RenderConversationConfig, Role, SystemContent, TextContent
from .parse import kernels
from .render import _LIST_TOKEN_BYTES, _START_LIST, _as_role, _ends_in_final
from .vocab import RETURN

_ASSISTANT = Role.ASSISTANT
_MODES = ("completion", "conversation", "training")


class RaggedTokens:
    """Token rows of different lengths: ``tokens`` (flat ``uint32``) split by ``offsets``.

    Row ``i`` is ``tokens[offsets[i]:offsets[i + 1]]``. ``loss_mask`` (``uint8``, aligned with
    ``tokens``) is 1 on the tokens a model is trained to produce, when it was requested.

    The constructor checks its input as awkward-array's ``ListOffsetArray`` does, since the
    kernels that pad rows read memory at these offsets unchecked: ``tokens`` is 1-D integers in
    ``uint32`` range (ids are not checked against a vocabulary: rows are only copied here);
    ``offsets`` is 1-D integers, at least one, the first >= 0, never decreasing, the last at most
    ``len(tokens)``; ``loss_mask`` is 0/1 (or bool), one per token. The arrays are kept as
    read-only copies (``uint32``, ``int64``, ``uint8``): changing the caller's arrays later
    changes nothing here.
    """

    __slots__ = ("_tokens", "_offsets", "_loss_mask")

    def __init__(self, tokens: Any, offsets: Any, loss_mask: Any = None) -> None:
        t = _int_array(tokens, "tokens")
        if t.size and t.dtype.kind in "iu" and (np.iinfo(t.dtype).min < 0 or np.iinfo(t.dtype).max > _U32_MAX):
            bad = np.flatnonzero((t < 0) | (t > _U32_MAX))
            if bad.size:
                i = int(bad[0])
                raise ValueError(f"tokens[{i}] = {t[i]} is not a token id (0 <= id < 2**32)")
        n = t.shape[0]
        o = _int_array(offsets, "offsets")
        if o.shape[0] == 0:
            raise ValueError("offsets must hold at least one value (offsets [0] is no rows)")
        if o[0] < 0:
            raise ValueError(f"offsets[0] = {o[0]} is negative")
        down = np.flatnonzero(o[1:] < o[:-1])  # compared, not subtracted: no wrap-around
        if down.size:
            i = int(down[0]) + 1
            raise ValueError(f"offsets must not decrease: offsets[{i}] = {o[i]} < offsets[{i - 1}] = {o[i - 1]}")
        if o[-1] > n:
            i = int(np.flatnonzero(o > n)[0])
            raise ValueError(f"offsets[{i}] = {o[i]} is past the end of the {n} tokens")
        mask = None
        if loss_mask is not None:
            mask = _int_array(loss_mask, "loss_mask", allow_bool=True)
            if mask.shape[0] != n:
                raise ValueError(f"loss_mask has {mask.shape[0]} values for {n} tokens")
            if mask.dtype.kind != "b":
                bad = np.flatnonzero((mask != 0) & (mask != 1))
                if bad.size:
                    i = int(bad[0])
                    raise ValueError(f"loss_mask[{i}] = {mask[i]} is not 0 or 1")
            mask = np.array(mask, dtype=np.uint8)
        # every value checked is in [0, n]: the int64 cast cannot wrap
        self._set(np.array(t, dtype=np.uint32), np.array(o, dtype=np.int64), mask)

    @classmethod
    def _own(cls, tokens: np.ndarray, offsets: np.ndarray, loss_mask: Optional[np.ndarray]) -> "RaggedTokens":
        """A result from arrays a batch built itself and hands over (checked by construction)."""
        self = object.__new__(cls)
        self._set(tokens, offsets, loss_mask)
        return self

    def _set(self, tokens: np.ndarray, offsets: np.ndarray, loss_mask: Optional[np.ndarray]) -> None:
        for a in (tokens, offsets, loss_mask):
            if a is not None:
                a.setflags(write=False)
        self._tokens = tokens
        self._offsets = offsets
        self._loss_mask = loss_mask

    @property
    def tokens(self) -> np.ndarray:
        """All rows' tokens back to back (``uint32``, read-only)."""
        return self._tokens

    @property
    def offsets(self) -> np.ndarray:
        """Row boundaries (``int64``, ``len(self) + 1`` values, read-only)."""
        return self._offsets

    @property
    def loss_mask(self) -> Optional[np.ndarray]:
        """``uint8`` per token (read-only), or None when no mask was requested."""
        return self._loss_mask

    def __reduce__(self):
        # a pickled copy is checked again on load, and owns read-only arrays like this one
        return (RaggedTokens, (self._tokens, self._offsets, self._loss_mask))

    def __len__(self) -> int:
        return self._offsets.shape[0] - 1

    def _row(self, i: Any) -> int:
        n = len(self)
        i = operator.index(i)
        if not -n <= i < n:
            raise IndexError(f"row {i} out of range for {n} rows")
        return i % n

    def __getitem__(self, i: int) -> np.ndarray:
        i = self._row(i)
        return self._tokens[self._offsets[i] : self._offsets[i + 1]]

    def __iter__(self):
        for i in range(len(self)):
            yield self[i]

    def __repr__(self) -> str:
        return f"RaggedTokens({len(self)} rows, {self._tokens.shape[0]} tokens{', loss_mask' if self._loss_mask is not None else ''})"

    def lengths(self) -> np.ndarray:
        """Tokens per row."""
        return np.diff(self._offsets)

    def row_mask(self, i: int) -> np.ndarray:
        """The loss mask of row ``i`` (indexed as rows are: negative counts from the end)."""
        if self._loss_mask is None:
            raise ValueError("this result has no loss mask: render with loss_mask=True or mode='training'")
        i = self._row(i)
        return self._loss_mask[self._offsets[i] : self._offsets[i + 1]]

    def to_list(self) -> List[List[int]]:
        """Rows as lists of ints (as the single-call renders return them)."""
        flat = self._tokens.tolist()
        off = self._offsets.tolist()
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
        if with_loss_mask and self._loss_mask is None:
            raise ValueError("this result has no loss mask: render with loss_mask=True or mode='training'")
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
        pad_rows = kernels().pad_rows

        # safe unchecked: the constructor proved 0 <= offsets[0] <= ... <= offsets[-1] <= len(tokens)
        # == len(loss_mask), and the arrays are read-only copies
        pad_rows(self._tokens, self._offsets, ids, attn, side == "left")
        if with_loss_mask:
            lm = np.zeros((n, width), dtype=np.uint8)
            pad_rows(self._loss_mask, self._offsets, lm, np.zeros_like(attn), side == "left")
            return ids, attn, lm
        return ids, attn


_U32_MAX = 2**32 - 1


def _int_array(values: Any, what: str, allow_bool: bool = False) -> np.ndarray:
    """``values`` as a 1-D NumPy array of integers (bools if ``allow_bool``), not yet copied;
    an empty list (NumPy's float64) is an empty array of integers. A masked array with masked
    entries is refused: its buffer holds fill values, not what ``list(values)`` yields."""
    if isinstance(values, np.ma.MaskedArray) and np.ma.is_masked(values):
        i = int(np.flatnonzero(np.ma.getmaskarray(values).ravel())[0])
        raise ValueError(f"{what} is a masked array with masked entries (the first at index {i})")
    a = np.asarray(values)
    if a.ndim != 1:
        raise ValueError(f"{what} must be 1-D, got shape {a.shape}")
    kind = a.dtype.kind
    if kind in "iu" or (allow_bool and kind == "b"):
        return a
    if a.size == 0:
        return np.zeros(0, dtype=np.int64)
    raise TypeError(f"{what} must be integers, got dtype {a.dtype}")


# The batch's distinct pieces and memos are bounded in (approximate) bytes: past this the pending
# texts are encoded and the dedup index and memos start over, so a batch streamed from a
# generator keeps its tokens, not every text it has seen.
BATCH_POOL_MAX_BYTES = 64 << 20
_POOL_ENTRY_BYTES = 160  # a dict slot, a pending tuple, a blob's header
_MEMO_ENTRY_BYTES = 400  # a memo's key and entry tuples and piece lists


class _PiecePool:
    """The distinct pieces of a batch (header parts, terminators, texts) by value, each with a
    piece id: ``blobs[pid]`` is its ``uint32`` buffer, once encoded. New texts wait in
    ``pending`` until :meth:`flush` encodes them. ``bytes`` approximates what the dedup index,
    the pending texts and the batch's memos hold."""

    def __init__(self, renderer) -> None:
        self.renderer = renderer
        self.ids: dict = {}  # text, or tuple of token ids -> piece id
        self.blobs: List[Any] = []
        self.pending: List[Tuple[int, str]] = []
        self.bytes = 0

    def of_list(self, toks: list) -> int:
        key = tuple(toks)  # by value: a freed list's id() would be another list's
        pid = self.ids.get(key)
        if pid is None:
            pid = self.ids[key] = len(self.blobs)
            self.blobs.append(array.array("I", toks))
            self.bytes += _POOL_ENTRY_BYTES + _LIST_TOKEN_BYTES * len(toks)
        return pid

    def of_text(self, text: str) -> int:
        pid = self.ids.get(text)
        if pid is None:
            pid = self.ids[text] = len(self.blobs)
            self.blobs.append(None)
            self.pending.append((pid, text))
            self.bytes += _POOL_ENTRY_BYTES + getsizeof(text)
        return pid

    def flush(self) -> None:
        """Encode the pending texts into their blobs and forget the dedup index (piece ids stay
        valid). Raises UnicodeEncodeError for a text with a lone surrogate."""
        if self.pending:
            texts = [t for _, t in self.pending]
            for (pid, _), blob in zip(self.pending, _encode_texts(self.renderer, texts)):
                self.blobs[pid] = blob
            self.pending = []
        self.ids.clear()
        self.bytes = 0

    def surrogate_error(self, occ_piece: List[int], row_occ: List[int]) -> Optional[ValueError]:
        """The error of the first complete row whose pending texts hold a lone surrogate: the
        single call's text (which fails at that row's first such text, all its headers being
        encoded already), naming the conversation; None if no pending text has one."""
        bad = {}
        for pid, text in self.pending:
            if not text.isascii():
                try:
                    text.encode("utf-8")
                except UnicodeEncodeError as exc:
                    bad[pid] = exc
        if not bad:
            return None
        occ = np.asarray(occ_piece[: row_occ[-1]], dtype=np.int64)
        hits = np.flatnonzero(np.isin(occ, np.fromiter(bad, dtype=np.int64, count=len(bad))))
        if not hits.size:
            return None  # only the unfinished row has one: its own error path reports it
        pos = int(hits[0])
        row = bisect.bisect_right(row_occ, pos) - 1
        return _with_index(surrogate_error(bad[int(occ[pos])]), f"conversation {row}")


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
    ``conversations`` may be any iterable (a generator is read once, in order); an error names
    the first conversation that fails, by its index.
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


def _single_error(renderer, conv, config, mode: str, role) -> Optional[Exception]:
    """The error the single call of ``conv`` raises (None if it renders): a failed row is
    reported as its single call reports it, whatever the batch met first in it."""
    try:
        renderer.render_conversation(conv, config, mode, role)
    except Exception as exc:
        return exc
    return None


def _render_batch(encoding, conversations, mode, next_role, config, loss_mask, mask_last_assistant_only) -> RaggedTokens:
    want_mask = (mode == "training") if loss_mask is None else bool(loss_mask)
    role = _as_role(next_role) if mode == "completion" else None
    renderer = encoding.renderer
    pool = _PiecePool(renderer)
    occ_piece: List[int] = []
    occ_flag: List[int] = []
    row_occ: List[int] = [0]
    return_rows: List[int] = []
    of_list, of_text = pool.of_list, pool.of_text
    header_entry, content_texts, terminator = renderer.header_entry, renderer.content_texts, renderer.terminator
    start_pid = of_list(_START_LIST)
    role_pid = of_text(role.value) if role is not None else -1
    # Memos of the pieces of messages seen before, all by value: a message equal to an earlier
    # one (a shared system prompt, or its copy read from JSON) is planned once.
    head_memo: dict = {}  # plain text messages: (header key, flag) -> (author, rest, terminator)
    memo: dict = {}  # other messages: _value_key -> (pieces, flags, bytes of their texts)
    # Objects of a list or tuple all exist (so their id() is theirs) and stay unchanged while it
    # is rendered: no user code runs between rows. A generator may change or free a message
    # between rows, so its messages go by value only.
    ident: Optional[dict] = {} if isinstance(conversations, (list, tuple)) else None
    bound = BATCH_POOL_MAX_BYTES

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
                        parts = header_entry(r, m.author.name, m.recipient, m.channel, m.content_type)
                        head = head_memo[hkey] = (of_list(parts[1]), of_list(parts[2]), of_list(terminator(r, m.recipient)))
                        pool.bytes += _MEMO_ENTRY_BYTES + getsizeof(m.author.name) + getsizeof(m.recipient) + getsizeof(m.channel) + getsizeof(m.content_type)
                    occ_piece += (head[0], head[1], of_text(content[0].text), head[2])
                    occ_flag += (0, flag, flag, flag)
                    continue
                if ident is not None:
                    ikey = (id(m), flag, has_fn)
                    entry = ident.get(ikey)
                    if entry is not None:
                        occ_piece += entry[1]
                        occ_flag += entry[2]
                        continue
                vkey = _value_key(m, r, flag, has_fn)
                entry = memo.get(vkey) if vkey is not None else None
                if entry is None:
                    entry = _message_pieces(m, r, flag, has_fn, header_entry, content_texts, terminator, of_list, of_text)
                    if vkey is not None:
                        memo[vkey] = entry
                        pool.bytes += _MEMO_ENTRY_BYTES + entry[2]
                if ident is not None:
                    ident[ikey] = (m, entry[0], entry[1])  # holds m: its id() stays its own
                    pool.bytes += _MEMO_ENTRY_BYTES
                occ_piece += entry[0]
                occ_flag += entry[1]
            if role is not None:
                occ_piece.append(start_pid)
                occ_piece.append(role_pid)
                occ_flag.append(0)
                occ_flag.append(0)
            elif mode == "training" and _ends_in_final(msgs):
                return_rows.append(index)
        except (HarmonyError, ValueError, TypeError, AttributeError) as exc:
            # an earlier conversation whose texts are not encoded yet may fail first
            earlier = pool.surrogate_error(occ_piece, row_occ)
            if earlier is not None:
                raise earlier from None
            single = _single_error(renderer, conv, config, mode, role)
            if single is None:
                raise
            raise _with_index(single, f"conversation {index}") from None
        row_occ.append(len(occ_piece))
        if pool.bytes > bound:
            _flush(pool, occ_piece, row_occ)
            head_memo.clear()
            memo.clear()
            if ident is not None:
                ident.clear()

    # piece table: every distinct piece's tokens back to back, joined as bytes (no Python int
    # per token: fresh texts come from tiktoken as uint32 buffers)
    _flush(pool, occ_piece, row_occ)
    blobs = pool.blobs
    count = len(blobs)
    piece_len = np.fromiter((memoryview(b).nbytes >> 2 for b in blobs), dtype=np.int64, count=count)
    piece_off = np.zeros(count + 1, dtype=np.int64)
    np.cumsum(piece_len, out=piece_off[1:])
    piece_pool = np.frombuffer(b"".join(blobs), dtype=np.uint32)
    pool.blobs = []  # the joined copy is all that is needed now
    del blobs

    occ = np.asarray(occ_piece, dtype=np.int64)
    flags = np.asarray(occ_flag, dtype=np.uint8)
    row_occ_off = np.asarray(row_occ, dtype=np.int64)
    occ_cum = np.zeros(occ.shape[0] + 1, dtype=np.int64)
    np.cumsum(piece_len[occ], out=occ_cum[1:])
    offsets = occ_cum[row_occ_off]

    assemble_rows = kernels().assemble_rows

    tokens = np.empty(int(offsets[-1]), dtype=np.uint32)
    mask = np.zeros(tokens.shape[0], dtype=np.uint8) if want_mask else np.zeros(0, dtype=np.uint8)
    assemble_rows(piece_pool, piece_off, occ, flags, row_occ_off, offsets, tokens, mask, want_mask)
    if return_rows:
        rows = np.asarray(return_rows, dtype=np.int64)
        ends = offsets[rows + 1]
        nonempty = ends > offsets[rows]
        tokens[ends[nonempty] - 1] = RETURN
    return RaggedTokens._own(tokens, offsets, mask if want_mask else None)


def _flush(pool: _PiecePool, occ_piece: List[int], row_occ: List[int]) -> None:
    """:meth:`_PiecePool.flush`, a lone surrogate reported for its conversation, in the words of
    that conversation's single call (quoting its own text only)."""
    try:
        pool.flush()
    except UnicodeEncodeError as exc:
        err = pool.surrogate_error(occ_piece, row_occ)
        if err is None:  # pragma: no cover - every failing text is pending; quote none of them
            err = ValueError(f"invalid conversation JSON: text contains a lone surrogate {exc.object[exc.start:exc.end]!r}")
        raise err from None


def _tools_key(tools: Any) -> Optional[tuple]:
    """What the "# Tools" section of ``tools`` depends on (the tools' parameters as the JSON
    text it is rendered from), or None when it renders nothing."""
    if not tools:
        return None
    return tuple(
        (key, ns.name, ns.description,
         tuple((t.name, t.description, None if t.parameters is None else json.dumps(t.parameters)) for t in ns.tools))
        for key, ns in tools.items()
    )


def _value_key(m: Message, r: Role, flag: int, has_fn: bool) -> Optional[tuple]:
    """A hashable value that determines a message's pieces: its header fields, mask flag and
    every input its contents' texts are rendered from; None when there is none cheaply (a
    content class of the caller's own, or fields the render itself would refuse)."""
    author = m.author
    parts: list = [r, author.name, m.recipient, m.channel, m.content_type, flag, has_fn]
    try:
        for c in m.content:
            cls = c.__class__
            if cls is TextContent:
                parts.append(c.text)
            elif cls is SystemContent:
                cc = c.channel_config
                parts.append((
                    cls, c.model_identity, c.reasoning_effort, c.conversation_start_date, c.knowledge_cutoff,
                    None if cc is None else (tuple(cc.valid_channels), bool(cc.channel_required)),
                    _tools_key(c.tools),
                ))
            elif cls is DeveloperContent:
                parts.append((cls, c.instructions, _tools_key(c.tools)))
            else:
                return None
    except Exception:
        return None  # what the key cannot read, the render itself reports
    key = tuple(parts)
    try:
        hash(key)  # fields set by hand to unhashable values
    except TypeError:
        return None
    return key


def _message_pieces(m, r, flag, has_fn, header_entry, content_texts, terminator, of_list, of_text) -> tuple:
    """``(piece ids, mask flags, bytes of its texts)`` of one message: author part, rest of
    header, texts, terminator."""
    parts = header_entry(r, m.author.name, m.recipient, m.channel, m.content_type)
    pieces = [of_list(parts[1]), of_list(parts[2])]
    flags = [0, flag]
    size = 0
    for text in content_texts(m, r, has_fn):
        pieces.append(of_text(text))
        flags.append(flag)
        size += getsizeof(text)
    pieces.append(of_list(terminator(r, m.recipient)))
    flags.append(flag)
    return pieces, flags, size


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
    ``tokens[offsets[b]:offsets[b + 1]]``), in read-only memory of the table's own: a caller's
    array changed afterwards changes nothing here. ``errors[b]`` is None, or the error text the single
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
        "unparsed", "diagnostics", "_overrides", "_encoding", "_texts", "_override_rows",
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


def _flatten(completions: Any, offsets: Any, errors: str):
    """``(flat uint32 tokens, int64 offsets, {index: exception})`` of the batch input.

    The flat tokens are read-only and never the caller's memory: the table decodes them later,
    and ids changed in between would reach the kernels unchecked.
    """
    from .tokens import owned_token_array, token_array

    if offsets is not None:
        if isinstance(completions, np.ndarray) and completions.ndim != 1:
            raise TypeError(
                f"with offsets=, completions must be one flat (1-D) token array, got an array of shape {completions.shape}"
            )
        flat = owned_token_array(completions, "completions")
        if isinstance(offsets, np.ma.MaskedArray) and np.ma.is_masked(offsets):
            raise ValueError("offsets must be a 1-D integer array of len n + 1 without masked entries")
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
            flat = np.frombuffer(buf, dtype=np.uint32) if len(buf) else np.empty(0, np.uint32)
            flat.flags.writeable = False
            return flat, lengths, {}
    bad: dict = {}
    parts = []
    for i, c in enumerate(items):
        try:
            arr = token_array(c)
        except (TypeError, OverflowError, ValueError) as exc:
            if errors == "raise":
                raise _with_index(exc, f"completion {i}") from exc
            # kept for its type and text only: its traceback (and its context's) would hold this
            # frame and its callers' in a reference cycle
            exc.__context__ = exc.__cause__ = None
            bad[i] = exc.with_traceback(None)
            arr = np.empty(0, np.uint32)
        parts.append(arr)
        lengths[i + 1] = lengths[i] + arr.shape[0]
    # concatenate copies even a single part: the result is never a caller's array
    flat = np.concatenate(parts) if parts else np.empty(0, np.uint32)
    flat = flat.astype(np.uint32, copy=False)
    flat.flags.writeable = False
    return flat, lengths, bad


def parse_batch(encoding, completions: Any, *, offsets: Any = None, role: Any = None, strict: Any = True, errors: str = "raise") -> MessageTable:
    """Parse many completions at once; see :meth:`HarmonyEncoding.parse_batch`."""
    if errors not in _ERRORS:
        raise ValueError(f"errors must be one of {_ERRORS}, got {errors!r}")
    if errors == "recover" and strict is False:
        raise ValueError("errors='recover' reads completions by the strict rules first; it cannot be combined with strict=False")
    with _gc_paused():
        return _parse_batch(encoding, completions, offsets, role, strict, errors)


def _parse_batch(encoding, completions, offsets, role, strict, errors) -> MessageTable:
    scan_batch, span_hashes = kernels().scan_batch, kernels().span_hashes
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
            hit = t._parse_header(flat[a:z], rr)
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
                parse_completion(encoding, flat[starts[b] : starts[b + 1]], r, strict)
            except Exception as e:  # the single call's error is the row's error
                exc = e
            else:  # pragma: no cover - the scan and the single call disagree: a bug
                raise AssertionError(f"completion {b} was flagged but parses alone")
        if errors == "raise":
            raise _with_index(exc, f"completion {b}") from exc
        error_text[b] = str(exc)
        error_type[b] = type(exc).__name__
        # its traceback holds this frame (flat, records...): a cycle that would keep every
        # batch's arrays alive until a full collection
        exc = None
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
    table._override_rows = None
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


def _decode_contents(table: MessageTable, lo: int = 0, hi: Optional[int] = None) -> List[str]:
    """The content texts of rows ``lo:hi`` (default: every row)."""
    gather_spans = kernels().gather_spans
    from .parse import stream_text, tables

    if hi is None:
        hi = len(table)
    cs = table.content_start[lo:hi]
    ce = table.content_stop[lo:hi]
    overrides = table._overrides
    rows = None
    if overrides:
        # spans that are not decoded from the byte table: header-only records, unknown ids and
        # recovered messages; their rows, sorted once, are searched for this range's
        rows = table._override_rows
        if rows is None:
            rows = table._override_rows = np.sort(np.fromiter(overrides.keys(), dtype=np.int64, count=len(overrides)))
        rows = rows[np.searchsorted(rows, lo) : np.searchsorted(rows, hi)]
        if rows.size:
            ce = ce.copy()
            ce[rows - lo] = cs[rows - lo]
    vocab = table._encoding._vocab
    data, byte_off = gather_spans(vocab.flat, vocab.offsets, table.tokens, cs, ce)
    # invalid UTF-8 replaced, as the oracle's token-by-token decoding does when every id is known
    view = memoryview(data)
    bo = byte_off.tolist()
    texts = [str(view[bo[i] : bo[i + 1]], "utf-8", "replace") for i in range(hi - lo)]
    if rows is not None and rows.size:
        t = None
        for i in rows.tolist():
            text = overrides[i]
            if text is None:
                if t is None:
                    t = tables(table._encoding)
                text = stream_text(t, table.tokens[table.content_start[i] : table.content_stop[i]].tolist())
            texts[i - lo] = text
    return texts

