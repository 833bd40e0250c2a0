"""Batch rendering: many conversations to one ragged token array, with loss masks.

Every conversation is planned in Python as a sequence of *pieces* (a header part, a content text,
a terminator). Pieces are deduplicated across the batch by value, so a system prompt, developer
instructions or tool schemas shared by all conversations (the same objects, or equal copies read
from JSON) are encoded once; fresh texts are encoded on a thread pool (tiktoken releases the GIL)
straight into NumPy buffers. A Numba kernel then copies pieces into the flat output, rows in
parallel. No Python object per token.
"""

from __future__ import annotations

import array
import bisect
import json
import marshal
from sys import getsizeof
from typing import Any, Iterable, List, Optional, Tuple

import numpy as np

from .errors import HarmonyError, with_index
from .gate import next_role_arg
from .model import DeveloperContent, Message, RenderConversationConfig, Role, SystemContent, TextContent
from .ragged import RaggedTokens
from .render import LIST_TOKEN_BYTES, START_LIST, ends_in_final, raise_json_input_error
from .rust_text import surrogate_error
from .threads import gc_paused
from .vocab import RETURN
from .tuning import BATCH_POOL_MAX_BYTES

__all__ = ["render_batch", "BATCH_POOL_MAX_BYTES"]

_ASSISTANT = Role.ASSISTANT
_MODES = ("completion", "conversation", "training")


# What a piece or memo entry weighs, against harmony_np.tuning.BATCH_POOL_MAX_BYTES:
_POOL_ENTRY_BYTES = 160  # a dict slot, a pending tuple, a blob's header
_MEMO_ENTRY_BYTES = 400  # a memo's key and entry tuples and piece lists
# marshal's current format: its back-references make the bytes of equal values differ when
# their objects are shared differently (a memo miss, never a wrong hit), and it dumps faster
_MARSHAL_VERSION = 4


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
            self.bytes += _POOL_ENTRY_BYTES + LIST_TOKEN_BYTES * len(toks)
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
            for (pid, _), blob in zip(self.pending, self.renderer.encode_texts(texts)):
                self.blobs[pid] = blob
            self.pending = []
        self.ids.clear()
        self.bytes = 0

    def take_blobs(self) -> List[Any]:
        """The pieces' buffers, handed over: the pool keeps none of them."""
        blobs, self.blobs = self.blobs, []
        return blobs

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
        return with_index(surrogate_error(bad[int(occ[pos])]), f"conversation {row}")


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
    with gc_paused():
        return _render_batch(encoding, conversations, mode, next_role, config, loss_mask, mask_last_assistant_only)


def _single_error(renderer, conv, config, mode: str, role) -> Optional[Exception]:
    """The error the single call of ``conv`` raises (None if it renders): a failed row is
    reported as its single call reports it, whatever the batch met first in it."""
    try:
        renderer.render_conversation(conv, config, mode, role)
    except Exception as exc:
        try:  # the JSON hand-over's error comes first, as in the facade's single call
            raise_json_input_error(conv, "conversation", Role.ASSISTANT if role is None else role)
        except Exception as err:
            return err
        return exc
    return None


