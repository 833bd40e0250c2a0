"""Inputs for ``HarmonyEncoding.apply_chat_template``: hypothesis strategies and fixed cases, and the
bridge to the reference (the gpt-oss chat template as transformers renders it, from
``../shared/tools/hf_template.py``, present on a development machine only).

A *case* is one JSON-serialisable dict::

    {"messages": [...],            # one conversation (a list of message dicts)
     "tools": [...] or None,       # function tools, OpenAI style ({"type": "function", "function": ...})
     "add_generation_prompt": bool,
     "options": {...},             # only the template kwargs that are passed: reasoning_effort,
                                   # model_identity, builtin_tools
     "date": "YYYY-MM-DD"}

The template reads its input loosely (jinja attribute lookups, ``in`` tests, ``+`` on strings), so
the strategies aim at what it distinguishes: whether a key is present or truthy, which schema
branch a tool parameter takes, where a tool message stands, special-token text inside content.

Texts never hold U+0001 or U+0002: the reference marks its ``{% generation %}`` blocks with these
two characters, so a text holding them would move its mask (a limit of the reference, not of the
template). Lone surrogates are left out too: no encoder takes them.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from hypothesis import strategies as st

REFERENCE_PATH = Path(__file__).resolve().parent.parent.parent / "shared" / "tools" / "hf_template.py"
DATE = "2025-08-05"
OPTION_NAMES = ("reasoning_effort", "model_identity", "builtin_tools")

# ---------------------------------------------------------------------------------------------
# the reference


def load_reference():
    """The reference module (``hf_template``), or None when it or jinja2 is absent."""
    if not REFERENCE_PATH.exists() or importlib.util.find_spec("jinja2") is None:
        return None
    if "hf_template" not in sys.modules:
        spec = importlib.util.spec_from_file_location("hf_template", REFERENCE_PATH)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        sys.modules["hf_template"] = module
    return sys.modules["hf_template"]


def error_kind(exc: BaseException) -> str:
    """The class family an error of the reference maps to in harmony_np: ``ChatTemplateError`` for
    the template's ``raise_exception`` and jinja's own errors (``TemplateError``, of which
    ``UndefinedError`` is one), else the Python class name (``TypeError``)."""
    import jinja2

    if isinstance(exc, jinja2.exceptions.TemplateError):
        return "ChatTemplateError"
    return type(exc).__name__


def reference_outcome(ref, enc, case: Dict[str, Any]) -> Dict[str, Any]:
    """What the reference gives for ``case``: ``{"text", "ids", "mask"}`` or ``{"error": {"kind",
    "message"}}``. The case is deep-copied first, so nothing the template does can change it."""
    case = copy.deepcopy(case)
    try:
        text, ids, mask = ref.render(
            enc, case["messages"], tools=case["tools"], add_generation_prompt=case["add_generation_prompt"],
            date=case["date"], **case["options"],
        )
    except Exception as exc:  # the error's class family and text are part of the contract
        return {"error": {"kind": error_kind(exc), "message": str(exc)}}
    return {"text": text, "ids": [int(i) for i in ids], "mask": [int(m) for m in mask]}


def api_kwargs(case: Dict[str, Any]) -> Dict[str, Any]:
    """apply_chat_template's keyword arguments for ``case``; an option not passed to the template
    is passed here as None (which means the same)."""
    kw = {name: case["options"].get(name) for name in OPTION_NAMES}
    kw.update(tools=case["tools"], add_generation_prompt=case["add_generation_prompt"], date=case["date"])
    return kw


def make_case(messages, tools=None, add_generation_prompt=False, date=DATE, **options) -> Dict[str, Any]:
    """A case from its parts (``options``: the template kwargs to pass)."""
    for name in options:
        if name not in OPTION_NAMES:
            raise ValueError(f"make_case: unknown template option {name!r}")
    return {"messages": messages, "tools": tools, "add_generation_prompt": add_generation_prompt, "options": options, "date": date}


def mask_spans(mask: List[int]) -> List[List[int]]:
    """``[start, stop)`` runs of ones in a 0/1 list (the golden file's compact mask)."""
    spans, start = [], None
    for i, m in enumerate(mask + [0]):
        if m and start is None:
            start = i
        elif not m and start is not None:
            spans.append([start, i])
            start = None
    return spans


def mask_from_spans(spans: List[List[int]], length: int) -> List[int]:
    """The 0/1 list of ``length`` that :func:`mask_spans` describes."""
    mask = [0] * length
    for start, stop in spans:
        mask[start:stop] = [1] * (stop - start)
    return mask


# ---------------------------------------------------------------------------------------------
# strategies

# special-token text, the channel words and JSON-ish punctuation, which content may hold verbatim
FRAGMENTS = [
    "hello", " world", "the weather", "\n", "\n\n", "  ", "\t", "\r\n", "'", '"', "\\", "{", "}", ": ",
    "é", "ça va", "世界", "日本語のテキスト", "🎉", "👩‍💻", "\u200b", "\u00a0", "\ufeff", "e\u0301", "مرحبا", "Ωμέγα",
    "<|start|>", "<|end|>", "<|message|>", "<|channel|>", "<|return|>", "<|call|>", "<|constrain|>",
    "<|endoftext|>", "<|startoftext|>", "<|reserved_200012|>", "<|reserved_201087|>", "<|endofprompt|>", "<|<|end|>|>", "<|channel|>commentary<|message|>",
    "analysis", "final", "commentary", "to=", "functions.get", '{"a": 1}', "null", "1e5", "// ", "[]",
]
_CHARS = st.characters(blacklist_categories=("Cs",), blacklist_characters="\x01\x02")
texts = st.lists(st.one_of(st.text(_CHARS, max_size=10), st.sampled_from(FRAGMENTS)), max_size=5).map("".join)
nonempty_texts = st.one_of(texts.filter(bool), st.sampled_from(["Hi", "Réponds en français.", "2+2?"]))
names = st.one_of(
    st.from_regex(r"[a-z_][a-z0-9_]{0,9}", fullmatch=True),
    st.sampled_from(["get_weather", "lookup", "naïve", "数据", "x-y", "a.b"]),
)

json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(10**20), 10**20),
    st.floats(allow_nan=False, allow_infinity=False), texts,
)
json_values = st.recursive(
    json_scalars, lambda kids: st.one_of(st.lists(kids, max_size=3), st.dictionaries(names, kids, max_size=3)), max_leaves=6
)
json_objects = st.dictionaries(names, json_values, max_size=4)

