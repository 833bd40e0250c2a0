"""harmony_np.schema against openai_harmony: the "# Tools" section, byte for byte."""

from __future__ import annotations

import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harmony_np import ToolDescription, ToolNamespaceConfig
from harmony_np.schema import (
    CONVERSATION_JSON_DEPTH,
    json_roundtrip,
    json_schema_to_typescript,
    json_value_display,
    rust_lines,
    tools_section,
)

from profiles import example_count

_PREFIX = "<|start|>developer<|message|>"
_SUFFIX = "<|end|>"


class OraclePanic(Exception):
    """openai_harmony's Rust code panicked: the one oracle defect we tolerate."""


def _oracle_developer_text(oracle, oenc, spec):
    """The developer message text the oracle renders for ``spec``: {key: (name, desc, tools)}."""
    tools = {
        key: oracle.ToolNamespaceConfig(
            name=name,
            description=desc,
            tools=[oracle.ToolDescription.new(n, d, p) for n, d, p in tool_list],
        )
        for key, (name, desc, tool_list) in spec.items()
    }
    msg = oracle.Message.from_role_and_content(oracle.Role.DEVELOPER, oracle.DeveloperContent(tools=tools))
    try:
        tokens = oenc.render(msg)
    except BaseException as exc:
        if type(exc).__name__ == "PanicException":
            raise OraclePanic(str(exc)) from exc
        raise
    text = oenc.decode_utf8(tokens)
    assert text.startswith(_PREFIX) and text.endswith(_SUFFIX), text
    return text[len(_PREFIX) : -len(_SUFFIX)]


def _ours(spec):
    tools = {
        key: ToolNamespaceConfig(name, desc, [ToolDescription(n, d, p) for n, d, p in tool_list])
        for key, (name, desc, tool_list) in spec.items()
    }
    return tools_section(tools)


def _outcome(fn):
    try:
        return "ok", fn()
    except OraclePanic:
        raise
    except (ValueError, TypeError, RecursionError) as exc:
        return "error", type(exc)


def check(oracle, oenc, spec):
    """Assert that our tools section equals the oracle's (or that both fail the same way)."""
    expected = _outcome(lambda: _oracle_developer_text(oracle, oenc, spec))
    got = _outcome(lambda: _ours(spec))
    assert got == expected
    return got[1]


def check_params(oracle, oenc, params, name="f", desc=""):
    """Compare one function tool; returns the tools section text."""
    text = check(oracle, oenc, {"functions": ("functions", None, [(name, desc, params)])})
    assert text.startswith("# Tools\n\n## functions\n\nnamespace functions {\n\n")
    return text


def _ts_of(text, name="f"):
    start = text.index(f"type {name} = (_: ") + len(f"type {name} = (_: ")
    return text[start : text.rindex(") => any;")]


# ---------------------------------------------------------------------------
# hand-written cases
# ---------------------------------------------------------------------------

