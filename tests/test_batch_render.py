"""render_batch: rows equal single renders in every mode; the loss mask as documented."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from render_cases import CASES
from test_render import conversations as conversation_docs

MODES = {
    "completion": lambda enc, hnp, c, cfg: enc.render_conversation_for_completion(c, hnp.Role.ASSISTANT, cfg),
    "conversation": lambda enc, hnp, c, cfg: enc.render_conversation(c, cfg),
    "training": lambda enc, hnp, c, cfg: enc.render_conversation_for_training(c, cfg),
}


def renderable(enc, hnp, docs):
    out = []
    for doc in docs:
        conv = hnp.Conversation.from_json(json.dumps(doc))
        try:
            # keeping analysis renders every message: if that works, every mode and config does
            enc.render_conversation(conv, hnp.RenderConversationConfig(auto_drop_analysis=False))
        except Exception:
            continue
        out.append(conv)
    return out


def reference_mask(enc, hnp, conv, cfg, mode, last_only):
    """Naive loss mask: render each kept message alone and mark assistant output."""
    msgs = list(conv.messages)
    drop = True if cfg is None else cfg.auto_drop_analysis
    kept = msgs
    last_assistant = [m for m in msgs if m.author.role == hnp.Role.ASSISTANT]
    if drop and last_assistant and last_assistant[-1].channel == "final":
        first_final = next(i for i, m in enumerate(msgs) if m.channel == "final")
        kept = [m for i, m in enumerate(msgs) if not (i < first_final and m.channel == "analysis")]
    has_fn = any(
        isinstance(c, hnp.DeveloperContent) and c.tools and c.tools.get("functions") and c.tools["functions"].tools
        for m in msgs
        for c in m.content
    )
    assistant_idx = [i for i, m in enumerate(kept) if m.author.role == hnp.Role.ASSISTANT]
    mask = []
    for i, m in enumerate(kept):
        toks = enc.render(m, hnp.RenderOptions(conversation_has_function_tools=bool(has_fn)))
        on = m.author.role == hnp.Role.ASSISTANT and (not last_only or i == assistant_idx[-1])
        author_len = 1 + len(enc.encode(m.author.role.value)) + (len(enc.encode(":" + m.author.name)) if m.author.name else 0)
        mask += [0] * author_len + [int(on)] * (len(toks) - author_len)
    if mode == "completion":
        mask += [0] * (1 + len(enc.encode("assistant")))
    return mask


def check_batch(enc, hnp, convs):
    for mode, single in MODES.items():
        for drop in (True, False):
            cfg = hnp.RenderConversationConfig(auto_drop_analysis=drop)
            for last_only in (False, True):
                rb = enc.render_batch(convs, mode=mode, config=cfg, loss_mask=True, mask_last_assistant_only=last_only)
                assert len(rb) == len(convs)
                assert rb.tokens.dtype == np.uint32 and rb.offsets.dtype == np.int64 and rb.loss_mask.dtype == np.uint8
                assert rb.loss_mask.shape == rb.tokens.shape
                want = [single(enc, hnp, c, cfg) for c in convs]
                assert rb.to_list() == want
                for i, c in enumerate(convs):
                    assert rb[i].tolist() == want[i]
                    assert rb.row_mask(i).tolist() == reference_mask(enc, hnp, c, cfg, mode, last_only), (i, mode, drop)


def test_cases_batch(enc, hnp):
    convs = renderable(enc, hnp, [{"messages": m} for _, m in sorted(CASES.items())])
    assert len(convs) > 20
    check_batch(enc, hnp, convs)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.lists(conversation_docs, max_size=6))
def test_random_batches(enc, hnp, docs):
    check_batch(enc, hnp, renderable(enc, hnp, docs))


def test_training_mask_covers_return(enc, hnp):
    conv = hnp.Conversation.from_messages(
        [
            hnp.Message.from_role_and_content(hnp.Role.USER, "2+2?"),
            hnp.Message.from_role_and_content(hnp.Role.ASSISTANT, "4").with_channel("final"),
        ]
    )
    rb = enc.render_batch([conv], mode="training")
    toks = rb[0].tolist()
    mask = rb.row_mask(0).tolist()
    assert toks[-1] == 200002  # <|return|>
    # the assistant message: <|start|> assistant are 0; <|channel|> final <|message|> 4 <|return|> are 1
    start = len(toks) - 1 - toks[::-1].index(200006)
    assert mask[start : start + 2] == [0, 0]
    assert all(mask[start + 2 :]) and not any(mask[:start])
    assert rb.loss_mask.sum() == len(toks) - start - 2


def test_loss_mask_off_by_default_outside_training(enc, hnp):
    conv = hnp.Conversation.from_messages([hnp.Message.from_role_and_content(hnp.Role.USER, "x")])
    assert enc.render_batch([conv]).loss_mask is None
    with pytest.raises(ValueError, match="no loss mask"):
        enc.render_batch([conv]).row_mask(0)


def test_padding(enc, hnp):
    convs = [hnp.Conversation.from_messages([hnp.Message.from_role_and_content(hnp.Role.USER, "x" * n)]) for n in (1, 40, 7)]
    rb = enc.render_batch(convs, mode="conversation")
    rows = rb.to_list()
    ids, attn = rb.to_padded(9)
    width = max(map(len, rows))
    assert ids.shape == (3, width) and ids.dtype == np.uint32
    for i, row in enumerate(rows):
        assert ids[i, : len(row)].tolist() == row and (ids[i, len(row) :] == 9).all()
        assert attn[i].tolist() == [1] * len(row) + [0] * (width - len(row))
    left, lattn = rb.to_padded(9, side="left", max_len=5)
    for i, row in enumerate(rows):
        keep = row[-5:]
        assert left[i, 5 - len(keep) :].tolist() == keep and lattn[i].sum() == len(keep)
    right, _ = rb.to_padded(9, max_len=5)
    assert right[1].tolist() == rows[1][:5]
    with pytest.raises(ValueError, match="side"):
        rb.to_padded(0, side="middle")


def test_errors_name_the_conversation(enc, hnp):
    good = hnp.Conversation.from_messages([hnp.Message.from_role_and_content(hnp.Role.USER, "x")])
    bad = hnp.Conversation.from_messages([hnp.Message.from_role_and_content(hnp.Role.TOOL, "x")])
    with pytest.raises(hnp.HarmonyError, match="conversation 1: Tools should have a name!"):
        enc.render_batch([good, bad])
    with pytest.raises(ValueError, match="mode"):
        enc.render_batch([good], mode="nope")


def test_shared_prompt_large_batch(enc, hnp):
    sys_ = hnp.Message.from_role_and_content(hnp.Role.SYSTEM, hnp.SystemContent.new())
    dev = hnp.Message.from_role_and_content(hnp.Role.DEVELOPER, hnp.DeveloperContent.new().with_instructions("Be brief. " * 50))
    convs = [hnp.Conversation.from_messages([sys_, dev, hnp.Message.from_role_and_content(hnp.Role.USER, f"Question {i}: " + "why? " * (i % 50))]) for i in range(2000)]
    rb = enc.render_batch(convs)  # enough fresh text for the threads (one BPE copy each)
    assert len(rb) == 2000
    assert rb.to_list() == [enc.render_conversation_for_completion(c, hnp.Role.ASSISTANT) for c in convs]


def test_lone_surrogate_in_a_batch(enc, hnp):
    good = hnp.Conversation.from_messages([hnp.Message.from_role_and_content(hnp.Role.USER, "x")])
    bad_name = hnp.Conversation.from_messages([hnp.Message.from_author_and_content(hnp.Author.new(hnp.Role.TOOL, "a\ud800"), "x")])
    bad_text = hnp.Conversation.from_messages([hnp.Message.from_role_and_content(hnp.Role.USER, "b\udfff")])
    for bad in (bad_name, bad_text):
        with pytest.raises(ValueError, match="lone surrogate"):
            enc.render_batch([good, bad])
    # with a rendering error in the same conversation, the surrogate is still what is reported
    both = hnp.Conversation.from_messages(
        [hnp.Message.from_role_and_content(hnp.Role.TOOL, "no name"), hnp.Message.from_role_and_content(hnp.Role.USER, "b\udfff")]
    )
    with pytest.raises(ValueError, match="^conversation 1: .*lone surrogate"):
        enc.render_batch([good, both])


def test_texts_holding_the_join_separator(enc, hnp):
    # batch encoding joins fresh texts with a special token's text; texts that hold it (or bits
    # of it at their edges) must still encode on their own
    sep = "<|reserved_200999|>"
    texts = ["plain", sep, f"a{sep}b", "<|reserved_200999|", "|>", "", "<|", f"x{sep}", "reserved_200999|>", "end"] * 20
    convs = [hnp.Conversation.from_messages([hnp.Message.from_role_and_content(hnp.Role.USER, t + str(i))]) for i, t in enumerate(texts)]
    convs += [hnp.Conversation.from_messages([hnp.Message.from_role_and_content(hnp.Role.USER, t)]) for t in texts[:10]]
    rb = enc.render_batch(convs, mode="conversation")
    assert rb.to_list() == [enc.render_conversation(c) for c in convs]
    big = [hnp.Conversation.from_messages([hnp.Message.from_role_and_content(hnp.Role.USER, (t + " long text. ") * 400)]) for t in texts[:10]]
    rb = enc.render_batch(big, mode="conversation")  # enough text for the thread pool
    assert rb.to_list() == [enc.render_conversation(c) for c in big]
