"""Chat-format data to harmony conversations and back, as inference servers convert them.

Four conversions:

* :func:`from_chat`: Chat Completions ``messages`` (the OpenAI / Hugging Face convention) and
  ``tools`` to a harmony :class:`~harmony_np.model.Conversation`;
* :func:`to_chat`: the messages parsed from one completion to the assistant's chat message
  (``content``, ``reasoning_content``, ``tool_calls``);
* :func:`from_responses` / :func:`to_responses`: the same for Responses API items
  (``message``, ``reasoning``, ``function_call``, ``function_call_output``).

The mapping (each harmony message is on the assistant's side unless said otherwise)::

    system / developer, first    -> DeveloperContent instructions ("# Instructions")
    tools (function tools)       -> DeveloperContent tools, namespace "functions"
    reasoning_effort, model_identity, conversation_start_date, builtin_tools -> SystemContent
    user                         -> user message
    assistant reasoning          -> channel "analysis"
    assistant content            -> channel "final"; beside tool calls: "commentary" (a preamble)
    assistant tool call NAME     -> channel "commentary", recipient "functions.NAME",
                                    content type "<|constrain|>json", the arguments as text
    tool result                  -> author tool "functions.NAME", channel "commentary",
                                    recipient "assistant"
    system / developer, later    -> a text message of that role

The references, read for behaviour: vLLM's harmony layer (``harmony_utils.py`` and its successors
``chat_completion/harmony.py``, ``responses/harmony.py``), the gpt-oss reference Responses server
(``gpt_oss/responses_api/api_server.py``) and the gpt-oss chat template of Hugging Face. Where
they differ, harmony_np picks:

* **Content beside tool calls** goes to ``commentary`` (vLLM), not ``analysis`` (the template,
  which refuses content and reasoning together): the harmony format calls visible text before a
  tool call a preamble, on ``commentary``, and :func:`to_chat` reads ``commentary`` back as
  content, so the two directions agree. The order is the model's: reasoning, preamble, calls
  (vLLM puts the preamble before the reasoning).
* **The tool call's content type** is ``<|constrain|>json``, what the harmony format specifies
  and what parsing the model's own calls gives, so a parsed call converted to chat and back is
  the message that was parsed. vLLM writes ``json`` (its comment: ``<|constrain|>json`` is the
  official form, ``json`` is an untested preference), the template ``json``, the gpt-oss server
  none; ``tool_call_content_type=`` sets any of these.
* **Arguments** given as a string are kept as they are (vLLM, the gpt-oss server); a dict is
  written as the template's ``tojson`` writes it (``json.dumps``, non-ASCII kept).
  :func:`to_chat` returns the model's argument text unchanged (vLLM re-serialises it through
  ``json.loads``): the text the model wrote is what the next turn renders.
* **Tool results** are authored by the function their ``tool_call_id`` names: the latest earlier
  call with that id (ids restart in each completion, see below). Without an id, the ``name`` of
  the tool message if given, else the first call of the latest tool-calling assistant message
  not yet answered; once every one is answered, the last call (the template answers every result
  from the last call, which is the same for one call at a time). An id that matches no earlier
  call is an error (the gpt-oss server's rule; vLLM writes ``functions.`` with no name). The
  result's text is kept as it is (vLLM, the gpt-oss server; the template JSON-quotes it).
* **Earlier reasoning** is dropped as the gpt-oss model expects (``drop_reasoning=True``): every
  analysis message before the conversation's last final answer goes, except, when that answer
  ends the conversation, the reasoning of its own step (the assistant's messages after its last
  tool call): a training example keeps its own reasoning. This is the template's rule; vLLM drops the analysis of the current turn before its
  last answer and keeps earlier turns', the gpt-oss server keeps reasoning only after the last
  assistant message when the input ends in a tool result; openai_harmony's own auto-drop
  (rendering) removes only the analysis before the first final message.
* **The conversation start date** is only rendered when given: both servers default it to
  today, which makes the same request render differently from day to day.
* **Later system or developer messages** become text messages of their role (vLLM); the
  template drops them.
* **Empty reasoning, or an empty preamble beside tool calls**, is no message (vLLM skips them
  too); an empty ``content`` of an assistant message without tool calls is an empty final
  answer (the template renders it; vLLM drops it), so that :func:`to_chat`'s ``""`` comes back.
* **Responses assistant messages** go to ``final`` unless their ``phase`` is ``"commentary"``
  (the Responses API's field for preambles); both servers read every assistant message as
  final. :func:`to_responses` writes the phase, so preambles survive the round trip. A reasoning
  item's content parts become one analysis message each (the gpt-oss server; vLLM joins them
  with newlines); its summary is not the model's text and is not rendered.

Ids: :func:`to_chat` numbers the tool calls of a completion ``call_0``, ``call_1``, ...
(``call_id_prefix`` sets the prefix), deterministic where both servers draw random ids; as a tool
result answers the latest earlier call with its id, a conversation can reuse these ids turn after
turn. :func:`to_responses` numbers each kind on its own: ``msg_0``, ``rs_0``, ``fc_0`` with call
id ``call_0``.

Importing :mod:`harmony_np` does not import this module.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple, Union

from .model import (
    Author,
    Conversation,
    DeveloperContent,
    Message,
    ReasoningEffort,
    Role,
    SystemContent,
    TextContent,
    ToolDescription,
)

__all__ = ["from_chat", "to_chat", "from_responses", "to_responses", "CONSTRAIN_JSON"]

CONSTRAIN_JSON = "<|constrain|>json"  # the content type of a function call in harmony's format

_FUNCTIONS = "functions."
_TEXT_PARTS = ("text", "input_text", "output_text")
_REASONING_PARTS = ("reasoning_text", "text")
_REASONING_KEYS = ("reasoning_content", "reasoning", "thinking")
_CHAT_ROLES = ("system", "developer", "user", "assistant", "tool")
_ITEM_ROLES = ("system", "developer", "user", "assistant")
_BUILTINS = ("browser", "python")
# Responses tool types that name a built-in tool of the system message (the gpt-oss server's)
_RESPONSES_BUILTINS = {"web_search": "browser", "web_search_preview": "browser", "browser_search": "browser", "code_interpreter": "python"}
_EFFORTS = {"low": ReasoningEffort.LOW, "medium": ReasoningEffort.MEDIUM, "high": ReasoningEffort.HIGH}
_MISSING: Any = object()


# ---------------------------------------------------------------------------
# Reading fields, with errors that name where
# ---------------------------------------------------------------------------


def _kind(value: Any) -> str:
    return "None" if value is None else type(value).__name__


def _mapping(value: Any, where: str, what: str) -> Mapping:
    if not isinstance(value, Mapping):
        raise TypeError(f"{where}: expected {what} (a dict), got {_kind(value)}")
    return value


def _sequence(value: Any, where: str, what: str) -> Sequence:
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Sequence):
        raise TypeError(f"{where}: expected a list of {what}, got {_kind(value)}")
    return value


def _string(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{where}: expected a string, got {_kind(value)}")
    return value


def _name(value: Any, where: str) -> str:
    """A function name: a string that fits in a message header (the recipient ends at a space)."""
    name = _string(value, where)
    if not name or any(c.isspace() for c in name):
        raise ValueError(f"{where}: a function name must be non-empty, without spaces, got {name!r}")
    return name


def _text(value: Any, where: str, kinds: Tuple[str, ...] = _TEXT_PARTS) -> str:
    """The text of a content field: a string, or a list of text parts (joined as they are)."""
    if isinstance(value, str):
        return value
    if isinstance(value, (bytes, Mapping)) or not isinstance(value, Sequence):
        raise TypeError(f"{where}: expected a string or a list of content parts, got {_kind(value)}")
    return "".join(_part_text(part, f"{where}[{j}]", kinds) for j, part in enumerate(value))


def _part_text(part: Any, at: str, kinds: Tuple[str, ...]) -> str:
    """The text of one content part of one of these ``kinds`` (a bare string passes too)."""
    if isinstance(part, str):
        return part
    part = _mapping(part, at, "a content part")
    kind = part.get("type", kinds[0])
    if kind not in kinds:
        raise ValueError(f"{at}: a content part of type {kind!r} has no harmony form (text parts only: {', '.join(kinds)})")
    return _string(part.get("text"), f"{at}.text")


def _arguments(value: Any, where: str) -> str:
    """A call's arguments as message text: a string as it is, a dict as JSON."""
    if value is _MISSING or value is None:
        raise ValueError(f"{where}: a tool call needs its arguments (a JSON string or a dict)")
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping):
        try:
            return json.dumps(dict(value), ensure_ascii=False)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"{where}: the arguments are not JSON: {exc}") from None
    raise TypeError(f"{where}: expected a JSON string or a dict, got {_kind(value)}")


