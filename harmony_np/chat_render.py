"""``apply_chat_template``: chat-format conversations through the gpt-oss chat template to text,
token ids and the assistant mask, one conversation or a batch.

The text is :mod:`harmony_np.chat_template`'s. Its ids are what
``encode(text, allowed_special="all")`` gives: the text is cut at the special tokens and each
piece between them is tiktoken's ``encode_ordinary``. The assistant mask is 1 on the tokens of the
template's generation blocks (each assistant turn from its ``<|start|>`` through its terminator);
those blocks begin and end at special tokens, so cutting there changes no id.

A batch is the fast path: no harmony objects, every distinct piece of text (the system message,
the developer message with its tools, headers, repeated contents) encoded once per batch by
value, the fresh ones in one batch encode through the BPE seam (harmony_np.bpe), and the rows assembled by
one kernel call.
"""

from __future__ import annotations

import re
import secrets
from sys import getsizeof
from typing import Any, Dict, List, NamedTuple, Optional, Sequence, Tuple, Union

import numpy as np

from .chat_template import render_chunks, template_date, template_variables
from .errors import with_index
from .ragged import RaggedTokens
from .tuning import BATCH_POOL_MAX_BYTES
from .vocab import SPECIAL_TOKENS

__all__ = ["Filled", "Skeleton", "Skeletons", "apply_chat_template", "render_rows"]

# What looks like a special token ("<|" name "|>", names of [a-z0-9_]); a match that is not one
# stays text. No special token can start inside such a match (its name holds no "<"), so cutting
# at the matches that are special tokens is cutting at every special token. (An alternation of
# the 1,091 special tokens' texts took 27 µs a row.)
_SPECIAL_LIKE = re.compile(r"(<\|[a-z0-9_]+\|>)")
_POOL_ENTRY_BYTES = 160  # a dict slot, a pending tuple, a blob's header (as render_batch's pool)
_MEMO_ENTRY_BYTES = 120  # a memo's dict slot and tuple header


def _pieces(chunks: List[tuple], gen: List[bool]) -> Tuple[List[str], List[bool]]:
    """Consecutive chunks of the same kind joined: the text between two generation marks."""
    pieces: List[str] = []
    flags: List[bool] = []
    for chunk, g in zip(chunks, gen):
        text = "".join(chunk)
        if flags and flags[-1] == g:
            pieces[-1] += text
        else:
            pieces.append(text)
            flags.append(g)
    return pieces, flags


def _render(conversation: Any, tools: Any, add_generation_prompt: bool, date: str, variables: dict) -> Tuple[List[str], List[bool]]:
    chunks, gen = render_chunks(conversation, tools, add_generation_prompt, date=date, **variables)
    return _pieces(chunks, gen)


def _single(enc, pieces: List[str], flags: List[bool], want_mask: bool) -> Tuple[List[int], List[int]]:
    ids: List[int] = []
    mask: List[int] = []
    for piece, g in zip(pieces, flags):
        toks = enc.encode(piece, allowed_special="all") if piece else []
        ids += toks
        if want_mask:
            mask += [1 if g else 0] * len(toks)
    return ids, mask


