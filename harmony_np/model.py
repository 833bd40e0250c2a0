"""The message model: the names, constructors, builders and dict/JSON shapes of openai_harmony.

Plain classes with ``__slots__`` instead of pydantic models: building a message costs
microseconds, and the dicts and JSON they produce equal openai_harmony's.

Strictness and leniency are openai_harmony's, step by step:

* constructors (keyword or positional) validate their fields by pydantic's lax rules (``b"x"``
  and str enums pass as strings, ``"yes"`` as ``True``, ``"Low"`` as ``ReasoningEffort.LOW``,
  a dict as the model it describes), ignore unknown keys, and raise :class:`ValidationError`
  (a ``ValueError``, in pydantic's words) for what pydantic refuses;
* builders (``with_channel``, ``with_model_identity``, ``adding_content``, ...) store what they
  are given, as pydantic models do without assignment validation: a wrong type is reported when
  the message is rendered, with the ``ValueError`` that openai_harmony's Rust core raises on
  reading it as JSON (:func:`json_input_error`);
* ``from_dict`` / ``from_json`` take the steps of openai_harmony's own.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from decimal import Decimal
from enum import Enum
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple, Union

from .errors import HarmonyError
from .rust_text import I64_MIN, U64_MAX, format_f64, rust_debug_str, serde_f64

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
    "ValidationError",
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


# ---------------------------------------------------------------------------
# Validation by pydantic's lax rules, with pydantic's error lines
# ---------------------------------------------------------------------------


class _Missing:
    __slots__ = ()

    def __repr__(self) -> str:
        return "<missing>"


_MISSING: Any = _Missing()  # the default of a required field: "not given"

# one error line: (location, message, error type, the input that failed)
LineError = Tuple[Tuple[Union[str, int], ...], str, str, Any]


def _short_repr(value: Any) -> str:
    """``repr(value)`` cut in the middle beyond 50 bytes, as pydantic shows an input."""
    try:
        text = repr(value)
    except Exception:  # a repr that fails: say what it is
        text = f"<{type(value).__name__} object>"
    data = text.encode("utf-8", "surrogatepass")
    if len(data) <= 50:
        return text
    # pydantic cuts by UTF-8 bytes: 25 at the front, 24 at the back, at character boundaries
    head, tail = 25, len(data) - 24
    while head > 0 and data[head] & 0xC0 == 0x80:
        head -= 1
    while tail < len(data) and data[tail] & 0xC0 == 0x80:
        tail += 1
    return (data[:head] + b"..." + data[tail:]).decode("utf-8", "surrogatepass")


class ValidationError(ValueError, TypeError):
    """Fields a model refuses, reported as pydantic's ``ValidationError`` reports them for the
    openai_harmony models (the same lines, without pydantic's links to its documentation).

    A ``ValueError``, as pydantic's is; also a ``TypeError``, which harmony_np raised for a
    wrong-typed field before. ``errors()`` lists the failures as pydantic's method does.
    """

    def __init__(self, title: str, line_errors: Sequence[LineError]) -> None:
        self.title = title
        self._line_errors = list(line_errors)
        n = len(self._line_errors)
        lines = [f"{n} validation error{'' if n == 1 else 's'} for {title}"]
        for loc, msg, kind, value in self._line_errors:
            lines.append(".".join(f"`{p}`" if isinstance(p, str) and "." in p else str(p) for p in loc))
            lines.append(f"  {msg} [type={kind}, input_value={_short_repr(value)}, input_type={type(value).__name__}]")
        super().__init__("\n".join(lines))

    def __reduce__(self):
        return (self.__class__, (self.title, self._line_errors))

    def errors(self) -> List[Dict[str, Any]]:
        """Each failure: ``{"type", "loc", "msg", "input"}``."""
        return [{"type": kind, "loc": loc, "msg": msg, "input": value} for loc, msg, kind, value in self._line_errors]

    def error_count(self) -> int:
        """How many fields failed."""
        return len(self._line_errors)


# A check takes (value, location, error list) and returns the value as the model keeps it; a
# failure is appended to the list (the returned value is then never used).
Check = Callable[[Any, tuple, List[LineError]], Any]


def _str(value: Any, loc: tuple, errors: List[LineError]) -> Any:
    if value.__class__ is str:
        return value
    if isinstance(value, str):
        return str.__str__(value)  # a str subclass (a str enum: its value) as a plain str
    if isinstance(value, (bytes, bytearray)):
        try:
            return bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            errors.append((loc, "Input should be a valid string, unable to parse raw data as a unicode string", "string_unicode", value))
            return None
    if isinstance(value, Enum):
        inner = value.value
        if isinstance(inner, str):
            return str.__str__(inner)
        if isinstance(inner, int) and not isinstance(inner, bool):
            return str(int(inner))
    errors.append((loc, "Input should be a valid string", "string_type", value))
    return None


_TRUE_TEXT = frozenset(("1", "on", "t", "true", "y", "yes"))
_FALSE_TEXT = frozenset(("0", "off", "f", "false", "n", "no"))


def _bool(value: Any, loc: tuple, errors: List[LineError]) -> Any:
    if value is True or value is False:
        return value
    kind = "bool_type"
    if isinstance(value, (str, bytes, bytearray)):
        text = value if isinstance(value, str) else bytes(value).decode("utf-8", "replace")
        low = text.lower()
        if low in _TRUE_TEXT or low in _FALSE_TEXT:
            return low in _TRUE_TEXT
        kind = "bool_parsing"
    elif hasattr(value, "dtype") and type(value).__name__ in ("bool", "bool_"):  # a NumPy bool
        return bool(value)
    elif isinstance(value, (float, Decimal)):
        if value == 0 or value == 1:
            return value == 1
        if value == value and -(2.0**63) <= value < 2.0**63 and value == int(value):
            kind = "bool_parsing"  # a whole number (an i64) other than 0 and 1
    elif hasattr(type(value), "__index__"):  # an int (a NumPy integer too)
        try:
            number = value.__index__()
        except TypeError:
            number = None
        if number == 0 or number == 1:
            return number == 1
        if number is not None and -(1 << 63) <= number < (1 << 63):
            kind = "bool_parsing"  # an i64 other than 0 and 1
    if kind == "bool_parsing":
        errors.append((loc, "Input should be a valid boolean, unable to interpret input", "bool_parsing", value))
    else:
        errors.append((loc, "Input should be a valid boolean", "bool_type", value))
    return None


def _enum(cls: type, expected: str) -> Check:
    def check(value: Any, loc: tuple, errors: List[LineError]) -> Any:
        if value.__class__ is cls:
            return value
        raw = value
        if isinstance(raw, (bytes, bytearray)):
            try:
                raw = bytes(raw).decode("utf-8")
            except UnicodeDecodeError:
                pass
        try:
            return cls(raw)
        except (ValueError, TypeError):
            errors.append((loc, f"Input should be {expected}", "enum", value))
            return None

    return check


_role = _enum(Role, "'user', 'assistant', 'system', 'developer' or 'tool'")
_effort = _enum(ReasoningEffort, "'Low', 'Medium' or 'High'")


def _opt(check: Check) -> Check:
    def opt(value: Any, loc: tuple, errors: List[LineError]) -> Any:
        return None if value is None else check(value, loc, errors)

    return opt


def _list(item: Check) -> Check:
    def check(value: Any, loc: tuple, errors: List[LineError]) -> Any:
        items: Any = None
        if not isinstance(value, (str, bytes, bytearray, Mapping)):
            try:
                items = list(value)
            except TypeError:
                items = None
        if items is None:
            errors.append((loc, "Input should be a valid list", "list_type", value))
            return None
        return [item(x, loc + (i,), errors) for i, x in enumerate(items)]

    return check


def _dict(value: Any, loc: tuple, errors: List[LineError]) -> Any:
    if isinstance(value, Mapping):
        return dict(value)
    errors.append((loc, "Input should be a valid dictionary", "dict_type", value))
    return None


_opt_str = _opt(_str)
_opt_dict = _opt(_dict)


def _loc_item(key: Any) -> Union[str, int]:
    """A dict key in an error's location, as pydantic keeps it: an int, or else its text."""
    if isinstance(key, str):
        return str.__str__(key)
    if isinstance(key, int):
        return int(key)
    return str(key)


def _str_map(item: Check) -> Check:
    def check(value: Any, loc: tuple, errors: List[LineError]) -> Any:
        if not isinstance(value, Mapping):
            errors.append((loc, "Input should be a valid dictionary", "dict_type", value))
            return None
        out = {}
        for k, v in value.items():
            at = loc + (_loc_item(k),)
            key = _str(k, at + ("[key]",), errors)
            out[key] = item(v, at, errors)
        return out

    return check


def _model(cls_name: str) -> Check:
    """A nested model: an instance as it is, a dict validated into one."""

    found: list = []  # the class, looked up on first use (it is defined after this check)

    def check(value: Any, loc: tuple, errors: List[LineError]) -> Any:
        if not found:
            found.append(globals()[cls_name])
        cls = found[0]
        if isinstance(value, cls):
            return value
        if isinstance(value, dict):
            fast = cls._exact(value)
            return fast if fast is not None else cls._from_fields(value, loc, errors)
        errors.append((loc, f"Input should be a valid dictionary or instance of {cls_name}", "model_type", value))
        return None

    return check


class _Factory:
    """A default made anew for each model (pydantic's ``default_factory``)."""

    __slots__ = ("make",)

    def __init__(self, make: Callable[[], Any]) -> None:
        self.make = make


class _Model:
    """Equality, repr and copies by field, as pydantic models compare; validation of fields
    by ``_spec``: ``(name, default or _MISSING, check)`` in pydantic's field order."""

    __slots__ = ()
    _fields: tuple = ()
    _spec: tuple = ()

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

    @classmethod
    def _values(cls, data: dict, loc: tuple, errors: List[LineError]) -> dict:
        """The field values from ``data`` (unknown keys ignored), failures appended to ``errors``."""
        out = {}
        for name, default, check in cls._spec:
            if name in data:
                out[name] = check(data[name], loc + (name,), errors)
            elif default is _MISSING:
                errors.append((loc + (name,), "Field required", "missing", data))
            else:
                out[name] = default.make() if default.__class__ is _Factory else default
        return out

    @classmethod
    def _exact(cls, data: dict) -> Any:
        """The model of a dict whose fields need no conversion, or None (then: ``_from_fields``)."""
        return None

    @classmethod
    def _from_fields(cls, data: dict, loc: tuple, errors: List[LineError]):
        """A model validated from a dict of its fields (None, with ``errors`` grown, if not)."""
        n = len(errors)
        values = cls._values(data, loc, errors)
        if len(errors) != n:
            return None
        new = object.__new__(cls)
        for name, value in values.items():
            setattr(new, name, value)
        return new

    def _init_checked(self, given: Dict[str, Any], extra: Dict[str, Any]) -> None:
        """The slow path of a constructor: every field by the lax rules, all failures at once.

        ``given`` holds the arguments as passed (``_MISSING`` or the default: not given)."""
        data = {}
        for name, default, _check in self._spec:
            value = given[name]
            if value is not _MISSING and value is not default:
                data[name] = value
        data.update(extra)
        errors: List[LineError] = []
        values = self._values(data, (), errors)
        if errors:
            raise ValidationError(type(self).__name__, errors)
        for name, value in values.items():
            setattr(self, name, value)


class Author(_Model):
    """Who wrote a message: a role and, optionally, a name (tools always have one)."""

    __slots__ = ("role", "name")
    _fields = ("role", "name")

    def __init__(self, role: Union[Role, str] = _MISSING, name: Optional[str] = None, **extra: Any) -> None:
        if role.__class__ is Role and (name is None or name.__class__ is str):
            self.role = role
            self.name = name
            return
        self._init_checked({"role": role, "name": name}, extra)

    @classmethod
    def new(cls, role: Union[Role, str], name: str) -> "Author":
        """An author with a name."""
        return cls(role=role, name=name)

    def model_dump(self) -> Dict[str, Any]:
        return {"role": self.role, "name": self.name}


class Content(_Model):
    """Base of the content kinds: text, system content and developer content."""

    __slots__ = ()

    def __init__(self, **extra: Any) -> None:  # unknown keys ignored, as pydantic ignores them
        pass

    def to_dict(self) -> Dict[str, Any]:
        raise NotImplementedError


class TextContent(Content):
    """Plain text."""

    __slots__ = ("text",)
    _fields = ("text",)

    def __init__(self, text: str = _MISSING, **extra: Any) -> None:
        if text.__class__ is str:
            self.text = text
            return
        self._init_checked({"text": text}, extra)

    def to_dict(self) -> Dict[str, Any]:
        return {"type": "text", "text": self.text}


class ToolDescription(_Model):
    """A function tool: a name, a description and an optional JSON schema of its parameters."""

    __slots__ = ("name", "description", "parameters")
    _fields = ("name", "description", "parameters")

    def __init__(self, name: str = _MISSING, description: str = _MISSING, parameters: Optional[dict] = None, **extra: Any) -> None:
        if (
            name.__class__ is str and description.__class__ is str
            and (parameters is None or parameters.__class__ is dict)
        ):
            self.name = name
            self.description = description
            self.parameters = None if parameters is None else dict(parameters)  # a copy, as pydantic keeps
            return
        self._init_checked({"name": name, "description": description, "parameters": parameters}, extra)

    @classmethod
    def _exact(cls, data: dict) -> Any:
        name, description, parameters = data.get("name"), data.get("description"), data.get("parameters")
        if name.__class__ is str and description.__class__ is str and (parameters is None or parameters.__class__ is dict):
            new = object.__new__(cls)
            new.name = name
            new.description = description
            new.parameters = None if parameters is None else dict(parameters)
            return new
        return None

    @classmethod
    def new(cls, name: str, description: str, parameters: Optional[dict] = None) -> "ToolDescription":
        """A tool description."""
        return cls(name=name, description=description, parameters=parameters)

    def model_dump(self, exclude_none: bool = False) -> Dict[str, Any]:
        out: Dict[str, Any] = {"name": self.name, "description": self.description}
        if self.parameters is not None or not exclude_none:
            out["parameters"] = self.parameters
        return out


class ChannelConfig(_Model):
    """The channels a model may write to, and whether every message must name one."""

    __slots__ = ("valid_channels", "channel_required")
    _fields = ("valid_channels", "channel_required")

    def __init__(self, valid_channels: List[str] = _MISSING, channel_required: bool = _MISSING, **extra: Any) -> None:
        if (
            valid_channels.__class__ in (list, tuple) and (channel_required is True or channel_required is False)
            and all(c.__class__ is str for c in valid_channels)
        ):
            self.valid_channels = list(valid_channels)
            self.channel_required = channel_required
            return
        self._init_checked({"valid_channels": valid_channels, "channel_required": channel_required}, extra)

    @classmethod
    def require_channels(cls, channels: List[str]) -> "ChannelConfig":
        """These channels, one of them required in every message."""
        return cls(valid_channels=channels, channel_required=True)

    def model_dump(self) -> Dict[str, Any]:
        return {"valid_channels": list(self.valid_channels), "channel_required": self.channel_required}

    @classmethod
    def _exact(cls, data: dict) -> Any:
        new = cls._as_rust_reads(data)
        return new if new is not data else None

    @classmethod
    def _as_rust_reads(cls, raw: Any) -> Any:
        """``raw`` given to ``with_channel_config``: a dict that openai_harmony's Rust core reads
        as a channel config as that config (so that it renders), anything else as it is (so that
        rendering it fails as openai_harmony's does)."""
        if raw.__class__ is dict:
            channels, required = raw.get("valid_channels"), raw.get("channel_required")
            if (
                channels.__class__ in (list, tuple) and all(c.__class__ is str for c in channels)
                and (required is True or required is False)
            ):
                new = object.__new__(cls)
                new.valid_channels = list(channels)
                new.channel_required = required
                return new
        return raw

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

    def __init__(self, name: str = _MISSING, description: Optional[str] = None, tools: Sequence[ToolDescription] = _MISSING, **extra: Any) -> None:
        if (
            name.__class__ is str and (description is None or description.__class__ is str)
            and tools.__class__ in (list, tuple)
            and all(t.__class__ is ToolDescription for t in tools)
        ):
            self.name = name
            self.description = description
            self.tools = list(tools)
            return
        self._init_checked({"name": name, "description": description, "tools": tools}, extra)

    @classmethod
    def _exact(cls, data: dict) -> Any:
        name, description, tools = data.get("name"), data.get("description"), data.get("tools")
        if name.__class__ is str and (description is None or description.__class__ is str) and tools.__class__ in (list, tuple):
            items = []
            for t in tools:
                if t.__class__ is not ToolDescription:
                    t = ToolDescription._exact(t) if t.__class__ is dict else None
                    if t is None:
                        return None
                items.append(t)
            new = object.__new__(cls)
            new.name = name
            new.description = description
            new.tools = items
            return new
        return None

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


def _exact_tools(tools: Any) -> bool:
    """Whether ``tools`` is a dict of str to ToolNamespaceConfig (nothing to convert)."""
    return tools.__class__ is dict and all(
        k.__class__ is str and v.__class__ is ToolNamespaceConfig for k, v in tools.items()
    )


def _dump_tools(tools: Any) -> Any:
    if not isinstance(tools, dict):
        return tools  # a value a builder stored: it goes to JSON as it is
    return {k: (v.model_dump(exclude_none=True) if isinstance(v, ToolNamespaceConfig) else v) for k, v in tools.items()}


_DEFAULT_IDENTITY = "You are ChatGPT, a large language model trained by OpenAI."


def _default_channels() -> ChannelConfig:
    return ChannelConfig(["analysis", "commentary", "final"], True)


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
        if (
            (model_identity is None or model_identity.__class__ is str)
            and (reasoning_effort is None or reasoning_effort.__class__ is ReasoningEffort)
            and (conversation_start_date is None or conversation_start_date.__class__ is str)
            and (knowledge_cutoff is None or knowledge_cutoff.__class__ is str)
            and (channel_config is ... or channel_config is None or channel_config.__class__ is ChannelConfig)
            and (tools is None or _exact_tools(tools))
        ):
            self.model_identity = model_identity
            self.reasoning_effort = reasoning_effort
            self.conversation_start_date = conversation_start_date
            self.knowledge_cutoff = knowledge_cutoff
            self.channel_config = _default_channels() if channel_config is ... else channel_config
            self.tools = None if tools is None else dict(tools)
            return
        given = {
            "model_identity": model_identity,
            "reasoning_effort": reasoning_effort,
            "conversation_start_date": conversation_start_date,
            "knowledge_cutoff": knowledge_cutoff,
            "channel_config": _MISSING if channel_config is ... else channel_config,
            "tools": tools,
        }
        self._init_checked(given, extra)

    @classmethod
    def new(cls) -> "SystemContent":
        """The default system content (openai_harmony's defaults)."""
        return cls()

    # The builders store what they are given, as openai_harmony's do (a wrong type is reported
    # when the message is rendered).
    def with_model_identity(self, model_identity: str) -> "SystemContent":
        self.model_identity = model_identity
        return self

    def with_reasoning_effort(self, reasoning_effort: ReasoningEffort) -> "SystemContent":
        self.reasoning_effort = reasoning_effort
        return self

    def with_conversation_start_date(self, conversation_start_date: str) -> "SystemContent":
        self.conversation_start_date = conversation_start_date
        return self

    def with_knowledge_cutoff(self, knowledge_cutoff: str) -> "SystemContent":
        self.knowledge_cutoff = knowledge_cutoff
        return self

    def with_channel_config(self, channel_config: ChannelConfig) -> "SystemContent":
        self.channel_config = ChannelConfig._as_rust_reads(channel_config)
        return self

    def with_required_channels(self, channels: List[str]) -> "SystemContent":
        self.channel_config = ChannelConfig.require_channels(channels)
        return self

    def with_tools(self, ns_config: ToolNamespaceConfig) -> "SystemContent":
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
        cc = self.channel_config
        if cc is not None:
            out["channel_config"] = cc.model_dump() if isinstance(cc, ChannelConfig) else cc
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
        if (instructions is None or instructions.__class__ is str) and (tools is None or _exact_tools(tools)):
            self.instructions = instructions
            self.tools = None if tools is None else dict(tools)
            return
        self._init_checked({"instructions": instructions, "tools": tools}, extra)

    @classmethod
    def new(cls) -> "DeveloperContent":
        """Empty developer content."""
        return cls()

    def with_instructions(self, instructions: str) -> "DeveloperContent":
        self.instructions = instructions
        return self

    def with_tools(self, ns_config: ToolNamespaceConfig) -> "DeveloperContent":
        if self.tools is None:
            self.tools = {}
        self.tools[ns_config.name] = ns_config
        return self

    def with_function_tools(self, tools: Sequence[ToolDescription]) -> "DeveloperContent":
        return self.with_tools(ToolNamespaceConfig(name="functions", description=None, tools=list(tools)))

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


_CONTENT_CLASSES = (TextContent, SystemContent, DeveloperContent)


def _content(value: Any, loc: tuple, errors: List[LineError]) -> Any:
    if isinstance(value, Content):
        return value
    if isinstance(value, dict):
        return Content()  # pydantic makes the bare base class of any dict
    errors.append((loc, "Input should be a valid dictionary or instance of Content", "model_type", value))
    return None


class Message(_Model):
    """One message: an author, a list of contents, and optional channel, recipient, content type."""

    __slots__ = ("author", "content", "channel", "recipient", "content_type")
    _fields = __slots__

    def __init__(
        self,
        author: Author = _MISSING,
        content: List[Content] = _MISSING,
        channel: Optional[str] = None,
        recipient: Optional[str] = None,
        content_type: Optional[str] = None,
        **extra: Any,
    ) -> None:
        if (
            author.__class__ is Author
            and (channel is None or channel.__class__ is str)
            and (recipient is None or recipient.__class__ is str)
            and (content_type is None or content_type.__class__ is str)
        ):
            if content is _MISSING:
                items: Optional[list] = []
            elif content.__class__ in (list, tuple) and all(c.__class__ in _CONTENT_CLASSES for c in content):
                items = list(content)
            else:
                items = None  # to be validated one by one
            if items is not None:
                self.author = author
                self.content = items
                self.channel = channel
                self.recipient = recipient
                self.content_type = content_type
                return
        self._init_checked(
            {"author": author, "content": content, "channel": channel, "recipient": recipient, "content_type": content_type},
            extra,
        )

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
        """A message of one content (a str is a text)."""
        if isinstance(content, str):
            content = TextContent(text=content)
        if author.__class__ is Author and content.__class__ in _CONTENT_CLASSES:
            return cls._make(author, [content])
        return cls(author=author, content=[content])

    @classmethod
    def from_role_and_content(cls, role: Role, content: Union[str, Content]) -> "Message":
        """A message of one content from an author of this role (a str is a text)."""
        if role.__class__ is Role and content.__class__ is str:
            author = object.__new__(Author)
            author.role = role
            author.name = None
            text = object.__new__(TextContent)
            text.text = content
            return cls._make(author, [text])
        return cls.from_author_and_content(Author(role=role), content)

    @classmethod
    def from_role_and_contents(cls, role: Role, contents: Sequence[Content]) -> "Message":
        """A message of these contents from an author of this role."""
        return cls(author=Author(role=role), content=list(contents))

    # The builders store what they are given, as openai_harmony's do: a wrong type is reported
    # when the message is rendered.
    def adding_content(self, content: Union[str, Content]) -> "Message":
        if isinstance(content, str):
            content = TextContent(text=content)
        self.content.append(content)
        return self

    def with_channel(self, channel: str) -> "Message":
        self.channel = channel
        return self

    def with_recipient(self, recipient: str) -> "Message":
        self.recipient = recipient
        return self

    def with_content_type(self, content_type: str) -> "Message":
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
        """The message of a dict of :meth:`to_dict`'s shape, read as openai_harmony reads it: the
        role and the contents are validated, channel, recipient and content type are taken as
        they are (a wrong type is reported when the message is rendered)."""
        role = Role(data["role"])
        author = Author(role=role, name=data.get("name"))
        raw_content = data["content"]
        if isinstance(raw_content, str):
            raw_content = [{"type": "text", "text": raw_content}]
        contents: List[Content] = []
        for raw in raw_content:
            kind = raw.get("type")
            if kind == "text":
                contents.append(TextContent(**raw))
            elif kind == "system_content":
                contents.append(SystemContent(**raw))
            elif kind == "developer_content":
                contents.append(DeveloperContent(**raw))
            else:
                raise ValueError(f"Unknown content variant: {raw}")
        msg = cls._make(author, contents)
        msg.channel = data.get("channel")
        msg.recipient = data.get("recipient")
        msg.content_type = data.get("content_type")
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

    def __init__(self, messages: List[Message] = _MISSING, **extra: Any) -> None:
        if messages is _MISSING:
            self.messages: List[Message] = []
            return
        if messages.__class__ in (list, tuple) and all(m.__class__ is Message or isinstance(m, Message) for m in messages):
            self.messages = list(messages)
            return
        self._init_checked({"messages": messages}, extra)

    @classmethod
    def from_messages(cls, messages: Sequence[Message]) -> "Conversation":
        """A conversation of these messages."""
        msgs = list(messages)
        if all(m.__class__ is Message for m in msgs):
            conv = object.__new__(cls)
            conv.messages = msgs
            return conv
        return cls(messages=msgs)

    def __iter__(self) -> Iterator[Message]:
        return iter(self.messages)

    def to_dict(self) -> Dict[str, Any]:
        return {"messages": [m.to_dict() for m in self.messages]}

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, data: Dict[str, Any]) -> "Conversation":
        """The conversation of a dict of :meth:`to_dict`'s shape (messages as
        :meth:`Message.from_dict` reads them)."""
        return cls(messages=[Message.from_dict(m) for m in data["messages"]])

    @classmethod
    def from_json(cls, payload: str) -> "Conversation":
        """The conversation of a JSON text of :meth:`to_json`'s shape."""
        return cls.from_dict(json.loads(payload))


