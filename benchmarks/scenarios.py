"""The benchmark scenarios: inputs built for any module with the openai_harmony API.

Every builder takes the module ``h`` (``harmony_np`` or ``openai_harmony``), so that both
libraries are timed on the same inputs. ``tag`` makes the texts of an input differ from every
input built with another tag, so that no cache can answer (the "cold" cases).

The one place these inputs are defined: ``benchmarks/compare.py``, ``asv_bench/benchmarks.py``
and the tests take them from here. This file imports nothing from harmony_np, so it serves
whichever checkout of it is importable.
"""

from __future__ import annotations

import json
import random
from types import ModuleType
from typing import Any, Callable, Dict, List, Sequence, Tuple

BIG = "Lorem ipsum dolor sit amet, consectetur adipiscing elit. Vestibulum vulputate. " * 200
CHUNK = "Reasoning chunk consolidating evidence. " * 120


def gpt_oss_encoding(h: ModuleType) -> Any:
    """Module ``h``'s HARMONY_GPT_OSS encoding."""
    return h.load_harmony_encoding(h.HarmonyEncodingName.HARMONY_GPT_OSS)


def tool_conversation(h: ModuleType, tag: str = "") -> Any:
    """The seed's tool-call conversation: a question, analysis, a tool call and its result."""
    M, R = h.Message, h.Role
    return h.Conversation.from_messages(
        [
            M.from_role_and_content(R.USER, "What is the weather in SF?" + tag),
            M.from_role_and_content(
                R.ASSISTANT, "User asks: \u201cWhat is the weather in SF?\u201d We need to use lookup_weather tool." + tag
            ).with_channel("analysis"),
            M.from_role_and_content(R.ASSISTANT, '{"location": "San Francisco"}')
            .with_channel("commentary")
            .with_recipient("functions.lookup_weather")
            .with_content_type("<|constrain|>json"),
            M.from_author_and_content(h.Author.new(R.TOOL, "functions.lookup_weather"), '{"temperature": 20, "description": "sunny"}'),
        ]
    )


def large_conversation(h: ModuleType, tag: str = "") -> Any:
    """The seed's large conversation: system and developer prompts, 16 blocks of 16 KB, a final."""
    M, R = h.Message, h.Role
    system = (
        h.SystemContent.new()
        .with_model_identity("Test model")
        .with_knowledge_cutoff("2024-06")
        .with_conversation_start_date("2025-09-20")
        .with_channel_config(h.ChannelConfig.require_channels(["analysis", "commentary", "final"]))
        .with_browser_tool()
    )
    tools = [
        h.ToolDescription.new(name="get_location", description="Gets the location of the user."),
        h.ToolDescription.new(
            name="get_current_weather",
            description="Gets the current weather in the provided location.",
            parameters={
                "type": "object",
                "properties": {
                    "location": {"type": "string", "description": "City and state, e.g. San Francisco, CA"},
                    "format": {"type": "string", "enum": ["celsius", "fahrenheit"], "default": "celsius"},
                },
                "required": ["location"],
            },
        ),
    ]
    developer = (
        h.DeveloperContent.new()
        .with_instructions("Follow tool schema precisely. " * 100)
        .with_function_tools(tools)
        .with_tools(h.ToolNamespaceConfig.python())
    )
    msgs = [M.from_role_and_content(R.SYSTEM, system), M.from_role_and_content(R.DEVELOPER, developer).with_channel("analysis")]
    for i in range(8):
        msgs.append(M.from_role_and_content(R.USER, f"User block {i}{tag}: {BIG}"))
        msgs.append(M.from_role_and_content(R.ASSISTANT, f"Assistant analysis {i}{tag}: {BIG}").with_channel("analysis"))
    msgs.append(M.from_role_and_content(R.ASSISTANT, "Final answer summarizing the conversation.").with_channel("final"))
    return h.Conversation.from_messages(msgs)


