"""render_batch: rows equal single renders in every mode; the loss mask as documented."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from profiles import example_count
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


@settings(max_examples=example_count(0.6), deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
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


# -- rows by value: generators, equal copies, objects changed between rows ------------------


SINGLE = {
    "completion": lambda enc, hnp, c: enc.render_conversation_for_completion(c, hnp.Role.ASSISTANT),
    "conversation": lambda enc, hnp, c: enc.render_conversation(c),
    "training": lambda enc, hnp, c: enc.render_conversation_for_training(c),
}
LOOKUP = {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]}


def language_row(hnp, i):
    """Row ``i``: a developer message made for the row, a user turn, in most rows a reply."""
    msgs = [
        hnp.Message.from_role_and_content(hnp.Role.SYSTEM, hnp.SystemContent.new()),
        hnp.Message.from_role_and_content(hnp.Role.DEVELOPER, hnp.DeveloperContent.new().with_instructions(f"Answer in language #{i}")),
        hnp.Message.from_author_and_content(hnp.Author.new(hnp.Role.USER, f"u{i % 3}"), f"question {i}"),
    ]
    if i % 4:
        msgs.append(hnp.Message.from_role_and_content(hnp.Role.ASSISTANT, f"answer {i}").with_channel("final"))
    return hnp.Conversation.from_messages(msgs)


def check_rows(enc, hnp, rb, convs, mode):
    """Every row and its loss mask equal the single call and the per-message reference."""
    assert len(rb) == len(convs)
    wrong = [i for i, c in enumerate(convs) if rb[i].tolist() != SINGLE[mode](enc, hnp, c)]
    assert wrong == [], f"{len(wrong)} rows differ from their single call, first {wrong[:5]}"
    for i, c in enumerate(convs):
        assert rb.row_mask(i).tolist() == reference_mask(enc, hnp, c, None, mode, False), (i, mode)


@pytest.mark.parametrize("mode", ["completion", "conversation", "training"])
@pytest.mark.slow
def test_generator_rows_equal_single_calls(enc, hnp, mode):
    """A generator builds every row's messages anew and frees them (ids are reused at once, and
    after a collection now and then): before, a per-batch memo keyed by ``id(message)`` gave 995
    of 1,000 rows another row's developer text."""
    import gc

    n = 1000

    def rows():
        for i in range(n):
            if i % 100 == 0:
                gc.collect()
            yield language_row(hnp, i)

    rb = enc.render_batch(rows(), mode=mode, loss_mask=True)
    check_rows(enc, hnp, rb, [language_row(hnp, i) for i in range(n)], mode)


@pytest.mark.parametrize("mode", ["completion", "conversation", "training"])
def test_equal_copies_and_function_tools(enc, hnp, mode):
    """Rows read from JSON (distinct but equal messages); the same system message renders
    differently where a developer message declares function tools, and tools differing only in
    their parameters (1 vs 1.0 vs true) or namespace stay apart."""
    docs = []
    for i in range(120):
        msgs = [{"role": "system", "content": [hnp.SystemContent.new().to_dict()]}]
        if i % 3:
            params = dict(LOOKUP, default=[1, 1.0, True][i % 3]) if i % 5 else LOOKUP
            dev = hnp.DeveloperContent.new().with_instructions("Be brief.").with_function_tools(
                [hnp.ToolDescription.new("lookup", "Looks things up.", params)])
            if i % 7 == 0:
                dev = dev.with_tools(hnp.ToolNamespaceConfig("other", "Other tools.", [hnp.ToolDescription.new("x", "X.")]))
            msgs.append({"role": "developer", "content": [dev.to_dict()]})
        msgs.append({"role": "user", "content": [{"type": "text", "text": f"q{i % 4}"}]})
        docs.append(json.dumps({"messages": msgs}))
    convs = [hnp.Conversation.from_json(d) for d in docs]
    rb = enc.render_batch(convs, mode=mode, loss_mask=True)
    check_rows(enc, hnp, rb, convs, mode)
    rb = enc.render_batch(iter(convs), mode=mode, loss_mask=True)  # by value only
    check_rows(enc, hnp, rb, convs, mode)


