"""Rendering messages and conversations to tokens, token for token as openai_harmony renders them.

A message is ``<|start|>`` header ``<|message|>`` contents terminator. Everything in the header
repeats across messages (roles, names, recipients, channels, content types), so the whole header
is encoded once per distinct header and reused. Contents go through tiktoken; encoded texts are
kept in a bounded cache, and when many texts are fresh they are encoded on a thread pool
(tiktoken releases the GIL), so large renders use both cores.

Rendering works in two steps: a *plan* (a list whose items are token lists or texts still to
encode), then assembly into a list of ints or a ``uint32`` array. The drop-in list API of a
conversation does both in one pass over the messages, since at a few µs per call every extra
pass shows.
"""

from __future__ import annotations

import array
from sys import getsizeof
from typing import Any, Callable, Iterable, List, Optional, Sequence, Union

import numpy as np

from .caches import BoundedCache
from .errors import HarmonyError
from .gate import next_role_arg
from .model import json_input_error
from .model import (
    Conversation,
    DeveloperContent,
    Message,
    ReasoningEffort,
    RenderConversationConfig,
    RenderOptions,
    Role,
    SystemContent,
    TextContent,
)
from .rust_text import surrogate_error
from .schema import CONVERSATION_JSON_DEPTH, MESSAGE_JSON_DEPTH, tools_section
from .bpe import ordinary_bpe
from .vocab import CALL, CHANNEL, CONSTRAIN, END, MESSAGE, RETURN, START, Vocabulary
from .tuning import HEADER_CACHE_MAX_BYTES, PARALLEL_ONE_TEXT, TEXT_CACHE_MAX_BYTES, TEXT_CACHE_MAX_CHARS

_ASSISTANT = Role.ASSISTANT
_TOOL = Role.TOOL
_SYSTEM = Role.SYSTEM
_DEVELOPER = Role.DEVELOPER
_CONSTRAIN_TEXT = "<|constrain|>"
_END_LIST = [END]
_CALL_LIST = [CALL]
START_LIST = [START]
_EFFORT_TEXT = {ReasoningEffort.LOW: "low", ReasoningEffort.MEDIUM: "medium", ReasoningEffort.HIGH: "high"}
# Rust's Debug of the role, as it appears in openai_harmony's error text
_ROLE_DEBUG = {Role.USER: "User", Role.ASSISTANT: "Assistant", Role.SYSTEM: "System", Role.DEVELOPER: "Developer", Role.TOOL: "Tool"}

# Every cache is bounded in (approximate) bytes, keys included (bounds in harmony_np.tuning);
# an entry over its whole bound is not cached. What an entry weighs:
LIST_TOKEN_BYTES = 40  # a token in a list: its slot and its int object (ids above 256)
_HEADER_ENTRY_BYTES = 640  # key and entry tuples, dict slot, four lists, the array's header
_HEADER_TOKEN_BYTES = 3 * 8 + 32 + 4  # three lists' slots, the int, the uint32 array's share
_TEXT_ENTRY_BYTES = 120  # dict slot and list header of a text cache entry
_ARRAY_ENTRY_BYTES = 200  # dict slot, array header and tiktoken buffer object of an entry


def system_text(sys: SystemContent, has_function_tools: bool, json_depth: int = CONVERSATION_JSON_DEPTH) -> str:
    """The text of a system message's content (``json_depth``: see :func:`schema.tools_section`)."""
    sections: List[str] = []
    top = []
    if sys.model_identity is not None:
        top.append(sys.model_identity)
    if sys.knowledge_cutoff is not None:
        top.append("Knowledge cutoff: " + sys.knowledge_cutoff)
    if sys.conversation_start_date is not None:
        top.append("Current date: " + sys.conversation_start_date)
    if top:
        sections.append("\n".join(top))
    if sys.reasoning_effort is not None:
        sections.append("Reasoning: " + _EFFORT_TEXT[ReasoningEffort(sys.reasoning_effort)])
    if sys.tools:
        sections.append(tools_section(sys.tools, json_depth=json_depth))
    cc = sys.channel_config
    if cc is not None and cc.valid_channels:
        header = "# Valid channels: " + ", ".join(cc.valid_channels) + "."
        if cc.channel_required:
            header += " Channel must be included for every message."
        if has_function_tools:
            header += "\nCalls to these tools must go to the commentary channel: 'functions'."
        sections.append(header)
    return "\n\n".join(sections)