class RenderConversationConfig(_Model):
    """Conversation rendering options: drop analysis messages before a final answer."""

    __slots__ = ("auto_drop_analysis",)
    _fields = ("auto_drop_analysis",)

    def __init__(self, auto_drop_analysis: bool = True, **extra: Any) -> None:
        if (auto_drop_analysis is True or auto_drop_analysis is False):
            self.auto_drop_analysis = auto_drop_analysis
            return
        self._init_checked({"auto_drop_analysis": auto_drop_analysis}, extra)


class RenderOptions(_Model):
    """Single-message rendering options."""

    __slots__ = ("conversation_has_function_tools",)
    _fields = ("conversation_has_function_tools",)

    def __init__(self, conversation_has_function_tools: bool = False, **extra: Any) -> None:
        if (conversation_has_function_tools is True or conversation_has_function_tools is False):
            self.conversation_has_function_tools = conversation_has_function_tools
            return
        self._init_checked({"conversation_has_function_tools": conversation_has_function_tools}, extra)


# The fields of each model in pydantic's order: (name, default or _MISSING, check).
_tools_check = _opt(_str_map(_model("ToolNamespaceConfig")))
Author._spec = (("role", _MISSING, _role), ("name", None, _opt_str))
TextContent._spec = (("text", _MISSING, _str),)
ToolDescription._spec = (("name", _MISSING, _str), ("description", _MISSING, _str), ("parameters", None, _opt_dict))
ChannelConfig._spec = (("valid_channels", _MISSING, _list(_str)), ("channel_required", _MISSING, _bool))
ToolNamespaceConfig._spec = (
    ("name", _MISSING, _str),
    ("description", None, _opt_str),
    ("tools", _MISSING, _list(_model("ToolDescription"))),
)
SystemContent._spec = (
    ("model_identity", _DEFAULT_IDENTITY, _opt_str),
    ("reasoning_effort", ReasoningEffort.MEDIUM, _opt(_effort)),
    ("conversation_start_date", None, _opt_str),
    ("knowledge_cutoff", "2024-06", _opt_str),
    ("channel_config", _Factory(_default_channels), _opt(_model("ChannelConfig"))),
    ("tools", None, _tools_check),
)
DeveloperContent._spec = (("instructions", None, _opt_str), ("tools", None, _tools_check))
Message._spec = (
    ("author", _MISSING, _model("Author")),
    ("content", _Factory(list), _list(_content)),
    ("channel", None, _opt_str),
    ("recipient", None, _opt_str),
    ("content_type", None, _opt_str),
)
Conversation._spec = (("messages", _Factory(list), _list(_model("Message"))),)
RenderConversationConfig._spec = (("auto_drop_analysis", True, _bool),)
RenderOptions._spec = (("conversation_has_function_tools", False, _bool),)


