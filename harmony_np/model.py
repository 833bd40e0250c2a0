"""The message model: the names, constructors, builders and dict/JSON shapes of openai_harmony.

Plain classes with ``__slots__`` instead of pydantic models: building a message costs
microseconds, and the dicts and JSON they produce equal openai_harmony's.
"""

from __future__ import annotations

import json
from enum import Enum
from typing import Any, Dict, Iterator, List, Optional, Sequence, Union

from .errors import HarmonyError

__all__ = [
    "Role",
    "Author",
    "Content",
    "TextContent",
    "SystemContent",
    "DeveloperContent",
    "ToolDescription",
    "ToolNamespaceConfig",
    "ChannelConfig",
    "ReasoningEffort",
    "Message",
    "Conversation",
    "RenderConversationConfig",
    "RenderOptions",
    "HarmonyEncodingName",
    "StreamState",
    "HarmonyError",
]


class Role(str, Enum):
    """The role of a message's author."""

    USER = "user"
    ASSISTANT = "assistant"
    SYSTEM = "system"
    DEVELOPER = "developer"
    TOOL = "tool"

    @classmethod
    def _missing_(cls, value: object) -> "Role":
        raise ValueError(f"Unknown role: {value!r}")


class ReasoningEffort(str, Enum):
    """How much the model should reason (rendered as ``Reasoning: low|medium|high``)."""

    LOW = "Low"
    MEDIUM = "Medium"
    HIGH = "High"


class HarmonyEncodingName(str, Enum):
    """Names accepted by :func:`load_harmony_encoding`."""

    HARMONY_GPT_OSS = "HarmonyGptOss"

    def __str__(self) -> str:
        return str(self.value)


class StreamState(Enum):
    """Where a :class:`StreamableParser` is in the current message."""

    EXPECT_START = "ExpectStart"
    HEADER = "Header"
    CONTENT = "Content"


def _check_str(value: Any, what: str) -> None:
    if value.__class__ is not str and not isinstance(value, str):
        raise TypeError(f"{what} must be a str, got {type(value).__name__}: {value!r}")


def _check_opt_str(value: Any, what: str) -> None:
    if value is not None and value.__class__ is not str and not isinstance(value, str):
        raise TypeError(f"{what} must be a str or None, got {type(value).__name__}: {value!r}")


def _as_role(value: Any) -> Role:
    if value.__class__ is Role:
        return value
    if isinstance(value, str):
        return Role(value)
    raise TypeError(f"role must be a Role or a role name, got {type(value).__name__}: {value!r}")


class _Model:
    """Equality, repr and copies by field, as pydantic models compare."""

    __slots__ = ()
    _fields: tuple = ()

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return all(getattr(self, f) == getattr(other, f) for f in self._fields)

    def __ne__(self, other: object) -> bool:
        eq = self.__eq__(other)
        return eq if eq is NotImplemented else not eq

    __hash__ = None  # type: ignore[assignment]  # mutable, as the pydantic models are

    def __repr__(self) -> str:
        inner = ", ".join(f"{f}={getattr(self, f)!r}" for f in self._fields)
        return f"{type(self).__name__}({inner})"

    def model_copy(self, *, deep: bool = False):
        """A copy (deep copies the nested lists and dicts when ``deep``)."""
        import copy

        return copy.deepcopy(self) if deep else copy.copy(self)

    def __copy__(self):
        new = object.__new__(self.__class__)
        for f in self._fields:
            object.__setattr__(new, f, getattr(self, f))
        return new


class Author(_Model):
    """Who wrote a message: a role and, optionally, a name (tools always have one)."""

    __slots__ = ("role", "name")
    _fields = ("role", "name")

    def __init__(self, role: Union[Role, str], name: Optional[str] = None) -> None:
        self.role = _as_role(role)
        _check_opt_str(name, "Author name")
        self.name = name

    @classmethod
    def new(cls, role: Union[Role, str], name: str) -> "Author":
        return cls(role, name)

    def model_dump(self) -> Dict[str, Any]:
        return {"role": self.role, "name": self.name}


class Content(_Model):
    """Base of the content kinds: text, system content and developer content."""

    __slots__ = ()

    def to_dict(self) -> Dict[str, Any]:
        raise NotImplementedError