def _render_batch(encoding, conversations, mode, next_role, config, loss_mask, mask_last_assistant_only) -> RaggedTokens:
    want_mask = (mode == "training") if loss_mask is None else bool(loss_mask)
    role = next_role_arg(next_role) if mode == "completion" else None
    renderer = encoding.renderer
    pool = _PiecePool(renderer)
    occ_piece: List[int] = []
    occ_flag: List[int] = []
    row_occ: List[int] = [0]
    return_rows: List[int] = []
    of_list, of_text = pool.of_list, pool.of_text
    header_entry, content_texts, terminator = renderer.header_entry, renderer.content_texts, renderer.terminator
    start_pid = of_list(START_LIST)
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
                entry = None
                if vkey is not None:
                    try:
                        entry = memo.get(vkey)
                    except TypeError:  # fields set by hand to unhashable values: no key
                        vkey = None
                if entry is None:
                    entry = _message_pieces(m, r, flag, has_fn, header_entry, content_texts, terminator, of_list, of_text)
                    if vkey is not None:
                        memo[vkey] = entry
                        pool.bytes += _MEMO_ENTRY_BYTES + entry[2]
                    # Only a message planned here is remembered by identity: rows read from JSON
                    # bring an equal copy each, met once, found by value
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
            elif mode == "training" and ends_in_final(msgs):
                return_rows.append(index)
        except (HarmonyError, ValueError, TypeError, AttributeError):
            # an earlier conversation whose texts are not encoded yet may fail first
            earlier = pool.surrogate_error(occ_piece, row_occ)
            if earlier is not None:
                raise earlier from None
            single = _single_error(renderer, conv, config, mode, role)
            if single is None:
                raise
            raise with_index(single, f"conversation {index}") from None
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
    last = (return_rows, RETURN) if return_rows else None
    return RaggedTokens.from_pieces(pool.take_blobs(), occ_piece, occ_flag, row_occ, want_mask, last)


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


def _tools_key(tools: Any) -> Any:
    """What the "# Tools" section of ``tools`` depends on, or None when it renders nothing.

    Usually one ``marshal`` dump of the namespaces' keys, names, descriptions and tools: equal
    bytes load back to values of the same exact built-in types, in the same order (marshal
    refuses subclasses and objects of other types), so their ``json.dumps`` texts, which the
    section is rendered from, are equal too. It costs a fraction of those texts (about 1.7 µs for
    four tools with nested schemas, against 6 µs for the JSON text of one of them), which matters
    when every row of a batch brings its own copy of the tools (rows read from JSON). What
    marshal refuses is keyed by the JSON texts themselves.
    """
    if not tools:
        return None
    # flat, each namespace's fields followed by its tool count and its tools' fields: the count
    # keeps the boundaries apart, and one list costs less than a tuple per tool
    fields: list = []
    for key, ns in tools.items():
        ns_tools = ns.tools
        fields += (key, ns.name, ns.description, len(ns_tools))
        for t in ns_tools:
            fields += (t.name, t.description, t.parameters)
    try:
        return marshal.dumps(fields, _MARSHAL_VERSION)
    except ValueError:  # a subclass or another type somewhere
        pass
    return tuple(
        (key, ns.name, ns.description,
         tuple((t.name, t.description, None if t.parameters is None else json.dumps(t.parameters)) for t in ns.tools))
        for key, ns in tools.items()
    )


def _content_key(c: Any) -> Any:
    """What the text of one content is rendered from, or ``_NO_KEY`` for a content class of the
    caller's own. A text content's key is its text; the others' are tuples led by their class,
    so no two kinds share a key."""
    cls = c.__class__
    if cls is TextContent:
        return c.text
    if cls is SystemContent:
        cc = c.channel_config
        return (
            cls, c.model_identity, c.reasoning_effort, c.conversation_start_date, c.knowledge_cutoff,
            None if cc is None else (tuple(cc.valid_channels), bool(cc.channel_required)),
            _tools_key(c.tools),
        )
    if cls is DeveloperContent:
        return (cls, c.instructions, _tools_key(c.tools))
    return _NO_KEY


_NO_KEY = object()


def _value_key(m: Message, r: Role, flag: int, has_fn: bool) -> Optional[tuple]:
    """A hashable value that determines a message's pieces: its header fields, mask flag and
    every input its contents' texts are rendered from; None when there is none cheaply (a
    content class of the caller's own, or fields the render itself would refuse)."""
    author = m.author
    try:
        content = m.content
        if len(content) == 1:  # the common shape: eight fields, the content's key last
            body = _content_key(content[0])
            if body is _NO_KEY:
                return None
            key: tuple = (r, author.name, m.recipient, m.channel, m.content_type, flag, has_fn, body)
        else:  # seven fields and one per content: never eight
            parts = [_content_key(c) for c in content]
            if any(p is _NO_KEY for p in parts):
                return None
            key = (r, author.name, m.recipient, m.channel, m.content_type, flag, has_fn, *parts)
    except Exception:
        return None  # what the key cannot read, the render itself reports
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