def _effort(value: Any) -> Optional[ReasoningEffort]:
    if value is None or isinstance(value, ReasoningEffort):
        return value
    if isinstance(value, str) and value.lower() in _EFFORTS:
        return _EFFORTS[value.lower()]
    raise ValueError(f"reasoning_effort: expected 'low', 'medium' or 'high', got {value!r}")


# ---------------------------------------------------------------------------
# The system and developer messages
# ---------------------------------------------------------------------------


def _system_message(
    reasoning_effort: Any, model_identity: Any, conversation_start_date: Any, builtin_tools: Iterable[str], from_tools: Sequence[str] = ()
) -> Message:
    content = SystemContent()  # openai_harmony's defaults: its identity, medium effort, cutoff 2024-06
    if model_identity is not None:
        content.model_identity = _string(model_identity, "model_identity")
    effort = _effort(reasoning_effort)
    if effort is not None:
        content.reasoning_effort = effort
    if conversation_start_date is not None:
        content.conversation_start_date = _string(conversation_start_date, "conversation_start_date")
    if isinstance(builtin_tools, (str, bytes, Mapping)):
        raise TypeError(f"builtin_tools: expected a list of names, got {_kind(builtin_tools)}")
    wanted = set(from_tools)
    for k, tool in enumerate(builtin_tools):
        if tool not in _BUILTINS:
            raise ValueError(f"builtin_tools[{k}]: expected 'browser' or 'python', got {tool!r}")
        wanted.add(tool)
    # the template's order, whatever the order given
    if "browser" in wanted:
        content.with_browser_tool()
    if "python" in wanted:
        content.with_python_tool()
    return Message.from_role_and_content(Role.SYSTEM, content)


