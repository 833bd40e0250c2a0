"""``StreamableParser``: openai_harmony's incremental parser, one token at a time.

The observable state after every token equals the oracle's: ``state_data`` included, whose
``content_tokens`` are not the input tokens but the re-encoding (``encode_ordinary``) of each
decoded piece, as the oracle keeps them. Here the pieces are kept as strings (and, after
:meth:`StreamableParser.process_tokens`, as runs of tokens that each decode alone) and are only
re-encoded when ``state_data`` is read.

``process`` has a short path for the common case: inside content, an ordinary token that is
valid UTF-8 on its own and no bytes pending from earlier tokens.
"""

from __future__ import annotations

import array
import operator
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from .errors import HarmonyError
from .lazy import kernels
from .model import Message, Role, StreamState, text_message
from .header import parse_header_string
from .parse import ERR_EOS_HEADER, REPLACEMENT, STOP_TOKENS, decode_utf8, unexpected_token_error, utf8_step, vocabulary_tables
from .gate import as_u32, bad_id_error, oracle_role_value, role_from_value, stream_ids, strict_flag, vocab_ids
from .recover import (
    NO_STOP,
    Diagnostic,
    RecoveryResult,
    emit_region,
    lenient_header,
    missing_start,
    spans_array,
)
from .vocab import MESSAGE, N_ORDINARY, N_VOCAB, START, Vocabulary
from .tuning import GATHER_MIN, STREAM_BULK_MIN

__all__ = ["StreamableParser", "RecoveringStreamableParser"]

_EXPECT_START = 0
_HEADER = 1
_CONTENT = 2
_STATES = (StreamState.EXPECT_START, StreamState.HEADER, StreamState.CONTENT)




_message = text_message


def _copy_message(m: Message) -> Message:
    return _message(m.author.role, m.author.name, m.channel, m.recipient, m.content_type, m.content[0].text)


