"""The accelerated BPE backend against tiktoken, in harmony_np's own paths:
``python benchmarks/bpe_backends.py``.

The backend is chosen per process (``HARMONY_NP_BPE``), so each measurement runs in a child
process, the two backends taking turns for ``--rounds`` rounds; the figures are medians. Within a
child, ``apply_chat_template`` is timed beside the chat template path (``hf_template.py``, which
tokenizes with tiktoken itself), so that ratio is side by side. Cases: the batch encode of
fresh text (diverse and repetitive rows), ``render_batch`` of conversations of fresh text,
``apply_chat_template`` of chat rows, the seed's large renders cold, and the backend's load.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from typing import Any, Dict, List

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

DEFAULT_TOOL = os.path.join(_HERE, "..", "..", "shared", "tools", "hf_template.py")


def _best(fn, k: int = 3) -> float:
    out = []
    for _ in range(k):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return min(out)


def child(rows: int, chat: int, tool_path: str) -> Dict[str, Any]:
    """One process's figures for the backend ``HARMONY_NP_BPE`` names."""
    import harmony_np as h
    import scenarios
    from compare import template_tool
    from harmony_np.bpe import ordinary_bpe

    enc = scenarios.gpt_oss_encoding(h)
    seam = ordinary_bpe(enc.vocab)
    t = time.perf_counter()
    backend = enc.bpe_backend  # loads and verifies the accelerated backend
    out: Dict[str, Any] = {"backend": backend, "load_s": time.perf_counter() - t}
    for kind, make in (("diverse", scenarios.diverse_texts), ("repetitive", scenarios.repetitive_texts)):
        seam.encode_flat(make(500, seed=-1))
        texts = make(rows)
        tokens = seam.encode_flat(texts)[0].shape[0]
        out[f"encode_{kind}_mtok_s"] = tokens / _best(lambda: seam.encode_flat(texts)) / 1e6
        convs = [[h.Message.from_role_and_content(h.Role.USER, x)] for x in make(rows, seed=1)]
        enc.render_batch(convs[:200])
        out[f"render_batch_{kind}_s"] = _best(lambda: enc.render_batch(convs), 1)
    chat_rows = scenarios.chat_rows(chat)
    kw = dict(return_dict=True, return_assistant_tokens_mask=True, date="2025-08-05")
    enc.apply_chat_template(scenarios.chat_rows(200, seed=-1), **kw)
    out["chat_first_s"] = _best(lambda: enc.apply_chat_template(chat_rows, **kw), 1)
    out["chat_best_s"] = _best(lambda: enc.apply_chat_template(chat_rows, **kw))
    tool = template_tool(tool_path)
    if tool is not None:
        k = min(chat, 400)
        tokenizer = enc.vocab.bpe  # tiktoken itself, as the template path uses it
        [tool.render(tokenizer, m) for m in chat_rows[:k]]
        out["template_s"] = _best(lambda: [tool.render(tokenizer, m) for m in chat_rows[:k]], 2) / k * chat
    for name in ("render_large_autodrop", "render_large_keep"):
        calls = [scenarios.scenario_calls(h, scenarios.build_inputs(h, f" #{name}{i}"))[name] for i in range(21)]
        calls[0]()
        times = []
        for call in calls[1:]:
            t = time.perf_counter()
            call()
            times.append(time.perf_counter() - t)
        out[f"{name}_cold_ms"] = statistics.median(times) * 1e3
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3, help="child processes per backend, taking turns")
    ap.add_argument("--rows", type=int, default=20_000, help="texts in the encode and render_batch cases")
    ap.add_argument("--chat", type=int, default=4000, help="chat rows in the apply_chat_template case")
    ap.add_argument("--template-tool", default=DEFAULT_TOOL, help="hf_template.py, for the template path ('' to skip)")
    ap.add_argument("--json", action="store_true", help="print the medians as JSON")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child is not None:
        print(json.dumps(child(a.rows, a.chat, a.template_tool)))
        return 0
    runs: Dict[str, List[Dict[str, Any]]] = {"auto": [], "tiktoken": []}
    for _ in range(a.rounds):
        for backend in runs:
            env = dict(os.environ, HARMONY_NP_BPE=backend)
            cmd = [sys.executable, __file__, "--child", backend, "--rows", str(a.rows), "--chat", str(a.chat), "--template-tool", a.template_tool]
            r = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
            runs[backend].append(json.loads(r.stdout.strip().splitlines()[-1]))
    medians = {b: {k: statistics.median(r[k] for r in rs) for k in rs[0] if k != "backend"} | {"backend": rs[0]["backend"]} for b, rs in runs.items()}
    if a.json:
        print(json.dumps(medians, indent=1))
        return 0
    fast, ref = medians["auto"], medians["tiktoken"]
    print(f"# {fast['backend']} against {ref['backend']}: medians of {a.rounds} processes each, taking turns")
    print("| case | accelerated | tiktoken | ratio |")
    print("|---|---:|---:|---:|")
    for key in fast:
        if key == "backend":
            continue
        higher_better = key.endswith("mtok_s")
        ratio = fast[key] / ref[key] if higher_better else ref[key] / fast[key] if fast[key] else float("nan")
        print(f"| {key} | {fast[key]:.4g} | {ref[key]:.4g} | {ratio:.2f}x |")
    for name, m in (("accelerated", fast), ("tiktoken", ref)):
        if "template_s" in m:
            print(f"apply_chat_template {a.chat} rows vs the template path, {name}: first {m['template_s'] / m['chat_first_s']:.1f}x, best {m['template_s'] / m['chat_best_s']:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