class TextContent(Content):
    """Plain text."""

    __slots__ = ("text",)
    _fields = ("text",)

    def __init__(self, text: str) -> None:
        _check_str(text, "TextContent text")
        self.text = text

    def to_dict(self) -> Dict[str, Any]:
        return {"type": "text", "text": self.text}


class ToolDescription(_Model):
    """A function tool: a name, a description and an optional JSON schema of its parameters."""

    __slots__ = ("name", "description", "parameters")
    _fields = ("name", "description", "parameters")

    def __init__(self, name: str, description: str, parameters: Optional[dict] = None) -> None:
        _check_str(name, "ToolDescription name")
        _check_str(description, "ToolDescription description")
        if parameters is not None and not isinstance(parameters, dict):
            raise TypeError(
                f"ToolDescription parameters must be a dict or None, got "
                f"{type(parameters).__name__}: {parameters!r}"
            )
        self.name = name
        self.description = description
        self.parameters = parameters

    @classmethod
    def new(cls, name: str, description: str, parameters: Optional[dict] = None) -> "ToolDescription":
        return cls(name, description, parameters)

    def model_dump(self, exclude_none: bool = False) -> Dict[str, Any]:
        out: Dict[str, Any] = {"name": self.name, "description": self.description}
        if self.parameters is not None or not exclude_none:
            out["parameters"] = self.parameters
        return out

    @classmethod
    def _from_raw(cls, raw: Any) -> "ToolDescription":
        if isinstance(raw, ToolDescription):
            return raw
        if not isinstance(raw, dict):
            raise TypeError(f"a tool must be a ToolDescription or a dict, got {type(raw).__name__}: {raw!r}")
        return cls(raw.get("name"), raw.get("description"), raw.get("parameters"))


class ChannelConfig(_Model):
    """The channels a model may write to, and whether every message must name one."""

    __slots__ = ("valid_channels", "channel_required")
    _fields = ("valid_channels", "channel_required")

    def __init__(self, valid_channels: List[str], channel_required: bool) -> None:
        if isinstance(valid_channels, (str, bytes)) or not isinstance(valid_channels, (list, tuple)):
            raise TypeError(f"valid_channels must be a list of str, got {valid_channels!r}")
        for c in valid_channels:
            _check_str(c, "a valid channel")
        self.valid_channels = list(valid_channels)
        self.channel_required = bool(channel_required)

    @classmethod
    def require_channels(cls, channels: List[str]) -> "ChannelConfig":
        return cls(channels, True)

    def model_dump(self) -> Dict[str, Any]:
        return {"valid_channels": list(self.valid_channels), "channel_required": self.channel_required}

    @classmethod
    def _from_raw(cls, raw: Any) -> "ChannelConfig":
        if isinstance(raw, ChannelConfig):
            return raw
        if not isinstance(raw, dict):
            raise TypeError(f"channel_config must be a ChannelConfig or a dict, got {raw!r}")
        return cls(raw.get("valid_channels"), raw.get("channel_required"))


_BROWSER_DESCRIPTION = (
    "Tool for browsing.\nThe `cursor` appears in brackets before each browsing display: `[{cursor}]`.\n"
    "Cite information from the tool using the following format:\n"
    "`\u3010{cursor}\u2020L{line_start}(-L{line_end})?\u3011`, for example: "
    "`\u30106\u2020L9-L11\u3011` or `\u30108\u2020L3\u3011`.\n"
    "Do not quote more than 10 words directly from the tool output.\nsources=web (default: web)"
)
_BROWSER_OPEN_DESCRIPTION = (
    "Opens the link `id` from the page indicated by `cursor` starting at line number `loc`, "
    "showing `num_lines` lines.\nValid link ids are displayed with the formatting: "
    "`\u3010{id}\u2020.*\u3011`.\nIf `cursor` is not provided, the most recent page is implied.\n"
    "If `id` is a string, it is treated as a fully qualified URL associated with `source`.\n"
    "If `loc` is not provided, the viewport will be positioned at the beginning of the document "
    "or centered on the most relevant passage, if available.\n"
    "Use this function without `id` to scroll to a new location of an opened page."
)
_PYTHON_DESCRIPTION = (
    "Use this tool to execute Python code in your chain of thought. The code will not be shown "
    "to the user. This tool should be used for internal reasoning, but not for code that is "
    "intended to be visible to the user (e.g. when creating plots, tables, or files).\n\n"
    "When you send a message containing Python code to python, it will be executed in a stateful "
    "Jupyter notebook environment. python will respond with the output of the execution or time "
    "out after 120.0 seconds. The drive at '/mnt/data' can be used to save and persist user "
    "files. Internet access for this session is UNKNOWN. Depends on the cluster."
)