# --- JSON schemas: every branch of the template's render_typescript_type


def _with(base: Dict[str, Any], **optional) -> st.SearchStrategy:
    """``base`` plus each of ``optional``'s keys (a strategy each) present or absent."""
    return st.fixed_dictionaries(base, optional=optional)


_flags = st.booleans()
leaf_schemas = st.one_of(
    _with({"type": st.just("string")}, nullable=_flags),
    _with({"type": st.just("string"), "enum": st.lists(texts, max_size=3)}, nullable=_flags),
    _with({"type": st.sampled_from(["number", "integer", "boolean"])}, nullable=_flags),
    _with({"type": st.sampled_from(["number", "integer"]), "enum": st.lists(st.integers(0, 9), min_size=1, max_size=3)}),
    _with({"type": st.just("array")}, nullable=_flags),  # no items
    _with({"type": st.just("array"), "items": st.just({})}, nullable=_flags),  # falsy items
    _with({"type": st.just("array"), "items": st.fixed_dictionaries({"type": st.sampled_from(["string", "number", "integer", "boolean"])})}, nullable=_flags),
    # type lists (Union[...]): joined with " | ", one element alone, an empty list falls through
    st.fixed_dictionaries({"type": st.lists(st.sampled_from(["string", "null", "object", "number", "integer", "boolean", "array"]), max_size=3)}),
    st.fixed_dictionaries({"type": st.sampled_from(["object", "null", "foo", "any"])}),  # object without properties; unknown
    st.fixed_dictionaries({"type": st.just("object"), "properties": st.just({})}),
    st.just({}),  # no type at all
    st.fixed_dictionaries({"anyOf": st.lists(st.fixed_dictionaries({"type": st.just("string")}), min_size=1, max_size=2)}),
    st.fixed_dictionaries({"enum": st.lists(texts, min_size=1, max_size=2)}),  # enum without a type
)


def _decorated(schema: st.SearchStrategy) -> st.SearchStrategy:
    """A schema, sometimes with a description and a default (rendered only where the template
    looks: top-level parameters and oneOf variants)."""
    return st.tuples(schema, st.one_of(st.none(), texts), st.one_of(st.none(), json_values)).map(
        lambda t: {**t[0], **({"description": t[1]} if t[1] is not None else {}), **({"default": t[2]} if t[2] is not None else {})}
    )


def _objects(children: st.SearchStrategy) -> st.SearchStrategy:
    def build(props: Dict[str, Any], required: Optional[List[str]]) -> Dict[str, Any]:
        out: Dict[str, Any] = {"type": "object", "properties": props}
        if required is not None:
            out["required"] = required
        return out

    props = st.dictionaries(names, children, min_size=1, max_size=3)
    return props.flatmap(
        lambda p: st.builds(build, st.just(p), st.one_of(st.none(), st.lists(st.sampled_from(sorted(p) + ["absent"]), max_size=3, unique=True)))
    )


def _extend(children: st.SearchStrategy) -> st.SearchStrategy:
    return st.one_of(
        _with({"type": st.just("array"), "items": children}, nullable=_flags),
        # oneOf with one or more variants, objects among them or not, variants with description
        # and default (the object-variant check sets a variable inside a loop: never seen after it)
        st.fixed_dictionaries({"oneOf": st.lists(_decorated(children), min_size=1, max_size=3)}),
        st.fixed_dictionaries({"oneOf": st.lists(st.one_of(_objects(children), st.just({"type": "object"})), min_size=1, max_size=2)}),
        _objects(children),
        # items that render as "object | object", or long enough (> 50 characters) to become any[]
        st.just({"type": "array", "items": {"type": ["object", "object"]}}),
    )


schemas = st.recursive(leaf_schemas, _extend, max_leaves=5)


def _parameter(schema: Dict[str, Any], description: Optional[str], default: Any, default_text: Optional[str]) -> Dict[str, Any]:
    """A top-level parameter: a default after an enum or a oneOf is joined to text with ``+``,
    so it is a string there (a number there is a TypeError: a fixed case has it)."""
    out = dict(schema)
    if description is not None:
        out["description"] = description
    if out.get("enum") or out.get("oneOf"):
        if default_text is not None:
            out["default"] = default_text
    elif default is not None:
        out["default"] = default
    return out


parameters = st.builds(_parameter, schemas, st.one_of(st.none(), texts), st.one_of(st.none(), json_values), st.one_of(st.none(), texts))


def _tool(name: str, description: str, params: Optional[Dict[str, Any]], required: Optional[List[str]], shape: str) -> Dict[str, Any]:
    function: Dict[str, Any] = {"name": name, "description": description}
    if shape == "full":
        p: Dict[str, Any] = {"type": "object", "properties": params or {}}
        if required is not None:
            p["required"] = required
        function["parameters"] = p
    elif shape == "empty":
        function["parameters"] = {}
    # "none": no parameters key
    return {"type": "function", "function": function}


