"""Recovery parsing: messages from completions that break the Harmony format.

openai_harmony raises ``HarmonyError`` on the first formatting error of a completion. The
functions here never raise on a sequence of valid token ids: they return every message that can
be read, the token range of each, the ranges that belong to no message, and a diagnostic for
every repair. The rules are in ``docs/recovery.md``; in short:

1. The strict reading comes first. A completion the strict parser accepts gives exactly its
   messages and no diagnostics. Otherwise the messages before the strict parser's first error are
   kept as it parsed them, and from the start of the failing message on the completion is read in
   *recovery mode*.
2. Recovery mode reads message by message. A message begins at ``<|start|>`` or, when something
   else stands where ``<|start|>`` was expected, at that token (``missing_start``). Its header
   runs to the first ``<|message|>``, stop token (``<|end|>``, ``<|return|>``, ``<|call|>``) or
   ``<|start|>``, whichever comes first.
3. A header closed by ``<|message|>`` is parsed strictly if it can be, and repaired if not
   (``header_decode``, ``empty_channel``, ``missing_role``, ``unknown_role``, ``header_junk``);
   the content runs to the next stop token or the end, as in strict parsing.
4. A header region closed otherwise holds no ``<|message|>``. Its text is split into the
   header fields it starts with (role word, ``<|channel|>X``, ``to=X``, ``<|constrain|>X``) and
   the rest, which is the content (``missing_message``; ``missing_header`` when it starts with no
   header field at all, and the role is the given one or assistant). If that content is blank the
   region is a message only when a stop token closes it after some header field (an empty
   message); otherwise its tokens are unparsed: ``stray_tokens`` (no ``<|start|>``),
   ``duplicate_start`` (cut by another ``<|start|>``), ``eos_in_header`` (cut by the end of the
   stream) or ``empty_message`` (``<|start|>`` then a stop token).

Message spans and unparsed ranges tile ``[0, len(tokens))``: a message's span runs from its
``<|start|>`` (or first token) through its stop token; a region cut by ``<|start|>`` ends before it.

Only the slow path is Python over the positions of the special tokens; a well-formed completion
costs one strict scan (:mod:`harmony_np.parse`'s scanner and header cache) plus its span table.
"""

from __future__ import annotations

import array
import bisect
import re
from typing import Any, List, NamedTuple, Optional

import numpy as np

from .errors import HarmonyError
from .lazy import kernels
from .model import Message, Role, text_message
from .header import CHANNEL_MARK, CONSTRAIN_MARK, WHITE_SPACE, channel_value, header_words, parse_header_string, remaining_error, take_recipient_and_type
from .parse import ERR_DECODE_HEADER, STOP_TOKENS, Tables, build_messages, gather_span_bytes, scan_py, tables, unexpected_token_error
from .caches import approx_size
from .records import NO_STOP, REC_CE, REC_HE, REC_HS, ST_OK, ST_UNEXPECTED  # also the closer of a region that the end of the stream cuts
from .tuning import GATHER_MIN, HEADER_KEY_MAX, SCAN_KERNEL_MIN
from .gate import ROLE_BY_VALUE, bad_id_error, check_ids, role_arg, vocab_ids
from .vocab import CALL, END, MESSAGE, N_ORDINARY, N_VOCAB, RETURN, START

__all__ = ["Diagnostic", "RecoveryResult", "recover_completion", "KINDS", "explain"]

# Every diagnostic kind, with what it means (docs/recovery.md has the long form).
KINDS = {
    # the message is kept
    "missing_start": "a message began without <|start|>: the token where <|start|> was expected",
    "missing_header": "text with no header before its stop token: read as the content of a message of the given role, else assistant",
    "missing_message": "a header with no <|message|>: its leading header fields are the header, the rest is the content",
    "missing_end": "a message cut by <|start|> before its stop token",
    "header_decode": "header bytes that are not valid UTF-8 (read with U+FFFD)",
    "empty_channel": "<|channel|> with no value",
    "missing_role": "a header with no role: assistant assumed",
    "unknown_role": "a header whose one word is no role",
    "header_junk": "leftover header words: the channel when there is none, else dropped",
    # the tokens are unparsed (the reason of the unparsed range)
    "stray_tokens": "tokens between messages that hold no text (no <|start|>, blank)",
    "duplicate_start": "a header abandoned at a second <|start|>",
    "eos_in_header": "the stream ended inside a header",
    "empty_message": "<|start|> followed by a stop token, with no header",
}