def test_generator_changing_a_shared_message_between_rows(enc, hnp):
    """One message object changed in place between the rows that share it (instructions, a
    tool's parameters, a system field): each row is what it was when it was yielded."""
    sys_msg = hnp.Message.from_role_and_content(hnp.Role.SYSTEM, hnp.SystemContent.new())
    tool = hnp.ToolDescription.new("lookup", "Looks things up.", {"type": "object", "properties": {}})
    dev = hnp.Message.from_role_and_content(hnp.Role.DEVELOPER, hnp.DeveloperContent.new().with_instructions("x").with_function_tools([tool]))
    want = []

    def rows():
        for i in range(60):
            dev.content[0].instructions = f"Answer in language #{i % 20}"
            tool.parameters["properties"] = {f"p{i % 3}": {"type": "string"}}
            sys_msg.content[0].conversation_start_date = f"2025-01-{i % 9 + 1:02d}"
            conv = hnp.Conversation.from_messages([sys_msg, dev, hnp.Message.from_role_and_content(hnp.Role.USER, "hi")])
            want.append(enc.render_conversation(conv))
            yield conv

    assert enc.render_batch(rows(), mode="conversation").to_list() == want


# -- errors name their conversation, and only its text ----------------------------------------


def single_error(fn):
    with pytest.raises(Exception) as info:
        fn()
    return info.value


def test_lone_surrogate_error_quotes_only_its_conversation(enc, hnp):
    """A lone surrogate is reported for its conversation, in the single call's words (its index
    within its own text), with none of another row's text: before, the error quoted the
    batch's joined buffer ('assistant<|reserved_200999|>private text of another user…')."""
    U = hnp.Role.USER
    private = hnp.Conversation.from_messages([hnp.Message.from_role_and_content(U, "private text of another user")])
    bad = hnp.Conversation.from_messages([hnp.Message.from_role_and_content(U, "ok"), hnp.Message.from_role_and_content(U, "x\ud800")])
    later = hnp.Conversation.from_messages([hnp.Message.from_role_and_content(U, "more private text")])
    for mode in ("completion", "conversation", "training"):
        single = single_error(lambda: SINGLE[mode](enc, hnp, bad))
        assert isinstance(single, ValueError) and "at index 1: 'x\\ud800'" in str(single)
        for convs, index in (([private, bad, later], 1), ([bad], 0), ([private] * 5 + [bad], 5)):
            with pytest.raises(ValueError) as info:
                enc.render_batch(iter(convs), mode=mode)
            assert str(info.value) == f"conversation {index}: {single}"
            assert "private" not in str(info.value) and "reserved_200999" not in str(info.value)
            assert info.value.__cause__ is None and info.value.__suppress_context__
    # enough text for the thread pool: the joined buffers are encoded on two threads
    big = [hnp.Conversation.from_messages([hnp.Message.from_role_and_content(U, f"private {i} " * 2000)]) for i in range(8)]
    with pytest.raises(ValueError) as info:
        enc.render_batch(big[:5] + [bad] + big[5:], mode="conversation")
    assert str(info.value) == f"conversation 5: {single_error(lambda: enc.render_conversation(bad))}"


def test_first_failing_conversation_is_reported(enc, hnp):
    """A row whose text has a lone surrogate (found only when the batch encodes its texts) is
    reported before a later row's error met while planning (a name with a surrogate, a tool
    without a name); a bad system field is quoted as the single call quotes it."""
    U = hnp.Role.USER
    bad_text = hnp.Conversation.from_messages([hnp.Message.from_role_and_content(U, "b\udfff")])
    bad_name = hnp.Conversation.from_messages([hnp.Message.from_author_and_content(hnp.Author.new(U, "n\ud800"), "x")])
    no_name = hnp.Conversation.from_messages([hnp.Message.from_role_and_content(hnp.Role.TOOL, "x")])
    good = hnp.Conversation.from_messages([hnp.Message.from_role_and_content(U, "fine")])
    text_err = str(single_error(lambda: enc.render_conversation(bad_text)))
    for later in (bad_name, no_name):
        with pytest.raises(ValueError) as info:
            enc.render_batch([good, bad_text, later], mode="conversation")
        assert str(info.value) == f"conversation 1: {text_err}"
    name_err = single_error(lambda: enc.render_conversation(bad_name))
    with pytest.raises(ValueError) as info:
        enc.render_batch([good, bad_name, bad_text], mode="conversation")
    assert str(info.value) == f"conversation 1: {name_err}"
    sysm = hnp.Message.from_role_and_content(hnp.Role.SYSTEM, hnp.SystemContent.new().with_model_identity("I am \ud800"))
    bad_sys = hnp.Conversation.from_messages([sysm])
    sys_err = single_error(lambda: enc.render_conversation(bad_sys))
    with pytest.raises(ValueError) as info:
        enc.render_batch([good, good, bad_sys], mode="conversation")
    assert str(info.value) == f"conversation 2: {sys_err}"