def _function_tool(tool: Mapping, at: str) -> ToolDescription:
    """A function tool, nested (chat: ``{"type", "function": {...}}``) or flat (Responses)."""
    fn = tool.get("function", _MISSING)
    if fn is _MISSING:
        fn, fat = tool, at
    else:
        fn, fat = _mapping(fn, f"{at}.function", "a function"), f"{at}.function"
    description = fn.get("description")
    parameters = fn.get("parameters")
    if parameters is not None:
        parameters = dict(_mapping(parameters, f"{fat}.parameters", "a JSON schema"))
    return ToolDescription(
        name=_name(fn.get("name"), f"{fat}.name"),
        description="" if description is None else _string(description, f"{fat}.description"),
        parameters=parameters,
    )


def _tools(tools: Any, builtin_types: Mapping[str, str]) -> Tuple[List[ToolDescription], List[str]]:
    """The function tools and the built-in tools (``browser``, ``python``) that ``tools`` names."""
    functions: List[ToolDescription] = []
    builtins: List[str] = []
    if tools is None:
        return functions, builtins
    for k, tool in enumerate(_sequence(tools, "tools", "tools")):
        at = f"tools[{k}]"
        tool = _mapping(tool, at, "a tool")
        kind = tool.get("type", "function")
        if kind == "function":
            functions.append(_function_tool(tool, at))
        elif kind in builtin_types:
            builtins.append(builtin_types[kind])
        else:
            known = ", ".join(repr(t) for t in ("function", *builtin_types))
            raise ValueError(f"{at}.type: expected {known}, got {kind!r}")
    return functions, builtins


def _preamble(instructions: Optional[str], functions: List[ToolDescription], system: Message) -> List[Message]:
    out = [system]
    if instructions or functions:
        dev = DeveloperContent()
        if instructions:
            dev.instructions = instructions
        if functions:
            dev.with_function_tools(functions)
        out.append(Message.from_role_and_content(Role.DEVELOPER, dev))
    return out


# ---------------------------------------------------------------------------
# Building the body of a conversation
# ---------------------------------------------------------------------------


def _assistant(text: str, channel: str) -> Message:
    return Message.from_role_and_content(Role.ASSISTANT, text).with_channel(channel)


def _tool_call(name: str, arguments: str, content_type: Optional[str]) -> Message:
    m = _assistant(arguments, "commentary").with_recipient(_FUNCTIONS + name)
    if content_type is not None:
        m.content_type = content_type
    return m


def _tool_result(name: str, text: str) -> Message:
    author = Author(role=Role.TOOL, name=_FUNCTIONS + name)
    return Message.from_author_and_content(author, text).with_channel("commentary").with_recipient("assistant")


