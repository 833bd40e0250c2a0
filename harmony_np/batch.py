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
from .model import RenderConversationConfig, Role, TextContent
from .render import _START_LIST, _as_role
from .vocab import RETURN

_ASSISTANT = Role.ASSISTANT
_MODES = ("completion", "conversation", "training")
_NO_SPECIAL: frozenset = frozenset()


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
            elif mode == "training" and msgs and msgs[-1].author.role is _ASSISTANT and msgs[-1].channel == "final":
                return_rows.append(index)
        except Exception as exc:
            raise type(exc)(f"conversation {index}: {exc}") if isinstance(exc, (HarmonyError, ValueError, TypeError)) else exc
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


def _encode_texts(renderer, texts: Sequence[str]) -> list:
    """uint32 buffers (``array.array`` or tiktoken's buffer) of ``texts``; cached ones come from
    the renderer's text cache, long fresh ones are encoded on its thread pool."""
    out: List[Any] = [None] * len(texts)
    fresh = []
    cached = renderer._texts
    for i, t in enumerate(texts):
        toks = cached.get(t)
        if toks is not None:
            out[i] = array.array("I", toks)
        else:
            fresh.append(i)
    if not fresh:
        return out
    buf = renderer._encode_buffer
    if buf is not None:
        def encode(chunk):
            return [buf(texts[i], _NO_SPECIAL) for i in chunk]
    else:  # pragma: no cover - tiktoken without the buffer API
        def encode(chunk):
            return [array.array("I", renderer._encode(texts[i])) for i in chunk]
    total = 0
    for i in fresh:
        total += len(texts[i])
    workers = renderer._workers
    # a thread hand-off only pays for long texts (tiktoken holds the GIL between texts)
    if workers > 1 and total >= 65_536 and total >= 1024 * len(fresh):
        # interleave by length so each worker gets a similar share of characters
        order = sorted(fresh, key=lambda i: -len(texts[i]))
        chunks = [order[w::workers] for w in range(workers)]
        for chunk, blobs in zip(chunks, renderer.pool().map(encode, chunks)):
            for i, b in zip(chunk, blobs):
                out[i] = b
    else:
        for i, b in zip(fresh, encode(fresh)):
            out[i] = b
    return out