# -- RaggedTokens built by hand ---------------------------------------------------------------


def test_ragged_tokens_refuses_bad_input(hnp):
    from harmony_np.ragged import RaggedTokens

    t = np.arange(10, dtype=np.uint32)
    cases = [
        (dict(offsets=[0, 10**8]), ValueError, r"offsets\[1\] = 100000000 is past the end of the 10 tokens"),
        (dict(offsets=[-3, 2]), ValueError, r"offsets\[0\] = -3 is negative"),
        (dict(offsets=[0, 7, 5, 9]), ValueError, r"offsets must not decrease: offsets\[2\] = 5 < offsets\[1\] = 7"),
        (dict(offsets=np.array([0, 2**64 - 1], dtype=np.uint64)), ValueError, "past the end"),
        (dict(offsets=[]), ValueError, "at least one"),
        (dict(offsets=[[0, 5]]), ValueError, "1-D"),
        (dict(offsets=[0.0, 5.0]), TypeError, "offsets must be integers"),
        (dict(offsets=[0, 5], loss_mask=np.ones(4, np.uint8)), ValueError, "loss_mask has 4 values for 10 tokens"),
        (dict(offsets=[0, 5], loss_mask=np.array([0, 1, 2] + [0] * 7)), ValueError, r"loss_mask\[2\] = 2 is not 0 or 1"),
        (dict(tokens=np.array([1, -1, 3]), offsets=[0, 3]), ValueError, r"tokens\[1\] = -1 is not a token id"),
        (dict(tokens=np.array([1, 2**32]), offsets=[0, 2]), ValueError, r"tokens\[1\] = 4294967296"),
        (dict(tokens=np.zeros((2, 2), np.uint32), offsets=[0, 2]), ValueError, "tokens must be 1-D"),
        (dict(tokens=np.array([True]), offsets=[0, 1]), TypeError, "tokens must be integers"),
        # masked entries hold fill values in the buffer: refused, never read
        (dict(tokens=np.ma.array([1, 2, 3], mask=[0, 1, 0]), offsets=[0, 3]), ValueError,
         r"tokens is a masked array with masked entries \(the first at index 1\)"),
        (dict(offsets=np.ma.array([0, 4, 10], mask=[0, 1, 0])), ValueError, "offsets is a masked array"),
        (dict(offsets=[0, 10], loss_mask=np.ma.array([1] * 10, mask=[1] + [0] * 9)), ValueError, "loss_mask is a masked array"),
    ]
    for kw, kind, text in cases:
        kw.setdefault("tokens", t)
        with pytest.raises(kind, match=text):
            RaggedTokens(kw["tokens"], kw["offsets"], kw.get("loss_mask"))
    # a masked array with nothing masked is its data
    r = RaggedTokens(np.ma.array([1, 2, 3], mask=[0, 0, 0]), np.ma.array([0, 1, 3]))
    assert r.to_list() == [[1], [2, 3]]


def test_ragged_tokens_owns_read_only_copies(enc, hnp):
    from harmony_np.ragged import RaggedTokens

    t = np.arange(10, dtype=np.uint32)
    off = np.array([0, 3, 3, 10], dtype=np.int64)
    mask = np.array([0, 1] * 5, dtype=np.uint8)
    r = RaggedTokens(t, off, mask)
    t[:] = 2**32 - 1
    off[:] = [0, 10**8, 0, 10**9]  # would send the padding kernel far out of bounds
    mask[:] = 7
    assert r.to_list() == [[0, 1, 2], [], [3, 4, 5, 6, 7, 8, 9]]
    ids, attn, lm = r.to_padded(0, with_loss_mask=True)
    assert ids[2].tolist() == [3, 4, 5, 6, 7, 8, 9] and lm[0].tolist() == [0, 1, 0, 0, 0, 0, 0]
    for a in (r.tokens, r.offsets, r.loss_mask):
        with pytest.raises(ValueError):
            a[0] = 1
    with pytest.raises(AttributeError):
        r.offsets = np.array([0, 10**8])
    assert r.row_mask(-1).tolist() == r.row_mask(2).tolist() == [1, 0, 1, 0, 1, 0, 1]
    with pytest.raises(IndexError):
        r.row_mask(3)
    assert RaggedTokens([], [0]).to_list() == [] and len(RaggedTokens([], [0, 0])) == 1
    import pickle

    back = pickle.loads(pickle.dumps(r))
    assert back.to_list() == r.to_list() and not back.offsets.flags.writeable
    assert RaggedTokens(np.array([5], np.int8), np.array([0, 1], np.uint8), [True]).to_padded(0, with_loss_mask=True)[2].tolist() == [[1]]
    # a rendered batch hands out read-only arrays too
    rb = enc.render_batch([hnp.Conversation.from_messages([hnp.Message.from_role_and_content(hnp.Role.USER, "x")])], mode="training")
    for a in (rb.tokens, rb.offsets, rb.loss_mask):
        assert not a.flags.writeable