class _Pool:
    """The distinct pieces of a batch by value. A text piece's id is its place among the batch's
    texts (0, 1, ...), whose ids :meth:`flush` encodes in joined calls into flat arrays, in that
    order; a special token's is ``-1 - token`` until :meth:`table` puts the special tokens after
    the texts. No Python object per piece is kept past its encoding."""

    def __init__(self, enc) -> None:
        self.enc = enc
        self.renderer = enc.renderer
        self.ids: Dict[str, int] = {}
        self.pending: List[str] = []
        self.encoded: List[Tuple[Any, Any]] = []  # (flat ids, ids per text) of each flush
        self.n_texts = 0
        self.bytes = 0

    def text(self, text: str) -> int:
        pid = self.ids.get(text)
        if pid is None:
            if not (text.isascii() or _encodable(text)):
                # a lone surrogate: tiktoken's wrapper replaces it (as encode(text) does); its own
                # piece, in order, encoded now
                self._flush_pending()
                toks = self.enc.encode_ordinary(text)
                self.encoded.append((np.asarray(toks, dtype=np.uint32), np.array([len(toks)], np.int64)))
                pid = self.ids[text] = self.n_texts
                self.n_texts += 1
                return pid
            pid = self.ids[text] = self.n_texts
            self.n_texts += 1
            self.pending.append(text)
            self.bytes += _POOL_ENTRY_BYTES + getsizeof(text)
        return pid

    def _flush_pending(self) -> None:
        if self.pending:
            self.encoded.append(self.renderer.encode_texts_flat(self.pending))
            self.pending = []

    def flush(self) -> None:
        """Encode the pending texts and forget the dedup index (piece ids stay valid)."""
        self._flush_pending()
        self.ids.clear()
        self.bytes = 0

    def table(self, occ: List[int]) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(pool, pool_off, occurrences)`` for :meth:`RaggedTokens.from_piece_table`."""
        self.flush()
        occ_arr = np.asarray(occ, dtype=np.int64)
        specials = occ_arr < 0
        flats = [f for f, _ in self.encoded]
        lengths = [n for _, n in self.encoded]
        if specials.any():
            used = np.unique(occ_arr[specials])  # -1 - token, ascending: tokens descending
            flats.append((-1 - used).astype(np.uint32))
            lengths.append(np.ones(used.shape[0], np.int64))
            occ_arr[specials] = self.n_texts + np.searchsorted(used, occ_arr[specials])
        pool = np.concatenate(flats) if flats else np.zeros(0, np.uint32)
        piece_len = np.concatenate(lengths) if lengths else np.zeros(0, np.int64)
        pool_off = np.zeros(piece_len.shape[0] + 1, dtype=np.int64)
        np.cumsum(piece_len, out=pool_off[1:])
        return pool, pool_off, occ_arr


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _chunk_pieces(chunk: str, split, special_id: Dict[str, int], pool: "_Pool") -> List[int]:
    """The piece ids of a text cut at its special tokens: the special tokens and the texts
    between them."""
    if "<|" not in chunk:
        return [pool.text(chunk)]
    out: List[int] = []
    parts = split(chunk)
    text = parts[0]
    for k in range(1, len(parts), 2):
        token = special_id.get(parts[k])
        if token is None:  # special-looking text
            text += parts[k] + parts[k + 1]
            continue
        if text:
            out.append(pool.text(text))
        out.append(-1 - token)
        text = parts[k + 1]
    if text:
        out.append(pool.text(text))
    return out


def _part_ids(k: int, part: str, memo: Dict[str, Tuple[int, ...]], pool: "_Pool", split) -> Sequence[int]:
    """The piece ids of a chunk's ``k``-th part: a content (odd ``k``) tokenized alone, cut at
    its special tokens if it has any; the template's text (even ``k``) through ``memo``, since it
    recurs (headers, the system message)."""
    if k & 1:
        if not part:
            return ()
        if "<|" in part:
            return _chunk_pieces(part, split, SPECIAL_TOKENS, pool)
        return (pool.text(part),)
    pids = memo.get(part)
    if pids is None:
        pids = memo[part] = tuple(_chunk_pieces(part, split, SPECIAL_TOKENS, pool))
        pool.bytes += _MEMO_ENTRY_BYTES + getsizeof(part) + 8 * len(pids)
    return pids


def _batch(enc, conversations: Sequence[Any], tools: Any, add_generation_prompt: bool, date: str, variables: dict, want_mask: bool, row_tools: Optional[Sequence[Any]] = None) -> RaggedTokens:
    pool = _Pool(enc)
    occ: List[int] = []
    occ_flag: List[int] = []
    row_occ: List[int] = [0]
    split = _SPECIAL_LIKE.split
    memo: Dict[str, Tuple[int, ...]] = {}  # template text -> its piece ids
    batch_cache: dict = {}  # the system message and each tools object's namespace, per batch
    plans: Dict[Any, list] = {}  # skeleton -> its plan in this batch's pool
    for index, conversation in enumerate(conversations):
        if conversation.__class__ is Filled:
            skeleton, contents, thinking, at = conversation
            n = skeleton.n  # slot j < n: message j's content; n + j: its thinking
            plan = plans.get(skeleton)
            if plan is None:
                plan = plans[skeleton] = skeleton.plan(memo, pool, split)
            for ids, flags, slot, joined in plan:
                if ids is not None:  # the template's text: its ids known
                    occ += ids
                    occ_flag += flags
                    continue
                if joined is None:  # a content: non-empty, without "<|"
                    occ.append(pool.text(contents[at + slot] if slot < n else thinking[at + slot - n]))
                    occ_flag.append(flags)
                    continue
                ids = _part_ids(slot, "".join([x if x.__class__ is str else contents[at + x] if x < n else thinking[at + x - n] for x in joined]), memo, pool, split)
                occ += ids
                occ_flag += (flags,) * len(ids)
        else:
            try:
                chunks, gen = render_chunks(
                    conversation, tools if row_tools is None else row_tools[index], add_generation_prompt, date=date, batch_cache=batch_cache, **variables
                )
            except Exception as exc:
                raise with_index(exc, f"conversation {index}") from exc
            # every chunk runs from a <|start|> to after a special token: chunks are tokenized
            # apart, and so is each content in a chunk (it sits between two special tokens)
            for chunk, g in zip(chunks, gen):
                start = len(occ)
                for k, part in enumerate(chunk):
                    occ += _part_ids(k, part, memo, pool, split)
                n = len(occ) - start
                occ_flag += (1,) * n if g else (0,) * n
        row_occ.append(len(occ))
        if pool.bytes > BATCH_POOL_MAX_BYTES:
            pool.flush()
            memo.clear()
    table, table_off, occ_arr = pool.table(occ)
    return RaggedTokens.from_piece_table(table, table_off, occ_arr, occ_flag, row_occ, want_mask)


def _is_batch(conversation: Any) -> bool:
    """A list of conversations (HF's rule: the first item is itself a list of messages)."""
    if isinstance(conversation, (list, tuple)) and conversation:
        first = conversation[0]
        return isinstance(first, (list, tuple))
    return False


def apply_chat_template(
    enc,
    conversation: Any,
    *,
    tools: Optional[List[dict]] = None,
    add_generation_prompt: bool = False,
    tokenize: bool = True,
    return_dict: bool = False,
    return_assistant_tokens_mask: bool = False,
    reasoning_effort: Optional[str] = None,
    model_identity: Optional[str] = None,
    builtin_tools: Optional[List[str]] = None,
    date: Any = None,
) -> Union[str, List[str], List[int], Dict[str, Any], RaggedTokens]:
    """See :meth:`harmony_np.encoding.HarmonyEncoding.apply_chat_template`."""
    day = template_date(date)
    variables = template_variables(reasoning_effort, model_identity, builtin_tools)
    want_mask = bool(return_assistant_tokens_mask)
    if _is_batch(conversation):
        if not tokenize:
            out = []
            for index, conv in enumerate(conversation):
                try:
                    pieces, _ = _render(conv, tools, add_generation_prompt, day, variables)
                except Exception as exc:
                    raise with_index(exc, f"conversation {index}") from exc
                out.append("".join(pieces))
            return out
        rows = _batch(enc, conversation, tools, add_generation_prompt, day, variables, want_mask)
        if not return_dict:
            return rows
        result: Dict[str, Any] = {"input_ids": rows}
        if want_mask:
            result["assistant_masks"] = RaggedTokens(rows.loss_mask, rows.offsets)
        return result
    pieces, flags = _render(conversation, tools, add_generation_prompt, day, variables)
    if not tokenize:
        return "".join(pieces)
    ids, mask = _single(enc, pieces, flags, want_mask)
    if not return_dict:
        return ids
    single: Dict[str, Any] = {"input_ids": ids}
    if want_mask:
        single["assistant_masks"] = mask
    return single


def render_rows(
    enc,
    rows: Sequence[Tuple[Any, Any]],
    *,
    add_generation_prompt: bool = False,
    reasoning_effort: Optional[str] = None,
    model_identity: Optional[str] = None,
    builtin_tools: Optional[List[str]] = None,
    date: Any = None,
) -> RaggedTokens:
    """Dataset rows ``(messages, tools)``, each with its own tools (as a chat dataset's rows have
    them), through the template: ids with the assistant mask as ``loss_mask``; row ``i`` equals
    ``apply_chat_template(messages_i, tools=tools_i, return_assistant_tokens_mask=True)``. A row
    may instead be a :class:`Filled` (of :class:`Skeletons` made with the same options)."""
    day = template_date(date)
    variables = template_variables(reasoning_effort, model_identity, builtin_tools)
    conversations = [row if row.__class__ is Filled else row[0] for row in rows]
    tools = [None if row.__class__ is Filled else row[1] for row in rows]
    return _batch(enc, conversations, None, add_generation_prompt, day, variables, True, tools)


class Filled(NamedTuple):
    """A conversation of plain messages of ``skeleton``'s shape: its ``n`` messages' contents are
    ``contents[start:start + n]`` and their thinking ``thinking[start:start + n]`` (None where a
    message has none)."""

    skeleton: "Skeleton"
    contents: Sequence[Optional[str]]
    thinking: Sequence[Optional[str]]
    start: int


# a value's place in a skeleton: private-use characters around a per-skeleton nonce and the slot
_SLOT = "\ue000{}.{}\ue001"
_SLOT_SPLIT = re.compile("\ue000([0-9a-f]+)\\.([0-9]+)\ue001")
_SLOT_MARKS = ("\ue000", "\ue001")
_NO_SKELETON = object()


class Skeleton:
    """The template's chunks for one shape of ``n`` plain messages, values left out: each chunk
    a tuple of the template's texts (str), value slots (int ``j``: message ``j``'s content;
    ``n + j``: its thinking) and lists of both (a value inside the template's text)."""

    __slots__ = ("parts", "gen", "n")

    def __init__(self, parts: tuple, gen: tuple, n: int) -> None:
        self.parts, self.gen, self.n = parts, gen, n

    def _value(self, slot: int, contents: Sequence[Any], thinking: Sequence[Any], start: int) -> Any:
        return contents[start + slot] if slot < self.n else thinking[start + slot - self.n]

    def chunks(self, contents: Sequence[Any], thinking: Sequence[Any], start: int) -> Tuple[List[tuple], List[bool]]:
        """``(chunks, in_generation)`` of a conversation of this shape, as :func:`render_chunks`
        gives them (what :meth:`plan` emits, written out: the reference it is tested by)."""
        out = []
        for items in self.parts:
            out.append(tuple(
                x if x.__class__ is str else self._value(x, contents, thinking, start) if x.__class__ is int
                else "".join(y if y.__class__ is str else self._value(y, contents, thinking, start) for y in x)
                for x in items
            ))
        return out, list(self.gen)

    def plan(self, memo: Dict[str, Tuple[int, ...]], pool: "_Pool", split) -> list:
        """How :func:`_batch` emits a conversation of this shape into ``pool``: a list of
        ``(ids, flags, slot, joined)``, each one of: the template's text, its piece ids and mask
        flags known (``ids``); a content, encoded alone (``slot``, numbered as in :attr:`parts`;
        ``flags``: its flag); a text of values and the template's (``joined``, its items as in
        :attr:`parts`; ``slot``: its part's parity; ``flags``: its flag)."""
        plan: list = []
        ids: List[int] = []
        flags: List[int] = []

        for items, g in zip(self.parts, self.gen):
            flag = 1 if g else 0
            for k, x in enumerate(items):
                if x.__class__ is str:
                    got = _part_ids(k, x, memo, pool, split)
                    ids += got
                    flags += (flag,) * len(got)
                    continue
                if ids:
                    plan.append((tuple(ids), tuple(flags), 0, None))
                    ids, flags = [], []
                if x.__class__ is int and k & 1:
                    plan.append((None, flag, x, None))
                else:
                    plan.append((None, flag, k & 1, (x,) if x.__class__ is int else x))
        if ids:
            plan.append((tuple(ids), tuple(flags), 0, None))
        return plan


class Skeletons:
    """The skeletons of a batch's conversations of plain messages, one per shape.

    A plain message has a ``role`` (a str), a ``content`` and maybe a ``thinking``, each a
    non-empty str without ``"<|"``, and no other key; the conversation has no tools. The template
    reads such values only to print them: it tests them for truth (always true), for channel tags
    (never there) and for being strings (always), so its output is the same chunks for every
    conversation of one shape (the roles, in order, and which messages have thinking), with the
    values in fixed places. A shape's skeleton is the template rendered on placeholder values;
    it is made twice with different placeholders and used only if both agree and every
    placeholder is found once (else None: the rows take :func:`render_chunks`)."""

    def __init__(self, add_generation_prompt: bool, date: str, variables: dict) -> None:
        self.add_generation_prompt = add_generation_prompt
        self.date = date
        self.variables = variables
        self.role_ids: Dict[str, int] = {}
        self.role_names: List[str] = []
        self.skeletons: Dict[bytes, Optional[Skeleton]] = {}  # shape -> its skeleton (None: none)
        self.batch_cache: dict = {}

    def role_id(self, role: str) -> int:
        """A small int for ``role``, the same for equal strings (shape codes are built of these)."""
        rid = self.role_ids.get(role)
        if rid is None:
            rid = self.role_ids[role] = len(self.role_names)
            self.role_names.append(role)
        return rid

    def skeleton(self, key: bytes, codes: np.ndarray, start: int, stop: int) -> Optional[Skeleton]:
        """The skeleton for messages of shape ``codes[start:stop]`` (``role_id * 2 +
        has_thinking`` each, int64; ``key`` is those bytes), or None where none applies."""
        hit = self.skeletons.get(key, _NO_SKELETON)
        if hit is _NO_SKELETON:
            shape = [(self.role_names[c >> 1], bool(c & 1)) for c in codes[start:stop].tolist()]
            first, second = self._made(shape), self._made(shape)
            hit = self.skeletons[key] = Skeleton(first[0], first[1], len(shape)) if first is not None and first == second else None
        return hit  # type: ignore[return-value]

    def _made(self, shape: List[Tuple[str, bool]]) -> Optional[Tuple[tuple, tuple]]:
        nonce = secrets.token_hex(6)
        n = len(shape)
        messages = []
        for j, (role, thinking) in enumerate(shape):
            message = {"role": role, "content": _SLOT.format(nonce, j)}
            if thinking:
                message["thinking"] = _SLOT.format(nonce, n + j)
            messages.append(message)
        try:
            chunks, gen = render_chunks(messages, None, self.add_generation_prompt, date=self.date, batch_cache=self.batch_cache, **self.variables)
        except Exception:  # noqa: BLE001 - the rows take render_chunks, which raises it for each
            return None
        seen: set = set()
        parts = []
        for chunk in chunks:
            items: List[Any] = []
            for part in chunk:
                pieces = _SLOT_SPLIT.split(part)  # text, nonce, slot, text, nonce, slot, ..., text
                texts = pieces[0::3]
                if any(mark in t for t in texts for mark in _SLOT_MARKS):
                    return None  # the template's own text (an option's value) looks like a slot
                slots = []
                for k in range(1, len(pieces), 3):
                    slot = int(pieces[k + 1])
                    if pieces[k] != nonce or slot in seen or slot >= 2 * n:
                        return None
                    seen.add(slot)
                    slots.append(slot)
                if not slots:
                    items.append(part)
                elif len(slots) == 1 and not texts[0] and not texts[1]:
                    items.append(slots[0])
                else:  # values inside the template's text: joined with it
                    joined: List[Any] = []
                    for t, slot in zip(texts, slots + [None]):
                        if t:
                            joined.append(t)
                        if slot is not None:
                            joined.append(slot)
                    items.append(tuple(joined))
            parts.append(tuple(items))
        return tuple(parts), tuple(gen)
