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
from sys import getsizeof
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from .chat_template import render_chunks, template_date, template_variables
from .errors import with_index
from .ragged import RaggedTokens
from .tuning import BATCH_POOL_MAX_BYTES
from .vocab import SPECIAL_TOKENS

__all__ = ["apply_chat_template", "render_rows"]

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


def _batch(enc, conversations: Sequence[Any], tools: Any, add_generation_prompt: bool, date: str, variables: dict, want_mask: bool, row_tools: Optional[Sequence[Any]] = None) -> RaggedTokens:
    pool = _Pool(enc)
    special_id = SPECIAL_TOKENS
    occ: List[int] = []
    occ_flag: List[int] = []
    row_occ: List[int] = [0]
    split = _SPECIAL_LIKE.split
    memo: Dict[str, Tuple[int, ...]] = {}  # template text -> its piece ids
    batch_cache: dict = {}  # the system message and each tools object's namespace, per batch
    for index, conversation in enumerate(conversations):
        try:
            chunks, gen = render_chunks(
                conversation, tools if row_tools is None else row_tools[index], add_generation_prompt, date=date, batch_cache=batch_cache, **variables
            )
        except Exception as exc:
            raise with_index(exc, f"conversation {index}") from exc
        # every chunk runs from a <|start|> to after a special token: chunks are tokenized apart,
        # and so is each content in a chunk (it sits between two special tokens)
        for chunk, g in zip(chunks, gen):
            start = len(occ)
            for k, part in enumerate(chunk):
                if k & 1:  # a content
                    if not part:
                        continue
                    if "<|" in part:
                        occ += _chunk_pieces(part, split, special_id, pool)
                    else:
                        occ.append(pool.text(part))
                    continue
                pids = memo.get(part)  # the template's text: recurs (headers, the system message)
                if pids is None:
                    pids = memo[part] = tuple(_chunk_pieces(part, split, special_id, pool))
                    pool.bytes += _MEMO_ENTRY_BYTES + getsizeof(part) + 8 * len(pids)
                occ += pids
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
    ``apply_chat_template(messages_i, tools=tools_i, return_assistant_tokens_mask=True)``."""
    day = template_date(date)
    variables = template_variables(reasoning_effort, model_identity, builtin_tools)
    return _batch(enc, [m for m, _ in rows], None, add_generation_prompt, day, variables, True, [t for _, t in rows])