def _browser_tools() -> List[ToolDescription]:
    num = {"type": "number", "default": -1}
    return [
        ToolDescription(
            "search",
            "Searches for information related to `query` and displays `topn` results.",
            {
                "type": "object",
                "properties": {
                    "query": {"type": "string"},
                    "topn": {"type": "number", "default": 10},
                    "source": {"type": "string"},
                },
                "required": ["query"],
            },
        ),
        ToolDescription(
            "open",
            _BROWSER_OPEN_DESCRIPTION,
            {
                "type": "object",
                "properties": {
                    "id": {"type": ["number", "string"], "default": -1},
                    "cursor": dict(num),
                    "loc": dict(num),
                    "num_lines": dict(num),
                    "view_source": {"type": "boolean", "default": False},
                    "source": {"type": "string"},
                },
            },
        ),
        ToolDescription(
            "find",
            "Finds exact matches of `pattern` in the current page, or the page given by `cursor`.",
            {
                "type": "object",
                "properties": {"pattern": {"type": "string"}, "cursor": dict(num)},
                "required": ["pattern"],
            },
        ),
    ]


class ToolNamespaceConfig(_Model):
    """A namespace of tools (``functions``, ``browser``, ``python``, or your own)."""

    __slots__ = ("name", "description", "tools")
    _fields = ("name", "description", "tools")

    def __init__(self, name: str, description: Optional[str] = None, tools: Sequence[ToolDescription] = ()) -> None:
        _check_str(name, "ToolNamespaceConfig name")
        _check_opt_str(description, "ToolNamespaceConfig description")
        if isinstance(tools, (str, bytes, dict)):
            raise TypeError(f"tools must be a list of ToolDescription, got {tools!r}")
        self.name = name
        self.description = description
        self.tools = [ToolDescription._from_raw(t) for t in tools]

    @staticmethod
    def browser() -> "ToolNamespaceConfig":
        return ToolNamespaceConfig("browser", _BROWSER_DESCRIPTION, _browser_tools())

    @staticmethod
    def python() -> "ToolNamespaceConfig":
        return ToolNamespaceConfig("python", _PYTHON_DESCRIPTION, [])

    def model_dump(self, exclude_none: bool = False) -> Dict[str, Any]:
        out: Dict[str, Any] = {"name": self.name}
        if self.description is not None or not exclude_none:
            out["description"] = self.description
        out["tools"] = [t.model_dump(exclude_none) for t in self.tools]
        return out

    @classmethod
    def _from_raw(cls, raw: Any) -> "ToolNamespaceConfig":
        if isinstance(raw, ToolNamespaceConfig):
            return raw
        if not isinstance(raw, dict):
            raise TypeError(f"a tool namespace must be a ToolNamespaceConfig or a dict, got {raw!r}")
        return cls(raw.get("name"), raw.get("description"), raw.get("tools", ()))


def _tools_from_raw(raw: Any) -> Optional[Dict[str, ToolNamespaceConfig]]:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise TypeError(f"tools must be a dict of name to ToolNamespaceConfig, got {raw!r}")
    return {k: ToolNamespaceConfig._from_raw(v) for k, v in raw.items()}


def _dump_tools(tools: Dict[str, ToolNamespaceConfig]) -> Dict[str, Any]:
    return {k: v.model_dump(exclude_none=True) for k, v in tools.items()}


_DEFAULT_IDENTITY = "You are ChatGPT, a large language model trained by OpenAI."


