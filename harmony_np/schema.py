"""The "# Tools" section of system and developer messages, as openai_harmony renders it.

openai_harmony hands its messages to Rust as ``json.dumps`` text, which serde_json parses back.
Everything here first applies that round trip to the Python values (tuples become lists,
dict keys become strings, surrogate pairs merge, big integers become floats the way serde_json
parses them), then renders JSON schemas as the TypeScript-like declarations the model reads.
"""

from __future__ import annotations

import json
from json.encoder import encode_basestring
from typing import Any, Dict, List, Optional

from .rust_text import I64_MIN, U64_MAX, format_f64, serde_f64

__all__ = [
    "tools_section",
    "json_schema_to_typescript",
    "json_value_display",
    "json_roundtrip",
    "rust_lines",
    "MESSAGE_JSON_DEPTH",
    "CONVERSATION_JSON_DEPTH",
]

# serde_json refuses documents nested 128 containers deep. These are the containers that
# enclose a tool's ``parameters`` object in the JSON that openai_harmony parses.
MESSAGE_JSON_DEPTH = 7
CONVERSATION_JSON_DEPTH = 9
_SERDE_MAX_DEPTH = 127

_MISSING = object()


# ---------------------------------------------------------------------------
# the JSON round trip
# ---------------------------------------------------------------------------


def _parse_int(text: str) -> Any:
    # serde_json keeps integers that fit i64 or u64; others become f64
    if len(text) <= 21:
        value = int(text)
        if I64_MIN <= value <= U64_MAX:
            return value
    return serde_f64(text)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON: serde_json rejects it")


def _clean_str(text: str, what: str) -> str:
    """``text`` after the round trip: surrogate pairs merge, a lone surrogate is an error."""
    if text.isascii():
        return str(text)
    try:
        text.encode("utf-8")
        return str(text)
    except UnicodeEncodeError:
        pass
    try:
        return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le")
    except UnicodeDecodeError:
        raise ValueError(f"{what} {text!r} has a lone surrogate, which serde_json rejects") from None


def _dumps(value: Any, what: str) -> str:
    try:
        return json.dumps(value)
    except TypeError as exc:
        raise TypeError(f"{what} is not JSON serializable: {exc}") from exc
    except ValueError as exc:  # a circular reference
        raise ValueError(f"{what} cannot be written as JSON: {exc}") from exc


def _depth(value: Any) -> int:
    """How many containers deep ``value`` is (a scalar is 0)."""
    deepest = 0
    stack = [(value, 1)]
    while stack:
        item, level = stack.pop()
        if type(item) is dict:
            children = item.values()
        elif type(item) is list:
            children = item
        else:
            continue
        deepest = max(deepest, level)
        stack.extend((child, level + 1) for child in children)
    return deepest


_DECODER = json.JSONDecoder(parse_float=serde_f64, parse_int=_parse_int, parse_constant=_reject_constant)


