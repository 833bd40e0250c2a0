"""Conversations (as ``Conversation.from_json`` documents) used by the render tests and golden files."""

def msg(role, content, **kw):
    d = {"role": role, "content": content}
    d.update(kw)
    return d


SYSTEM_FULL = {
    "type": "system_content",
    "model_identity": "You are a test model.",
    "reasoning_effort": "High",
    "conversation_start_date": "2025-09-20",
    "knowledge_cutoff": "2024-06",
    "channel_config": {"valid_channels": ["analysis", "commentary", "final"], "channel_required": True},
}
WEATHER_TOOL = {
    "name": "get_weather",
    "description": "Gets the weather.\nUse it well.",
    "parameters": {
        "type": "object",
        "properties": {"location": {"type": "string", "description": "City"}, "unit": {"type": "string", "enum": ["c", "f"], "default": "c"}},
        "required": ["location"],
    },
}
DEVELOPER_FULL = {
    "type": "developer_content",
    "instructions": "Answer briefly.",
    "tools": {"functions": {"name": "functions", "tools": [WEATHER_TOOL, {"name": "noop", "description": "Does nothing."}]}},
}

CASES = {
    "simple": [msg("user", "Hello"), msg("assistant", "Hi there", channel="final")],
    "system_default": [msg("system", [{"type": "system_content"}]), msg("user", "2+2?")],
    "system_full_and_developer_tools": [
        msg("system", [SYSTEM_FULL]),
        msg("developer", [DEVELOPER_FULL]),
        msg("user", "Weather in Paris?"),
        msg("assistant", "Need the tool.", channel="analysis"),
        msg("assistant", '{"location":"Paris"}', channel="commentary", recipient="functions.get_weather", content_type="<|constrain|>json"),
        msg("tool", '{"t": 20}', name="functions.get_weather", channel="commentary", recipient="assistant"),
        msg("assistant", "It is 20 degrees.", channel="final"),
    ],
    "drop_only_before_first_final": [
        msg("user", "q1"),
        msg("assistant", "think1", channel="analysis"),
        msg("assistant", "a1", channel="final"),
        msg("user", "q2"),
        msg("assistant", "think2", channel="analysis"),
        msg("assistant", "a2", channel="final"),
    ],
    "ongoing_analysis_not_dropped": [
        msg("user", "q1"),
        msg("assistant", "think1", channel="analysis"),
        msg("assistant", "a1", channel="final"),
        msg("user", "q2"),
        msg("assistant", "think2", channel="analysis"),
    ],
    "recipient_all_and_names": [
        msg("user", "hi", name="alice"),
        msg("assistant", "to all", recipient="all", channel="final"),
        msg("assistant", "plain ct", content_type="text/markdown"),
        msg("assistant", "bare constrain", recipient="x", content_type="<|constrain|>"),
    ],
    "special_text_in_content": [msg("user", "literal <|start|> and <|end|> text"), msg("assistant", "ok<|return|>", channel="final")],
    "multiple_contents": [msg("user", [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}])],
    "browser_and_python": [
        msg("system", [{"type": "system_content", "tools": {"python": {"name": "python", "description": "Run code.", "tools": []}}}]),
        msg("user", "hi"),
    ],
    "empty": [],
    "tool_without_name": [msg("tool", "result")],
    "system_content_in_user": [msg("user", [{"type": "system_content"}])],
    "developer_content_in_assistant": [msg("assistant", [{"type": "developer_content", "instructions": "x"}])],
    "unicode": [msg("user", "héllo 世界 🎉 \u200b"), msg("assistant", "ça va", channel="final")],
    "training_final_with_recipient": [msg("user", "x"), msg("assistant", "call", channel="final", recipient="functions.f")],
}


def _system(**fields):
    d = {"type": "system_content"}
    d.update(fields)
    return d