def developer_text(dev: DeveloperContent, json_depth: int = CONVERSATION_JSON_DEPTH) -> str:
    """The text of a developer message's content."""
    sections: List[str] = []
    if dev.instructions is not None:
        sections.append("# Instructions")
        sections.append(dev.instructions)
    if dev.tools:
        sections.append(tools_section(dev.tools, json_depth=json_depth))
    return "\n\n".join(sections)


def _has_function_tools(messages: Sequence[Message]) -> bool:
    for m in messages:
        for c in m.content:
            if c.__class__ is DeveloperContent and c.tools:
                ns = c.tools.get("functions")
                if ns is not None and ns.tools:
                    return True
    return False


def _messages_of(conversation: Any) -> List[Message]:
    if isinstance(conversation, Conversation):
        msgs = conversation.messages
    elif isinstance(conversation, (list, tuple)):
        msgs = list(conversation)
    else:
        raise TypeError(
            f"conversation must be a Conversation or a list of Message, got "
            f"{type(conversation).__name__}: {conversation!r}"
        )
    return msgs


def _not_a_message(msgs: Sequence[Any]) -> Optional[TypeError]:
    """The error for the first item of ``msgs`` that is not a Message, or None."""
    for i, m in enumerate(msgs):
        if not isinstance(m, Message):
            return TypeError(f"conversation item {i} is not a Message: {type(m).__name__}: {m!r}")
    return None


class _Tokens(list):
    """A token list of a plan (a header or terminator) carrying its ``uint32`` array, made on first
    use by :meth:`Renderer.to_array`: the array lives and dies with its list, so no map from a
    list's ``id()`` (reused once the list is freed) is needed to find it."""

    __slots__ = ("array",)

    def __init__(self, toks: Iterable[int] = ()) -> None:
        super().__init__(toks)
        self.array: Optional[np.ndarray] = None


_END_TOKENS = _Tokens(_END_LIST)
_CALL_TOKENS = _Tokens(_CALL_LIST)
_START_TOKENS = _Tokens(START_LIST)