class _Calls:
    """The tool calls met so far, to find which function a tool result answers."""

    def __init__(self) -> None:
        self.ids: List[Optional[str]] = []
        self.names: List[str] = []
        self.answered: List[bool] = []
        self.group: List[int] = []  # the calls of the latest tool-calling assistant message

    def add(self, calls: Sequence[Tuple[Optional[str], str]]) -> None:
        start = len(self.names)
        for cid, name in calls:
            self.ids.append(cid)
            self.names.append(name)
            self.answered.append(False)
        self.group = list(range(start, len(self.names)))

    def by_id(self, cid: str) -> Optional[int]:
        for k in range(len(self.ids) - 1, -1, -1):
            if self.ids[k] == cid:
                return k
        return None

    def next_unanswered(self, name: Optional[str] = None) -> Optional[int]:
        for k in self.group:
            if not self.answered[k] and (name is None or self.names[k] == name):
                return k
        return None


def _drop_answered_reasoning(body: List[Message]) -> List[Message]:
    """Without the analysis messages of turns already answered (see the module's notes)."""
    last_final = -1
    for i in range(len(body) - 1, -1, -1):
        if body[i].author.role is Role.ASSISTANT and body[i].channel == "final":
            last_final = i
            break
    if last_final < 0:
        return body
    keep_from = last_final
    if last_final == len(body) - 1:
        # the answer's own reasoning: the assistant's messages just before it, back to the
        # last tool call or message of another role
        while keep_from > 0:
            m = body[keep_from - 1]
            if m.author.role is not Role.ASSISTANT or m.recipient is not None or m.channel not in ("analysis", "commentary"):
                break
            keep_from -= 1
    return [m for i, m in enumerate(body) if i >= keep_from or m.channel != "analysis"]


def _reasoning(msg: Mapping, where: str) -> Optional[str]:
    """The assistant's reasoning, under any of the keys the conventions use (one value)."""
    found: Dict[str, str] = {}
    for key in _REASONING_KEYS:
        value = msg.get(key)
        if value is not None:
            found[key] = _text(value, f"{where}.{key}")
    values = {v for v in found.values() if v}
    if len(values) > 1:
        keys = " and ".join(repr(k) for k in found)
        raise ValueError(f"{where}: {keys} differ; give the reasoning once")
    return values.pop() if values else None


def _chat_call(call: Any, where: str) -> Tuple[Optional[str], str, str]:
    """``(id, name, arguments)`` of a chat tool call (``{"function": {...}}``, or flat)."""
    call = _mapping(call, where, "a tool call")
    kind = call.get("type", "function")
    if kind != "function":
        raise ValueError(f"{where}.type: only function tool calls have a harmony form, got {kind!r}")
    fn = call.get("function", _MISSING)
    if fn is _MISSING:
        if "name" not in call:
            raise ValueError(f"{where}: a tool call needs a 'function' with its name and arguments")
        fn, fat = call, where
    else:
        fn, fat = _mapping(fn, f"{where}.function", "a function"), f"{where}.function"
    cid = call.get("id")
    if cid is not None:
        cid = _string(cid, f"{where}.id")
    return cid, _name(fn.get("name"), f"{fat}.name"), _arguments(fn.get("arguments", _MISSING), f"{fat}.arguments")


def _result_name(calls: _Calls, cid: Optional[str], name: Optional[str], where: str, id_key: str) -> str:
    """The function a tool result answers (marked answered), from its call id or name."""
    if name is not None and name.startswith(_FUNCTIONS):
        name = name[len(_FUNCTIONS):]
    if cid is not None:
        k = calls.by_id(cid)
        if k is None:
            raise ValueError(f"{where}: tool message with {id_key} {cid!r} matches no earlier tool call")
        if name is not None and name != calls.names[k]:
            raise ValueError(f"{where}: name {name!r} differs from {calls.names[k]!r}, the function of tool call {cid!r}")
    elif name is not None:
        k = calls.next_unanswered(name)
        if k is None:
            return _name(name, f"{where}.name")
    else:
        k = calls.next_unanswered()
        if k is None:
            if not calls.names:
                raise ValueError(f"{where}: tool message without {id_key} follows no tool call")
            k = len(calls.names) - 1  # every call answered: the last one, as the template does
    calls.answered[k] = True
    return calls.names[k]