SCHEMAS = {
    "scalars": {
        "type": "object",
        "properties": {
            "s": {"type": "string"},
            "n": {"type": "number"},
            "i": {"type": "integer"},
            "b": {"type": "boolean"},
            "x": {"type": "null"},
            "u": {"type": "whatever"},
            "none": {},
            "notadict": 5,
            "list": [1, 2],
        },
        "required": ["s", "i", 3, None, "missing"],
    },
    "nested_objects": {
        "type": "object",
        "description": "outer",
        "properties": {
            "inner": {
                "type": "object",
                "description": "inner\r\ndesc",
                "properties": {
                    "deep": {
                        "type": "object",
                        "properties": {"leaf": {"type": "string", "description": "a leaf"}},
                        "required": ["leaf"],
                    }
                },
            },
            "empty": {"type": "object"},
            "props_not_dict": {"type": "object", "properties": [1]},
        },
        "required": "inner",
    },
    "arrays": {
        "type": "object",
        "properties": {
            "of_objects": {
                "type": "array",
                "items": {"type": "object", "properties": {"a": {"type": "integer", "default": 3}}},
            },
            "of_strings": {"type": "array", "items": {"type": "string", "enum": ["x", "y"]}},
            "no_items": {"type": "array"},
            "null_items": {"type": "array", "items": None},
            "nested": {"type": "array", "items": {"type": "array", "items": {"type": ["integer", "null"]}}},
        },
    },
    "type_lists": {
        "type": "object",
        "properties": {
            "a": {"type": ["number", "string"], "default": -1},
            "b": {"type": ["integer", 3, "boolean"]},
            "c": {"type": []},
            "d": {"type": [1, 2]},
            "e": {"type": ["null", "string"], "nullable": True},
            "f": {"type": ["string"], "nullable": True},
        },
    },
    "enums_defaults": {
        "type": "object",
        "properties": {
            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"], "default": "celsius"},
            "plain": {"type": "string", "default": 'say "hi"\n'},
            "mixed_enum": {"type": "string", "enum": [1, "a", None, "b"]},
            "no_str_enum": {"type": "string", "enum": [1, 2]},
            "empty_enum": {"type": "string", "enum": [], "default": "z"},
            "enum_not_list": {"type": "string", "enum": "abc", "default": "q"},
            "num_enum_default": {"type": "number", "enum": [1], "default": "str"},
            "f": {"type": "number", "default": 1.5e-7},
            "g": {"type": "number", "default": 1e20},
            "big": {"type": "integer", "default": 2**64},
            "bigger": {"type": "integer", "default": -(10**30)},
            "i64min": {"type": "integer", "default": -(2**63)},
            "u64max": {"type": "integer", "default": 2**64 - 1},
            "t": {"type": "boolean", "default": True},
            "nul": {"default": None},
            "lst": {"default": [1, [2.0, "x"], {"k": None}]},
            "obj": {"default": {"b": 1, "a": {"c": [True, False]}, 3: "int key"}},
            "tuple": {"default": (1, (2, 3))},
            "zero": {"default": -0.0},
            "tiny": {"default": 5e-324},
            "huge": {"default": 1.7976931348623157e308},
            "lossy": {"default": 1.2345678901234567e-300},
            "escapes": {"default": ['q"\\\n\t\x00\x1f\x7f\u2028é😀']},
        },
    },
    "titles_examples": {
        "type": "object",
        "properties": {
            "loc": {
                "title": "Location",
                "type": "string",
                "description": "City name",
                "examples": ["Paris", 3, "Tokyo \"JP\""],
            },
            "empty_examples": {"type": "string", "examples": []},
            "bad_examples": {"type": "string", "examples": "Paris"},
            "bad_title": {"type": "string", "title": 7},
            "only_title": {"title": "T"},
        },
    },
    "top_level_one_of": {
        "oneOf": [
            {"type": "string", "description": "a string", "default": "x"},
            {"type": "string", "enum": ["a", "b"], "default": 'a"\n', "nullable": True},
            {"type": "number", "nullable": True, "default": 1.0},
            {"type": ["null", "number"], "nullable": True},
            {"type": "object", "properties": {"p": {"type": "integer"}}},
            {"oneOf": [{"type": "boolean"}, {"type": "integer"}]},
            7,
            {"default": None},
        ]
    },
    "top_level_one_of_not_list": {"oneOf": {"type": "string"}, "type": "integer"},
    "type_list_falls_through": {"oneOf": "x", "type": [3]},
    "property_one_of": {
        "type": "object",
        "properties": {
            "same_desc": {
                "description": "shared",
                "oneOf": [{"type": "string", "description": "shared"}, {"type": "number", "description": "num"}],
            },
            "different_desc": {
                "description": "prop",
                "default": "d",
                "oneOf": [
                    {"type": "string", "description": "first"},
                    {"type": "number", "description": "prop"},
                    {"type": "boolean", "description": "other", "default": False},
                ],
            },
            "enum_default": {
                "enum": ["x"],
                "default": "x",
                "oneOf": [{"type": "string", "enum": ["x", "y"], "default": "y", "nullable": True}],
            },
            "no_desc": {
                "default": [1, 2],
                "title": "Title",
                "examples": ["e"],
                "oneOf": [{"type": "integer", "description": "v", "nullable": True}, {"nullable": True}, "junk"],
            },
            "empty_one_of": {"description": "nothing", "oneOf": []},
            "one_of_not_list": {"description": "hidden", "default": 3, "oneOf": 5, "type": "string"},
            "nested": {
                "oneOf": [
                    {"type": "object", "properties": {"z": {"oneOf": [{"type": "string"}, {"type": "null"}]}}},
                    {"type": "array", "items": {"oneOf": [{"type": "string"}, {"type": "number"}]}},
                ]
            },
        },
        "required": ["same_desc"],
    },
    "nullable_variants": {
        "type": "object",
        "properties": {
            "n1": {"type": "string", "nullable": True},
            "n2": {"type": "string", "nullable": "yes"},
            "n3": {"type": "null", "nullable": True},
            "n4": {"type": "object", "description": "has null inside", "nullable": True, "properties": {}},
            "n5": {"type": "array", "items": {"type": "string", "nullable": True}, "nullable": True},
        },
    },
    "odd_keys": {
        "type": "object",
        "properties": {
            1: {"type": "string"},
            True: {"type": "number"},  # noqa: F601 - the same key as 1, on purpose
            None: {},
            2.5: {},
            "ключ": {"type": "string"},
        },
        "required": ["1", "true"],
    },
    "duplicate_keys_after_json": {"type": "object", "properties": {1: {"type": "string"}, "1": {"type": "number"}}},
    "missing_type": {"description": "no type", "properties": {"a": {}}},
    "empty": {},
}


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_schema_cases(oracle, oenc, name):
    text = check_params(oracle, oenc, SCHEMAS[name])
    assert json_schema_to_typescript(SCHEMAS[name]) == _ts_of(text)