# ---------------------------------------------------------------------------
# The JSON that openai_harmony's Rust core reads, and what serde_json says of it
# ---------------------------------------------------------------------------
#
# openai_harmony renders by sending ``to_json()`` of the message or conversation to Rust, where
# serde_json reads it before anything is rendered. A field a builder filled with a wrong type
# fails there, with serde_json's words and the column where it stopped reading. The functions
# below walk the same JSON text (as ``json.dumps`` writes it) the way serde reads it: most
# fields as they come; an author's fields (a flattened struct) and each content's body (an
# internally tagged enum) only once their whole object has been read, so their errors point to
# its end. They run only after a render failed: the common case pays nothing.

_ESCAPE = json.encoder.encode_basestring_ascii  # type: ignore[attr-defined]
_SERDE_MAX_DEPTH = 127  # serde_json's recursion limit: 128 nested containers are refused
_CONTENT_VARIANTS = ("text", "system_content", "developer_content")


class _SerdeError(Exception):
    """serde_json's error: its message and the column (1-based, of the only line) it stopped at."""

    def __init__(self, message: str, column: int) -> None:
        super().__init__(message)
        self.message = message
        self.column = column


class _Defer(Exception):
    """Input harmony_np reports in its own words (a lone surrogate, nesting past serde_json's
    limit): the walk stops there, and the render's own error stands."""