BROWSER = {"name": "browser", "description": None, "tools": []}
COMPLEX_TOOL = {
    "name": "search_catalog",
    "description": "Search the catalog.\r\nReturns matches.\n",
    "parameters": {
        "type": "object",
        "description": "Query options",
        "properties": {
            "query": {"type": "string", "title": "Query", "description": "Free text", "examples": ["red shoes", "hats"]},
            "limit": {"type": "integer", "default": 10},
            "price": {"type": ["number", "null"], "nullable": True},
            "sort": {"type": "string", "enum": ["price", "rating"], "default": "rating"},
            "tags": {"type": "array", "items": {"type": "string"}},
            "any": {},
            "filter": {
                "description": "A filter",
                "oneOf": [
                    {"type": "string", "description": "A filter"},
                    {"type": "object", "properties": {"field": {"type": "string"}}, "nullable": True, "default": {"field": "x"}},
                ],
            },
            "nested": {"type": "object", "properties": {"deep": {"type": "array"}}, "required": ["deep"]},
            "ratio": {"type": "number", "default": 0.5},
        },
        "required": ["query"],
    },
}

for _effort in ("Low", "Medium", "High"):
    CASES[f"reasoning_{_effort.lower()}"] = [
        msg("system", [_system(reasoning_effort=_effort)]),
        msg("developer", [{"type": "developer_content", "instructions": "Talk like a pirate!"}]),
        msg("user", "What is 2 + 2?"),
    ]
    CASES[f"reasoning_{_effort.lower()}_no_instructions"] = [msg("system", [_system(reasoning_effort=_effort)]), msg("user", "Hi")]

CASES.update(
    {
        "system_no_identity_no_effort": [msg("system", [_system(model_identity=None, reasoning_effort=None, knowledge_cutoff=None, channel_config=None)]), msg("user", "x")],
        "system_channels_not_required": [msg("system", [_system(channel_config={"valid_channels": ["final"], "channel_required": False})])],
        "system_empty_channels": [msg("system", [_system(channel_config={"valid_channels": [], "channel_required": True})])],
        "browser_builtin_with_functions": [
            msg("system", [_system(conversation_start_date="2025-06-28", tools={"browser": {
                "name": "browser", "description": "Tool for browsing.", "tools": [
                    {"name": "search", "description": "Searches.", "parameters": {"type": "object", "properties": {"query": {"type": "string"}, "topn": {"type": "number", "default": 10}}, "required": ["query"]}},
                    {"name": "open", "description": "Opens.", "parameters": {"type": "object", "properties": {"id": {"type": ["number", "string"], "default": -1}, "view_source": {"type": "boolean", "default": False}}}},
                ]}})]),
            msg("developer", [{"type": "developer_content", "instructions": "Use tools.", "tools": {"functions": {"name": "functions", "tools": [COMPLEX_TOOL]}}}]),
            msg("user", "find red shoes"),
            msg("assistant", "search", channel="analysis"),
            msg("assistant", '{"query":"red shoes"}', channel="commentary", recipient="functions.search_catalog", content_type="<|constrain|>json"),
            msg("tool", "[]", name="functions.search_catalog", channel="commentary", recipient="assistant"),
            msg("assistant", "None found.", channel="final"),
        ],
        "python_namespace_no_tools": [msg("system", [_system(tools={"python": {"name": "python", "description": "Runs code.\nStateful.", "tools": []}})])],
        "namespaces_sorted_by_key": [
            msg("developer", [{"type": "developer_content", "tools": {
                "zeta": {"name": "zeta", "description": "Last.", "tools": [{"name": "z", "description": "z tool"}]},
                "alpha": {"name": "alpha", "tools": [{"name": "a", "description": "a tool", "parameters": {"type": "object", "properties": {}}}]},
            }}])
        ],
        "functions_empty_list_no_commentary_line": [
            msg("system", [_system()]),
            msg("developer", [{"type": "developer_content", "tools": {"functions": {"name": "functions", "tools": []}}}]),
        ],
        "tool_message_names_and_recipients": [
            msg("tool", "sunny", name="functions.weather", recipient="assistant"),
            msg("tool", "page", name="browser.open", channel="commentary"),
            msg("assistant", "print(1)", channel="analysis", recipient="python", content_type="code"),
            msg("tool", "1", name="python", recipient="assistant", channel="analysis"),
        ],
        "whitespace_and_newlines": [msg("user", "  leading\n\n\ttabs  \r\n trailing   "), msg("assistant", "\n", channel="final")],
        "long_text": [msg("user", "Lorem ipsum dolor sit amet, consectetur adipiscing elit. " * 60), msg("assistant", "ok " * 300, channel="final")],
    }
)
