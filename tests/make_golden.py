"""Regenerate the golden token files from the oracle: ``python tests/make_golden.py``.

Each case is rendered by openai_harmony in every mode, with and without analysis dropping; the
tokens (or the error) are stored so that ``test_golden.py`` checks harmony_np without the oracle.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))

import conftest  # noqa: E402,F401  (makes the oracle work offline)
from render_cases import CASES  # noqa: E402


def render(h, enc, doc):
    conv = h.Conversation.from_json(json.dumps(doc))
    out = {}
    for drop in (True, False):
        cfg = h.RenderConversationConfig(auto_drop_analysis=drop)
        for mode, fn in (
            ("completion", lambda: enc.render_conversation_for_completion(conv, h.Role.ASSISTANT, cfg)),
            ("conversation", lambda: enc.render_conversation(conv, cfg)),
            ("training", lambda: enc.render_conversation_for_training(conv, cfg)),
        ):
            try:
                out[f"{mode}/{'drop' if drop else 'keep'}"] = {"tokens": list(fn())}
            except Exception as exc:
                out[f"{mode}/{'drop' if drop else 'keep'}"] = {"error": str(exc)}
    return out


def main() -> None:
    import openai_harmony as h

    enc = h.load_harmony_encoding(h.HarmonyEncodingName.HARMONY_GPT_OSS)
    golden = {name: {"conversation": {"messages": msgs}, "renders": render(h, enc, {"messages": msgs})} for name, msgs in sorted(CASES.items())}
    target = HERE / "golden" / "render.json"
    target.parent.mkdir(exist_ok=True)
    target.write_text(json.dumps({"oracle": f"openai_harmony {h.__name__} 0.0.8", "cases": golden}, indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {target} ({len(golden)} cases)")


if __name__ == "__main__":
    main()