class Renderer:
    """Renders for one encoding; holds the header and text caches."""

    def __init__(self, vocab: Vocabulary) -> None:
        self._bpe = bpe = ordinary_bpe(vocab)  # the one seam from text to ids
        self._encode = bpe.encode
        self._vocab = vocab
        # key -> (header, author part, rest, the header as a plan item): see header_entry
        self._headers = BoundedCache(HEADER_CACHE_MAX_BYTES, HEADER_CACHE_MAX_BYTES)
        self._texts = BoundedCache(TEXT_CACHE_MAX_BYTES, TEXT_CACHE_MAX_BYTES)  # text -> token list
        # text -> uint32 array, for the NumPy forms
        self._arrays = BoundedCache(TEXT_CACHE_MAX_BYTES, TEXT_CACHE_MAX_BYTES)
        self._workers = bpe.reference.workers

    # -- encoding of texts -----------------------------------------------------------------

    def encode_texts_flat(self, texts: Sequence[str]) -> tuple:
        """``(tokens, lengths)`` of fresh ``texts``: :meth:`harmony_np.bpe.OrdinaryBPE.encode_flat`."""
        return self._bpe.encode_flat(texts)

    def encode_texts(self, texts: Sequence[str]) -> list:
        """``uint32`` buffers (or ``array('I')``) of ``texts``, for a batch: cached ones from the text
        cache, fresh ones in one batch encode over the usable cores. Raises
        ``UnicodeEncodeError`` for a text with a lone surrogate."""
        out: List[Any] = [None] * len(texts)
        fresh = []
        cached = self._texts
        for i, t in enumerate(texts):
            toks = cached.get(t)
            if toks is not None:
                out[i] = array.array("I", toks)
            else:
                fresh.append(i)
        if not fresh:
            return out
        flat, lengths = self._bpe.encode_flat([texts[i] for i in fresh])
        ends = np.cumsum(lengths)
        for i, a, z in zip(fresh, (ends - lengths).tolist(), ends.tolist()):
            out[i] = flat[a:z]
        return out

    def _remember(self, text: str, toks: List[int]) -> None:
        if len(text) > TEXT_CACHE_MAX_CHARS or text in self._texts:
            return
        self._texts.put(text, toks, getsizeof(text) + len(toks) * LIST_TOKEN_BYTES + _TEXT_ENTRY_BYTES)

    def _encode_fresh(self, text: str) -> Optional[List[int]]:
        """Tokens of a text missing from the cache, now cached; None if ``text`` is long enough to
        be encoded in parallel with the other texts of its render."""
        if len(text) >= PARALLEL_ONE_TEXT and self._workers > 1:
            return None
        toks = self._encode(text)
        self._remember(text, toks)
        return toks

    def encode_many(self, texts: List[str]) -> List[List[int]]:
        """Tokens of each text; fresh texts are encoded on a thread pool when that pays."""
        out: List[Any] = [None] * len(texts)
        fresh = []
        get = self._texts.get
        for i, t in enumerate(texts):
            toks = get(t)
            if toks is None:
                fresh.append(i)
            else:
                out[i] = toks
        if not fresh:
            return out
        todo = [texts[i] for i in fresh]
        encoded = self._bpe.encode_lists(todo)
        for i, toks in zip(fresh, encoded):
            out[i] = toks
            self._remember(texts[i], toks)
        return out

    # -- headers ---------------------------------------------------------------------------
    def header_entry(self, role: Role, name, recipient, channel, content_type) -> tuple:
        """``(header, author_part, rest, planned)``: the header tokens ``<|start|>…<|message|>``,
        split after the author (role and name) for loss masks, and the header as a plan item (a
        :class:`_Tokens` that carries its array); cached per distinct header, by value."""
        key = (role, name, recipient, channel, content_type)
        entry = self._headers.get(key)
        if entry is not None:
            return entry
        enc = self._encode
        author = [START]
        if role is _TOOL:
            if name is None:
                raise HarmonyError("Tools should have a name!")
            author += enc(name)
        else:
            author += enc(role._value_)
            if name is not None:
                author += enc(":" + name)
        rest: List[int] = []
        if recipient is not None and recipient != "all":
            rest += enc(" to=" + recipient)
        if channel is not None:
            rest.append(CHANNEL)
            rest += enc(channel)
        if content_type is not None:
            if content_type.startswith(_CONSTRAIN_TEXT):
                rest += enc(" ")
                rest.append(CONSTRAIN)
                tail = content_type[len(_CONSTRAIN_TEXT):]
                if tail:
                    rest += enc(tail)
            else:
                rest += enc(" " + content_type)
        rest.append(MESSAGE)
        header = author + rest
        entry = (header, author, rest, _Tokens(header))
        size = (
            _HEADER_ENTRY_BYTES + len(header) * _HEADER_TOKEN_BYTES
            + getsizeof(name) + getsizeof(recipient) + getsizeof(channel) + getsizeof(content_type)
        )
        self._headers.put(key, entry, size)  # a header too big to cache (a huge name) is built each time
        return entry

    # -- plans -----------------------------------------------------------------------------
    @staticmethod
    def content_texts(m: Message, role: Role, has_function_tools: bool, json_depth: int = CONVERSATION_JSON_DEPTH) -> List[str]:
        """The texts of a message's contents, checked against its role."""
        out: List[str] = []
        for c in m.content:
            cls = c.__class__
            if cls is TextContent:
                out.append(c.text)
            elif cls is SystemContent:
                if role is not _SYSTEM:
                    raise HarmonyError(f"SystemContent may only appear in system messages, found in {_ROLE_DEBUG[role]}")
                out.append(system_text(c, has_function_tools, json_depth))
            elif cls is DeveloperContent:
                if role is not _DEVELOPER:
                    raise HarmonyError(f"DeveloperContent may only appear in developer messages, found in {_ROLE_DEBUG[role]}")
                out.append(developer_text(c, json_depth))
            elif isinstance(c, TextContent):
                out.append(c.text)
            else:
                raise TypeError(f"cannot render content of type {type(c).__name__}: {c!r}")
        return out

    @staticmethod
    def terminator(role: Role, recipient) -> List[int]:
        """``<|call|>`` for an assistant message with a recipient, else ``<|end|>``."""
        return _CALL_LIST if (role is _ASSISTANT and recipient is not None) else _END_LIST

    def _plan_message(self, m: Message, has_function_tools: bool, plan: list, json_depth: int = CONVERSATION_JSON_DEPTH) -> None:
        author = m.author
        role = author.role
        recipient = m.recipient
        plan.append(self.header_entry(role, author.name, recipient, m.channel, m.content_type)[3])
        content = m.content
        if len(content) == 1 and content[0].__class__ is TextContent:
            plan.append(content[0].text)  # the common case, without a list of texts
        else:
            plan += self.content_texts(m, role, has_function_tools, json_depth)
        plan.append(_CALL_TOKENS if (role is _ASSISTANT and recipient is not None) else _END_TOKENS)

    def message_plan(self, message: Message, render_options: Optional[RenderOptions] = None) -> list:
        if not isinstance(message, Message):
            raise TypeError(f"message must be a Message, got {type(message).__name__}: {message!r}")
        has_fn = bool(render_options is not None and render_options.conversation_has_function_tools)
        plan: list = []
        self._plan_message(message, has_fn, plan, MESSAGE_JSON_DEPTH)
        return plan

    @staticmethod
    def kept_messages(msgs: List[Message], config: Optional[RenderConversationConfig]) -> List[Message]:
        """The messages that are rendered: with auto-drop on and an assistant final message
        last among the assistant's, the analysis messages before the first final go."""
        if config is not None and not config.auto_drop_analysis:
            return msgs
        for m in reversed(msgs):
            if m.author.role is _ASSISTANT:
                if m.channel != "final":
                    return msgs
                break
        else:
            return msgs
        for i, m in enumerate(msgs):
            if m.channel == "final":
                kept = [m for j, m in enumerate(msgs) if j >= i or m.channel != "analysis"]
                if len(kept) < len(msgs):
                    _check_dropped(msgs[:i])
                return kept
        return msgs  # pragma: no cover - the loop above found a final message

    @classmethod
    def select(cls, conversation: Union[Conversation, Iterable[Message]], config: Optional[RenderConversationConfig]) -> tuple:
        """``(messages, kept, has_function_tools)``: the conversation's messages, those that are
        rendered (see :meth:`kept_messages`), and whether a developer message declares function
        tools."""
        msgs = _messages_of(conversation)
        return msgs, cls.kept_messages(msgs, config), _has_function_tools(msgs)

    @staticmethod
    def _mode_role(mode: str, next_role: Any) -> Optional[Role]:
        if mode == "completion":
            return next_role_arg(next_role)
        if mode != "conversation" and mode != "training":
            raise ValueError(f"mode must be 'completion', 'conversation' or 'training', got {mode!r}")
        return None

    def conversation_plan(
        self,
        conversation: Union[Conversation, Iterable[Message]],
        config: Optional[RenderConversationConfig],
        mode: str,
        next_role: Any = None,
    ) -> list:
        """The plan of a conversation in ``mode`` (completion, conversation or training)."""
        next_role = self._mode_role(mode, next_role)
        try:
            msgs, kept, has_fn = self.select(conversation, config)
            plan: list = []
            for m in kept:
                self._plan_message(m, has_fn, plan)
        except AttributeError:
            # a conversation's items are checked only when something fails: the common case
            # pays nothing for it
            exc = _not_a_message(_messages_of(conversation))
            if exc is not None:
                raise exc from None
            raise
        self._plan_end(plan, msgs, mode, next_role)
        return plan

    @staticmethod
    def _plan_end(plan: list, msgs: List[Message], mode: str, next_role: Optional[Role]) -> None:
        """What follows the messages: the next turn's start (completion), or ``<|return|>`` in
        place of the last token (training, a conversation that ends in a final message)."""
        if mode == "completion":
            plan.append(_START_TOKENS)
            plan.append(next_role._value_)  # ._value_: Enum's .value property is slow
        elif mode == "training" and ends_in_final(msgs):
            plan.append(_RETURN_MARK)

    # -- assembly --------------------------------------------------------------------------
    def to_list(self, plan: list, encoded: Optional[dict] = None) -> List[int]:
        """Assemble ``plan`` into a list of ints (``encoded``: tokens of its texts, if known)."""
        # One pass for the common small case, allocating nothing beyond the result (fewer
        # allocations, fewer GC pauses); a long fresh text has the plan's texts encoded in
        # parallel first.
        get = self._texts.get if encoded is None else encoded.get
        out: List[int] = []
        for p in plan:
            if p.__class__ is str:
                toks = get(p)
                if toks is None:
                    if len(p) >= PARALLEL_ONE_TEXT and self._workers > 1:
                        texts = [q for q in plan if q.__class__ is str]
                        return self.to_list(plan, dict(zip(texts, self.encode_many(texts))))
                    toks = self._encode(p)
                    self._remember(p, toks)
                out += toks
            elif p is _RETURN_MARK:
                if out:
                    out[-1] = RETURN
            else:
                out += p
        return out

    def to_array(self, plan: list, out: Optional[np.ndarray] = None):
        """Assemble ``plan`` into a new ``uint32`` array, or into ``out`` (returns the count).

        Texts come from tiktoken as ``uint32`` buffers and headers and terminators (plan items
        of class :class:`_Tokens`) carry their own arrays, so no Python int is made per token.
        """
        parts = []
        return_last = False
        text_array = self._text_array
        for p in plan:
            if p.__class__ is str:
                parts.append(text_array(p))
            elif p is _RETURN_MARK:
                return_last = True
            else:
                a = p.array
                if a is None:
                    a = np.array(p, dtype=np.uint32)
                    a.setflags(write=False)  # shared by every render of this header
                    p.array = a
                parts.append(a)
        n = 0
        for a in parts:
            n += a.shape[0]
        if out is None:
            result = np.concatenate(parts) if parts else np.empty(0, np.uint32)
            if return_last and n:
                result[n - 1] = RETURN
            return result
        if not isinstance(out, np.ndarray) or out.dtype != np.uint32 or out.ndim != 1:
            raise TypeError(f"out must be a 1-D uint32 array, got {type(out).__name__} {getattr(out, 'dtype', '')}")
        if out.shape[0] < n:
            raise ValueError(f"out holds {out.shape[0]} tokens but the render needs {n}")
        if parts:
            np.concatenate(parts, out=out[:n])
        if return_last and n:
            out[n - 1] = RETURN
        return n

    def _text_array(self, text: str) -> np.ndarray:
        """``uint32`` tokens of ``text``, cached like the lists of :meth:`to_list`."""
        arr = self._arrays.get(text)
        if arr is None:
            arr = self._bpe.encode_array(text)
            if len(text) <= TEXT_CACHE_MAX_CHARS:
                arr.setflags(write=False)  # shared by every render of this text
                self._arrays.put(text, arr, getsizeof(text) + arr.nbytes + _ARRAY_ENTRY_BYTES)
        return arr

    # -- drop-in entry points --------------------------------------------------------------
    def render_message(self, message: Message, render_options: Optional[RenderOptions] = None) -> List[int]:
        try:
            return self.to_list(self.message_plan(message, render_options))
        except UnicodeEncodeError as exc:
            raise surrogate_error(exc) from None
        except HarmonyError:
            raise_surrogate_error(message)
            raise

    def render_conversation(self, conversation, config, mode: str, next_role: Any = None) -> List[int]:
        try:
            return self._conversation_list(conversation, config, mode, next_role)
        except UnicodeEncodeError as exc:
            raise surrogate_error(exc) from None
        except HarmonyError:
            raise_surrogate_error(conversation)
            raise

    def _conversation_list(self, conversation, config, mode: str, next_role: Any) -> List[int]:
        """:meth:`conversation_plan` and :meth:`to_list` fused into one pass over the messages,
        for the list API, where per-call overhead is most of the cost of a small render.

        At the first fresh text long enough to be worth encoding in parallel, the messages from
        there on go through the plan path, which encodes their texts on the thread pool.
        """
        if mode != "completion" or next_role.__class__ is not Role:
            next_role = self._mode_role(mode, next_role)
        try:
            msgs = conversation.messages if conversation.__class__ is Conversation else _messages_of(conversation)
            kept = self.kept_messages(msgs, config)
            has_fn = None  # only a system message needs it
            headers = self._headers
            get = self._texts.get
            out: List[int] = []
            for i, m in enumerate(kept):
                mark = len(out)
                author = m.author
                role = author.role
                recipient = m.recipient
                key = (role, author.name, recipient, m.channel, m.content_type)
                entry = headers.get(key)
                if entry is None:
                    entry = self.header_entry(*key)
                out += entry[0]
                content = m.content
                if len(content) == 1 and content[0].__class__ is TextContent:
                    # the common message, unrolled: a loop over a 1-tuple of texts costs 12 % of
                    # a warm small render
                    text = content[0].text
                    toks = get(text)
                    if toks is None:
                        toks = self._encode_fresh(text)
                        if toks is None:
                            return self._list_rest(out, mark, kept[i:], msgs, has_fn, mode, next_role)
                    out += toks
                else:
                    if has_fn is None:
                        has_fn = _has_function_tools(msgs)
                    for text in self.content_texts(m, role, has_fn):
                        toks = get(text)
                        if toks is None:
                            toks = self._encode_fresh(text)
                            if toks is None:
                                return self._list_rest(out, mark, kept[i:], msgs, has_fn, mode, next_role)
                        out += toks
                out += _CALL_LIST if (role is _ASSISTANT and recipient is not None) else _END_LIST
        except AttributeError:
            exc = _not_a_message(_messages_of(conversation))
            if exc is not None:
                raise exc from None
            raise
        if next_role is not None:
            out.append(START)
            out += get(next_role._value_) or self._encode_fresh(next_role._value_)
        elif mode == "training" and ends_in_final(msgs):
            out[-1] = RETURN
        return out

    def _list_rest(self, out: List[int], mark: int, rest: List[Message], msgs: List[Message], has_fn, mode: str, next_role) -> List[int]:
        """``out[:mark]`` followed by the messages ``rest`` and the end of the render, through a
        plan (whose fresh texts are encoded in parallel)."""
        if has_fn is None:
            has_fn = _has_function_tools(msgs)
        plan: list = []
        for m in rest:
            self._plan_message(m, has_fn, plan)
        self._plan_end(plan, msgs, mode, next_role)
        del out[mark:]
        out += self.to_list(plan)
        return out