def test_known_shapes(oracle, oenc):
    # a few exact renderings, so that the rules themselves are pinned down
    assert json_schema_to_typescript({"type": ["integer", "string"]}) == "number | string"
    assert json_schema_to_typescript({"type": "array"}) == "Array<any>"
    assert json_schema_to_typescript({}) == "any"
    assert json_schema_to_typescript({"type": "string", "enum": ["a", "b"]}) == '"a" | "b"'
    assert json_schema_to_typescript({"oneOf": [{"type": "string"}]}, "  ") == "\n   | string"
    obj = {"type": "object", "properties": {"a": {"type": "string", "default": "x"}}, "required": []}
    assert json_schema_to_typescript(obj) == '{\na?: string, // default: "x"\n}'
    assert _ts_of(check_params(oracle, oenc, obj)) == '{\na?: string, // default: "x"\n}'


def test_no_parameters(oracle, oenc):
    text = check(oracle, oenc, {"functions": ("functions", None, [("f", "d", None), ("g", "", {})])})
    assert "type f = () => any;" in text and "type g = (_: any) => any;" in text


def test_descriptions_lines(oracle, oenc):
    descs = ["a\r\nb\n", "x\r", "\n", "\r\n", "one", "", "a\n\nb\r\r\n", "trailing\n\n", "\rlead", "é\u2028ü"]
    for desc in descs:
        with_tools = check(oracle, oenc, {"ns": ("ns", desc, [("t", desc, {"type": "object"})])})
        without = check(oracle, oenc, {"ns": ("ns", desc, [])})
        for line in rust_lines(desc):
            assert f"// {line}" in with_tools and line in without
    assert rust_lines("a\r\nb\n") == ["a", "b"]
    assert rust_lines("x\r") == ["x\r"]
    assert rust_lines("") == [] and rust_lines("\n") == [""]


def test_namespaces(oracle, oenc):
    spec = {
        "zeta": ("zeta", "last by key", [("z", "zz", {"type": "object"})]),
        "alpha": ("shown-name", None, [("a", "", None)]),
        "Beta": ("Beta", "", [("b", "multi\nline", {"type": "string"})]),
        "ümlaut": ("ümlaut", "builtin-like\nno tools", []),
        "_": ("_", None, []),
    }
    text = check(oracle, oenc, spec)
    order = [text.index(f"## {n}\n") for n in ("Beta", "_", "shown-name", "zeta", "ümlaut")]
    assert order == sorted(order)
    assert "## _\n" in text and "namespace shown-name {" in text


def test_builtin_namespaces(oracle, oenc):
    browser, python = ToolNamespaceConfig.browser(), ToolNamespaceConfig.python()
    spec = {
        ns.name: (ns.name, ns.description, [(t.name, t.description, t.parameters) for t in ns.tools])
        for ns in (browser, python)
    }
    text = check(oracle, oenc, spec)
    assert text.startswith("# Tools\n\n## browser\n\n// Tool for browsing.")
    assert text.endswith("## python\n\n" + python.description)


def test_system_message_section(oracle, oenc):
    # the system message shows the same section, between the reasoning line and the channels
    sys_content = oracle.SystemContent.new().with_browser_tool().with_python_tool()
    msg = oracle.Message.from_role_and_content(oracle.Role.SYSTEM, sys_content)
    text = oenc.decode_utf8(oenc.render(msg))
    ours = tools_section({"browser": ToolNamespaceConfig.browser(), "python": ToolNamespaceConfig.python()})
    assert f"Reasoning: medium\n\n{ours}\n\n# Valid channels:" in text


def test_non_ascii_and_surrogate_pairs(oracle, oenc):
    params = {
        "type": "object",
        "description": "température 😀",
        "properties": {"名前": {"type": "string", "enum": ["é", "\ud83d\ude00"], "default": "\ud83d\ude00"}},
    }
    text = check(oracle, oenc, {"fonctions": ("fonctions", "descrição", [("f\ud83d\ude00", "ß", params)])})
    assert "😀" in text and "\ud83d" not in text


