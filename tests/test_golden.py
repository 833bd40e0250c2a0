"""harmony_np against golden token files made from the oracle (no oracle needed to run)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

GOLDEN = json.loads((Path(__file__).parent / "golden" / "render.json").read_text())["cases"]


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_golden_render(hnp, enc, name):
    case = GOLDEN[name]
    conv = hnp.Conversation.from_dict(case["conversation"])
    for key, want in case["renders"].items():
        mode, drop = key.split("/")
        cfg = hnp.RenderConversationConfig(auto_drop_analysis=drop == "drop")
        fn = {
            "completion": lambda: enc.render_conversation_for_completion(conv, hnp.Role.ASSISTANT, cfg),
            "conversation": lambda: enc.render_conversation(conv, cfg),
            "training": lambda: enc.render_conversation_for_training(conv, cfg),
        }[mode]
        if "error" in want:
            with pytest.raises(RuntimeError) as info:
                fn()
            assert str(info.value) == want["error"], key
        else:
            assert fn() == want["tokens"], key