tools_strategy = st.lists(
    st.dictionaries(names, parameters, max_size=4).flatmap(
        lambda props: st.builds(
            _tool, names, texts, st.just(props),
            st.one_of(st.none(), st.lists(st.sampled_from(sorted(props) + ["not_a_param"]), max_size=3, unique=True)),
            st.sampled_from(["full", "full", "full", "empty", "none"]),
        )
    ),
    max_size=3,
)

# --- messages


def _tool_call(name: str, arguments: Any, wrapped: bool, content_type: Optional[str], extra: bool) -> Dict[str, Any]:
    function: Dict[str, Any] = {"name": name, "arguments": arguments}
    if content_type is not None:
        function["content_type"] = content_type
    if not wrapped:  # the template also reads name and arguments from the call itself
        return function
    call: Dict[str, Any] = {"function": function}
    if extra:
        call = {"id": "call_1", "type": "function", **call}
    return call


tool_calls = st.builds(
    _tool_call, names,
    st.one_of(json_objects, json_objects.map(lambda d: json.dumps(d)), texts),  # a dict or a str
    st.booleans(), st.one_of(st.none(), st.sampled_from(["json", "<|constrain|>json", "code"])), st.booleans(),
)
tool_results = st.one_of(
    json_objects.map(lambda d: json.dumps(d, ensure_ascii=False)),  # JSON text
    texts,  # plain text
    json_objects,  # a dict (tojson renders it as an object)
)


def _assistant_final(content: str, thinking: Optional[str]) -> Dict[str, Any]:
    msg: Dict[str, Any] = {"role": "assistant", "content": content}
    if thinking is not None:
        msg["thinking"] = thinking
    return msg


def _tool_turn(calls: List[Dict[str, Any]], analysis: Tuple[str, Optional[str]], results: List[Any], with_id: bool) -> List[Dict[str, Any]]:
    msg: Dict[str, Any] = {"role": "assistant", "tool_calls": calls}
    field, text = analysis
    if field != "neither":
        msg[field] = text
    out = [msg]
    for r in results:
        tool_msg: Dict[str, Any] = {"role": "tool", "content": r}
        if with_id:
            tool_msg["tool_call_id"] = "call_1"
        out.append(tool_msg)
    return out


user_blocks = st.builds(lambda c: [{"role": "user", "content": c}], texts)
assistant_blocks = st.builds(lambda c, t: [_assistant_final(c, t)], texts, st.one_of(st.none(), texts))
tool_blocks = st.builds(
    _tool_turn,
    st.lists(tool_calls, min_size=1, max_size=2),  # only the first call is rendered
    st.tuples(st.sampled_from(["content", "thinking", "neither"]), texts),  # "" present counts as neither
    st.lists(tool_results, max_size=2),
    st.booleans(),
)
# messages the template passes over: a later system/developer message, an unknown role, no role
skipped_blocks = st.one_of(
    st.builds(lambda r, c: [{"role": r, "content": c}], st.sampled_from(["system", "developer", "ipython"]), texts),
    st.just([{"content": "no role"}]),
)
# blocks that make the template raise (rarely drawn)
raising_blocks = st.one_of(
    st.builds(lambda c: [{"role": "tool", "content": c}], texts),  # a tool result with no call before it
    st.builds(lambda a, channel, field: [{"role": "assistant", "content": "", field: a + "<|channel|>" + channel + "<|message|>"}],
              texts, st.sampled_from(["analysis", "final"]), st.sampled_from(["content", "thinking"])),
    st.builds(lambda c, t, call: [{"role": "assistant", "content": c, "thinking": t, "tool_calls": [call]}], nonempty_texts, nonempty_texts, tool_calls),
    st.just([{"role": "assistant", "thinking": "no content"}]),
    st.just([{"role": "user", "content": None}]),
)


first_messages = st.one_of(
    st.just([]),
    st.builds(lambda r, c: [{"role": r, "content": c}], st.sampled_from(["system", "developer"]), texts),
    st.just([{"role": "system"}]),  # no content: no developer message unless there are tools
)

_valid_blocks = st.one_of(user_blocks, user_blocks, assistant_blocks, assistant_blocks, tool_blocks, tool_blocks, skipped_blocks)


def conversations(raising: bool = False) -> st.SearchStrategy:
    """Message lists: an optional system/developer message, then blocks of turns; with
    ``raising``, now and then a block that makes the template raise."""
    blocks = st.one_of(*([_valid_blocks] * 6), raising_blocks) if raising else _valid_blocks
    return st.builds(lambda head, body: head + [m for b in body for m in b], first_messages, st.lists(blocks, min_size=1, max_size=6))


options = st.fixed_dictionaries(
    {},
    optional={
        "reasoning_effort": st.one_of(st.sampled_from(["low", "medium", "high"]), texts),
        "model_identity": texts,
        "builtin_tools": st.lists(st.sampled_from(["browser", "python", "web"]), max_size=3),
    },
)
dates = st.sampled_from([DATE, "2024-02-29", "1999-12-31"])


def settings_strategy() -> st.SearchStrategy:
    """Everything of a case but its messages: (tools, add_generation_prompt, options, date)."""
    return st.tuples(st.one_of(st.none(), tools_strategy), st.booleans(), options, dates)


def cases(raising: bool = False) -> st.SearchStrategy:
    """Whole cases (see the module docstring)."""
    return st.builds(
        lambda msgs, rest: {"messages": msgs, "tools": rest[0], "add_generation_prompt": rest[1], "options": rest[2], "date": rest[3]},
        conversations(raising), settings_strategy(),
    )


# ---------------------------------------------------------------------------------------------
# fixed cases


def _fn(name: str, description: str, properties: Optional[Dict[str, Any]] = None, required: Optional[List[str]] = None) -> Dict[str, Any]:
    function: Dict[str, Any] = {"name": name, "description": description}
    if properties is not None:
        function["parameters"] = {"type": "object", "properties": properties}
        if required is not None:
            function["parameters"]["required"] = required
    return {"type": "function", "function": function}