class StreamableParser:
    """Incremental parser over completion tokens (openai_harmony's ``StreamableParser``)."""

    __slots__ = (
        "_t",
        "_strs",
        "_strict",
        "_next_role",
        "_tokens",
        "_messages",
        "_state",
        "_header_tokens",
        "_header",
        "_parts",
        "_last",
        "_pending",
        "_und_tokens",
        "_und_bytes",
        "_ct",
        "_ct_n",
    )

    def __new__(cls, *args: Any, recover: bool = False, **kwargs: Any) -> "StreamableParser":
        # recover=True: the parser of harmony_np.recover, which never raises on valid token ids
        if recover and cls is StreamableParser:
            cls = RecoveringStreamableParser
        return object.__new__(cls)

    def __init__(self, encoding, role: Optional[Role], *, strict: bool = True, recover: bool = False) -> None:
        # the oracle's order: role.value in Python, then pyo3 checks strict, then the role name
        rv = None if role is None else oracle_role_value(role)
        vocab = getattr(encoding, "vocab", None)
        if vocab.__class__ is not Vocabulary:
            raise AttributeError(f"'{type(encoding).__name__}' object has no attribute '_inner'")
        self._strict = True if strict is True else strict_flag(strict)
        r = None if rv is None else role_from_value(rv)
        self._t = vocabulary_tables(vocab)
        self._strs = None
        self._next_role = r
        self._tokens = array.array("I")  # every token fed (a list only when read)
        self._messages: List[Message] = []
        self._state = _HEADER if r is not None else _EXPECT_START
        self._header_tokens: Optional[array.array] = array.array("I") if r is not None else None
        self._header = None
        self._parts: Optional[list] = None
        self._last: Optional[str] = None
        self._pending = False
        self._und_tokens: list = []
        self._und_bytes = b""
        self._ct: list = []
        self._ct_n = 0

    # -- feeding ----------------------------------------------------------------------------
    def process(self, token: int) -> "StreamableParser":
        """Consume one token."""
        if token.__class__ is int and 0 <= token < N_ORDINARY:
            self._tokens.append(token)
            if self._state == _CONTENT and not self._pending:
                strs = self._strs
                if strs is None:
                    strs = self._strs = self._t.strs
                s = strs[token]
                if s is not None:
                    self._parts.append(s)
                    self._last = s
                    return self
        else:
            token = as_u32(token, "token")
            self._tokens.append(token)
        self._step(token)
        return self

    def process_eos(self) -> "StreamableParser":
        """Signal the end of the stream (completes a message in progress)."""
        st = self._state
        if st == _CONTENT:
            self._finish()
        elif st == _HEADER:
            raise HarmonyError(ERR_EOS_HEADER)
        return self

    def _step(self, token: int) -> None:
        st = self._state
        if st == _CONTENT:
            if token in STOP_TOKENS:
                self._finish()
            elif self._und_tokens or token >= N_VOCAB:
                # an unknown id: nothing decodes from here to the end of the message
                self._und_tokens.append(token)
                self._pending = True
                self._last = None
            else:
                pending, self._last = utf8_step(self._und_bytes + self._t.token_bytes(token), self._parts)
                self._und_bytes = pending
                self._pending = bool(pending)
        elif st == _HEADER:
            if token == MESSAGE:
                ht = self._header_tokens
                # the oracle leaves the state at ExpectStart (and keeps the role) if the header fails
                self._state = _EXPECT_START
                self._header_tokens = None
                self._header = self._t.header(ht.tobytes(), ht, self._next_role)
                self._next_role = None
                self._state = _CONTENT
                self._parts = []
                self._ct = []
                self._ct_n = 0
            elif not self._strict and token in STOP_TOKENS:
                self._header_stopped()
            else:
                self._header_tokens.append(token)
        else:
            if token != START:
                raise unexpected_token_error(token)
            self._state = _HEADER
            self._header_tokens = array.array("I")

    def _header_stopped(self) -> None:
        # not strict: a stop token inside a header; with a role (first message only) the header
        # text becomes the message, with the role's header parts taken out
        role = self._next_role
        ht = self._header_tokens
        if role is not None and ht:
            text = decode_utf8(self._t, ht.tolist())
            mrole, name, channel, recipient, ctype, remaining = parse_header_string(text, role, False)
            self._messages.append(_message(mrole, name, channel, recipient, ctype, remaining or ""))
        self._state = _EXPECT_START
        self._next_role = None
        self._header_tokens = None

    def _finish(self) -> None:
        text = self._content_text()
        if self._und_tokens:
            text += REPLACEMENT
        if self._und_bytes:
            text += self._und_bytes.decode("utf-8", "replace")
        role, name, channel, recipient, ctype = self._header
        self._messages.append(_message(role, name, channel, recipient, ctype, text))
        self._state = _EXPECT_START
        self._header = None
        self._parts = None
        self._last = None
        self._pending = False
        self._und_tokens = []
        self._und_bytes = b""
        self._ct = []
        self._ct_n = 0

    def process_tokens(self, tokens) -> "StreamableParser":
        """Consume many tokens: the same end state as :meth:`process` on each in turn (and the
        same error, raised after the tokens before the offending one were consumed)."""
        buf, err = stream_ids(tokens)  # the input gate
        if len(buf) < STREAM_BULK_MIN:
            self._feed_small(buf)
        else:
            self._feed(buf)
        if err is not None:
            raise err
        return self

    def _feed_small(self, buf: "array.array") -> None:
        # a few tokens (speculative decoding hands over a handful): runs of content tokens that
        # decode alone are taken in a tight loop, everything else goes through process()
        strs = self._strs
        if strs is None:
            strs = self._strs = self._t.strs
        n = len(buf)
        i = 0
        process = self.process
        while i < n:
            if self._state == _CONTENT and not self._pending:
                parts = self._parts
                j = i
                while j < n:
                    tok = buf[j]
                    if tok >= N_ORDINARY:
                        break
                    s = strs[tok]
                    if s is None:
                        break
                    parts.append(s)
                    j += 1
                if j > i:
                    self._tokens += buf[i:j]
                    self._last = strs[buf[j - 1]]
                    i = j
                    continue
            process(buf[i])
            i += 1

    def _feed(self, buf: "array.array") -> None:
        stream_positions = kernels().stream_positions
        t = self._t
        n = len(buf)
        arr = np.frombuffer(buf, dtype=np.uint32)
        if self._strs is None:
            self._strs = t.strs
        strs = self._strs
        # positions a run cannot cover: in content, tokens that are not plain; in a header, ids
        # >= 199998 (the only ones that can end it)
        odd, special = stream_positions(arr, t.plain)
        odd = odd.tolist()
        special = special.tolist()
        n_odd = len(odd)
        n_special = len(special)
        ko = ks = 0
        tokens = self._tokens
        strict = self._strict
        i = 0
        while i < n:
            st = self._state
            if st == _CONTENT and not self._pending:
                while ko < n_odd and odd[ko] < i:
                    ko += 1
                j = odd[ko] if ko < n_odd else n
                if j > i:
                    run = buf[i:j]
                    tokens += run
                    self._parts.append(run)
                    self._last = strs[run[-1]]
                    i = j
                    continue
            elif st == _HEADER:
                while ks < n_special and special[ks] < i:
                    ks += 1
                j = n
                while ks < n_special:
                    p = special[ks]
                    tok = buf[p]
                    if tok == MESSAGE or (not strict and tok in STOP_TOKENS):
                        j = p
                        break
                    ks += 1
                if j > i:
                    run = buf[i:j]
                    tokens += run
                    self._header_tokens += run
                    i = j
                    continue
            tok = buf[i]
            tokens.append(tok)
            i += 1
            self._step(tok)

    # -- content ------------------------------------------------------------------------------
    def _content_text(self) -> str:
        parts = self._parts
        try:
            return "".join(parts)
        except TypeError:
            pass
        # adjacent runs (each a token array whose tokens decode alone) decode as one
        out: list = []
        group = None
        for p in parts:
            if p.__class__ is str:
                if group is not None:
                    out.append(self._run_text(group))
                    group = None
                out.append(p)
            elif group is None:
                group = array.array("I", p)
            else:
                group += p
        if group is not None:
            out.append(self._run_text(group))
        return "".join(out)

    def _run_text(self, run: "array.array") -> str:
        t = self._t
        if len(run) < GATHER_MIN:
            return t.decode_bytes(run.tolist()).decode("utf-8")
        _gather_bytes = kernels().gather_bytes

        return _gather_bytes(t.flat, t.offsets, np.frombuffer(run, dtype=np.uint32)).tobytes().decode("utf-8")

    def _content_tokens(self) -> list:
        parts = self._parts
        ct = self._ct
        if self._ct_n < len(parts):
            t = self._t
            enc = t.encode_ordinary
            for p in parts[self._ct_n :]:
                if p.__class__ is str:
                    ct.extend(enc(p))
                else:
                    for tok in p:
                        ct.extend(t.reencoded(tok))
            self._ct_n = len(parts)
        return list(ct)

    # -- observation ----------------------------------------------------------------------------
    @property
    def state(self) -> StreamState:
        return _STATES[self._state]

    @property
    def state_data(self) -> Dict[str, Any]:
        """The parser state as the oracle's JSON has it (as a dict)."""
        st = self._state
        if st == _EXPECT_START:
            return {"state": "ExpectStart"}
        if st == _HEADER:
            return {"state": "Header", "header_tokens": self._header_tokens.tolist()}
        role, name, channel, recipient, ctype = self._header
        author: Dict[str, Any] = {"role": role.value}
        if name is not None:
            author["name"] = name
        return {
            "state": "Content",
            "header": {"author": author, "recipient": recipient, "channel": channel, "content_type": ctype},
            "content_tokens": self._content_tokens(),
        }

    @property
    def current_content(self) -> str:
        return self._content_text() if self._state == _CONTENT else ""

    @property
    def current_role(self) -> Optional[Role]:
        if self._state == _CONTENT:
            return self._header[0]
        return self._next_role

    @property
    def current_channel(self) -> Optional[str]:
        return self._header[2] if self._state == _CONTENT else None

    @property
    def current_recipient(self) -> Optional[str]:
        return self._header[3] if self._state == _CONTENT else None

    @property
    def current_content_type(self) -> Optional[str]:
        return self._header[4] if self._state == _CONTENT else None

    @property
    def last_content_delta(self) -> Optional[str]:
        return self._last

    @property
    def messages(self) -> List[Message]:
        return [_copy_message(m) for m in self._messages]

    @property
    def tokens(self) -> List[int]:
        return self._tokens.tolist()