def _unexpected(value: Any) -> str:
    """serde's words for the JSON value that ``value`` becomes."""
    if value is None:
        return "null"
    if value is True or value is False:
        return f"boolean `{'true' if value else 'false'}`"
    if isinstance(value, str):
        return "string " + rust_debug_str(value)
    if isinstance(value, int):
        v = int(value)
        if I64_MIN <= v <= U64_MAX:
            return f"integer `{v}`"
        return f"floating point `{format_f64(serde_f64(int.__repr__(v)))}`"  # a longer integer is read as f64
    if isinstance(value, float):
        return f"floating point `{format_f64(serde_f64(float.__repr__(value)))}`"  # as serde_json rounds it
    if isinstance(value, (list, tuple)):
        return "sequence"
    return "map"


def _invalid(value: Any, expected: str) -> str:
    return f"invalid type: {_unexpected(value)}, expected {expected}"


def _unknown_variant(value: str, variants: Sequence[str]) -> str:
    names = [f"`{v}`" for v in variants]
    listed = names[0] if len(names) == 1 else (" or ".join(names) if len(names) == 2 else "one of " + ", ".join(names))
    return f"unknown variant `{value}`, expected {listed}"


def _key_text(key: Any) -> str:
    """A dict key as ``json.dumps`` writes it."""
    if isinstance(key, str):
        return key
    if key is True or key is False:
        return "true" if key else "false"
    if key is None:
        return "null"
    if isinstance(key, float):
        return float.__repr__(key)
    return int.__repr__(key)