def _user(c: Any) -> Dict[str, Any]:
    return {"role": "user", "content": c}


def _call(name: str, arguments: Any, **extra) -> Dict[str, Any]:
    return {"id": "c1", "type": "function", "function": {"name": name, "arguments": arguments, **extra}}


WEATHER = _fn(
    "get_weather", "Gets the current weather.\nUse it for any city.",
    {"location": {"type": "string", "description": "The city"}, "unit": {"type": "string", "enum": ["c", "f"], "default": "c"}},
    ["location"],
)

# one parameter per branch of render_typescript_type (and of the defaults after it)
EVERY_SCHEMA = _fn(
    "every_shape", "One parameter of each schema shape.",
    {
        "s": {"type": "string"},
        "s_desc": {"type": "string", "description": "A described string."},
        "s_enum": {"type": "string", "enum": ["a", "b", "c"]},
        "s_enum_default": {"type": "string", "enum": ["a", "b"], "default": "b"},
        "s_empty_enum": {"type": "string", "enum": []},
        "s_nullable": {"type": "string", "nullable": True},
        "s_enum_nullable": {"type": "string", "enum": ["x"], "nullable": True},
        "n": {"type": "number", "default": 1.5},
        "n_nullable": {"type": "number", "nullable": True},
        "i": {"type": "integer", "default": 3},
        "b": {"type": "boolean", "default": False},
        "arr_s": {"type": "array", "items": {"type": "string"}},
        "arr_n": {"type": "array", "items": {"type": "number"}, "nullable": True},
        "arr_i": {"type": "array", "items": {"type": "integer"}, "default": [1, 2]},
        "arr_b": {"type": "array", "items": {"type": "boolean"}},
        "arr_none": {"type": "array"},
        "arr_none_nullable": {"type": "array", "nullable": True},
        "arr_empty_items": {"type": "array", "items": {}},
        "arr_obj": {"type": "array", "items": {"type": "object", "properties": {"k": {"type": "string"}}, "required": ["k"]}},
        "arr_obj_long": {"type": "array", "items": {"type": "object", "properties": {"first_name": {"type": "string"}, "last_name": {"type": "string"}, "age": {"type": "integer"}}}},
        "arr_obj_bare": {"type": "array", "items": {"type": "object"}},
        "arr_union_objects": {"type": "array", "items": {"type": ["object", "object"]}},
        "arr_arr": {"type": "array", "items": {"type": "array", "items": {"type": "string"}}},
        "arr_enum": {"type": "array", "items": {"type": "string", "enum": ["u", "v"]}},
        "t_list": {"type": ["string", "null"]},
        "t_list_one": {"type": ["integer"]},
        "t_list_empty": {"type": []},
        "one_of": {"oneOf": [{"type": "string"}, {"type": "number"}]},
        "one_of_desc_default": {"oneOf": [{"type": "string", "description": "text", "default": "x"}, {"type": "integer", "default": 0}], "default": "x"},
        "one_of_objects": {"oneOf": [{"type": "object", "properties": {"a": {"type": "string"}}}, {"type": "string"}]},
        "one_of_single_object": {"oneOf": [{"type": "object"}]},
        "nested": {
            "type": "object", "description": "Nested.",
            "properties": {"inner": {"type": "object", "properties": {"deep": {"type": "boolean"}}, "required": ["deep"]}, "opt": {"type": "number"}},
            "required": ["inner"], "default": {"inner": {"deep": True}},
        },
        "obj_bare": {"type": "object"},
        "obj_empty_props": {"type": "object", "properties": {}},
        "unknown_type": {"type": "null"},
        "no_type": {"description": "Anything."},
        "any_of": {"anyOf": [{"type": "string"}, {"type": "integer"}]},
        "default_null": {"type": "string", "default": None},
        "default_unicode": {"type": "string", "default": "héllo 世界"},
        "empty_description": {"type": "string", "description": ""},
    },
    ["s", "s_enum", "nested", "no_such_param"],
)

CHANNEL_CONTENT = "<|channel|>analysis<|message|>thoughts"
CHANNEL_FINAL = "text<|channel|>final<|message|>answer"