# ---------------------------------------------------------------------------
# Chat Completions
# ---------------------------------------------------------------------------


def from_chat(
    messages: Sequence[Mapping[str, Any]],
    *,
    tools: Optional[Sequence[Mapping[str, Any]]] = None,
    reasoning_effort: Union[ReasoningEffort, str, None] = None,
    model_identity: Optional[str] = None,
    conversation_start_date: Optional[str] = None,
    builtin_tools: Iterable[str] = (),
    tool_call_content_type: Optional[str] = CONSTRAIN_JSON,
    drop_reasoning: bool = True,
) -> Conversation:
    """The harmony conversation of Chat Completions ``messages`` and ``tools``.

    ``messages``: dicts with ``role`` (system, developer, user, assistant, tool) and ``content``
    (a string or a list of ``{"type": "text", "text": ...}`` parts); an assistant message may
    hold ``tool_calls`` (``[{"id", "type": "function", "function": {"name", "arguments"}}]``,
    arguments a JSON string or a dict) and its reasoning as ``reasoning_content``,
    ``reasoning`` or ``thinking``; a tool message answers the call of its ``tool_call_id`` (or
    ``name``, or the next unanswered call). ``tools``: OpenAI function tools
    (``[{"type": "function", "function": {"name", "description", "parameters"}}]``).

    The system message carries ``model_identity``, ``reasoning_effort`` (``"low"``,
    ``"medium"``, ``"high"`` or a :class:`ReasoningEffort`), ``conversation_start_date`` and the
    ``builtin_tools`` (``"browser"``, ``"python"``); None keeps openai_harmony's default. A first
    system or developer message becomes the developer instructions. ``tool_call_content_type``
    is the content type of each call (None: no content type); ``drop_reasoning=False`` keeps
    every turn's reasoning. The module's notes give the mapping and why.

    Raises ``TypeError`` or ``ValueError`` naming the message and field, e.g.
    ``messages[3]: tool message with tool_call_id 'x' matches no earlier tool call``.

    >>> conv = from_chat([
    ...     {"role": "system", "content": "Answer briefly."},
    ...     {"role": "user", "content": "Weather in Paris?"},
    ...     {"role": "assistant", "reasoning_content": "Need the tool.", "tool_calls": [
    ...         {"id": "c1", "type": "function", "function": {"name": "weather", "arguments": '{"city": "Paris"}'}}]},
    ...     {"role": "tool", "tool_call_id": "c1", "content": "18 C"},
    ... ], tools=[{"type": "function", "function": {"name": "weather", "description": "Current weather"}}])
    >>> [(m.author.role.value, m.author.name, m.channel, m.recipient) for m in conv.messages]  # doctest: +NORMALIZE_WHITESPACE
    [('system', None, None, None), ('developer', None, None, None), ('user', None, None, None),
     ('assistant', None, 'analysis', None), ('assistant', None, 'commentary', 'functions.weather'),
     ('tool', 'functions.weather', 'commentary', 'assistant')]
    >>> conv.messages[1].content[0].instructions
    'Answer briefly.'
    >>> conv.messages[4].content_type
    '<|constrain|>json'
    """
    functions, _ = _tools(tools, {})
    system = _system_message(reasoning_effort, model_identity, conversation_start_date, builtin_tools)
    items = list(_sequence(messages, "messages", "messages"))
    instructions: Optional[str] = None
    start = 0
    if items:
        first = _mapping(items[0], "messages[0]", "a message")
        if first.get("role") in ("system", "developer"):
            instructions = _text(_required_content(first, "messages[0]"), "messages[0].content") or None
            start = 1
    calls = _Calls()
    body: List[Message] = []
    for i in range(start, len(items)):
        _chat_message(items[i], f"messages[{i}]", calls, body, tool_call_content_type)
    if drop_reasoning:
        body = _drop_answered_reasoning(body)
    return Conversation.from_messages(_preamble(instructions, functions, system) + body)


def _required_content(msg: Mapping, where: str) -> Any:
    content = msg.get("content", _MISSING)
    if content is _MISSING:
        raise ValueError(f"{where}: a {msg.get('role')} message needs 'content'")
    return content