# The Rust types read from a content's buffered body: ("str",), ("bool",), ("any",),
# ("opt", t), ("seq", t), ("map", t), ("enum", variants), ("struct", name, {field: t}).
_S_STR: tuple = ("str",)
_S_OPT_STR: tuple = ("opt", _S_STR)
_S_TOOL: tuple = ("struct", "ToolDescription", {"name": _S_STR, "description": _S_STR, "parameters": ("opt", ("any",))})
_S_NAMESPACE: tuple = ("struct", "ToolNamespaceConfig", {"name": _S_STR, "description": _S_OPT_STR, "tools": ("seq", _S_TOOL)})
_S_TOOLS: tuple = ("opt", ("map", _S_NAMESPACE))
_S_CHANNELS: tuple = ("struct", "ChannelConfig", {"valid_channels": ("seq", _S_STR), "channel_required": ("bool",)})
_S_CONTENT = {
    "text": ("struct", "TextContent", {"text": _S_STR}),
    "system_content": (
        "struct",
        "SystemContent",
        {
            "model_identity": _S_OPT_STR,
            "reasoning_effort": ("opt", ("enum", ("Low", "Medium", "High"))),
            "tools": _S_TOOLS,
            "conversation_start_date": _S_OPT_STR,
            "knowledge_cutoff": _S_OPT_STR,
            "channel_config": ("opt", _S_CHANNELS),
        },
    ),
    "developer_content": ("struct", "DeveloperContent", {"instructions": _S_OPT_STR, "tools": _S_TOOLS}),
}
_S_ROLE: tuple = ("enum", tuple(r.value for r in Role))