_WS_SET = frozenset(WHITE_SPACE)
_CLOSERS = frozenset((MESSAGE, START)) | STOP_TOKENS

_STOP_NAMES = {END: "<|end|>", RETURN: "<|return|>", CALL: "<|call|>"}


class Diagnostic(NamedTuple):
    """What was wrong (``kind``, one of :data:`KINDS`) over tokens ``[start, stop)``."""

    kind: str
    start: int
    stop: int
    detail: str


class RecoveryResult:
    """Messages of a completion read by the recovery rules.

    ``spans[i]`` is the ``[start, stop)`` token range of ``messages[i]``; ``unparsed`` holds the
    ``(start, stop, reason)`` ranges that belong to no message. Together they tile
    ``[0, len(tokens))`` in order. ``diagnostics`` lists every repair and every unparsed range.
    """

    __slots__ = ("messages", "_rows", "_spans", "unparsed", "diagnostics")

    def __init__(self, messages: List[Message], rows: list, unparsed: list, diagnostics: list) -> None:
        self.messages = messages
        self._rows = rows  # (start, stop) per message; the array is made when first read
        self._spans = None
        self.unparsed = unparsed
        self.diagnostics = diagnostics

    @property
    def spans(self) -> np.ndarray:
        """int64 array of shape (len(messages), 2): the ``[start, stop)`` of each message."""
        s = self._spans
        if s is None:
            s = self._spans = spans_array(self._rows)
        return s

    @property
    def ok(self) -> bool:
        """True when the completion was well formed (the strict parse, nothing repaired)."""
        return not self.diagnostics and not self.unparsed

    def __repr__(self) -> str:
        return (
            f"RecoveryResult(messages={self.messages!r}, spans={self.spans.tolist()!r}, "
            f"unparsed={self.unparsed!r}, diagnostics={self.diagnostics!r})"
        )


# -- messages -------------------------------------------------------------------------------

_message = text_message


# -- header repair --------------------------------------------------------------------------

_NEXT_WORD = re.compile("[" + re.escape(WHITE_SPACE) + "]+([^" + re.escape(WHITE_SPACE) + "<]+)")
_TOOL_NAME = re.compile(r"[A-Za-z_][\w\-]*(\.[\w\-]+)+\Z")
_ROLE_LOWER = {r.value: r for r in Role}


def lenient_header(t: Tables, ids: "array.array", role: Optional[Role]):
    """``((role, name, channel, recipient, content_type), ((kind, detail), ...))`` of header
    tokens ``ids``: the strict reading when there is one (no diagnostics), else the repaired one.
    Cached by the header's tokens, like the strict headers."""
    cache = t.recover_headers
    key_bytes = ids.tobytes()
    key = (role, key_bytes)
    hit = cache.get(key)
    if hit is None:
        hit = _lenient_header(t, ids, role)
        if len(key_bytes) <= HEADER_KEY_MAX:  # long headers are junk that will not recur: not kept
            cache.put(key, hit, approx_size(key_bytes, hit))
    return hit


def _lenient_header(t: Tables, ids, role: Optional[Role]):
    data = t.decode_bytes(ids.tolist())
    diags: list = []
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = data.decode("utf-8", "replace")
        diags.append(("header_decode", f"the oracle: {ERR_DECODE_HEADER}; invalid UTF-8 in the header read as U+FFFD"))
        err = ERR_DECODE_HEADER
    try:
        r, name, channel, recipient, ctype, remaining = parse_header_string(text, role, True)
    except HarmonyError as exc:
        err = str(exc)
    else:
        if remaining is None:
            return (r, name, channel, recipient, ctype), tuple(diags)
        err = str(remaining_error(remaining))
    return _repair_header(text, role, err, diags)


def _clip(s: str, limit: int = 200) -> str:
    return s if len(s) <= limit else s[:limit] + f"... ({len(s)} characters)"