def _chat_message(msg: Any, where: str, calls: _Calls, body: List[Message], content_type: Optional[str]) -> None:
    msg = _mapping(msg, where, "a message")
    role = msg.get("role", _MISSING)
    if role is _MISSING:
        raise ValueError(f"{where}: a message needs a 'role'")
    if role not in _CHAT_ROLES:
        raise ValueError(f"{where}.role: expected one of {', '.join(map(repr, _CHAT_ROLES))}, got {role!r}")
    if role == "assistant":
        reasoning = _reasoning(msg, where)
        content = msg.get("content")
        text = None if content is None else _text(content, f"{where}.content")
        raw_calls = msg.get("tool_calls")
        parsed = [] if raw_calls is None else [_chat_call(c, f"{where}.tool_calls[{k}]") for k, c in enumerate(_sequence(raw_calls, f"{where}.tool_calls", "tool calls"))]
        if not parsed and text is None and reasoning is None:
            raise ValueError(f"{where}: an assistant message needs content, reasoning or tool calls")
        if reasoning:
            body.append(_assistant(reasoning, "analysis"))
        if parsed:
            if text:
                body.append(_assistant(text, "commentary"))
            calls.add([(cid, name) for cid, name, _ in parsed])
            body.extend(_tool_call(name, args, content_type) for _, name, args in parsed)
        elif text is not None:
            body.append(_assistant(text, "final"))
        return
    text = _text(_required_content(msg, where), f"{where}.content")
    if role == "tool":
        cid = msg.get("tool_call_id")
        if cid is not None:
            cid = _string(cid, f"{where}.tool_call_id")
        name = msg.get("name")
        if name is not None:
            name = _string(name, f"{where}.name")
        body.append(_tool_result(_result_name(calls, cid, name, where, "tool_call_id"), text))
    else:
        body.append(Message.from_role_and_content(Role(role), text))


def _visible(messages: Sequence[Message], where: str = "messages") -> List[Tuple[str, str, Optional[str]]]:
    """Each message of a completion as ``(kind, text, function)``: kind ``reasoning``,
    ``final``, ``commentary`` (a preamble) or ``call`` (function: the name called)."""
    out: List[Tuple[str, str, Optional[str]]] = []
    for i, m in enumerate(messages):
        at = f"{where}[{i}]"
        if not isinstance(m, Message):
            raise TypeError(f"{at}: expected a harmony Message, got {_kind(m)}")
        if m.author.role is not Role.ASSISTANT:
            raise ValueError(f"{at}: a completion holds the assistant's messages, got one of role {Role(m.author.role).value!r}")
        texts = []
        for j, c in enumerate(m.content):
            if not isinstance(c, TextContent):
                raise TypeError(f"{at}.content[{j}]: expected text, got {_kind(c)}")
            texts.append(c.text)
        text = "".join(texts)
        recipient = m.recipient
        if recipient is not None:
            _string(recipient, f"{at}.recipient")
            if not recipient.startswith(_FUNCTIONS) or len(recipient) == len(_FUNCTIONS):
                raise ValueError(f"{at}: recipient {recipient!r} is not a function (functions.NAME); built-in tool calls have no chat form")
            out.append(("call", text, recipient[len(_FUNCTIONS):]))
        elif m.channel == "analysis":
            out.append(("reasoning", text, None))
        elif m.channel in ("final", None):
            out.append(("final", text, None))
        elif m.channel == "commentary":
            out.append(("commentary", text, None))
        else:
            raise ValueError(f"{at}: channel {m.channel!r} is not analysis, commentary or final")
    return out


