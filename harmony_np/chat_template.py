"""The gpt-oss chat template, as transformers renders it, in plain Python.

``apply_chat_template`` must give, character for character, what Hugging Face's
``tokenizer.apply_chat_template`` gives with the gpt-oss template (jinja2 with ``trim_blocks``,
``lstrip_blocks`` and loop controls, ``tojson`` without ASCII escaping). This module does what
that template does, step by step, on the same values with the same Python operations, so that
its output and its failures are the template's:

* a field is read as jinja reads ``message.content`` from a dict: the key, else an attribute,
  else an :class:`Undefined` that prints as nothing, is false, and raises jinja's
  ``UndefinedError`` text (here :class:`ChatTemplateError`) when it is added to a string;
* ``{{ x }}`` prints ``str(x)``; ``+`` is Python's, so ``"..." + None`` is Python's TypeError;
* the template's whitespace quirks are kept where its tags leave text in (the indentation before
  a nested property's type and before a ``oneOf`` variant's default);
* a ``{% set %}`` inside a ``{% for %}`` does not leave the loop in jinja: the template's
  ``has_object_variants`` is therefore never true, and every ``oneOf`` variant is rendered.

:func:`render_chunks` gives the rendered text as chunks, each marked as inside a generation block
(the training template's ``{% generation %}``: the assistant's turns) or not, from which the
token ids and the assistant mask follow exactly as ``hf_template.py`` derives them.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Mapping
from typing import Any, List, Optional, Sequence, Tuple

__all__ = ["ChatTemplateError", "render_chunks", "render_text", "Undefined"]


class ChatTemplateError(ValueError):
    """Where the gpt-oss template raises (its ``raise_exception``, or jinja's ``UndefinedError``):
    the same message."""


# -- jinja's reading of values -------------------------------------------------------------------


class Undefined:
    """A field the data does not have, as jinja's default ``Undefined`` behaves."""

    __slots__ = ("_message",)

    def __init__(self, message: str) -> None:
        self._message = message

    def fail(self) -> "ChatTemplateError":
        return ChatTemplateError(self._message)

    def __bool__(self) -> bool:
        return False

    def __str__(self) -> str:
        return ""

    def __iter__(self):
        return iter(())

    def __len__(self) -> int:
        return 0

    def __eq__(self, other: Any) -> bool:
        return type(other) is Undefined

    def __ne__(self, other: Any) -> bool:
        return not self.__eq__(other)

    __hash__ = object.__hash__

    def __add__(self, other: Any):
        raise self.fail()

    def __radd__(self, other: Any):
        raise self.fail()

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        raise self.fail()

    def __getitem__(self, key: Any):
        raise self.fail()

    def __call__(self, *args: Any, **kwargs: Any):
        # ``properties.items()`` on a properties value that has no items method
        raise self.fail()

    def __contains__(self, item: Any) -> bool:
        return False


def _type_repr(obj: Any) -> str:
    """jinja's ``object_type_repr``: how an error names the object a field was missing from."""
    if obj is None:
        return "None"
    if obj is Ellipsis:
        return "Ellipsis"
    cls = type(obj)
    if cls.__module__ == "builtins":
        return f"{cls.__name__} object"
    return f"{cls.__module__}.{cls.__name__} object"


def _missing_attr(obj: Any, name: Any) -> Undefined:
    # jinja's wording: "'dict object' has no attribute 'x'", "list object has no element 0"
    if isinstance(name, str):
        return Undefined(f"{_type_repr(obj)!r} has no attribute {name!r}")
    return Undefined(f"{_type_repr(obj)} has no element {name!r}")


_DICT_ATTRIBUTES = frozenset(dir(dict))
_ABSENT = object()


def attr(obj: Any, name: str) -> Any:
    """``obj.name`` in a jinja template: the attribute, else the item, else Undefined."""
    if obj.__class__ is dict and name not in _DICT_ATTRIBUTES:
        # the common case, without the AttributeError that getattr would raise first
        value = obj.get(name, _ABSENT)
        return _missing_attr(obj, name) if value is _ABSENT else value
    if isinstance(obj, Undefined):
        raise obj.fail()
    try:
        return getattr(obj, name)
    except AttributeError:
        pass
    try:
        return obj[name]
    except (TypeError, LookupError):
        return _missing_attr(obj, name)


def item(obj: Any, key: Any) -> Any:
    """``obj[key]`` in a jinja template: the item, else (for a str key) the attribute, else
    Undefined."""
    if isinstance(obj, Undefined):
        raise obj.fail()
    try:
        return obj[key]
    except (AttributeError, LookupError, TypeError):
        if isinstance(key, str):
            try:
                return getattr(obj, key)
            except AttributeError:
                pass
        return _missing_attr(obj, key)


def _out(value: Any) -> str:
    """``{{ value }}``: how jinja prints a value (without autoescape)."""
    if value.__class__ is str:
        return value
    if isinstance(value, Undefined):
        return ""
    return str(value)


def _tojson(value: Any) -> str:
    """The ``tojson`` filter as transformers defines it for chat templates."""
    if isinstance(value, Undefined):
        raise TypeError("Object of type Undefined is not JSON serializable")
    return json.dumps(value, ensure_ascii=False)


def _join(values: Any, sep: str) -> str:
    """The ``join`` filter: each item printed as ``{{ }}`` would."""
    return sep.join(_out(v) for v in values)


def _contains(container: Any, value: Any) -> bool:
    """``value in container`` as the template compiles it (Python's ``in``)."""
    return value in container


def _is_defined(value: Any) -> bool:
    return not isinstance(value, Undefined)


def _is_iterable(value: Any) -> bool:
    try:
        iter(value)
    except TypeError:
        return False
    return True


def _length(value: Any) -> int:
    return len(value)


# -- tool definitions -------------------------------------------------------------------------

# the text between the tags that the template leaves in (its own indentation)
_PROPERTY_TYPE_GAP = "\n" + " " * 16  # between a nested property's ": " and its type
_VARIANT_DEFAULT_GAP = " " * 20  # before a oneOf variant's "// default: "


def typescript_type(spec: Any, required: Any) -> str:
    """The template's ``render_typescript_type(param_spec, required_params)``."""
    kind = attr(spec, "type")
    if kind == "array":
        items = item(spec, "items")
        if items:
            item_kind = item(items, "type")
            if item_kind == "string":
                out = "string[]"
            elif item_kind == "number" or item_kind == "integer":
                out = "number[]"
            elif item_kind == "boolean":
                out = "boolean[]"
            else:
                inner = typescript_type(items, required)
                out = "any[]" if inner == "object | object" or _length(inner) > 50 else inner + "[]"
        else:
            out = "any[]"
        if attr(spec, "nullable"):
            out += " | null"
        return out
    if (
        _is_defined(kind)
        and _is_iterable(kind)
        and not isinstance(kind, str)
        and not isinstance(kind, Mapping)
        and _is_defined(item(kind, 0))
    ):
        # a list of types, as Union[dict, list] gives
        return _join(kind, " | ") if _length(kind) > 1 else _out(item(kind, 0))
    one_of = attr(spec, "oneOf")
    if one_of:
        # (the template's has_object_variants is set inside a for loop, so it stays false)
        parts: List[str] = []
        variants = list(one_of)
        for i, variant in enumerate(variants):
            parts.append(typescript_type(variant, required))
            description = attr(variant, "description")
            if description:
                parts.append("// " + description)
            default = attr(variant, "default")
            if _is_defined(default):
                parts.append(_VARIANT_DEFAULT_GAP + ("// default: " + _tojson(default)))
            if i != len(variants) - 1:
                parts.append(" | \n")
        return "".join(parts)
    if kind == "string":
        enum = attr(spec, "enum")
        if enum:
            return '"' + _join(enum, '" | "') + '"'
        return "string | null" if attr(spec, "nullable") else "string"
    if kind == "number" or kind == "integer":
        return "number"
    if kind == "boolean":
        return "boolean"
    if kind == "object":
        properties = attr(spec, "properties")
        if not properties:
            return "object"
        inner_required = attr(spec, "required") or []
        parts = ["{\n"]
        entries = list(attr(properties, "items")())
        for i, (name, prop) in enumerate(entries):
            parts.append(_out(name))
            if not _contains(inner_required, name):
                parts.append("?")
            parts.append(": ")
            parts.append(_PROPERTY_TYPE_GAP + _out(typescript_type(prop, inner_required)))
            if i != len(entries) - 1:
                parts.append(", ")
        parts.append("}")
        return "".join(parts)
    return "any"


def tool_namespace(name: str, tools: Any) -> str:
    """The template's ``render_tool_namespace(namespace_name, tools)``."""
    parts = ["## " + name + "\n\n", "namespace " + name + " {\n\n"]
    for tool in tools:
        tool = attr(tool, "function")
        parts.append("// " + attr(tool, "description") + "\n")
        parts.append("type " + attr(tool, "name") + " = ")
        parameters = attr(tool, "parameters")
        if parameters and attr(parameters, "properties"):
            parts.append("(_: {\n")
            required = attr(parameters, "required") or []
            for param_name, spec in attr(attr(parameters, "properties"), "items")():
                description = attr(spec, "description")
                if description:
                    parts.append("// " + description + "\n")
                parts.append(_out(param_name))
                if not _contains(required, param_name):
                    parts.append("?")
                parts.append(": ")
                parts.append(_out(typescript_type(spec, required)))
                default = attr(spec, "default")
                if _is_defined(default):
                    if attr(spec, "enum"):
                        parts.append(", // default: " + default)
                    elif attr(spec, "oneOf"):
                        parts.append("// default: " + default)
                    else:
                        parts.append(", // default: " + _tojson(default))
                parts.append(",\n")
            parts.append("}) => any;\n\n")
        else:
            parts.append("() => any;\n\n")
    parts.append("} // namespace " + name)
    return "".join(parts)


# The builtin tools' declarations are the template's fixed text (the model was trained on them).
_BROWSER_TOOL = (
    "## browser\n\n"
    "// Tool for browsing.\n"
    "// The `cursor` appears in brackets before each browsing display: `[{cursor}]`.\n"
    "// Cite information from the tool using the following format:\n"
    "// `\u3010{cursor}\u2020L{line_start}(-L{line_end})?\u3011`, for example: `\u30106\u2020L9-L11\u3011` or `\u30108\u2020L3\u3011`.\n"
    "// Do not quote more than 10 words directly from the tool output.\n"
    "// sources=web (default: web)\n"
    "namespace browser {\n\n"
    "// Searches for information related to `query` and displays `topn` results.\n"
    "type search = (_: {\n"
    "query: string,\n"
    "topn?: number, // default: 10\n"
    "source?: string,\n"
    "}) => any;\n\n"
    "// Opens the link `id` from the page indicated by `cursor` starting at line number `loc`, showing `num_lines` lines.\n"
    "// Valid link ids are displayed with the formatting: `\u3010{id}\u2020.*\u3011`.\n"
    "// If `cursor` is not provided, the most recent page is implied.\n"
    "// If `id` is a string, it is treated as a fully qualified URL associated with `source`.\n"
    "// If `loc` is not provided, the viewport will be positioned at the beginning of the document or centered on the most relevant passage, if available.\n"
    "// Use this function without `id` to scroll to a new location of an opened page.\n"
    "type open = (_: {\n"
    "id?: number | string, // default: -1\n"
    "cursor?: number, // default: -1\n"
    "loc?: number, // default: -1\n"
    "num_lines?: number, // default: -1\n"
    "view_source?: boolean, // default: false\n"
    "source?: string,\n"
    "}) => any;\n\n"
    "// Finds exact matches of `pattern` in the current page, or the page given by `cursor`.\n"
    "type find = (_: {\n"
    "pattern: string,\n"
    "cursor?: number, // default: -1\n"
    "}) => any;\n\n"
    "} // namespace browser\n\n"
)
_PYTHON_TOOL = (
    "## python\n\n"
    "Use this tool to execute Python code in your chain of thought. The code will not be shown to the user. "
    "This tool should be used for internal reasoning, but not for code that is intended to be visible to the user "
    "(e.g. when creating plots, tables, or files).\n\n"
    "When you send a message containing Python code to python, it will be executed in a stateful Jupyter notebook "
    "environment. python will respond with the output of the execution or time out after 120.0 seconds. "
    "The drive at '/mnt/data' can be used to save and persist user files. "
    "Internet access for this session is UNKNOWN. Depends on the cluster.\n\n"
)

_DEFAULT_IDENTITY = "You are ChatGPT, a large language model trained by OpenAI."
_NOT_PASSED = Undefined("a template variable that was not passed")


def system_message(model_identity: Any, reasoning_effort: Any, builtin_tools: Any, tools: Any, date: str) -> str:
    """The template's ``build_system_message()`` (``_NOT_PASSED`` for a variable not given)."""
    if not _is_defined(model_identity):
        model_identity = _DEFAULT_IDENTITY
    if not _is_defined(reasoning_effort):
        reasoning_effort = "medium"
    parts = [model_identity + "\n", "Knowledge cutoff: 2024-06\n", "Current date: " + date + "\n\n", "Reasoning: " + reasoning_effort + "\n\n"]
    if builtin_tools:
        parts.append("# Tools\n\n")
        browser = python = False
        for tool in builtin_tools:
            if tool == "browser":
                browser = True
            elif tool == "python":
                python = True
        if browser:
            parts.append(_BROWSER_TOOL)
        if python:
            parts.append(_PYTHON_TOOL)
    parts.append("# Valid channels: analysis, commentary, final. Channel must be included for every message.")
    if tools:
        parts.append("\nCalls to these tools must go to the commentary channel: 'functions'.")
    return "".join(parts)


# -- the conversation -------------------------------------------------------------------------

_TAGS_IN_CONTENT = (
    "You have passed a message containing <|channel|> tags in the content field. Instead of doing this, you should "
    "pass analysis messages (the string between '<|message|>' and '<|end|>') in the 'thinking' field, and final "
    "messages (the string between '<|message|>' and '<|end|>') in the 'content' field."
)
_TAGS_IN_THINKING = _TAGS_IN_CONTENT.replace("in the content field.", "in the thinking field.", 1)
_BOTH_WITH_TOOL_CALLS = (
    "Cannot pass both content and thinking in an assistant message with tool calls! Put the analysis message in "
    "one or the other, but not both."
)
_TOOL_WITHOUT_CALL = "Message has tool role, but there was no previous assistant message with a tool call!"
_ANALYSIS_TAG = "<|channel|>analysis<|message|>"
_FINAL_TAG = "<|channel|>final<|message|>"


def _has_channel_tags(text: Any) -> bool:
    return _contains(text, _ANALYSIS_TAG) or _contains(text, _FINAL_TAG)


_BATCH_CACHE_ENTRIES = 64  # tools objects remembered per batch (their texts are a few KB each)


def _namespace_of(tools: Any, batch_cache: Optional[dict]) -> str:
    """``tool_namespace("functions", tools)``, once per tools object in a batch: the cache keeps
    the object with its text, so that an identity found again is the same object."""
    if batch_cache is None:
        return tool_namespace("functions", tools)
    key = ("tools", id(tools))
    hit = batch_cache.get(key)
    if hit is not None and hit[0] is tools:
        return hit[1]
    text = tool_namespace("functions", tools)
    if len(batch_cache) >= _BATCH_CACHE_ENTRIES:
        batch_cache.clear()  # rows with tools of their own: a namespace each, not kept for all
    batch_cache[key] = (tools, text)
    return text


def _turn(prefix: str, value: Any, suffix: str) -> tuple:
    """``prefix + value + suffix`` as a chunk ``(prefix, value, suffix)``: a text between two
    template parts that end and begin with special tokens, so that it is tokenized alone. A value
    that is not a str is added as the template adds it (its TypeError, or Undefined's error)."""
    if value.__class__ is str:
        return (prefix, value, suffix)
    return (prefix + value + suffix,)


def _cat(turns: List[tuple]) -> tuple:
    """Turns of one generation block as one chunk, the template text between them joined."""
    out = list(turns[0])
    for turn in turns[1:]:
        out[-1] += turn[0]
        out += turn[1:]
    return tuple(out)


def render_chunks(
    messages: Sequence[Any],
    tools: Any = None,
    add_generation_prompt: bool = False,
    *,
    reasoning_effort: Any = _NOT_PASSED,
    model_identity: Any = _NOT_PASSED,
    builtin_tools: Any = _NOT_PASSED,
    date: str,
    batch_cache: Optional[dict] = None,
) -> Tuple[List[tuple], List[bool]]:
    """``(chunks, in_generation)``: the template's output as chunks and, for each, whether it is
    inside a generation block (an assistant turn, from its ``<|start|>`` through its terminator).
    A chunk is a tuple of strings, the template's own text at even places and, at odd places, a
    value of the data that sits between a special token and a special token (a content); each
    chunk starts at a ``<|start|>`` and ends after a special token, so chunks are tokenized apart.
    The template's text is the chunks' strings joined."""
    if batch_cache is None:
        system = system_message(model_identity, reasoning_effort, builtin_tools, tools, date)
    else:
        # a batch renders every row with the same variables: the system message only depends on
        # whether there are tools
        key = ("system", bool(tools))
        system = batch_cache.get(key)
        if system is None:
            system = batch_cache[key] = system_message(model_identity, reasoning_effort, builtin_tools, tools, date)
    out: List[tuple] = [("<|start|>system<|message|>" + system + "<|end|>",)]
    gen: List[bool] = [False]
    first = item(messages, 0)
    role0 = attr(first, "role")
    if role0 == "developer" or role0 == "system":
        developer_message = attr(first, "content")
        loop_messages = messages[1:]
    else:
        developer_message = ""
        loop_messages = messages
    if developer_message or tools:
        parts = ["<|start|>developer<|message|>"]
        if developer_message:
            parts += ["# Instructions\n\n", _out(developer_message), "\n\n"]
        if tools:
            parts += ["# Tools\n\n", _namespace_of(tools, batch_cache)]
        parts.append("<|end|>")
        out.append(("".join(parts),))
        gen.append(False)
    last_tool_call: Any = None
    n = len(loop_messages)
    for index, message in enumerate(loop_messages):
        if message.__class__ is dict:
            # the common rows, plain dicts of str values, without the general lookups (the
            # same result: none of these keys is a dict attribute)
            role = message.get("role", _ABSENT)
            content = message.get("content", _ABSENT)
            if role == "user" and content.__class__ is str:
                out.append(("<|start|>user<|message|>", content, "<|end|>"))
                gen.append(False)
                continue
            if role == "assistant" and content.__class__ is str and "tool_calls" not in message:
                thinking = message.get("thinking", _ABSENT)
                last = index == n - 1 and not add_generation_prompt
                if not last or thinking is _ABSENT or thinking.__class__ is str:
                    if _ANALYSIS_TAG in content or _FINAL_TAG in content:
                        raise ChatTemplateError(_TAGS_IN_CONTENT)
                    if thinking is not _ABSENT and _has_channel_tags(thinking):
                        raise ChatTemplateError(_TAGS_IN_THINKING)
                    if not last:  # an earlier turn: its thinking is not rendered
                        out.append(("<|start|>assistant<|channel|>final<|message|>", content, "<|end|>"))
                        last_tool_call = None
                    elif thinking is _ABSENT:
                        out.append(("<|start|>assistant<|channel|>final<|message|>", content, "<|return|>"))
                    else:  # the last turn in training keeps its thinking
                        out.append(("<|start|>assistant<|channel|>analysis<|message|>", thinking,
                                    "<|end|><|start|>assistant<|channel|>final<|message|>", content, "<|return|>"))
                    gen.append(True)
                    continue
        role = attr(message, "role")
        if role == "assistant":
            if _contains(message, "content") and _has_channel_tags(attr(message, "content")):
                raise ChatTemplateError(_TAGS_IN_CONTENT)
            if _contains(message, "thinking") and _has_channel_tags(attr(message, "thinking")):
                raise ChatTemplateError(_TAGS_IN_THINKING)
            if _contains(message, "tool_calls"):
                future_final = False
                for later in loop_messages[index + 1 :]:
                    if attr(later, "role") == "assistant" and not _contains(later, "tool_calls"):
                        future_final = True
                call = item(attr(message, "tool_calls"), 0)
                function = attr(call, "function")
                if function:
                    call = function
                content = attr(message, "content")
                thinking = attr(message, "thinking")
                parts = []
                if content and thinking:
                    raise ChatTemplateError(_BOTH_WITH_TOOL_CALLS)
                elif content and not future_final:
                    parts.append(_turn("<|start|>assistant<|channel|>analysis<|message|>", content, "<|end|>"))
                elif thinking and not future_final:
                    parts.append(_turn("<|start|>assistant<|channel|>analysis<|message|>", thinking, "<|end|>"))
                name = attr(call, "name")
                content_type = attr(call, "content_type")
                header = "<|start|>assistant to=" + ("functions." + name + "<|channel|>commentary ")
                header += (content_type if _is_defined(content_type) else "json") + "<|message|>"
                parts.append(_turn(header, _tojson(attr(call, "arguments")), "<|call|>"))
                last_tool_call = name
            elif index == n - 1 and not add_generation_prompt:
                # the last turn in training: its thinking kept, ended by <|return|>
                parts = []
                if _contains(message, "thinking"):
                    parts.append(_turn("<|start|>assistant<|channel|>analysis<|message|>", attr(message, "thinking"), "<|end|>"))
                parts.append(_turn("<|start|>assistant<|channel|>final<|message|>", attr(message, "content"), "<|return|>"))
            else:
                parts = [_turn("<|start|>assistant<|channel|>final<|message|>", attr(message, "content"), "<|end|>")]
                last_tool_call = None
            out.append(_cat(parts))
            gen.append(True)
        elif role == "tool":
            if last_tool_call is None:
                raise ChatTemplateError(_TOOL_WITHOUT_CALL)
            prefix = "<|start|>functions." + last_tool_call + " to=assistant<|channel|>commentary<|message|>"
            out.append(_turn(prefix, _tojson(attr(message, "content")), "<|end|>"))
            gen.append(False)
        elif role == "user":
            out.append(_turn("<|start|>user<|message|>", attr(message, "content"), "<|end|>"))
            gen.append(False)
    if add_generation_prompt:
        out.append(("<|start|>assistant",))
        gen.append(False)
    return out, gen


def today() -> str:
    """``strftime_now("%Y-%m-%d")`` as transformers gives it: the local date."""
    return datetime.datetime.now().strftime("%Y-%m-%d")


def template_date(date: Any) -> str:
    """The date the template prints: today for None, a ``date``/``datetime`` formatted, a str as
    given."""
    if date is None:
        return today()
    if isinstance(date, (datetime.date, datetime.datetime)):
        return date.strftime("%Y-%m-%d")
    if isinstance(date, str):
        return date
    raise TypeError(f"date must be a str, a datetime.date or None, got {type(date).__name__}: {date!r}")


def template_variables(reasoning_effort: Any, model_identity: Any, builtin_tools: Any) -> dict:
    """The optional template variables: None means not passed (the template's default)."""
    return {
        "reasoning_effort": _NOT_PASSED if reasoning_effort is None else reasoning_effort,
        "model_identity": _NOT_PASSED if model_identity is None else model_identity,
        "builtin_tools": _NOT_PASSED if builtin_tools is None else builtin_tools,
    }


def render_text(messages: Sequence[Any], tools: Any = None, add_generation_prompt: bool = False, *, date: Any = None, reasoning_effort: Any = None, model_identity: Any = None, builtin_tools: Any = None) -> str:
    """The template's text of one conversation."""
    chunks, _ = render_chunks(
        messages, tools, add_generation_prompt, date=template_date(date), **template_variables(reasoning_effort, model_identity, builtin_tools)
    )
    return "".join("".join(c) for c in chunks)