def test_bad_ragged_tokens_do_not_crash_the_interpreter():
    """Offsets past the end, negative offsets and a short loss mask reached the padding kernel
    unchecked (a segfault, rows wrapped around, heap bytes read); in a child process each is
    now a ValueError."""
    import subprocess
    import sys
    import textwrap

    code = textwrap.dedent(
        """
        import numpy as np
        from harmony_np.ragged import RaggedTokens
        t = np.arange(10, dtype=np.uint32)
        for off, mask in (([0, 10**8], None), ([-3, 2], None), ([0, 10], np.ones(2, np.uint8))):
            try:
                r = RaggedTokens(t, np.array(off), mask)
                out = r.to_padded(0, with_loss_mask=mask is not None)
                print("accepted", off, out[0].tolist()[:1])
            except ValueError as exc:
                print("ValueError", exc)
        """
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, f"child exited {p.returncode}: {p.stderr[-2000:]}"
    lines = p.stdout.splitlines()
    assert len(lines) == 3 and all(line.startswith("ValueError") for line in lines), p.stdout


# -- rows read from JSON: equal messages found by value, almost-equal ones kept apart ----------


def counting_planner(monkeypatch):
    """Counts the messages ``render_batch`` plans (the real planner does the work), one count
    per message that no earlier equal one could answer."""
    import harmony_np.render_batch as rb_module

    calls = []
    real = rb_module._message_pieces

    def planned(m, *args):
        calls.append(m)
        return real(m, *args)

    monkeypatch.setattr(rb_module, "_message_pieces", planned)
    return calls


@pytest.mark.parametrize("mode", ["completion", "conversation", "training"])
def test_json_rows_share_equal_messages_by_value(enc, hnp, monkeypatch, mode):
    """The benchmark's rows, each its own ``Conversation.from_json``: every system and developer
    message is a distinct object, equal to the others; each is planned once per batch, and every
    row equals its single call. A message of two text parts takes the key of several contents."""
    from benchmarks.scenarios import json_row_batch_inputs

    convs = json_row_batch_inputs(hnp, 40)
    for i, conv in enumerate(convs):
        if i % 2:
            two_parts = {"role": "user", "content": [{"type": "text", "text": "part one"}, {"type": "text", "text": "part two"}]}
            conv.messages.append(hnp.Message.from_dict(json.loads(json.dumps(two_parts))))
    assert convs[0].messages[1] is not convs[1].messages[1]
    assert convs[0].messages[1].content[0].tools["functions"].tools[0].parameters == convs[1].messages[1].content[0].tools["functions"].tools[0].parameters
    calls = counting_planner(monkeypatch)
    for rows in (convs, iter(convs)):  # a list (identity memo too) and a generator (by value only)
        calls.clear()
        rb = enc.render_batch(rows, mode=mode, loss_mask=True)
        check_rows(enc, hnp, rb, convs, mode)
        assert [m.author.role for m in calls] == [hnp.Role.SYSTEM, hnp.Role.DEVELOPER, hnp.Role.USER]


def _nested_variants(hnp):
    """A nested tool schema and copies of it that differ in one value deep inside: numbers of
    three types that are equal in Python (1, 1.0, True), a list's order, a type name that renders
    as the same TypeScript as the original, and a value under a dict subclass (which the fast key
    refuses)."""
    import copy

    from benchmarks.scenarios import travel_tools

    base = travel_tools(hnp)[0].parameters

    class Schema(dict):
        pass

    def variant(change):
        params = copy.deepcopy(base)
        change(params)
        return params

    def adults(params):
        return params["properties"]["passengers"]["properties"]["adults"]

    def subclassed(params):
        params["properties"]["passengers"] = Schema(params["properties"]["passengers"], description="Who travels")

    return {
        "base": base,
        "default 1": variant(lambda p: adults(p).update(default=1)),
        "default 1.0": variant(lambda p: adults(p).update(default=1.0)),
        "default True": variant(lambda p: adults(p).update(default=True)),
        "enum order": variant(lambda p: p["properties"]["cabin"].update(enum=["economy", "business", "premium", "first"])),
        "number, not integer": variant(lambda p: adults(p).update(type="number")),
        "dict subclass": variant(subclassed),
    }


@pytest.mark.parametrize("mode", ["completion", "training"])
def test_almost_equal_tool_schemas_do_not_share_pieces(enc, hnp, monkeypatch, mode):
    """Developer messages whose tool schemas differ in one nested value are planned apart (one
    planning per variant, however many rows repeat it as equal copies), and every row equals
    its single call; rows of variants whose texts differ differ too. "number, not integer"
    renders as the base does, so only the planner count tells whether the two were kept apart."""
    import copy

    variants = _nested_variants(hnp)
    names = list(variants)
    convs = []
    for i in range(len(names) * 4):
        name = names[i % len(names)]
        # a fresh deep copy per row (equal, distinct objects), as each row read from JSON brings
        tool = hnp.ToolDescription.new("search_flights", "Searches flights.", copy.deepcopy(variants[name]))
        dev = hnp.DeveloperContent.new().with_instructions("Be brief.").with_function_tools([tool])
        convs.append(hnp.Conversation.from_messages([
            hnp.Message.from_role_and_content(hnp.Role.DEVELOPER, dev),
            hnp.Message.from_role_and_content(hnp.Role.USER, "Which flight?"),
        ]))
    assert type(convs[names.index("dict subclass")].messages[0].content[0].tools["functions"].tools[0].parameters["properties"]["passengers"]).__name__ == "Schema"
    calls = counting_planner(monkeypatch)
    rb = enc.render_batch(convs, mode=mode, loss_mask=True)
    check_rows(enc, hnp, rb, convs, mode)
    planned = [m for m in calls if m.author.role == hnp.Role.DEVELOPER]
    assert len(planned) == len(names), f"{len(planned)} developer messages planned for {len(names)} variants"
    texts = {name: rb[i].tolist() for i, name in enumerate(names)}
    same_as_base = [name for name in names if texts[name] == texts["base"]]
    assert same_as_base == ["base", "number, not integer"]
    assert len({tuple(t) for t in texts.values()}) == len(names) - 1


def test_schemas_the_fast_key_refuses_or_the_render_refuses(enc, hnp):
    """Parameters holding a float subclass (NumPy's float64, which marshal refuses) are keyed by
    their JSON text and render as the single call does; a schema that holds itself or a set is
    keyed without trouble but fails to render, with the single call's error, for its row."""
    def conv(params):
        dev = hnp.DeveloperContent.new().with_function_tools([hnp.ToolDescription.new("f", "d", params)])
        return hnp.Conversation.from_messages(
            [hnp.Message.from_role_and_content(hnp.Role.DEVELOPER, dev), hnp.Message.from_role_and_content(hnp.Role.USER, "q")]
        )

    def schema(default):
        return {"type": "object", "properties": {"x": {"type": "number", "default": default}}}

    convs = [conv(schema(d)) for d in (1.5, np.float64(1.5), 1.5, np.float64(2.5), np.float64(1.5))]
    assert enc.render_batch(convs).to_list() == [enc.render_conversation_for_completion(c, hnp.Role.ASSISTANT) for c in convs]
    itself = {"type": "object"}
    itself["self"] = itself
    for bad in (itself, {"type": "object", "properties": {"x": {"enum": {1, 2}}}}):
        failing = conv(bad)
        single = single_error(lambda: enc.render_conversation_for_completion(failing, hnp.Role.ASSISTANT))
        with pytest.raises(type(single)) as info:
            enc.render_batch([conv(schema(1)), failing, conv(schema(1))])
        assert str(info.value) == f"conversation 1: {single}"