def to_chat(messages: Sequence[Message], *, call_id_prefix: str = "call_") -> Dict[str, Any]:
    """The assistant's chat message of a completion's parsed messages.

    ``{"role": "assistant", "content": ..., "reasoning_content": ..., "tool_calls": [...]}``:
    content is the text of the final and commentary (preamble) messages, reasoning the text of
    the analysis messages, each joined with newlines in their order (vLLM's reading), None when
    there is none; each message to ``functions.NAME`` is a tool call
    ``{"id": call_id_prefix + index, "type": "function", "function": {"name", "arguments"}}``,
    its arguments the text the model wrote. A call to another recipient (a built-in tool) or a
    message of another role raises ``ValueError``.

    >>> from harmony_np import load_harmony_encoding, Role
    >>> enc = load_harmony_encoding("HarmonyGptOss")
    >>> tokens = enc.encode(
    ...     "<|channel|>analysis<|message|>Need the tool.<|end|><|start|>assistant<|channel|>commentary"
    ...     ' to=functions.weather <|constrain|>json<|message|>{"city":"Paris"}<|call|>', allowed_special="all")
    >>> to_chat(enc.parse_messages_from_completion_tokens(tokens, Role.ASSISTANT))  # doctest: +NORMALIZE_WHITESPACE
    {'role': 'assistant', 'content': None, 'reasoning_content': 'Need the tool.',
     'tool_calls': [{'id': 'call_0', 'type': 'function', 'function': {'name': 'weather', 'arguments': '{"city":"Paris"}'}}]}
    """
    _string(call_id_prefix, "call_id_prefix")
    content: List[str] = []
    reasoning: List[str] = []
    tool_calls: List[Dict[str, Any]] = []
    for kind, text, function in _visible(list(messages)):
        if kind == "reasoning":
            reasoning.append(text)
        elif kind == "call":
            fn = {"name": function, "arguments": text}
            tool_calls.append({"id": f"{call_id_prefix}{len(tool_calls)}", "type": "function", "function": fn})
        else:
            content.append(text)
    return {
        "role": "assistant",
        "content": "\n".join(content) if content else None,
        "reasoning_content": "\n".join(reasoning) if reasoning else None,
        "tool_calls": tool_calls,
    }


# ---------------------------------------------------------------------------
# Responses API
# ---------------------------------------------------------------------------


def from_responses(
    items: Union[str, Sequence[Mapping[str, Any]]],
    *,
    instructions: Optional[str] = None,
    tools: Optional[Sequence[Mapping[str, Any]]] = None,
    reasoning_effort: Union[ReasoningEffort, str, None] = None,
    model_identity: Optional[str] = None,
    conversation_start_date: Optional[str] = None,
    builtin_tools: Iterable[str] = (),
    tool_call_content_type: Optional[str] = CONSTRAIN_JSON,
    drop_reasoning: bool = True,
) -> Conversation:
    """The harmony conversation of a Responses API ``input`` (a string: one user message).

    Items: ``message`` (``role``, ``content`` a string or ``input_text`` / ``output_text``
    parts; an assistant message's ``phase`` ``"commentary"`` puts it on ``commentary``, else it
    is final), ``reasoning`` (``content`` of ``reasoning_text`` parts: analysis messages),
    ``function_call`` (``call_id``, ``name``, ``arguments``) and ``function_call_output``
    (``call_id``, ``output``), which must answer an earlier call. ``instructions`` are the
    developer instructions (without them, a first system or developer message gives them);
    ``tools`` are Responses tools: ``{"type": "function", "name", "description",
    "parameters"}``, and ``web_search`` / ``web_search_preview`` / ``browser_search`` /
    ``code_interpreter``, which add the built-in browser or python tool as the gpt-oss server
    does. The other options are :func:`from_chat`'s.

    >>> conv = from_responses([
    ...     {"type": "message", "role": "user", "content": "Weather in Paris?"},
    ...     {"type": "function_call", "call_id": "c1", "name": "weather", "arguments": '{"city": "Paris"}'},
    ...     {"type": "function_call_output", "call_id": "c1", "output": "18 C"},
    ... ], instructions="Answer briefly.", tools=[{"type": "function", "name": "weather", "description": "Current weather"}])
    >>> [(m.author.role.value, m.author.name, m.channel, m.recipient) for m in conv.messages[2:]]  # doctest: +NORMALIZE_WHITESPACE
    [('user', None, None, None), ('assistant', None, 'commentary', 'functions.weather'),
     ('tool', 'functions.weather', 'commentary', 'assistant')]
    """
    functions, builtins = _tools(tools, _RESPONSES_BUILTINS)
    system = _system_message(reasoning_effort, model_identity, conversation_start_date, builtin_tools, builtins)
    if instructions is not None:
        instructions = _string(instructions, "instructions") or None
    if isinstance(items, str):
        items = [{"type": "message", "role": "user", "content": items}]
    items = list(_sequence(items, "items", "items"))
    calls = _Calls()
    body: List[Message] = []
    for i, item in enumerate(items):
        at = f"items[{i}]"
        item = _mapping(item, at, "an item")
        kind = item.get("type", "message" if "role" in item else _MISSING)
        if kind is _MISSING:
            raise ValueError(f"{at}: an item needs a 'type'")
        if kind == "message":
            role = item.get("role", _MISSING)
            if role not in _ITEM_ROLES:
                raise ValueError(f"{at}.role: expected one of {', '.join(map(repr, _ITEM_ROLES))}, got {'nothing' if role is _MISSING else repr(role)}")
            text = _text(_required_content(item, at), f"{at}.content")
            if i == 0 and role in ("system", "developer") and instructions is None:
                instructions = text or None
            elif role == "assistant":
                phase = item.get("phase")
                if phase not in (None, "commentary", "final_answer"):
                    raise ValueError(f"{at}.phase: expected 'commentary' or 'final_answer', got {phase!r}")
                body.append(_assistant(text, "commentary" if phase == "commentary" else "final"))
            else:
                body.append(Message.from_role_and_content(Role(role), text))
        elif kind == "reasoning":
            content = item.get("content")
            if content is not None:
                for j, part in enumerate(_sequence(content, f"{at}.content", "reasoning parts")):
                    body.append(_assistant(_part_text(part, f"{at}.content[{j}]", _REASONING_PARTS), "analysis"))
        elif kind == "function_call":
            cid = item.get("call_id")
            if cid is not None:
                cid = _string(cid, f"{at}.call_id")
            name = _name(item.get("name"), f"{at}.name")
            calls.add([(cid, name)])
            body.append(_tool_call(name, _arguments(item.get("arguments", _MISSING), f"{at}.arguments"), tool_call_content_type))
        elif kind == "function_call_output":
            cid = item.get("call_id", _MISSING)
            if cid is _MISSING or cid is None:
                raise ValueError(f"{at}: a function_call_output needs the 'call_id' of its call")
            cid = _string(cid, f"{at}.call_id")
            k = calls.by_id(cid)
            if k is None:
                raise ValueError(f"{at}: function_call_output with call_id {cid!r} matches no earlier function_call")
            output = item.get("output", _MISSING)
            if output is _MISSING:
                raise ValueError(f"{at}: a function_call_output needs its 'output'")
            body.append(_tool_result(calls.names[k], _text(output, f"{at}.output")))
        else:
            raise ValueError(f"{at}.type: expected 'message', 'reasoning', 'function_call' or 'function_call_output', got {kind!r}")
    if drop_reasoning:
        body = _drop_answered_reasoning(body)
    return Conversation.from_messages(_preamble(instructions, functions, system) + body)