def _loads(text: str, what: str, json_depth: Optional[int]) -> Any:
    try:
        value = _DECODER.decode(text)
    except ValueError as exc:
        raise ValueError(f"{what}: {exc}") from None
    if "\\ud" in text:  # a surrogate escape: fine only as part of a pair
        try:
            json.dumps(value, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError as exc:
            bad = exc.object[max(exc.start - 10, 0) : exc.end + 10]
            raise ValueError(f"{what} has a lone surrogate, which serde_json rejects: {bad!r}") from None
    if json_depth is not None:
        budget = _SERDE_MAX_DEPTH - json_depth
        # every container opens with a bracket, so few brackets means shallow enough
        if text.count("[") + text.count("{") > budget and _depth(value) > budget:
            raise ValueError(f"{what} is nested too deeply: serde_json's recursion limit is 128")
    return value


def json_roundtrip(value: Any, what: str = "value", json_depth: Optional[int] = None) -> Any:
    """``value`` as Rust sees it after ``json.dumps`` and serde_json.

    Integers stay ``int`` where serde_json keeps them integers, every other number is the
    ``float`` serde_json parses. ``json_depth`` is the number of containers around ``value`` in
    the parsed document, for serde_json's nesting limit (``None``: no limit).
    """
    return _loads(_dumps(value, what), what, json_depth)


# ---------------------------------------------------------------------------
# Display of serde_json values
# ---------------------------------------------------------------------------


def _display(value: Any) -> str:
    """serde_json's compact Display of an already round-tripped value."""
    kind = type(value)
    if kind is str:
        return encode_basestring(value)
    if value is None:
        return "null"
    if kind is bool:
        return "true" if value else "false"
    if kind is int:
        return int.__repr__(value)
    if kind is float:
        return format_f64(value)
    if kind is list:
        return "[" + ",".join([_display(item) for item in value]) + "]"
    if kind is dict:
        return "{" + ",".join([encode_basestring(k) + ":" + _display(v) for k, v in value.items()]) + "}"
    raise TypeError(f"not a JSON value: {value!r}")


def json_value_display(value: Any) -> str:
    """What ``format!("{}", v)`` prints in Rust for the serde_json value ``v`` parsed from
    ``json.dumps(value)``. Raises TypeError or ValueError where that round trip fails."""
    return _display(json_roundtrip(value))


# ---------------------------------------------------------------------------
# JSON schema -> TypeScript
# ---------------------------------------------------------------------------


def _get(value: Any, key: str) -> Any:
    return value.get(key, _MISSING) if type(value) is dict else _MISSING


def _is_enum(schema: Any) -> bool:
    values = _get(schema, "enum")
    return type(values) is list and len(values) > 0


def _default_note(default: Any, schema: Any, bare_enum_string: bool) -> str:
    """``default: ...``: strings quoted verbatim unless the schema is an enum; an enum's string
    default is bare inside properties and JSON-escaped in a top-level ``oneOf``."""
    if type(default) is str:
        if not _is_enum(schema):
            return f'default: "{default}"'
        if bare_enum_string:
            return f"default: {default}"
    return "default: " + _display(default)


def _with_null(type_str: str, schema: Any) -> str:
    if _get(schema, "nullable") is True and "null" not in type_str:
        return type_str + " | null"
    return type_str


def _ts(schema: Any, indent: str) -> str:
    if type(schema) is not dict:
        return "any"
    variants = schema.get("oneOf")
    if type(variants) is list:
        return _top_one_of(variants, indent)
    kind = schema.get("type")
    if type(kind) is list:
        names = ["number" if k == "integer" else k for k in kind if type(k) is str]
        return " | ".join(names) if names else "any"
    if kind == "object":
        return _object(schema, indent)
    if kind == "string":
        values = schema.get("enum")
        if type(values) is list:
            quoted = [f'"{v}"' for v in values if type(v) is str]
            if quoted:
                return " | ".join(quoted)
        return "string"
    if kind == "number" or kind == "integer":
        return "number"
    if kind == "boolean":
        return "boolean"
    if kind == "array":
        if "items" in schema:
            return _ts(schema["items"], indent) + "[]"
        return "Array<any>"
    return "any"


def _top_one_of(variants: list, indent: str) -> str:
    out = []
    inner = indent + "   "
    for variant in variants:
        out.append(f"\n{indent} | ")
        out.append(_with_null(_ts(variant, inner), variant))
        notes = []
        desc = _get(variant, "description")
        if type(desc) is str:
            notes.append(desc)
        default = _get(variant, "default")
        if default is not _MISSING:
            notes.append(_default_note(default, variant, False))
        if notes:
            out.append(" // " + " ".join(notes))
    return "".join(out)


def _object(schema: dict, indent: str) -> str:
    out = []
    desc = schema.get("description")
    if type(desc) is str:
        out.append(f"{indent}// {desc}\n")
    out.append("{\n")
    props = schema.get("properties")
    if type(props) is dict:
        req = schema.get("required")
        required = {r for r in req if type(r) is str} if type(req) is list else set()
        for key, prop in props.items():
            _property(out, key, prop, key in required, indent)
    out.append(indent + "}")
    return "".join(out)


def _property(out: List[str], key: str, prop: Any, required: bool, indent: str) -> None:
    fields = prop if type(prop) is dict else {}
    mark = "" if required else "?"
    title = fields.get("title")
    if type(title) is str:
        out.append(f"{indent}// {title}\n{indent}//\n")
    has_one_of = "oneOf" in fields
    desc = fields.get("description")
    if type(desc) is not str:
        desc = None
    if desc is not None and not has_one_of:
        out.append(f"{indent}// {desc}\n")
    examples = fields.get("examples")
    if type(examples) is list and examples:
        out.append(f"{indent}// Examples:\n")
        for example in examples:
            if type(example) is str:
                out.append(f'{indent}// - "{example}"\n')

    variants = fields.get("oneOf")
    if type(variants) is list:
        _property_one_of(out, key, fields, variants, desc, mark, indent)
        return

    out.append(f"{indent}{key}{mark}: {_with_null(_ts(prop, indent + '    '), fields)},")
    # a non-list oneOf still suppresses the default comment
    if not has_one_of and "default" in fields:
        out.append(" // " + _default_note(fields["default"], fields, True))
    out.append("\n")


def _property_one_of(
    out: List[str], key: str, fields: dict, variants: list, desc: Optional[str], mark: str, indent: str
) -> None:
    # the property's description goes above it, unless the first variant repeats it
    desc_above = desc is not None and not (variants and _get(variants[0], "description") == desc)
    if desc_above:
        out.append(f"{indent}// {desc}\n")
    if "default" in fields:
        out.append(f"{indent}// {_default_note(fields['default'], fields, True)}\n")
    out.append(f"{indent}{key}{mark}:\n")
    inner = indent + "   "
    for i, variant in enumerate(variants):
        line = f"{indent} | " + _with_null(_ts(variant, inner), variant)
        notes = []
        if not (i == 0 and desc_above):
            variant_desc = _get(variant, "description")
            if type(variant_desc) is str and variant_desc != desc:
                notes.append(variant_desc)
        default = _get(variant, "default")
        if default is not _MISSING:
            notes.append(_default_note(default, variant, True))
        if notes:
            line += " // " + " ".join(notes)
        out.append(line + "\n")
    out.append(f"{indent},\n")


def json_schema_to_typescript(schema: Any, indent: str = "") -> str:
    """A JSON schema as the TypeScript-like type openai_harmony shows the model."""
    return _ts(json_roundtrip(schema, "schema"), indent)


# ---------------------------------------------------------------------------
# the tools section
# ---------------------------------------------------------------------------


def rust_lines(text: str) -> List[str]:
    """Rust's ``str::lines``: split on "\\n", drop one "\\r" before each "\\n", no empty last line."""
    parts = text.split("\n")
    tail = parts.pop()
    lines = [p[:-1] if p.endswith("\r") else p for p in parts]
    if tail:
        lines.append(tail)  # a last line without "\n" keeps its "\r"
    return lines


_TS_CACHE: Dict[tuple, str] = {}
_TS_CACHE_SIZE = 512


def _parameters_ts(text: str, tool_name: str, json_depth: int) -> str:
    """The TypeScript of a tool's parameters, given as ``json.dumps`` text (cached: the same
    tools are rendered again and again)."""
    key = (text, json_depth)
    rendered = _TS_CACHE.get(key)
    if rendered is None:
        rendered = _ts(_loads(text, f"tool {tool_name!r} parameters", json_depth), "")
        if len(_TS_CACHE) >= _TS_CACHE_SIZE:
            _TS_CACHE.clear()
        _TS_CACHE[key] = rendered
    return rendered


def tools_section(tools: Dict[str, Any], *, json_depth: int = MESSAGE_JSON_DEPTH) -> str:
    """The "# Tools" section for a map of namespace configs (``ToolNamespaceConfig``).

    Namespaces come in the order of their map keys, as in Rust's BTreeMap; each shows its own
    ``name``. Callers leave the section out for an empty map. ``json_depth``: see
    :data:`MESSAGE_JSON_DEPTH` and :data:`CONVERSATION_JSON_DEPTH`.
    """
    # json.dumps runs over the whole message before serde_json parses any of it, so its errors win
    dumped = [
        [None if t.parameters is None else _dumps(t.parameters, f"tool {t.name!r} parameters") for t in ns.tools]
        for ns in tools.values()
    ]
    by_key = {}
    for (key, ns), params in zip(tools.items(), dumped):
        by_key[_clean_str(key, "tool namespace key")] = (ns, params)

    sections = ["# Tools"]
    for key in sorted(by_key):
        ns, params = by_key[key]
        name = _clean_str(ns.name, "tool namespace name")
        lines = [f"## {name}\n"]
        has_tools = bool(ns.tools)
        if ns.description is not None:
            for line in rust_lines(_clean_str(ns.description, "tool namespace description")):
                lines.append(f"// {line}" if has_tools else line)
        if has_tools:
            lines.append(f"namespace {name} {{\n")
            for tool, text in zip(ns.tools, params):
                tool_name = _clean_str(tool.name, "tool name")
                for line in rust_lines(_clean_str(tool.description, "tool description")):
                    lines.append(f"// {line}")
                if text is None:
                    lines.append(f"type {tool_name} = () => any;\n")
                else:
                    lines.append(f"type {tool_name} = (_: {_parameters_ts(text, tool_name, json_depth)}) => any;\n")
            lines.append(f"}} // namespace {name}")
        sections.append("\n".join(lines))
    return "\n\n".join(sections)