def _check_dropped(msgs: Sequence[Message]) -> None:
    """Raise TypeError if a dropped analysis message among ``msgs`` holds a field of the wrong
    type. openai_harmony reads every message as JSON before it drops any, so such a message fails
    its render; the caller's failure path then reports openai_harmony's own error."""
    for m in msgs:
        if m.channel != "analysis":
            continue
        fields = (m.author.name, m.recipient, m.content_type)
        texts = [getattr(c, "text", "") for c in m.content if isinstance(c, TextContent)]
        if any(f is not None and f.__class__ is not str for f in fields) or any(t.__class__ is not str for t in texts):
            raise TypeError(f"a dropped analysis message holds a value of the wrong type: {m!r}")


def ends_in_final(msgs: List[Message]) -> bool:
    """Whether the conversation ends in an assistant message on the final channel."""
    return bool(msgs) and msgs[-1].author.role is _ASSISTANT and msgs[-1].channel == "final"


def raise_json_input_error(rendered: Any, kind: str, next_role: Any = Role.ASSISTANT) -> None:
    """After a failed render: raise the error openai_harmony meets on sending ``rendered`` (a
    message, or a conversation) to its Rust core as JSON, if there is one. It writes and reads
    that JSON before it renders anything, so such an error comes before any error of rendering;
    a bad next role it meets between writing the JSON and reading it."""
    try:
        Role(next_role)
        role_ok = True
    except Exception:
        role_ok = False
    err = json_input_error(rendered, kind, read_json=role_ok)
    if err is not None:
        raise err from None


def raise_surrogate_error(rendered: Any) -> None:
    """Raise the lone-surrogate ValueError if a text of ``rendered`` (a message or conversation)
    has one. Called when rendering failed: the oracle reads its input as JSON before it renders
    anything, so a lone surrogate anywhere is reported before any rendering error."""
    msgs = [rendered] if isinstance(rendered, Message) else _messages_of(rendered)
    for m in msgs:
        for c in getattr(m, "content", ()):
            text = getattr(c, "text", None)
            if text.__class__ is str:
                try:
                    text.encode("utf-8")
                except UnicodeEncodeError as exc:
                    raise surrogate_error(exc) from None


class _ReturnMark:
    """Plan item: replace the last token rendered so far with ``<|return|>`` (training mode)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<replace last token with <|return|>>"


_RETURN_MARK = _ReturnMark()