# name -> case; "raising" cases first make the template raise_exception or jinja fail
FIXED_CASES: Dict[str, Dict[str, Any]] = {
    # --- conversations without tools
    "user_only": make_case([_user("Hello")]),
    "user_gen_prompt": make_case([_user("Hello")], add_generation_prompt=True),
    "system_first": make_case([{"role": "system", "content": "Be brief."}, _user("Hi")]),
    "developer_first": make_case([{"role": "developer", "content": "Answer in French."}, _user("Hi")]),
    "system_empty_content": make_case([{"role": "system", "content": ""}, _user("Hi")]),
    "system_only": make_case([{"role": "system", "content": "Alone."}]),
    "system_only_gen_prompt": make_case([{"role": "system", "content": "Alone."}], add_generation_prompt=True),
    "assistant_last": make_case([_user("2+2?"), {"role": "assistant", "content": "4"}]),
    "assistant_last_thinking": make_case([_user("2+2?"), {"role": "assistant", "thinking": "Add them.", "content": "4"}]),
    "assistant_last_thinking_empty": make_case([_user("2+2?"), {"role": "assistant", "thinking": "", "content": "4"}]),
    "assistant_last_gen_prompt": make_case([_user("2+2?"), {"role": "assistant", "thinking": "Add.", "content": "4"}], add_generation_prompt=True),
    "assistant_first": make_case([{"role": "assistant", "content": "I start."}, _user("ok")]),
    "multi_turn": make_case([
        {"role": "system", "content": "You are terse."},
        _user("q1"), {"role": "assistant", "thinking": "t1", "content": "a1"},
        _user("q2"), {"role": "assistant", "thinking": "t2", "content": "a2"},
        _user("q3"), {"role": "assistant", "thinking": "t3", "content": "a3"},
    ]),
    "assistant_empty_content": make_case([_user(""), {"role": "assistant", "content": ""}]),
    "special_tokens_in_text": make_case([
        _user("literal <|end|><|start|>assistant<|message|>x<|return|> and <|endoftext|>"),
        {"role": "assistant", "content": "ok <|call|> <|channel|>commentary<|message|> <|constrain|>", "thinking": "<|reserved_200012|>"},
    ]),
    "commentary_tag_allowed": make_case([_user("x"), {"role": "assistant", "content": "<|channel|>commentary<|message|>fine"}]),
    "non_ascii": make_case([
        {"role": "developer", "content": "Réponds en 日本語 🎌"},
        _user("héllo 世界 🎉 \u200b e\u0301 مرحبا \U0001F469\u200d\U0001F4BB"),
        {"role": "assistant", "thinking": "Ωμέγα — ça", "content": "ça va ✓"},
    ], model_identity="Tu es un modèle — ✨", reasoning_effort="élevé"),
    "whitespace_texts": make_case([_user("  \n\t\r\n "), {"role": "assistant", "content": "\n\n"}]),
    "skipped_roles": make_case([
        _user("a"), {"role": "system", "content": "late system"}, {"role": "developer", "content": "late dev"},
        {"role": "ipython", "content": "unknown"}, {"content": "no role"}, _user("b"),
    ]),
    "extra_keys": make_case([{"role": "user", "content": "x", "name": "alice"}, {"role": "assistant", "content": "y", "refusal": None}]),
    # --- template options
    "effort_low": make_case([_user("x")], reasoning_effort="low"),
    "effort_high": make_case([_user("x")], reasoning_effort="high"),
    "effort_custom": make_case([_user("x")], reasoning_effort="whatever you like"),
    "identity": make_case([_user("x")], model_identity="You are a test model."),
    "identity_empty": make_case([_user("x")], model_identity=""),
    "date_other": make_case([_user("x")], date="2024-02-29"),
    "builtin_browser": make_case([_user("x")], builtin_tools=["browser"]),
    "builtin_python": make_case([_user("x")], builtin_tools=["python"]),
    "builtin_both": make_case([_user("x")], builtin_tools=["python", "browser"]),
    "builtin_both_and_functions": make_case([{"role": "developer", "content": "Use tools."}, _user("x")], tools=[WEATHER], builtin_tools=["browser", "python"], reasoning_effort="high", model_identity="Test."),
    "builtin_unknown": make_case([_user("x")], builtin_tools=["web"]),
    "builtin_empty": make_case([_user("x")], builtin_tools=[]),
    "builtin_duplicates": make_case([_user("x")], builtin_tools=["python", "python", "web"]),
    # a string is iterated by its characters: "# Tools" and no tool
    "builtin_string": make_case([_user("x")], builtin_tools="python"),
    # --- function tools
    "tools_weather": make_case([_user("Weather in Paris?")], tools=[WEATHER], add_generation_prompt=True),
    "tools_every_schema": make_case([_user("x")], tools=[EVERY_SCHEMA]),
    "tools_empty_list": make_case([_user("x")], tools=[]),
    "tools_no_parameters": make_case([_user("x")], tools=[_fn("ping", "Pings.")]),
    "tools_empty_parameters": make_case([_user("x")], tools=[{"type": "function", "function": {"name": "p", "description": "d", "parameters": {}}}]),
    "tools_empty_properties": make_case([_user("x")], tools=[_fn("p", "d", {}, [])]),
    "tools_several": make_case([{"role": "system", "content": "sys"}, _user("x")], tools=[WEATHER, _fn("ping", "Pings."), _fn("数据", "Ünïcode tool", {"q": {"type": "string"}})]),
    "tools_system_without_content": make_case([{"role": "system"}, _user("x")], tools=[WEATHER]),
    "tools_description_empty": make_case([_user("x")], tools=[_fn("e", "", {"a": {"type": "string"}})]),
    # --- tool calls and results
    "tool_call_dict_args": make_case([
        _user("Weather?"), {"role": "assistant", "tool_calls": [_call("get_weather", {"location": "Paris", "days": [1, 2], "ok": True, "n": None, "f": 0.1})]},
        {"role": "tool", "content": '{"temperature": 20}'},
    ], tools=[WEATHER], add_generation_prompt=True),
    "tool_call_str_args": make_case([
        _user("Weather?"), {"role": "assistant", "tool_calls": [_call("get_weather", '{"location": "Paris"}')]},
        {"role": "tool", "content": "20 degrees"}, {"role": "assistant", "content": "It is 20."},
    ], tools=[WEATHER]),
    "tool_call_content_no_future_final": make_case([
        _user("Weather?"), {"role": "assistant", "content": "Let me check.", "tool_calls": [_call("get_weather", {"location": "Nice"})]},
        {"role": "tool", "content": "sunny"},
    ], tools=[WEATHER], add_generation_prompt=True),
    "tool_call_content_future_final": make_case([
        _user("Weather?"), {"role": "assistant", "content": "Let me check.", "tool_calls": [_call("get_weather", {"location": "Nice"})]},
        {"role": "tool", "content": "sunny"}, {"role": "assistant", "content": "Sunny."},
    ], tools=[WEATHER]),
    "tool_call_thinking": make_case([
        _user("Weather?"), {"role": "assistant", "thinking": "Need the tool.", "tool_calls": [_call("get_weather", {"location": "Oslo"})]},
        {"role": "tool", "content": "cold"},
    ], tools=[WEATHER]),
    "tool_call_thinking_future_final": make_case([
        _user("Weather?"), {"role": "assistant", "thinking": "Need the tool.", "tool_calls": [_call("get_weather", {"location": "Oslo"})]},
        {"role": "tool", "content": "cold"}, {"role": "assistant", "thinking": "Say it.", "content": "Cold."},
    ], tools=[WEATHER]),
    "tool_call_content_empty_thinking": make_case([
        _user("q"), {"role": "assistant", "content": "", "thinking": "only thinking", "tool_calls": [_call("f", {})]}, {"role": "tool", "content": "r"},
    ]),
    "tool_call_last_message": make_case([_user("q"), {"role": "assistant", "tool_calls": [_call("get_weather", {"location": "Rome"})]}], tools=[WEATHER]),
    "tool_call_two_calls": make_case([
        _user("q"), {"role": "assistant", "tool_calls": [_call("first", {"a": 1}), _call("second", {"b": 2})]}, {"role": "tool", "content": "r1"}, {"role": "tool", "content": "r2"},
    ]),
    "tool_call_unwrapped": make_case([_user("q"), {"role": "assistant", "tool_calls": [{"name": "bare", "arguments": {"x": "y"}}]}, {"role": "tool", "content": "ok"}]),
    "tool_call_content_type": make_case([_user("q"), {"role": "assistant", "tool_calls": [_call("f", {"x": 1}, content_type="<|constrain|>json")]}, {"role": "tool", "content": "ok"}]),
    "tool_call_args_nonascii_floats": make_case([
        _user("q"), {"role": "assistant", "tool_calls": [_call("f", {"txt": "é\"\\\n\u2028", "big": 10**30, "small": 1e-07, "neg": -0.0, "e": 1e300, "nested": {"l": [[], {}]}})]},
        {"role": "tool", "content": {"as": "dict", "n": [1.0, 2]}},
    ]),
    "tool_call_args_nonfinite": make_case([_user("q"), {"role": "assistant", "tool_calls": [_call("f", {"a": float("inf"), "b": float("-inf"), "c": float("nan")})]}]),
    "tool_results_json_and_plain": make_case([
        _user("q"), {"role": "assistant", "tool_calls": [_call("f", {})]},
        {"role": "tool", "content": '{"a": [1, "é"], "b": null}', "tool_call_id": "c1"}, {"role": "tool", "content": "plain \"quoted\" text\n"},
        _user("again"), {"role": "tool", "content": "still named after the call"},
    ]),
    "tool_chain": make_case([
        _user("q"),
        {"role": "assistant", "thinking": "step 1", "tool_calls": [_call("a", {"i": 1})]}, {"role": "tool", "content": "r1"},
        {"role": "assistant", "content": "step 2", "tool_calls": [_call("b", "raw")]}, {"role": "tool", "content": "r2"},
        {"role": "assistant", "content": "done", "thinking": "all"},
        _user("more"), {"role": "assistant", "tool_calls": [_call("c", {})]}, {"role": "tool", "content": "r3"},
    ], add_generation_prompt=True),
    # --- loose input the template reads anyway
    "messages_not_mappings": make_case(["just text", None, 7, ["list"], _user("after")]),
    "system_content_list": make_case([{"role": "system", "content": [{"type": "text", "text": "x"}]}, _user("y")]),
    "system_content_zero": make_case([{"role": "developer", "content": 0}, _user("y")]),
    "raise_tags_in_thinking_list": make_case([_user("q"), {"role": "assistant", "content": "ok", "thinking": ["<|channel|>final<|message|>"]}, _user("r")]),
    "tool_result_none_and_numbers": make_case([_user("q"), {"role": "assistant", "tool_calls": [_call("f", None)]}, {"role": "tool", "content": None}, {"role": "tool", "content": 4.5}, {"role": "tool", "content": [1, "a"]}]),
    "tool_call_function_empty": make_case([_user("q"), {"role": "assistant", "tool_calls": [{"function": {}, "name": "outer", "arguments": "a"}]}]),
    "tools_odd_schemas": make_case([_user("x")], tools=[_fn("odd", "Odd schemas.", {
        "spec_text": "string", "spec_null": None, "spec_true": True, "spec_list": [{"type": "string"}],
        "type_numbers": {"type": [1, 2]}, "type_mapping": {"type": {"a": 1}}, "type_list_nullable": {"type": ["string"], "nullable": True},
        "enum_text": {"type": "string", "enum": "abc"}, "enum_numbers": {"type": "string", "enum": [1, 2.5, None, True]},
        "one_of_mapping": {"oneOf": {"x": 1, "y": 2}}, "one_of_text": {"oneOf": "ab"}, "one_of_empty": {"oneOf": []},
        "items_type_list": {"type": "array", "items": {"type": ["string", "null"]}},
        "items_nested_long": {"type": "array", "items": {"type": "array", "items": {"type": "object", "properties": {"a_long_name": {"type": "string"}, "another_long_name": {"type": "number"}}}}},
        "items_text": {"type": "array", "items": "string"},
        "nullable_number": {"type": "number", "nullable": True}, "nullable_text": {"type": "string", "nullable": "yes"},
        "object_required_text": {"type": "object", "properties": {"loc": {"type": "string"}, "location": {"type": "string"}, "x": {"type": "string"}}, "required": "location"},
        "default_oneof_text": {"oneOf": [{"type": "string"}], "default": "text default"},
        "default_enum_text": {"type": "integer", "enum": [1, 2], "default": "2"},
        "default_list": {"type": "array", "default": ["a", {"b": None}]},
        "default_false": {"type": "boolean", "default": False}, "default_zero": {"type": "integer", "default": 0},
    }, "spec_text")]),
    "tools_required_text": make_case([_user("x")], tools=[_fn("f", "d", {"loc": {"type": "string"}, "location": {"type": "string"}, "z": {}}, "location")]),
    "long_texts": make_case([
        {"role": "system", "content": " ".join(f"rule{i} é{i % 7}" for i in range(400))},
        _user("".join(chr(0x4E00 + (i * 37) % 2000) for i in range(1500))),
        {"role": "assistant", "thinking": "think " * 600, "content": "ok " * 500},
    ]),
    # --- raising: the template's raise_exception
    "raise_content_analysis_tag": make_case([_user("q"), {"role": "assistant", "content": CHANNEL_CONTENT}]),
    "raise_content_final_tag": make_case([_user("q"), {"role": "assistant", "content": CHANNEL_FINAL}]),
    "raise_thinking_tag": make_case([_user("q"), {"role": "assistant", "thinking": CHANNEL_CONTENT, "content": "a"}]),
    "raise_thinking_tag_not_last": make_case([_user("q"), {"role": "assistant", "thinking": CHANNEL_FINAL, "content": "a"}, _user("r")]),
    "raise_tag_in_tool_call_content": make_case([_user("q"), {"role": "assistant", "content": CHANNEL_CONTENT, "tool_calls": [_call("f", {})]}]),
    "raise_content_and_thinking_with_call": make_case([_user("q"), {"role": "assistant", "content": "c", "thinking": "t", "tool_calls": [_call("f", {})]}]),
    "raise_tool_first": make_case([{"role": "tool", "content": "orphan"}]),
    "raise_tool_after_system": make_case([{"role": "system", "content": "s"}, {"role": "tool", "content": "orphan"}]),
    "raise_tool_after_final": make_case([
        _user("q"), {"role": "assistant", "tool_calls": [_call("f", {})]}, {"role": "tool", "content": "r"},
        {"role": "assistant", "content": "a"}, {"role": "tool", "content": "late"},
    ]),
    # --- raising: jinja itself (undefined values, TypeErrors)
    "error_empty_conversation": make_case([]),
    "error_user_no_content": make_case([{"role": "user"}]),
    "error_user_content_none": make_case([_user(None)]),
    "error_user_content_list": make_case([_user([{"type": "text", "text": "x"}])]),
    "error_user_content_int": make_case([_user(5)]),
    "error_assistant_no_content": make_case([_user("q"), {"role": "assistant", "thinking": "t"}]),
    "error_assistant_none_content_with_call": make_case([_user("q"), {"role": "assistant", "content": None, "tool_calls": [_call("f", {})]}]),
    "error_thinking_none": make_case([_user("q"), {"role": "assistant", "thinking": None, "content": "a"}]),
    "error_tool_calls_empty": make_case([_user("q"), {"role": "assistant", "content": "x", "tool_calls": []}]),
    "error_tool_calls_none": make_case([_user("q"), {"role": "assistant", "content": "x", "tool_calls": None}]),
    "error_tool_call_no_arguments": make_case([_user("q"), {"role": "assistant", "tool_calls": [{"function": {"name": "f"}}]}]),
    "error_tool_call_no_name": make_case([_user("q"), {"role": "assistant", "tool_calls": [{"function": {"arguments": {}}}]}]),
    "error_tool_result_no_content": make_case([_user("q"), {"role": "assistant", "tool_calls": [_call("f", {})]}, {"role": "tool"}]),
    "error_tool_without_function": make_case([_user("x")], tools=[{"type": "function", "name": "f", "description": "d"}]),
    "error_tool_without_description": make_case([_user("x")], tools=[{"type": "function", "function": {"name": "f"}}]),
    "error_enum_default_not_text": make_case([_user("x")], tools=[_fn("f", "d", {"n": {"type": "integer", "enum": [1, 2], "default": 1}})]),
    "error_oneof_default_not_text": make_case([_user("x")], tools=[_fn("f", "d", {"n": {"oneOf": [{"type": "integer"}], "default": 0}})]),
    "error_description_not_text": make_case([_user("x")], tools=[_fn("f", "d", {"n": {"type": "integer", "description": 7}})]),
    "error_properties_not_mapping": make_case([_user("x")], tools=[_fn("f", "d", {"o": {"type": "object", "properties": ["a", "b"]}})]),
    "error_tool_properties_not_mapping": make_case([_user("x")], tools=[{"type": "function", "function": {"name": "f", "description": "d", "parameters": {"properties": ["a"]}}}]),
    "error_tools_mapping": make_case([_user("x")], tools={"f": WEATHER}),
    "error_tool_calls_mapping": make_case([_user("q"), {"role": "assistant", "tool_calls": {"function": {"name": "f", "arguments": {}}}}]),
    "error_tool_call_function_text": make_case([_user("q"), {"role": "assistant", "tool_calls": [{"function": "f(1)"}]}]),
    "error_tool_name_not_text": make_case([_user("x")], tools=[{"type": "function", "function": {"name": 3, "description": "d"}}]),
    "error_one_of_not_list": make_case([_user("x")], tools=[_fn("f", "d", {"a": {"oneOf": 5}})]),
    "error_enum_not_list": make_case([_user("x")], tools=[_fn("f", "d", {"a": {"type": "string", "enum": 5}})]),
    "error_required_not_list": make_case([_user("x")], tools=[_fn("f", "d", {"a": {"type": "string"}}, 5)]),
    "error_content_type_not_text": make_case([_user("q"), {"role": "assistant", "tool_calls": [_call("f", {}, content_type=1)]}]),
    "error_effort_not_text": make_case([_user("x")], reasoning_effort=1),
    "error_identity_not_text": make_case([_user("x")], model_identity=["a"]),
    "error_builtin_tools_not_iterable": make_case([_user("x")], builtin_tools=True),
    "error_assistant_content_list": make_case([_user("q"), {"role": "assistant", "content": [{"type": "text", "text": "a"}]}]),
    "error_assistant_content_int": make_case([_user("q"), {"role": "assistant", "content": 3}]),
    "error_message_not_mapping_is_skipped_then_fails": make_case(["just text", None, 7, {"role": "user"}]),
    # the first error in reading order wins: the tool schema's, before the message's raise
    "error_order_tools_before_messages": make_case([{"role": "tool", "content": "orphan"}], tools=[{"type": "function", "function": {"name": "f"}}]),
}