def to_responses(messages: Sequence[Message], *, call_id_prefix: str = "call_") -> List[Dict[str, Any]]:
    """The Responses API output items of a completion's parsed messages, in their order.

    Analysis: a ``reasoning`` item (``rs_N``) with one ``reasoning_text`` part; final and
    commentary (preamble): an assistant ``message`` (``msg_N``) with one ``output_text`` part
    and ``phase`` ``"final_answer"`` or ``"commentary"``; a message to ``functions.NAME``: a
    ``function_call`` (``fc_N``, call id ``call_id_prefix + N``, the arguments as written). Each
    kind is numbered from 0 on its own. Errors as :func:`to_chat`'s.

    >>> from harmony_np import load_harmony_encoding, Role
    >>> enc = load_harmony_encoding("HarmonyGptOss")
    >>> tokens = enc.encode("<|channel|>analysis<|message|>Easy.<|end|><|start|>assistant<|channel|>final<|message|>4<|return|>",
    ...                     allowed_special="all")
    >>> [item["type"] for item in to_responses(enc.parse_messages_from_completion_tokens(tokens, Role.ASSISTANT))]
    ['reasoning', 'message']
    """
    _string(call_id_prefix, "call_id_prefix")
    out: List[Dict[str, Any]] = []
    counts = {"reasoning": 0, "message": 0, "call": 0}
    for kind, text, function in _visible(list(messages)):
        if kind == "reasoning":
            out.append({"type": "reasoning", "id": f"rs_{counts['reasoning']}", "summary": [], "content": [{"type": "reasoning_text", "text": text}]})
            counts["reasoning"] += 1
        elif kind == "call":
            n = counts["call"]
            out.append({"type": "function_call", "id": f"fc_{n}", "call_id": f"{call_id_prefix}{n}", "name": function, "arguments": text, "status": "completed"})
            counts["call"] += 1
        else:
            out.append({
                "type": "message",
                "id": f"msg_{counts['message']}",
                "role": "assistant",
                "status": "completed",
                "content": [{"type": "output_text", "text": text, "annotations": []}],
                "phase": "final_answer" if kind == "final" else "commentary",
            })
            counts["message"] += 1
    return out