def _read_buffered(value: Any, t: tuple) -> Optional[str]:
    """serde's first error reading ``value`` (already parsed) as type ``t``, or None."""
    kind = t[0]
    if kind == "any":
        return None
    if kind == "opt":
        return None if value is None else _read_buffered(value, t[1])
    if kind == "str":
        return None if isinstance(value, str) else _invalid(value, "a string")
    if kind == "bool":
        return None if (value is True or value is False) else _invalid(value, "a boolean")
    if kind == "seq":
        if not isinstance(value, (list, tuple)):
            return _invalid(value, "a sequence")
        for item in value:
            err = _read_buffered(item, t[1])
            if err:
                return err
        return None
    if kind == "map":
        if not isinstance(value, dict):
            return _invalid(value, "a map")
        for item in value.values():
            err = _read_buffered(item, t[1])
            if err:
                return err
        return None
    if kind == "enum":
        variants = t[1]
        if isinstance(value, str):
            return None if value in variants else _unknown_variant(value, variants)
        if isinstance(value, dict):
            if len(value) != 1:
                return "invalid value: map, expected map with a single key"
            key, inner = next(iter(value.items()))
            key = _key_text(key)
            if key not in variants:
                return _unknown_variant(key, variants)
            return None if inner is None else _invalid(inner, "unit")
        return _invalid(value, "string or map")
    # a struct: from a map by field name (unknown keys ignored), or from a sequence by position
    name, fields = t[1], t[2]
    if isinstance(value, dict):
        seen = set()
        for key, item in value.items():
            field = fields.get(_key_text(key))
            if field is not None:
                seen.add(_key_text(key))
                err = _read_buffered(item, field)
                if err:
                    return err
        for fname, ftype in fields.items():
            if fname not in seen and ftype[0] != "opt":
                return f"missing field `{fname}`"
        return None
    if isinstance(value, (list, tuple)):
        for i, ftype in enumerate(fields.values()):
            if i >= len(value):
                return f"invalid length {len(value)}, expected struct {name} with {len(fields)} elements"
            err = _read_buffered(value[i], ftype)
            if err:
                return err
        if len(value) > len(fields):
            return f"invalid length {len(value)}, expected {len(fields)} elements in sequence"
        return None
    return _invalid(value, f"struct {name}")