@pytest.mark.parametrize(
    "params",
    [
        {"default": math.nan},
        {"default": math.inf},
        {"default": [-math.inf]},
        {"default": "\ud800"},
        {"\udc00": 1},
        {"default": 10**400},
        {"default": {1, 2}},
        {"default": b"x"},
        {(1, 2): "tuple key"},
        {"default": object()},
    ],
)
def test_bad_values(oracle, oenc, params):
    spec = {"functions": ("functions", None, [("f", "", params)])}
    kind, exc_type = _outcome(lambda: _oracle_developer_text(oracle, oenc, spec))
    assert kind == "error"
    with pytest.raises(exc_type):
        _ours(spec)
    with pytest.raises(exc_type):
        json_value_display(params)


def test_bad_strings(oracle, oenc):
    for spec in (
        {"functions": ("fun\ud800", None, [("f", "", None)])},
        {"functions": ("functions", "\udfff", [])},
        {"functions": ("functions", None, [("f\ud800", "", None)])},
        {"functions": ("functions", None, [("f", "x\udc00", None)])},
        {"k\ud800": ("k", None, [])},
    ):
        assert check(oracle, oenc, spec) is ValueError


def test_type_error_before_value_error(oracle, oenc):
    spec = {"a": ("a", None, [("f", "", {"x": math.nan})]), "b": ("b", None, [("g", "", {"y": {1}})])}
    assert check(oracle, oenc, spec) is TypeError


def test_circular_reference(oracle, oenc):
    params: dict = {"type": "object"}
    params["default"] = params
    assert check(oracle, oenc, {"f": ("f", None, [("f", "", params)])}) is ValueError


def _nested(depth):
    value = 1
    for _ in range(depth):
        value = [value]
    return value


def test_nesting_limit(oracle, oenc):
    # parameters plus 119 more levels fit serde_json's limit in a message; one more does not
    ok = check_params(oracle, oenc, {"default": _nested(119)})
    assert "default" not in ok  # no type: a top-level default renders nothing
    assert check(oracle, oenc, {"f": ("f", None, [("f", "", {"default": _nested(120)})])}) is ValueError
    # a conversation wraps messages in two more containers
    ns = {"f": ToolNamespaceConfig("f", None, [ToolDescription("f", "", {"default": _nested(118)})])}
    with pytest.raises(ValueError):
        tools_section(ns, json_depth=CONVERSATION_JSON_DEPTH)
    assert tools_section(ns).endswith("} // namespace f")


def test_json_value_display_forms(oracle, oenc):
    values = [1.0, 1e20, 1.5e-7, 1e16, 1e15, 1e-5, 1e-6, 0.0001, -0.0, 0.1, 123.456, -2.5e-300, 2**64, -(2**63) - 1]
    expected = ["1.0", "1e20", "1.5e-7", "1e16", "1000000000000000.0", "0.00001", "1e-6", "0.0001", "-0.0",
                "0.1", "123.456", "-2.5e-300", "1.8446744073709552e19", "-9.223372036854776e18"]  # fmt: skip
    assert [json_value_display(v) for v in values] == expected
    assert _oracle_default_display(oracle, oenc, values) == json_value_display(values)
    assert json_value_display({1: (True, None), "s": 'a"\n'}) == '{"1":[true,null],"s":"a\\"\\n"}'
    assert json_roundtrip({1: "a", "1": "b", 2: (3,)}) == {"1": "b", "2": [3]}


def _oracle_default_display(oracle, oenc, value):
    """How the oracle prints ``value`` (a list, so never the bare-string form) as a default."""
    params = {"type": "object", "properties": {"a": {"default": value}}}
    text = _oracle_developer_text(oracle, oenc, {"functions": ("functions", None, [("f", "", params)])})
    ts = _ts_of(text)
    head, tail = "{\na?: any, // default: ", "\n}"
    assert ts.startswith(head) and ts.endswith(tail)
    return ts[len(head) : -len(tail)]


# ---------------------------------------------------------------------------
# property-based comparison
# ---------------------------------------------------------------------------

KEYWORDS = ["description", "enum", "default", "items", "properties", "required", "title", "examples",
            "oneOf", "nullable"]  # fmt: skip
TYPES = ["object", "string", "number", "integer", "boolean", "array", "null", "any", "Object", ""]