def _repair_header(text: str, role: Optional[Role], err: str, diags: list):
    """The header fields of ``text`` that the strict rules refused (``err``), repaired."""
    why = f" (the oracle: {_clip(err)})"
    channel = None
    header = text
    idx, after, end = channel_value(header)
    if idx >= 0:
        if end > 0:
            channel = after[:end]
            header = header[:idx] + after[end:]
        else:
            w = _NEXT_WORD.match(after)
            if w is not None and not w.group(1).startswith("to="):
                channel = w.group(1)
                header = header[:idx] + " " + after[w.end() :]
                diags.append(("empty_channel", f"no value right after <|channel|>; the next word {_clip(repr(channel))} is read as the channel{why}"))
            else:
                header = header[:idx] + " " + after
                diags.append(("empty_channel", f"<|channel|> has no value; the channel is left unset{why}"))
    parts = header_words(header)

    name = None
    if role is None:
        if not parts:
            role = Role.ASSISTANT
            diags.append(("missing_role", f"the header names no role; assistant assumed{why}"))
        else:
            first = parts[0]
            r = ROLE_BY_VALUE.get(first)
            if r is not None:
                role = r
            elif len(parts) > 1 or first.startswith("to="):
                role = Role.TOOL  # the strict rule: an unknown first word of several is a tool's name
                name = first
                del parts[0]
            else:
                del parts[0]
                r = _ROLE_LOWER.get(first.lower())
                if r is not None:
                    role = r
                    diags.append(("unknown_role", f"{_clip(repr(first))} read as the role {r.value!r}{why}"))
                elif _TOOL_NAME.match(first):
                    role = Role.TOOL
                    name = first
                    diags.append(("unknown_role", f"{_clip(repr(first))} read as the name of a tool{why}"))
                elif channel is None:
                    role = Role.ASSISTANT
                    channel = first
                    diags.append(("unknown_role", f"{_clip(repr(first))} read as the channel of an assistant message{why}"))
                else:
                    role = Role.ASSISTANT
                    diags.append(("unknown_role", f"{_clip(repr(first))} dropped; assistant assumed{why}"))
    if parts and parts[0] == role.value:
        del parts[0]

    recipient = ctype = None
    junk: list = []
    if len(parts) <= 2:
        # the strict rule (never leaves anything over for two parts or fewer)
        recipient, ctype = take_recipient_and_type(parts)
        junk = parts
    else:
        # more words than role, recipient and content type: the last "to=" word is the
        # recipient, the last "<|constrain|>" word (or the one word after the recipient) the
        # content type, and the rest is junk
        ti = ci = -1
        for i, p in enumerate(parts):
            if p.startswith("to="):
                ti = i
            elif p.startswith(CONSTRAIN_MARK):
                ci = i
        used = set()
        if ti >= 0:
            recipient = parts[ti][3:]
            used.add(ti)
        if ci >= 0:
            ctype = parts[ci]
            used.add(ci)
        elif ti >= 0 and ti == len(parts) - 2:
            ctype = parts[-1]
            used.add(len(parts) - 1)
        junk = [p for i, p in enumerate(parts) if i not in used]
    if junk:
        words = " ".join(junk)
        if channel is None:
            channel = words
            diags.append(("header_junk", f"leftover header text {_clip(repr(words))} kept as the channel{why}"))
        else:
            diags.append(("header_junk", f"leftover header text {_clip(repr(words))} dropped{why}"))
    return (role, name, channel, recipient, ctype), tuple(diags)


# -- regions without <|message|> --------------------------------------------------------------

_ROLE_WORD = re.compile("(system|developer|user|assistant|tool)(?=[" + re.escape(WHITE_SPACE) + "<]|\\Z)")
_ITEM_MARKS = (CHANNEL_MARK, "to=", CONSTRAIN_MARK)


def _skip_ws(text: str, i: int) -> int:
    n = len(text)
    while i < n and text[i] in _WS_SET:
        i += 1
    return i


def _value_end(text: str, i: int) -> int:
    """End of a channel value starting at ``i``: the next white space or ``<`` (the strict rule),
    or the end of a known channel name that the content follows unspaced (``finalThe``)."""
    n = len(text)
    a = i
    while i < n and text[i] not in _WS_SET and text[i] != "<":
        i += 1
    for name in _CHANNELS:
        e = a + len(name)
        if e < i and text.startswith(name, a) and not (text[e].islower() or text[e] in "_-."):
            return e
    return i