# ---------------------------------------------------------------------------------------------
# loose input: any JSON value where the template expects a string, a list or a mapping, to hold
# the error paths (jinja's undefined-value texts, Python's TypeErrors) to the template's


def _maybe(strategy: st.SearchStrategy) -> st.SearchStrategy:
    """``strategy``'s values, or now and then any JSON value instead."""
    return st.one_of(strategy, strategy, strategy, json_values)


_loose_leaf = st.one_of(leaf_schemas, json_values)
loose_schemas = st.recursive(
    _loose_leaf,
    lambda kids: st.one_of(
        _extend(kids),
        st.fixed_dictionaries({}, optional={
            "type": _maybe(st.sampled_from(["string", "array", "object", "number"])), "items": kids, "oneOf": _maybe(st.lists(kids, max_size=2)),
            "properties": _maybe(st.dictionaries(names, kids, max_size=2)), "required": _maybe(st.lists(names, max_size=2)),
            "enum": _maybe(st.lists(texts, max_size=2)), "nullable": json_values, "description": _maybe(texts), "default": json_values,
        }),
    ),
    max_leaves=5,
)
loose_tools = _maybe(st.lists(
    _maybe(st.fixed_dictionaries({"type": st.just("function")}, optional={
        "function": _maybe(st.fixed_dictionaries({}, optional={
            "name": _maybe(names), "description": _maybe(texts),
            "parameters": _maybe(st.fixed_dictionaries({}, optional={
                "type": st.just("object"), "properties": _maybe(st.dictionaries(names, loose_schemas, max_size=3)),
                "required": _maybe(st.lists(names, max_size=2)),
            })),
        })),
    })),
    max_size=2,
))
_loose_call = _maybe(st.fixed_dictionaries({}, optional={
    "function": _maybe(st.fixed_dictionaries({}, optional={"name": _maybe(names), "arguments": json_values, "content_type": _maybe(texts)})),
    "name": _maybe(names), "arguments": json_values,
}))
loose_messages = _maybe(st.fixed_dictionaries({}, optional={
    "role": _maybe(st.sampled_from(["system", "developer", "user", "assistant", "tool"])),
    "content": _maybe(texts), "thinking": _maybe(texts), "tool_calls": _maybe(st.lists(_loose_call, max_size=2)),
}))