class _JsonReader:
    """serde_json reading ``json.dumps`` of a message or conversation dict: ``pos`` is how many
    characters it has read."""

    def __init__(self) -> None:
        self.pos = 0

    def skip(self, value: Any, depth: int) -> None:
        """Read past ``value`` (any JSON), stopping at what serde_json cannot parse."""
        if value is None or value is True:
            self.pos += 4
        elif value is False:
            self.pos += 5
        elif isinstance(value, str):
            self.string(value)
        elif isinstance(value, int):
            if abs(int(value)) >= 1 << 1024:
                raise _Defer  # past f64: serde_json's "number out of range"
            self.pos += len(int.__repr__(value))
        elif isinstance(value, float):
            if value != value or value in (math.inf, -math.inf):
                # json.dumps writes NaN / Infinity / -Infinity, which are not JSON
                if value == -math.inf:
                    raise _SerdeError("invalid number", self.pos + 2)
                raise _SerdeError("expected value", self.pos + 1)
            self.pos += len(float.__repr__(value))
        elif isinstance(value, (list, tuple)):
            self.open(depth)
            for i, item in enumerate(value):
                if i:
                    self.pos += 2
                self.skip(item, depth + 1)
            self.pos += 1
        else:  # a dict (json.dumps refused anything else already)
            self.open(depth)
            for i, (key, item) in enumerate(value.items()):
                self.key(key, i)
                self.skip(item, depth + 1)
            self.pos += 1

    def open(self, depth: int) -> None:
        if depth + 1 > _SERDE_MAX_DEPTH:
            raise _Defer
        self.pos += 1

    def string(self, text: str) -> None:
        if not text.isascii():
            try:
                text.encode("utf-8")
            except UnicodeEncodeError:
                raise _Defer from None  # a surrogate: harmony_np's lone-surrogate error
        self.pos += len(_ESCAPE(text))

    def key(self, key: Any, index: int) -> str:
        """Read a map key (after the ", " before it) and the ": " after it."""
        if index:
            self.pos += 2
        text = _key_text(key)
        self.string(text)
        self.pos += 2
        return text

    def scalar_error(self, value: Any, depth: int, expected: str) -> _SerdeError:
        """serde_json refusing ``value`` where ``expected`` is due: a container before its
        bracket is read, anything else once it is read."""
        if isinstance(value, (list, tuple, dict)):
            return _SerdeError(_invalid(value, expected), self.pos)
        self.skip(value, depth)
        return _SerdeError(_invalid(value, expected), self.pos)

    def conversation(self, doc: Dict[str, Any]) -> None:
        self.open(0)
        for i, (key, value) in enumerate(doc.items()):
            if self.key(key, i) == "messages" and isinstance(value, list):
                self.open(1)
                for j, m in enumerate(value):
                    if j:
                        self.pos += 2
                    self.message(m, 2)
                self.pos += 1
            else:
                self.skip(value, 1)
        self.pos += 1

    def message(self, doc: Dict[str, Any], depth: int) -> None:
        self.open(depth)
        depth += 1
        author = []  # the flattened author's entries, read when the map ends
        for i, (key, value) in enumerate(doc.items()):
            name = self.key(key, i)
            if name == "content":
                self.contents(value, depth)
            elif name in ("channel", "recipient", "content_type"):
                if value is None or isinstance(value, str):
                    self.skip(value, depth)
                else:
                    raise self.scalar_error(value, depth, "a string")
            else:
                self.skip(value, depth)
                author.append((name, value))
        self.pos += 1
        for name, value in author:
            if name == "role" or name == "name":
                err = _read_buffered(value, _S_ROLE if name == "role" else _S_OPT_STR)
                if err:
                    raise _SerdeError(err, self.pos)
        if not any(name == "role" for name, _ in author):
            raise _SerdeError("missing field `role`", self.pos)

    def contents(self, value: Any, depth: int) -> None:
        if isinstance(value, str):
            self.skip(value, depth)
            return
        if isinstance(value, dict):  # read through its opening brace, then refused
            raise _SerdeError(_invalid(value, "string or list of content"), self.pos + 1)
        if not isinstance(value, (list, tuple)):
            raise self.scalar_error(value, depth, "string or list of content")
        self.open(depth)
        last = len(value) - 1
        for i, item in enumerate(value):
            if i:
                self.pos += 2
            try:
                self.content(item, depth + 1)
            except _SerdeError as exc:
                if exc.column < 0:
                    # a content's body is read after the content, and serde_json places the
                    # error once it has read on through what follows: "]" or ", "
                    exc.column = self.pos + (1 if i == last else 2)
                raise
        self.pos += 1

    def content(self, item: Any, depth: int) -> None:
        if not isinstance(item, dict):
            if isinstance(item, (list, tuple)):
                raise _Defer  # a content as a sequence: never written by to_dict
            raise self.scalar_error(item, depth, "internally tagged enum Content")
        self.open(depth)
        tag: Any = _MISSING
        body = {}
        for i, (key, value) in enumerate(item.items()):
            name = self.key(key, i)
            self.skip(value, depth + 1)
            if name == "type" and tag is _MISSING:
                if not isinstance(value, str):
                    raise _SerdeError(_invalid(value, "variant identifier"), self.pos)
                if value not in _CONTENT_VARIANTS:
                    raise _SerdeError(_unknown_variant(value, _CONTENT_VARIANTS), self.pos)
                tag = value
            else:
                body[name] = value
        self.pos += 1
        if tag is _MISSING:
            raise _SerdeError("missing field `type`", self.pos)
        err = _read_buffered(body, _S_CONTENT[tag])
        if err:
            raise _SerdeError(err, -1)  # placed by the list of contents