_CHANNELS = ("analysis", "commentary", "final")
# a recipient or content type read from text with no <|message|>: a name, nothing glued to it
_NAME = re.compile(r"[A-Za-z0-9_.\-/:+@]*")
# the text of special tokens, which is not text the model wrote
_SPECIAL_TEXT = re.compile(r"<\|(?:start|end|message|channel|constrain|return|call|endoftext|startoftext|reserved_\d+)\|>")


def split_region(text: str, role: Optional[Role], has_start: bool):
    """Header fields and content of a header region that has no ``<|message|>``.

    Returns ``(role, channel, recipient, content_type, content, found, diags)``: ``found`` says
    whether any header field was read. The leading fields are read in any order, each once: a
    role word (after ``<|start|>``: any role word; otherwise only one followed by another field or
    by nothing), ``<|channel|>X``, ``to=X``, ``<|constrain|>X``.
    """
    diags: list = []
    i = _skip_ws(text, 0)
    found = False
    if role is not None:
        # the role was given: the header may repeat it
        rv = role.value
        if text.startswith(rv, i) and _ROLE_WORD.match(text, i):
            i += len(rv)
            found = True
        mrole = role
    else:
        mrole = Role.ASSISTANT
        m = _ROLE_WORD.match(text, i)
        if m is not None:
            j = _skip_ws(text, m.end())
            if has_start or j == len(text) or text.startswith(_ITEM_MARKS, j):
                mrole = ROLE_BY_VALUE[m.group(1)]
                i = m.end()
                found = True
    channel = recipient = ctype = None
    seen_channel = False
    while True:
        j = _skip_ws(text, i)
        if not seen_channel and text.startswith(CHANNEL_MARK, j):
            a = j + len(CHANNEL_MARK)
            e = _value_end(text, a)
            seen_channel = True
            if e > a:
                channel = text[a:e]
            else:
                diags.append(("empty_channel", "<|channel|> has no value; the channel is left unset"))
        elif recipient is None and text.startswith("to=", j) and _NAME.match(text, j + 3).end() > j + 3:
            e = _NAME.match(text, j + 3).end()
            recipient = text[j + 3 : e]
        elif ctype is None and text.startswith(CONSTRAIN_MARK, j):
            e = _NAME.match(text, j + len(CONSTRAIN_MARK)).end()
            ctype = text[j:e]
        else:
            break
        i = e
        found = True
    # the content: the text as written when no header field was read, else what follows them
    content = text[i:].lstrip(WHITE_SPACE) if found else text
    return mrole, channel, recipient, ctype, content, found, diags


def _closer_name(closer: int) -> str:
    if closer == START:
        return "<|start|>"
    if closer == NO_STOP:
        return "the end of the stream"
    return _STOP_NAMES[closer]