class SystemContent(Content):
    """The system message: model identity, dates, reasoning effort, channels and built-in tools."""

    __slots__ = (
        "model_identity",
        "reasoning_effort",
        "conversation_start_date",
        "knowledge_cutoff",
        "channel_config",
        "tools",
    )
    _fields = __slots__

    def __init__(
        self,
        model_identity: Optional[str] = _DEFAULT_IDENTITY,
        reasoning_effort: Optional[ReasoningEffort] = ReasoningEffort.MEDIUM,
        conversation_start_date: Optional[str] = None,
        knowledge_cutoff: Optional[str] = "2024-06",
        channel_config: Optional[ChannelConfig] = ...,  # type: ignore[assignment]
        tools: Optional[Dict[str, ToolNamespaceConfig]] = None,
        **extra: Any,
    ) -> None:
        if extra.keys() - {"type"}:
            raise TypeError(f"SystemContent got unknown fields: {sorted(extra.keys() - {'type'})}")
        _check_opt_str(model_identity, "model_identity")
        _check_opt_str(conversation_start_date, "conversation_start_date")
        _check_opt_str(knowledge_cutoff, "knowledge_cutoff")
        self.model_identity = model_identity
        self.reasoning_effort = None if reasoning_effort is None else ReasoningEffort(reasoning_effort)
        self.conversation_start_date = conversation_start_date
        self.knowledge_cutoff = knowledge_cutoff
        if channel_config is ...:
            channel_config = ChannelConfig(["analysis", "commentary", "final"], True)
        self.channel_config = None if channel_config is None else ChannelConfig._from_raw(channel_config)
        self.tools = _tools_from_raw(tools)

    @classmethod
    def new(cls) -> "SystemContent":
        return cls()

    def with_model_identity(self, model_identity: str) -> "SystemContent":
        _check_opt_str(model_identity, "model_identity")
        self.model_identity = model_identity
        return self

    def with_reasoning_effort(self, reasoning_effort: ReasoningEffort) -> "SystemContent":
        self.reasoning_effort = ReasoningEffort(reasoning_effort)
        return self

    def with_conversation_start_date(self, conversation_start_date: str) -> "SystemContent":
        _check_opt_str(conversation_start_date, "conversation_start_date")
        self.conversation_start_date = conversation_start_date
        return self

    def with_knowledge_cutoff(self, knowledge_cutoff: str) -> "SystemContent":
        _check_opt_str(knowledge_cutoff, "knowledge_cutoff")
        self.knowledge_cutoff = knowledge_cutoff
        return self

    def with_channel_config(self, channel_config: ChannelConfig) -> "SystemContent":
        self.channel_config = ChannelConfig._from_raw(channel_config)
        return self

    def with_required_channels(self, channels: List[str]) -> "SystemContent":
        self.channel_config = ChannelConfig.require_channels(channels)
        return self

    def with_tools(self, ns_config: ToolNamespaceConfig) -> "SystemContent":
        ns_config = ToolNamespaceConfig._from_raw(ns_config)
        if self.tools is None:
            self.tools = {}
        self.tools[ns_config.name] = ns_config
        return self

    def with_browser_tool(self) -> "SystemContent":
        return self.with_tools(ToolNamespaceConfig.browser())

    def with_python_tool(self) -> "SystemContent":
        return self.with_tools(ToolNamespaceConfig.python())

    def to_dict(self) -> Dict[str, Any]:
        out: Dict[str, Any] = {}
        if self.model_identity is not None:
            out["model_identity"] = self.model_identity
        if self.reasoning_effort is not None:
            out["reasoning_effort"] = self.reasoning_effort
        if self.conversation_start_date is not None:
            out["conversation_start_date"] = self.conversation_start_date
        if self.knowledge_cutoff is not None:
            out["knowledge_cutoff"] = self.knowledge_cutoff
        if self.channel_config is not None:
            out["channel_config"] = self.channel_config.model_dump()
        if self.tools is not None:
            out["tools"] = _dump_tools(self.tools)
        out["type"] = "system_content"
        return out

    @classmethod
    def from_dict(cls, raw: dict) -> "SystemContent":
        return cls(**raw)