def json_input_error(rendered: Any, kind: str, read_json: bool = True) -> Optional[Exception]:
    """The error openai_harmony raises on sending ``rendered`` to its Rust core, or None.

    ``rendered`` is a :class:`Message` (``kind="message"``), or a :class:`Conversation` or list
    of messages (``kind="conversation"``). openai_harmony serialises it with ``to_json()``
    (``json.dumps``: an object JSON cannot hold raises ``TypeError`` there) and serde_json reads
    it before anything is rendered (a field of the wrong type raises ``ValueError("invalid
    message JSON: ...")``; ``read_json=False`` stops before this step). So such an error comes
    before any error of rendering. Called once a render has failed, to report what
    openai_harmony would; an object that is not a model where one belongs gives None (the
    render's own ``TypeError`` names it).
    """
    try:
        if isinstance(rendered, (Message, Conversation)):
            doc = rendered.to_dict()
        elif isinstance(rendered, (list, tuple)):
            doc = {"messages": [m.to_dict() for m in rendered]}
        else:
            return None
    except AttributeError:
        return None
    except Exception as exc:  # the bare Content's NotImplementedError, as openai_harmony's
        return exc
    try:
        json.dumps(doc)
    except (TypeError, ValueError, RecursionError) as exc:
        return exc
    if not read_json:
        return None
    reader = _JsonReader()
    try:
        if kind == "message":
            reader.message(doc, 0)
        else:
            reader.conversation(doc)
    except _SerdeError as exc:
        return ValueError(f"invalid {kind} JSON: {exc.message} at line 1 column {exc.column}")
    except Exception:  # _Defer, or a dict of a shape to_dict never makes: the render's error stands
        return None
    return None