# -- streaming --------------------------------------------------------------------------------

_RHEADER = 3  # recovery mode: in a header region (closed by <|message|>, a stop token or <|start|>)


class RecoveringStreamableParser(StreamableParser):
    """``StreamableParser(encoding, role, recover=True)``: never raises on valid ids.

    Strict (the plain parser's steps, its content fast path included) until the first error;
    then recovery mode from the start of the failing message, whose tokens are read again. After
    :meth:`process_eos`, ``messages``, ``spans``, ``unparsed`` and ``diagnostics`` equal
    :func:`recover_completion` of the same tokens.
    """

    __slots__ = ("_recovering", "_role0", "_mstart", "_hs", "_rrole", "_has_start", "_stop_at", "_rows", "_unparsed", "_diags")

    def __init__(self, encoding, role: Optional[Role], *, strict: bool = True, recover: bool = True) -> None:
        super().__init__(encoding, role, strict=strict)
        if not self._strict:
            raise ValueError("recover=True reads strictly first and cannot be combined with strict=False")
        self._recovering = False
        self._role0 = self._next_role
        self._mstart = 0
        self._hs = 0
        self._rrole = None
        self._has_start = False
        self._stop_at = 0
        self._rows: list = []
        self._unparsed: list = []
        self._diags: list = []

    # -- feeding ----------------------------------------------------------------------------
    def process(self, token: int) -> "RecoveringStreamableParser":
        """Consume one token (an id outside the vocabulary raises ``ValueError``)."""
        if token.__class__ is int and 0 <= token < N_ORDINARY:
            # the plain parser's own process (its short path for content text; otherwise it
            # calls _step, which is this class's)
            return StreamableParser.process(self, token)
        v = operator.index(token)
        if not 0 <= v < N_VOCAB:
            raise bad_id_error(len(self._tokens), v)
        self._tokens.append(v)
        self._step(v)
        return self

    def process_tokens(self, tokens) -> "RecoveringStreamableParser":
        """Consume many tokens (all are checked first: an id outside the vocabulary raises
        ``ValueError`` and nothing is consumed)."""
        buf, _ = vocab_ids(tokens, offset=len(self._tokens))
        return StreamableParser.process_tokens(self, np.frombuffer(buf, dtype=np.uint32))

    def _step(self, token: int) -> None:
        pos = len(self._tokens) - 1
        if self._recovering:
            self._rstep(token, pos)
            return
        st = self._state
        if st == _CONTENT:
            self._content_step(token, pos)
        elif st == _EXPECT_START:
            if token == START:
                self._mstart = pos
                StreamableParser._step(self, token)
            else:
                self._enter_recovery(pos, pos)
        elif token == MESSAGE:
            try:
                StreamableParser._step(self, token)
            except HarmonyError:
                self._enter_recovery(self._mstart, pos)
        else:
            StreamableParser._step(self, token)

    def _enter_recovery(self, b: int, upto: int) -> None:
        """Recovery mode from message boundary ``b``; read tokens ``b..upto`` again."""
        self._recovering = True
        self._header_tokens = None
        self._header = None
        if b == 0 and self._role0 is not None:
            self._mstart = 0
            self._begin(0, self._role0, False)
        else:
            self._state = _EXPECT_START
            self._next_role = None
        toks = self._tokens
        for p in range(b, upto + 1):
            self._rstep(toks[p], p)

    def _begin(self, hs: int, role: Optional[Role], has_start: bool) -> None:
        self._state = _RHEADER
        self._hs = hs
        self._rrole = role
        self._has_start = has_start

    def _content_step(self, token: int, pos: int) -> None:
        # in a content, strict and recovery modes read alike; a stop token ends the row
        if token in STOP_TOKENS:
            self._stop_at = pos + 1
        StreamableParser._step(self, token)

    def _rstep(self, token: int, pos: int) -> None:
        st = self._state
        if st == _CONTENT:
            self._content_step(token, pos)
        elif st == _EXPECT_START:
            self._mstart = pos
            if token == START:
                self._begin(pos + 1, None, True)
            else:
                self._begin(pos, None, False)
                self._region_token(token, pos)
        else:
            self._region_token(token, pos)

    def _region_token(self, token: int, pos: int) -> None:
        if token == MESSAGE:
            hs = self._hs
            header, hd = lenient_header(self._t, self._tokens[hs:pos], self._rrole)
            if not (self._has_start or self._rrole is not None):
                self._diags.append(missing_start(self._mstart, self._tokens[self._mstart]))
            for kind, detail in hd:
                self._diags.append(Diagnostic(kind, hs, pos, detail))
            self._header = header
            self._next_role = None
            self._state = _CONTENT
            self._parts = []
            self._ct = []
            self._ct_n = 0
        elif token in STOP_TOKENS:
            self._close_region(pos, token, pos + 1)
        elif token == START:
            self._close_region(pos, token, pos)
            self._rstep(token, pos)

    def _close_region(self, h: int, closer: int, end: int) -> None:
        ms = self._mstart
        first_tok = self._tokens[ms] if ms < len(self._tokens) else -1
        out = (self._messages, self._rows, self._unparsed, self._diags)
        emit_region(self._t, self._tokens[self._hs : h], self._rrole, self._has_start, closer, ms, self._hs, h, end, first_tok, out)
        self._state = _EXPECT_START
        self._next_role = None
        self._rrole = None

    def _finish(self) -> None:
        StreamableParser._finish(self)
        self._rows.append((self._mstart, self._stop_at))

    def process_eos(self) -> "RecoveringStreamableParser":
        """Signal the end of the stream: completes (or gives up) the message in progress."""
        n = len(self._tokens)
        if not self._recovering:
            st = self._state
            if st == _CONTENT:
                self._stop_at = n
                self._finish()
                return self
            if st != _HEADER:
                return self
            self._enter_recovery(self._mstart, n - 1)
        st = self._state
        if st == _CONTENT:
            self._stop_at = n
            self._finish()
        elif st == _RHEADER:
            self._close_region(n, NO_STOP, n)
        return self

    # -- observation ----------------------------------------------------------------------------
    @property
    def state(self) -> StreamState:
        return StreamState.HEADER if self._state == _RHEADER else _STATES[self._state]

    @property
    def state_data(self):
        if self._state == _RHEADER:
            return {"state": "Header", "header_tokens": self._tokens[self._hs :].tolist()}
        return StreamableParser.state_data.fget(self)

    @property
    def current_role(self) -> Optional[Role]:
        if self._state == _RHEADER:
            return self._rrole
        return StreamableParser.current_role.fget(self)

    @property
    def recovering(self) -> bool:
        """Whether an error was met (the parser is in recovery mode)."""
        return self._recovering

    @property
    def diagnostics(self) -> List[Diagnostic]:
        """Diagnostics so far (those of a message in progress included)."""
        return list(self._diags)

    @property
    def spans(self) -> np.ndarray:
        """``[start, stop)`` of each completed message."""
        return spans_array(self._rows)

    @property
    def unparsed(self) -> List[Tuple[int, int, str]]:
        """Ranges so far that belong to no message."""
        return list(self._unparsed)

    @property
    def result(self) -> RecoveryResult:
        """What :func:`recover_completion` returns for the tokens so far, once EOS is processed."""
        return RecoveryResult(self.messages, list(self._rows), self.unparsed, self.diagnostics)