texts = st.text(alphabet=st.sampled_from("ab z\"'\\\n\r\t{}|/é世😀\x00\x7f\u2028"), max_size=5)
names = st.sampled_from(["a", "b", "c", "null", ""]) | texts
odd_keys = names | st.integers(-2, 2) | st.booleans() | st.none() | st.sampled_from([1.5, -0.0])
floats = st.floats(allow_nan=False, allow_infinity=False) | st.sampled_from([1e20, 1e-7, 1e16, 0.5, -0.0, 1e300])
leaves = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.sampled_from([2**63, 2**64 - 1, 2**64, -(2**63), -(2**63) - 1, -(2**64) - 1])
    | floats
    | texts
)
json_values = st.recursive(
    leaves,
    lambda sub: st.lists(sub, max_size=3)
    | st.lists(sub, max_size=2).map(tuple)
    | st.dictionaries(odd_keys, sub, max_size=3),
    max_leaves=4,
)


def _mostly(good, junk, percent=80):
    """``good`` most of the time, else ``junk`` (a plain ``|`` would weigh every branch alike)."""
    return st.sampled_from(range(100)).flatmap(lambda roll: good if roll < percent else junk)


def _schema_dicts(sub):
    """Schema-like dicts: a type, a few keywords with plausible (or junk) values, maybe a random key."""
    nested = leaves if sub is None else _mostly(sub, leaves)
    values = {
        "properties": _mostly(st.dictionaries(odd_keys, nested, min_size=1, max_size=3), json_values, 90),
        "items": nested,
        "oneOf": _mostly(st.lists(nested, max_size=3), leaves),
        "required": _mostly(st.lists(_mostly(names, leaves, 90), max_size=3), leaves),
        "enum": _mostly(st.lists(_mostly(texts, leaves), max_size=3), leaves),
        "default": json_values,
        "description": _mostly(texts, leaves),
        "title": _mostly(texts, leaves),
        "examples": _mostly(st.lists(_mostly(texts, leaves), max_size=3), leaves),
        "nullable": _mostly(st.booleans(), leaves),
    }
    kinds = _mostly(
        st.sampled_from(["object", "object", "array", "string", *TYPES]),
        st.lists(st.sampled_from(TYPES) | leaves, max_size=3) | leaves,
        90,
    )

    @st.composite
    def draw_schema(draw):
        out = {}
        if draw(st.sampled_from(range(10))) < 8:
            out["type"] = draw(kinds)
        for key in draw(st.lists(st.sampled_from(KEYWORDS), max_size=4, unique=True)):
            out[key] = draw(values[key])
        if draw(st.sampled_from(range(10))) == 0:
            out[draw(texts)] = draw(json_values)
        return out

    return draw_schema()


schemas = st.recursive(_schema_dicts(None), _schema_dicts, max_leaves=5)
# tool parameters: usually an object with properties, where most rules apply
parameters = _mostly(
    st.builds(
        lambda extra, props: {**extra, "type": "object", "properties": props},
        _schema_dicts(None),
        st.dictionaries(odd_keys, _mostly(schemas, leaves, 90), min_size=1, max_size=4),
    ),
    schemas,
    75,
)

tool_specs = st.tuples(texts, texts, _mostly(parameters, st.none(), 90))
namespace_specs = st.tuples(
    names, st.none() | texts, _mostly(st.lists(tool_specs, min_size=1, max_size=2), st.just([]), 85)
)


SETTINGS = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@settings(SETTINGS, max_examples=example_count(5))
@given(params=parameters, name=texts, desc=texts)
def test_random_parameters_match_oracle(oracle, oenc, params, name, desc):
    try:
        result = check(oracle, oenc, {"functions": ("functions", None, [(name, desc, params)])})
    except OraclePanic:
        return  # a Rust panic in the oracle, not a behaviour to copy
    if isinstance(result, str):
        assert result.endswith("} // namespace functions")


@settings(SETTINGS, max_examples=example_count(3))
@given(spec=st.dictionaries(names, namespace_specs, min_size=1, max_size=4))
def test_random_tools_match_oracle(oracle, oenc, spec):
    try:
        result = check(oracle, oenc, spec)
    except OraclePanic:
        return  # a Rust panic in the oracle, not a behaviour to copy
    if isinstance(result, str):
        assert result.startswith("# Tools\n\n## ")


@settings(SETTINGS, max_examples=example_count(3))
@given(value=st.lists(json_values, min_size=1, max_size=4))
def test_random_values_display(oracle, oenc, value):
    try:
        expected = ("ok", _oracle_default_display(oracle, oenc, value))
    except ValueError:
        expected = ("error", ValueError)
    assert _outcome(lambda: json_value_display(value)) == expected