class DeveloperContent(Content):
    """The developer message: instructions and function tools."""

    __slots__ = ("instructions", "tools")
    _fields = __slots__

    def __init__(
        self,
        instructions: Optional[str] = None,
        tools: Optional[Dict[str, ToolNamespaceConfig]] = None,
        **extra: Any,
    ) -> None:
        if extra.keys() - {"type"}:
            raise TypeError(f"DeveloperContent got unknown fields: {sorted(extra.keys() - {'type'})}")
        _check_opt_str(instructions, "instructions")
        self.instructions = instructions
        self.tools = _tools_from_raw(tools)

    @classmethod
    def new(cls) -> "DeveloperContent":
        return cls()

    def with_instructions(self, instructions: str) -> "DeveloperContent":
        _check_opt_str(instructions, "instructions")
        self.instructions = instructions
        return self

    def with_tools(self, ns_config: ToolNamespaceConfig) -> "DeveloperContent":
        ns_config = ToolNamespaceConfig._from_raw(ns_config)
        if self.tools is None:
            self.tools = {}
        self.tools[ns_config.name] = ns_config
        return self

    def with_function_tools(self, tools: Sequence[ToolDescription]) -> "DeveloperContent":
        return self.with_tools(ToolNamespaceConfig("functions", None, list(tools)))

    def to_dict(self) -> Dict[str, Any]:
        out: Dict[str, Any] = {}
        if self.instructions is not None:
            out["instructions"] = self.instructions
        if self.tools is not None:
            out["tools"] = _dump_tools(self.tools)
        out["type"] = "developer_content"
        return out

    @classmethod
    def from_dict(cls, raw: dict) -> "DeveloperContent":
        return cls(**raw)


def _as_content(content: Any) -> Content:
    if content.__class__ is str:
        return TextContent(content)
    if isinstance(content, Content):
        return content
    if isinstance(content, str):
        return TextContent(str(content))
    raise TypeError(
        f"message content must be a str, TextContent, SystemContent or DeveloperContent, "
        f"got {type(content).__name__}: {content!r}"
    )


def _content_from_dict(raw: Any) -> Content:
    if not isinstance(raw, dict):
        raise ValueError(f"Unknown content variant: {raw}")
    kind = raw.get("type")
    if kind == "text":
        text = raw.get("text")
        return TextContent(text)
    if kind == "system_content":
        return SystemContent(**raw)
    if kind == "developer_content":
        return DeveloperContent(**raw)
    raise ValueError(f"Unknown content variant: {raw}")


class Message(_Model):
    """One message: an author, a list of contents, and optional channel, recipient, content type."""

    __slots__ = ("author", "content", "channel", "recipient", "content_type")
    _fields = __slots__

    def __init__(
        self,
        author: Author,
        content: Optional[List[Content]] = None,
        channel: Optional[str] = None,
        recipient: Optional[str] = None,
        content_type: Optional[str] = None,
    ) -> None:
        if author.__class__ is not Author:
            if isinstance(author, Author):
                pass
            elif isinstance(author, dict):
                author = Author(author.get("role"), author.get("name"))
            else:
                raise TypeError(f"author must be an Author, got {type(author).__name__}: {author!r}")
        self.author = author
        if content is None:
            self.content = []
        else:
            if isinstance(content, (str, Content)) or not isinstance(content, (list, tuple)):
                raise TypeError(f"content must be a list of Content, got {type(content).__name__}: {content!r}")
            self.content = [c if isinstance(c, Content) else _as_content(c) for c in content]
        if channel is not None:
            _check_str(channel, "channel")
        if recipient is not None:
            _check_str(recipient, "recipient")
        if content_type is not None:
            _check_str(content_type, "content_type")
        self.channel = channel
        self.recipient = recipient
        self.content_type = content_type

    @classmethod
    def _make(cls, author: Author, content: List[Content], channel=None, recipient=None, content_type=None) -> "Message":
        # trusted fast path for the parser: fields already checked
        m = object.__new__(cls)
        m.author = author
        m.content = content
        m.channel = channel
        m.recipient = recipient
        m.content_type = content_type
        return m

    @classmethod
    def from_author_and_content(cls, author: Author, content: Union[str, Content]) -> "Message":
        if not isinstance(author, Author):
            raise TypeError(f"author must be an Author, got {type(author).__name__}: {author!r}")
        return cls._make(author, [_as_content(content)])

    @classmethod
    def from_role_and_content(cls, role: Role, content: Union[str, Content]) -> "Message":
        return cls._make(Author(role), [_as_content(content)])

    @classmethod
    def from_role_and_contents(cls, role: Role, contents: Sequence[Content]) -> "Message":
        if isinstance(contents, (str, Content)):
            raise TypeError(f"contents must be a sequence of Content, got {contents!r}")
        return cls._make(Author(role), [_as_content(c) for c in contents])

    def adding_content(self, content: Union[str, Content]) -> "Message":
        self.content.append(_as_content(content))
        return self

    def with_channel(self, channel: str) -> "Message":
        if channel is not None:
            _check_str(channel, "channel")
        self.channel = channel
        return self

    def with_recipient(self, recipient: str) -> "Message":
        if recipient is not None:
            _check_str(recipient, "recipient")
        self.recipient = recipient
        return self

    def with_content_type(self, content_type: str) -> "Message":
        if content_type is not None:
            _check_str(content_type, "content_type")
        self.content_type = content_type
        return self

    def to_dict(self) -> Dict[str, Any]:
        out: Dict[str, Any] = {
            "role": self.author.role,
            "name": self.author.name,
            "content": [c.to_dict() for c in self.content],
        }
        if self.channel is not None:
            out["channel"] = self.channel
        if self.recipient is not None:
            out["recipient"] = self.recipient
        if self.content_type is not None:
            out["content_type"] = self.content_type
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, data: Dict[str, Any]) -> "Message":
        if not isinstance(data, dict):
            raise TypeError(f"a message dict must be a dict, got {type(data).__name__}: {data!r}")
        author = Author(Role(data["role"]), data.get("name"))
        raw_content = data["content"]
        if isinstance(raw_content, str):
            contents: List[Content] = [TextContent(raw_content)]
        else:
            contents = [_content_from_dict(raw) for raw in raw_content]
        msg = cls._make(author, contents)
        msg.with_channel(data.get("channel"))
        msg.with_recipient(data.get("recipient"))
        msg.with_content_type(data.get("content_type"))
        return msg