def large_completion_tokens(h: ModuleType, enc: Any, tag: str = "") -> List[int]:
    """The seed's large completion (analysis + final, about 1,300 tokens), rendered by ``enc``."""
    M, R = h.Message, h.Role
    completion = h.Conversation.from_messages(
        [
            M.from_role_and_content(R.ASSISTANT, f"Chain-of-thought summary start{tag}. {CHUNK}").with_channel("analysis"),
            M.from_role_and_content(R.ASSISTANT, "Final answer summarizing salient points. " + CHUNK[: len(CHUNK) // 2]).with_channel("final"),
        ]
    )
    return list(enc.render_conversation(completion, h.RenderConversationConfig(auto_drop_analysis=False)))


def tool_call_tokens(enc: Any, tag: str = "") -> List[int]:
    """The seed's tool-call completion, encoded by ``enc``."""
    text = (
        "<|start|>assistant<|channel|>commentary to=functions.get_weather"
        '<|constrain|>json<|message|>{"latitude":48.8566,"longitude":2.3522' + tag.replace(" #", "") + "}<|call|>"
    )
    return list(enc.encode(text, allowed_special="all"))


def build_inputs(h: ModuleType, tag: str = "") -> Dict[str, Any]:
    """Every single-call scenario's input for module ``h``, keyed as :func:`scenario_calls` reads them."""
    enc = gpt_oss_encoding(h)
    return {
        "enc": enc,
        "tool": tool_conversation(h, tag),
        "large": large_conversation(h, tag),
        "drop": h.RenderConversationConfig(auto_drop_analysis=True),
        "keep": h.RenderConversationConfig(auto_drop_analysis=False),
        "large_tokens": large_completion_tokens(h, enc, tag),
        "tool_tokens": tool_call_tokens(enc, tag),
    }


def scenario_calls(h: ModuleType, inputs: Dict[str, Any]) -> Dict[str, Callable[[], object]]:
    """The single-call scenarios as zero-argument calls on ``inputs`` (from :func:`build_inputs`).

    The chunked-streaming scenarios are included only when ``h``'s parser has ``process_tokens``
    (openai_harmony's has not).
    """
    enc, assistant = inputs["enc"], h.Role.ASSISTANT
    parser_cls = h.StreamableParser

    def per_token(tokens: Sequence[int]) -> Callable[[], None]:
        def run() -> None:
            parser = parser_cls(enc, None)
            for token in tokens:
                parser.process(token)

        return run

    calls: Dict[str, Callable[[], object]] = {
        "render_tool_call": lambda: enc.render_conversation_for_completion(inputs["tool"], assistant, inputs["drop"]),
        "render_large_autodrop": lambda: enc.render_conversation_for_completion(inputs["large"], assistant, inputs["drop"]),
        "render_large_keep": lambda: enc.render_conversation_for_completion(inputs["large"], assistant, inputs["keep"]),
        "parse_tool_call": lambda: enc.parse_messages_from_completion_tokens(inputs["tool_tokens"], None),
        "stream_tool_call": per_token(inputs["tool_tokens"]),
        "parse_large_completion": lambda: enc.parse_messages_from_completion_tokens(inputs["large_tokens"], None),
        "stream_large_completion": per_token(inputs["large_tokens"]),
    }
    if hasattr(parser_cls, "process_tokens"):
        large_tokens = inputs["large_tokens"]

        def chunked(size: int) -> Callable[[], None]:
            def run() -> None:
                parser = parser_cls(enc, None)
                for i in range(0, len(large_tokens), size):
                    parser.process_tokens(large_tokens[i : i + size])

            return run

        # speculative decoding hands over a few tokens at a time; a replay hands over many
        calls["stream_large_chunked16"] = chunked(16)
        calls["stream_large_chunked256"] = chunked(256)
    return calls


# -- batch inputs ----------------------------------------------------------------------------


def batch_inputs(h: ModuleType, n: int, seed: int = 0) -> List[Any]:
    """``n`` conversations sharing a system and developer prompt, differing in the user text."""
    system = h.Message.from_role_and_content(h.Role.SYSTEM, h.SystemContent.new().with_conversation_start_date("2025-09-20"))
    developer = h.Message.from_role_and_content(
        h.Role.DEVELOPER,
        h.DeveloperContent.new()
        .with_instructions("Answer briefly and cite sources. " * 20)
        .with_function_tools(
            [h.ToolDescription.new("lookup", "Looks things up.", {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]})]
        ),
    )
    return [
        h.Conversation.from_messages(
            [system, developer, h.Message.from_role_and_content(h.Role.USER, f"Question {seed}-{i}: what is the capital of country number {i}?")]
        )
        for i in range(n)
    ]


def travel_tools(h: ModuleType) -> List[Any]:
    """A few function tools with nested parameter schemas, as chat datasets declare them."""
    T = h.ToolDescription.new
    return [
        T(
            "search_flights",
            "Searches flights between two airports on a date.",
            {
                "type": "object",
                "properties": {
                    "origin": {"type": "string", "description": "IATA code of the departure airport"},
                    "destination": {"type": "string", "description": "IATA code of the arrival airport"},
                    "date": {"type": "string", "format": "date"},
                    "passengers": {
                        "type": "object",
                        "properties": {"adults": {"type": "integer", "minimum": 1}, "children": {"type": "integer", "minimum": 0}},
                        "required": ["adults"],
                    },
                    "cabin": {"type": "string", "enum": ["economy", "premium", "business", "first"], "default": "economy"},
                },
                "required": ["origin", "destination", "date"],
            },
        ),
        T(
            "book_hotel",
            "Books a hotel room for the given nights.",
            {
                "type": "object",
                "properties": {
                    "city": {"type": "string"},
                    "check_in": {"type": "string", "format": "date"},
                    "nights": {"type": "integer", "minimum": 1, "maximum": 30},
                    "rooms": {"type": "array", "items": {"type": "object", "properties": {"beds": {"type": "integer"}, "smoking": {"type": "boolean"}}}},
                },
                "required": ["city", "check_in", "nights"],
            },
        ),
        T(
            "convert_currency",
            "Converts an amount between currencies at today's rate.",
            {
                "type": "object",
                "properties": {"amount": {"type": "number"}, "from": {"type": "string"}, "to": {"type": "string"}},
                "required": ["amount", "from", "to"],
            },
        ),
        T("get_local_time", "Gets the local time of the user."),
    ]


def json_row_batch_inputs(h: ModuleType, n: int, seed: int = 0) -> List[Any]:
    """``n`` conversations as read from JSON Lines: every row is its own ``Conversation.from_json``,
    so the system and developer messages (with a namespace of four function tools) are equal in
    every row but distinct objects, and only the user text differs."""
    import json  # only this builder needs it

    system = h.SystemContent.new().with_conversation_start_date("2025-09-20").with_reasoning_effort(h.ReasoningEffort.LOW)
    developer = h.DeveloperContent.new().with_instructions("You are a travel agent. Use the tools to answer. " * 8).with_function_tools(travel_tools(h))
    template = json.loads(
        h.Conversation.from_messages(
            [
                h.Message.from_role_and_content(h.Role.SYSTEM, system),
                h.Message.from_role_and_content(h.Role.DEVELOPER, developer),
                h.Message.from_role_and_content(h.Role.USER, ""),
            ]
        ).to_json()
    )
    rows = []
    for i in range(n):
        template["messages"][-1]["content"][0]["text"] = f"Trip {seed}-{i}: find me a flight to city number {i} next week."
        rows.append(json.dumps(template))
    return [h.Conversation.from_json(row) for row in rows]


def completions(h: ModuleType, n: int, seed: int = 0) -> List[List[int]]:
    """``n`` distinct analysis + final completions of 30-300 tokens (the same for the same seed)."""
    rng = random.Random(seed)
    enc = gpt_oss_encoding(h)
    words = "the model considers evidence and weighs each option before it answers with care".split()
    keep = h.RenderConversationConfig(auto_drop_analysis=False)
    out = []
    for i in range(n):
        analysis = " ".join(rng.choice(words) for _ in range(rng.randint(10, 120)))
        final = " ".join(rng.choice(words) for _ in range(rng.randint(5, 100)))
        conv = h.Conversation.from_messages(
            [
                h.Message.from_role_and_content(h.Role.ASSISTANT, f"{i}: {analysis}").with_channel("analysis"),
                h.Message.from_role_and_content(h.Role.ASSISTANT, final).with_channel("final"),
            ]
        )
        out.append(list(enc.render_conversation(conv, keep)))
    return out


def flat_with_offsets(token_lists: Sequence[Sequence[int]]) -> Tuple[Any, Any]:
    """``token_lists`` as one flat ``uint32`` array and the ``int64`` offsets of its rows."""
    import numpy as np  # only the batch cases need NumPy

    flat = np.fromiter((t for tokens in token_lists for t in tokens), dtype=np.uint32)
    offsets = np.zeros(len(token_lists) + 1, dtype=np.int64)
    np.cumsum([len(tokens) for tokens in token_lists], out=offsets[1:])
    return flat, offsets


def quarter_mutated(token_lists: Sequence[Sequence[int]], seed: int = 1) -> List[List[int]]:
    """Copies of ``token_lists``, a quarter of them with two stray tokens inserted each (special
    tokens or ordinary ids), as malformed model output is common."""
    rng = random.Random(seed)
    mutated = [list(tokens) for tokens in token_lists]
    for i in rng.sample(range(len(mutated)), len(mutated) // 4):
        tokens = mutated[i]
        for _ in range(2):
            tokens.insert(rng.randrange(len(tokens)), rng.choice([200006, 200008, 200007, 200005, rng.randrange(199998)]))
    return mutated


_CHAT_WORDS = "the weather in Paris is mild so we compare the integral with the tool result before answering".split()


def chat_rows(n: int, seed: int = 0) -> List[List[Dict[str, Any]]]:
    """``n`` chat-format conversations (the Hugging Face ``messages`` convention): a system
    prompt, one or two user turns, assistant turns with ``thinking`` and ``content``, each row's
    own text."""
    r = random.Random(seed)

    def say(lo: int, hi: int) -> str:
        return " ".join(r.choice(_CHAT_WORDS) for _ in range(r.randint(lo, hi)))

    rows = []
    for i in range(n):
        msgs: List[Dict[str, Any]] = [{"role": "system", "content": "You are a helpful assistant."}]
        for _ in range(r.randint(1, 2)):
            msgs.append({"role": "user", "content": f"row {i}: " + say(5, 60)})
            msgs.append({"role": "assistant", "thinking": say(10, 150), "content": say(5, 80)})
        rows.append(msgs)
    return rows


_DIVERSE_PIECES = (
    "The committee reviewed the proposal and asked for a clearer budget before the vote.",
    "def area(r):\n    return 3.14159 * r ** 2  # circle\n",
    '{"id": 1042, "tags": ["a", "b"], "ok": true, "ratio": 0.375}',
    "Москва — столица России, крупнейший по численности населения город страны.",
    "東京は日本の首都であり、世界有数の大都市です。人口は約1400万人。",
    "北京是中华人民共和国的首都，也是全国的政治和文化中心。",
    "القاهرة هي عاصمة جمهورية مصر العربية وأكبر مدنها.",
    "नई दिल्ली भारत की राजधानी है और यह एक बड़ा शहर है।",
    "กรุงเทพมหานครเป็นเมืองหลวงของประเทศไทย",
    "    \n\n\t\t  indented   text  \n",
    "I'M sure you'Ll agree: it's 2026, and 1234567 items cost $89.99 (12% off)!",
)


def diverse_texts(n: int, seed: int = 0) -> List[str]:
    """``n`` texts of mixed prose, code, JSON, several scripts and whitespace runs (about 250
    tokens each), each its own (a row number leads it)."""
    r = random.Random(seed)
    return [f"row {seed}-{i}: " + " ".join(r.choice(_DIVERSE_PIECES) for _ in range(9)) for i in range(n)]


def repetitive_texts(n: int, seed: int = 0) -> List[str]:
    """``n`` texts of a few English words repeated (about 250 tokens each)."""
    r = random.Random(seed)
    words = _CHAT_WORDS
    return [f"row {seed}-{i}: " + " ".join(r.choice(words) for _ in range(240)) for i in range(n)]

_WORDS = "the model considers evidence and weighs each option before it answers with care".split()


def long_completions(h: ModuleType, n: int, seed: int = 0, max_words: int = 380) -> List[List[int]]:
    """``n`` distinct completions of 30-520 tokens (about 300 on average; ``max_words``: the
    analysis's longest, in words): analysis + final, one in five with a tool call between them."""
    rng = random.Random(seed)
    enc = gpt_oss_encoding(h)
    keep = h.RenderConversationConfig(auto_drop_analysis=False)
    out = []
    for i in range(n):
        msgs = [h.Message.from_role_and_content(h.Role.ASSISTANT, f"{i}: " + " ".join(rng.choice(_WORDS) for _ in range(rng.randint(10, max_words))))
                .with_channel("analysis")]
        if i % 5 == 0:
            msgs.append(h.Message.from_role_and_content(h.Role.ASSISTANT, json.dumps({"city": f"c{i}"}))
                        .with_channel("commentary").with_recipient("functions.lookup").with_content_type("<|constrain|>json"))
        msgs.append(h.Message.from_role_and_content(h.Role.ASSISTANT, " ".join(rng.choice(_WORDS) for _ in range(rng.randint(5, 150))))
                    .with_channel("final"))
        out.append(list(enc.render_conversation(h.Conversation.from_messages(msgs), keep)))
    return out


def arrow_token_table(h: ModuleType, rows: int, distinct: int = 4000, max_words: int = 380) -> Any:
    """A ``pa.Table`` with ``tokens`` (``large_list<uint32>``) of ``rows`` completions: the
    ``distinct`` long completions repeated, built from flat arrays (no Python list per row)."""
    import numpy as np
    import pyarrow as pa

    base = long_completions(h, min(rows, distinct), max_words=max_words)
    flat, offsets = flat_with_offsets(base)
    reps = -(-rows // len(base))
    lengths = np.tile(np.diff(offsets), reps)[:rows]
    all_offsets = np.zeros(rows + 1, np.int64)
    np.cumsum(lengths, out=all_offsets[1:])
    values = np.tile(flat, reps)[: all_offsets[-1]]
    tokens = pa.LargeListArray.from_arrays(pa.array(all_offsets), pa.array(values, pa.uint32()))
    return pa.table({"id": pa.array(np.arange(rows)), "tokens": tokens})