def emit_region(t: Tables, ids: "array.array", role, has_start, closer, mstart, hs, h, end, first_tok, out) -> None:
    """Append the reading of the header region ``ids`` (tokens ``hs:h``, closed by ``closer``: a
    stop token, ``<|start|>`` or ``NO_STOP``) to ``out`` = (messages, spans, unparsed,
    diagnostics); the region's tokens with its ``<|start|>`` and stop token are ``mstart:end``."""
    msgs, rows, unparsed, diags = out
    if end == mstart:
        # nothing to account for: only the header announced by a given role, cut at once
        if closer == START:
            diags.append(Diagnostic("duplicate_start", mstart, end, "the completion starts with <|start|> although a role was given: the role is unused"))
        else:
            diags.append(Diagnostic("eos_in_header", mstart, end, "the completion is empty: the header that the given role begins never came (the oracle: Unexpected EOS while waiting for message header to complete)"))
        return
    headed = has_start or role is not None
    text = t.decode_bytes(ids.tolist()).decode("utf-8", "replace") if len(ids) else ""
    mrole, channel, recipient, ctype, content, found, hdiags = split_region(text, role, has_start)
    cname = _closer_name(closer)
    if _SPECIAL_TEXT.sub("", content).strip(WHITE_SPACE) or (found and closer in STOP_TOKENS):
        if not headed:
            diags.append(missing_start(mstart, first_tok))
        if found:
            diags.append(Diagnostic("missing_message", mstart, end, f"no <|message|> before {cname}: the header fields it starts with are the header, the rest is the content"))
        else:
            diags.append(Diagnostic("missing_header", mstart, end, f"no header before {cname}: the text is the content of a{'n' if mrole.value[0] in 'aeiou' else ''} {mrole.value} message"))
        for kind, detail in hdiags:
            diags.append(Diagnostic(kind, hs, h, detail))
        if closer == START:
            diags.append(Diagnostic("missing_end", mstart, end, "no stop token before the next <|start|>: the message ends there"))
        msgs.append(_message(mrole, None, channel, recipient, ctype, content))
        rows.append((mstart, end))
        return
    if not headed:
        kind = "stray_tokens"
        detail = f"tokens with no text between messages, up to {cname} (the oracle: {unexpected_token_error(first_tok)})"
    elif closer == START:
        kind = "duplicate_start"
        detail = "a header abandoned at another <|start|>"
    elif closer == NO_STOP:
        kind = "eos_in_header"
        detail = "the stream ended inside this header (the oracle: Unexpected EOS while waiting for message header to complete)"
    else:
        kind = "empty_message"
        detail = f"{'<|start|>' if has_start else 'the given role'} then {cname}, with no header field and no text"
    unparsed.append((mstart, end, kind))
    diags.append(Diagnostic(kind, mstart, end, detail))


def missing_start(mstart: int, first_tok: int) -> Diagnostic:
    return Diagnostic("missing_start", mstart, mstart + 1, f"token {first_tok} where <|start|> was expected (the oracle: {unexpected_token_error(first_tok)})")


# -- batch ------------------------------------------------------------------------------------


def _content(t: Tables, buf, src, arr, cs: int, ce: int) -> str:
    if ce - cs < GATHER_MIN:
        return t.decode_bytes(src[cs:ce]).decode("utf-8", "replace")
    if arr is None:
        arr = np.frombuffer(buf, dtype=np.uint32)
    return gather_span_bytes(t, arr, cs, ce).decode("utf-8", "replace")


def _recover_from(t: Tables, buf, src, arr, sp: list, b: int, role_first: Optional[Role], out) -> None:
    """Recovery mode from token ``b`` (a message boundary) to the end: see the module doc."""
    msgs, rows, _, diags = out
    n = len(src)
    nsp = len(sp)
    k = bisect.bisect_left(sp, b)
    pos = b
    first = role_first
    closers = _CLOSERS
    stops = STOP_TOKENS
    while pos < n or first is not None:
        mstart = pos
        if first is not None:
            r = first
            first = None
            hs = pos
            has_start = False
            headed = True
        elif src[pos] == START:
            r = None
            hs = pos + 1
            has_start = headed = True
        else:
            r = None
            hs = pos
            has_start = headed = False
        while k < nsp and sp[k] < hs:
            k += 1
        while k < nsp and src[sp[k]] not in closers:
            k += 1
        h = sp[k] if k < nsp else n
        closer = src[h] if h < n else NO_STOP
        if closer == MESSAGE:
            header, hd = lenient_header(t, buf[hs:h], r)
            k += 1
            while k < nsp and src[sp[k]] not in stops:
                k += 1
            ce = sp[k] if k < nsp else n
            end = ce + 1 if ce < n else n
            if not headed:
                diags.append(missing_start(mstart, src[mstart]))
            for kind, detail in hd:
                diags.append(Diagnostic(kind, hs, h, detail))
            role, name, channel, recipient, ctype = header
            msgs.append(_message(role, name, channel, recipient, ctype, _content(t, buf, src, arr, h + 1, ce)))
            rows.append((mstart, end))
            pos = end
        else:
            end = h + 1 if closer in stops else h
            emit_region(t, buf[hs:h], r, has_start, closer, mstart, hs, h, end, src[mstart] if mstart < n else -1, out)
            pos = end


def spans_array(rows: list) -> np.ndarray:
    if not rows:
        return np.empty((0, 2), dtype=np.int64)
    return np.array(rows, dtype=np.int64)