_loose_options = st.fixed_dictionaries({}, optional={
    "reasoning_effort": _maybe(texts), "model_identity": _maybe(texts),
    "builtin_tools": _maybe(st.lists(st.sampled_from(["browser", "python"]), max_size=2)),
})


@st.composite
def loose_cases(draw) -> Dict[str, Any]:
    """Cases whose messages, tools and options may hold any JSON value anywhere the template
    reads one (about half of them raise). (A composite: hypothesis then names the strategy by
    this function instead of spelling out its whole tree.)"""
    messages = draw(st.lists(loose_messages, min_size=1, max_size=5))
    if isinstance(messages[0], list):
        # a list whose first item is a list is a batch to apply_chat_template, as to transformers:
        # that value goes into a message instead (no filter, whose retries would spell the strategy)
        messages[0] = {"role": "user", "content": messages[0]}
    tools = draw(st.one_of(st.none(), loose_tools))
    options = {k: v for k, v in draw(_loose_options).items() if v is not None}  # None: not passed
    return {"messages": messages, "tools": tools, "add_generation_prompt": draw(st.booleans()), "options": options, "date": draw(dates)}


class _DictSubclass(dict):
    """A mapping type of the caller's own."""


def python_value_cases() -> Dict[str, Dict[str, Any]]:
    """Cases with Python values that JSON cannot hold (so not in the golden file): objects with
    attributes for messages, tuples, a dict subclass, non-string keys and sets in arguments,
    bytes and str subclasses for content, non-finite floats."""
    from types import SimpleNamespace as NS

    user = {"role": "user", "content": "q"}
    return {
        "namespace_messages": make_case([NS(role="user", content="hi"), NS(role="assistant", content="a", thinking="t")]),
        "namespace_tool_call": make_case([user, {"role": "assistant", "tool_calls": [NS(function=NS(name="f", arguments={"a": 1}))]}, {"role": "tool", "content": "r"}]),
        "tuple_messages": make_case(({"role": "user", "content": "hi"}, {"role": "assistant", "content": "a", "thinking": "t"})),
        "dict_subclass": make_case([_DictSubclass(role="user", content="x")], tools=[_DictSubclass(type="function", function=_DictSubclass(name="f", description="d"))]),
        "arguments_odd_keys": make_case([user, {"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": {1: "a", 2.5: None, False: 1, None: 0}}}]}]),
        "arguments_tuple": make_case([user, {"role": "assistant", "tool_calls": ({"function": {"name": "f", "arguments": (1, (2, "é"))}},)}]),
        "arguments_set": make_case([user, {"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": {1, 2}}}]}]),
        "arguments_nonfinite": make_case([user, {"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": [float("nan"), float("inf"), -float("inf")]}}]}]),
        "content_bytes": make_case([{"role": "user", "content": b"x"}]),
        "content_str_subclass": make_case([{"role": "user", "content": type("Text", (str,), {})("abc")}]),
        "system_content_tuple": make_case([{"role": "system", "content": ("a", "b")}, user]),
        "schema_tuple_types": make_case([user], tools=[{"type": "function", "function": {"name": "f", "description": "d", "parameters": {"properties": {"a": {"type": ("string", "null")}, "b": {"type": "string", "enum": ("x", "y")}}}}}]),
    }