def text_message(role: Role, name: Optional[str], channel: Optional[str], recipient: Optional[str], content_type: Optional[str], text: str) -> Message:
    """A one-text message from fields a parser has already checked (no constructor checks: this
    is the hot path of every parser)."""
    new = object.__new__
    author = new(Author)
    author.role = role
    author.name = name
    content = new(TextContent)
    content.text = text
    m = new(Message)
    m.author = author
    m.content = [content]
    m.channel = channel
    m.recipient = recipient
    m.content_type = content_type
    return m


class Conversation(_Model):
    """An ordered list of messages."""

    __slots__ = ("messages",)
    _fields = ("messages",)

    def __init__(self, messages: Optional[List[Message]] = None) -> None:
        if messages is None:
            self.messages: List[Message] = []
            return
        if isinstance(messages, (str, Message, dict)):
            raise TypeError(f"messages must be a sequence of Message, got {type(messages).__name__}: {messages!r}")
        msgs = list(messages)
        for i, m in enumerate(msgs):
            if not isinstance(m, Message):
                raise TypeError(f"conversation item {i} is not a Message: {type(m).__name__}: {m!r}")
        self.messages = msgs

    @classmethod
    def from_messages(cls, messages: Sequence[Message]) -> "Conversation":
        return cls(messages)

    def __iter__(self) -> Iterator[Message]:
        return iter(self.messages)

    def to_dict(self) -> Dict[str, Any]:
        return {"messages": [m.to_dict() for m in self.messages]}

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, data: Dict[str, Any]) -> "Conversation":
        return cls([Message.from_dict(m) for m in data["messages"]])

    @classmethod
    def from_json(cls, payload: str) -> "Conversation":
        return cls.from_dict(json.loads(payload))


class RenderConversationConfig(_Model):
    """Conversation rendering options: drop analysis messages before a final answer."""

    __slots__ = ("auto_drop_analysis",)
    _fields = ("auto_drop_analysis",)

    def __init__(self, auto_drop_analysis: bool = True) -> None:
        self.auto_drop_analysis = bool(auto_drop_analysis)


class RenderOptions(_Model):
    """Single-message rendering options."""

    __slots__ = ("conversation_has_function_tools",)
    _fields = ("conversation_has_function_tools",)

    def __init__(self, conversation_has_function_tools: bool = False) -> None:
        self.conversation_has_function_tools = bool(conversation_has_function_tools)