def recover_completion(enc, tokens: Any, role: Any = None) -> RecoveryResult:
    """Messages of ``tokens`` by the recovery rules (module doc); never raises on valid ids.

    ``tokens``: a list or other iterable of ints, or a 1-D integer array (``uint32`` is the
    cheapest); ``role``: the role of the first message when the completion starts after it.
    """
    buf, src = vocab_ids(tokens, check=False)
    n = len(buf)
    arr = None
    sp = None
    if n < SCAN_KERNEL_MIN:
        if src is None:
            src = buf.tolist()
        sp = [i for i, x in enumerate(src) if x >= N_ORDINARY]
        check_ids(src, sp)
    else:
        arr = np.frombuffer(buf, dtype=np.uint32)
        if int(arr.max()) >= N_VOCAB:
            i = int(np.flatnonzero(arr >= N_VOCAB)[0])
            raise bad_id_error(i, int(arr[i]))
    r = role_arg(role)
    t = tables(enc)
    if arr is None:
        recs, status, pos = scan_py(src, sp, r is not None, True)
    else:
        scan_completion = kernels().scan_completion

        recs, status, pos = scan_completion(arr, r is not None, True)
    if status == ST_OK:
        try:
            msgs = build_messages(t, buf, src, arr, recs, ST_OK, 0, r)
        except HarmonyError:
            pass
        else:
            return RecoveryResult(msgs, [(hs - 1 if hs else 0, ce + 1 if term != NO_STOP else n) for _, hs, _, _, ce, _, term in recs], [], [])
    # the strict reading up to its first error
    good = 0
    for rec in recs:
        hs, he = rec[REC_HS], rec[REC_HE]
        try:
            t.header(buf[hs:he].tobytes(), buf[hs:he], r if hs == 0 else None)
        except HarmonyError:
            break
        good += 1
    if good < len(recs):
        hs = recs[good][REC_HS]
        b = hs - 1 if hs else 0
    elif status == ST_UNEXPECTED:
        b = pos
    else:  # ST_EOS_HEADER
        b = (recs[-1][REC_CE] + 1) if recs else 0
    recs = recs[:good]
    msgs = build_messages(t, buf, src, arr, recs, ST_OK, 0, r) if recs else []
    rows = [(hs - 1 if hs else 0, ce + 1) for _, hs, _, _, ce, _, _ in recs]
    if src is None:
        src = buf.tolist()
    if sp is None:
        sp = (np.flatnonzero(arr[b:] >= N_ORDINARY) + b).tolist()
    out = (msgs, rows, [], [])
    _recover_from(t, buf, src, arr, sp, b, r if (b == 0 and r is not None) else None, out)
    return RecoveryResult(msgs, rows, out[2], out[3])


# -- reports --------------------------------------------------------------------------------


def _fields(m: Message) -> str:
    out = [f"role={m.author.role.value}"]
    if m.author.name is not None:
        out.append(f"name={m.author.name!r}")
    for f in ("channel", "recipient", "content_type"):
        v = getattr(m, f)
        if v is not None:
            out.append(f"{f}={v!r}")
    return " ".join(out)


def explain(enc, tokens: Any, role: Any = None) -> str:
    """A readable account of :func:`recover_completion` on ``tokens``: each message and unparsed
    range in token order (with the text of an unparsed range), then the diagnostics."""
    res = recover_completion(enc, tokens, role)
    buf, _ = vocab_ids(tokens)
    items = [(a, b, m) for (a, b), m in zip(res._rows, res.messages)]
    items += [(a, b, reason) for a, b, reason in res.unparsed]
    items.sort(key=lambda x: x[0])
    lines = []
    for a, b, what in items:
        if what.__class__ is str:
            text = enc.decode_bytes(buf[a:b].tolist()).decode("utf-8", "replace")
            lines.append(f"[{a}, {b}) unparsed {what}: {text!r}")
        else:
            lines.append(f"[{a}, {b}) message {_fields(what)} content={what.content[0].text!r}")
    for d in res.diagnostics:
        lines.append(f"diagnostic {d.kind} [{d.start}, {d.stop}): {d.detail}")
    if not lines:
        lines.append("(nothing)")
    return "\n".join(lines)
