"""Bad input in a child process: a crash (segfault, abort) or a hang fails the test instead of
taking pytest down. Every entry point that takes tokens is fed every bad input; where the oracle
errs, the error type and text must match; elsewhere the value must match."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

CHILD = textwrap.dedent(
    r'''
    import json, operator, sys
    import numpy as np
    import openai_harmony as O
    import harmony_np as H
    from harmony_np.vocab import N_VOCAB

    oenc = O.load_harmony_encoding(O.HarmonyEncodingName.HARMONY_GPT_OSS)
    enc = H.load_harmony_encoding(H.HarmonyEncodingName.HARMONY_GPT_OSS)
    START, CHANNEL, MESSAGE, END = 200006, 200005, 200008, 200007

    def outcome(fn):
        try:
            v = fn()
        except Exception as exc:
            kind = "RuntimeError" if isinstance(exc, RuntimeError) else type(exc).__name__
            return ["error", kind, str(exc)]
        if isinstance(v, list):
            return ["ok", [m.to_dict() if hasattr(m, "to_dict") else m for m in v]]
        return ["ok", v]

    def first_bad_item(toks):
        """The error a bad item calls for ("TypeError": not an integer, "ValueError": outside the
        vocabulary) of the first item that is not a valid id; None when every item is one."""
        for t in toks:
            try:
                v = operator.index(t)
            except TypeError:
                return "TypeError"
            if not 0 <= v < N_VOCAB:
                return "ValueError"
        return None

    def stream(lib, e, toks, chunked=False):
        def run():
            p = lib.StreamableParser(e, None)
            if chunked:
                p.process_tokens(toks)
            else:
                for t in toks:
                    p.process(t)
            p.process_eos()
            return p.messages
        return run

    cases = {
        "id past vocab": [START, 300000],
        "id 2**32-1": [2**32 - 1],
        "negative": [-1],
        "2**40": [2**40],
        "uint64 max": [2**64 - 1],
        "float": [1.5],
        "bool": [True, START],
        "string item": ["a"],
        "None item": [None],
        "bytes": b"abc",
        "nested": [[START]],
        "empty": [],
        "100k starts": [START] * 100_000,
        "ends mid-header": [START, 173781, CHANNEL],
        "header then stop": [START, 173781, END],
        "2-D array": np.array([[START, 1]], dtype=np.int64),
        "uint64 array": np.array([2**64 - 1], dtype=np.uint64),
        "int64 array past vocab": np.array([START, 1, MESSAGE, 500000, END], dtype=np.int64),
        "float array": np.array([1.0, 2.0]),
        "long with junk": ([START, 173781, MESSAGE] + list(range(1000, 3000)) + [END, 5, 6]),
        # masked arrays: list() yields np.ma.masked for a masked entry, which the oracle refuses
        # (its __index__ raises); the fill value under the mask must never be read
        "masked first": np.ma.array([START, 173781, MESSAGE, 12194, END], mask=[1, 0, 0, 0, 0], dtype=np.uint32),
        "masked content int64": np.ma.array([START, 173781, MESSAGE, 12194, END], mask=[0, 0, 0, 1, 0], dtype=np.int64),
        "masked, no entry masked": np.ma.array([START, 173781, MESSAGE, 12194, END], mask=False, dtype=np.uint32),
        "negative before masked": np.ma.array([-1, 5, 6], mask=[0, 1, 0], dtype=np.int64),
        "masked before negative": np.ma.array([-1, 5, 6], mask=[1, 0, 0], dtype=np.int64),
    }
    results = {}
    for name, toks in cases.items():
        r = {}
        for label, ours, theirs in [
            ("parse", lambda: enc.parse_messages_from_completion_tokens(toks), lambda: oenc.parse_messages_from_completion_tokens(toks)),
            ("parse_nonstrict", lambda: enc.parse_messages_from_completion_tokens(toks, strict=False), lambda: oenc.parse_messages_from_completion_tokens(toks, strict=False)),
            ("parse_role", lambda: enc.parse_messages_from_completion_tokens(toks, H.Role.ASSISTANT), lambda: oenc.parse_messages_from_completion_tokens(toks, O.Role.ASSISTANT)),
            ("decode_utf8", lambda: enc.decode_utf8(toks), lambda: oenc.decode_utf8(toks)),
            ("decode", lambda: enc.decode(toks), lambda: oenc.decode(toks)),
            ("stream", stream(H, enc, toks), stream(O, oenc, toks)),
            ("stream_chunked", stream(H, enc, toks, True), stream(O, oenc, toks)),
        ]:
            got, want = outcome(ours), outcome(theirs)
            r[label] = got == want or ["differs", got, want]
        # the batch must not crash (an error per row); recovery returns, or raises a clear error
        single = outcome(lambda: enc.parse_messages_from_completion_tokens(toks))
        r["single_error"] = single[2] if single[0] == "error" else None
        r["first_bad_item"] = first_bad_item(toks)
        r["batch"] = outcome(lambda: enc.parse_batch([toks, [START, 173781, MESSAGE, 12194, END]], errors="collect").errors)
        r["recover"] = outcome(lambda: len(enc.recover_messages_from_completion_tokens(toks).messages))
        results[name] = r
    print(json.dumps(results, default=str))
    '''
)


@pytest.mark.slow
def test_bad_inputs_in_child_process():
    env = dict(os.environ)
    proc = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, f"child died (rc={proc.returncode}): {proc.stderr[-2000:]}"
    results = json.loads(proc.stdout.strip().splitlines()[-1])
    assert len(results) == 25
    for name, r in results.items():
        for label in ("parse", "parse_nonstrict", "parse_role", "decode_utf8", "decode", "stream", "stream_chunked"):
            assert r[label] is True, (name, label, r[label])
        # errors="collect" reports per row, raising nothing: the bad row's error is the single
        # call's text, and the good second completion parses
        assert r["batch"] == ["ok", [r["single_error"], None]], (name, r["batch"], r["single_error"])
        # recovery never raises on valid ids; an id outside the vocabulary is a clear ValueError,
        # an item that is no integer a TypeError
        if r["first_bad_item"] is None:
            assert r["recover"][0] == "ok", (name, r["recover"])
        else:
            assert r["recover"][:2] == ["error", r["first_bad_item"]], (name, r["recover"])


OWNED_CHILD = textwrap.dedent(
    r'''
    import json
    import numpy as np
    import harmony_np as H

    enc = H.load_harmony_encoding(H.HarmonyEncodingName.HARMONY_GPT_OSS)
    conv = H.Conversation.from_messages([H.Message.from_role_and_content(H.Role.ASSISTANT, "hello world " * 40).with_channel("final")])
    one = enc.render_conversation(conv)
    out = {}
    for errors in ("raise", "collect", "recover"):
        buf = np.array(one * 50, dtype=np.uint32)
        offs = np.arange(51, dtype=np.int64) * len(one)
        want = enc.parse_batch(buf.copy(), offsets=offs, errors=errors).to_messages()
        tables = [enc.parse_batch(buf, offsets=offs, errors=errors) for _ in range(3)]
        # ids past the byte table in the caller's buffer, before anything was decoded: the
        # tables must not read them
        buf[:] = 2**32 - 1
        out[errors] = [tables[0].content_texts() == [m.content[0].text for ms in want for m in ms],
                       tables[1].to_messages() == want, tables[2].messages_of(7) == want[7]]
    print(json.dumps(out))
    '''
)


def test_table_does_not_read_the_callers_buffer_in_child_process():
    """A MessageTable decodes later: ids written into the caller's buffer after parse_batch
    (here past the vocabulary, which would read outside the byte table) are never seen."""
    proc = subprocess.run([sys.executable, "-c", OWNED_CHILD], capture_output=True, text=True, timeout=300, env=dict(os.environ))
    assert proc.returncode == 0, f"child died (rc={proc.returncode}): {proc.stderr[-2000:]}"
    results = json.loads(proc.stdout.strip().splitlines()[-1])
    assert results == {e: [True, True, True] for e in ("raise", "collect", "recover")}


CHAT_CHILD = textwrap.dedent(
    r'''
    import json
    import harmony_np as H

    enc = H.load_harmony_encoding(H.HarmonyEncodingName.HARMONY_GPT_OSS)
    bad_values = [None, 3, 2**70, -1.5, float("nan"), b"bytes", ["a", 1], {"x": [1]}, "\ud800 lone", "<|end|>", "<|reserved_200999|>", "x" * 200_000]
    out = {}
    for i, value in enumerate(bad_values):
        convs = [
            [{"role": "user", "content": value}],
            [{"role": "user", "content": "q"}, {"role": "assistant", "thinking": value, "content": "a"}],
            [{"role": "user", "content": "q"}, {"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": value}}]}, {"role": "tool", "content": value}],
            [{"role": value, "content": "q"}],
        ]
        for j, conv in enumerate(convs):
            rows = [conv, [{"role": "user", "content": "fine"}]]
            try:
                single = ["ok", enc.apply_chat_template(conv, return_dict=True, return_assistant_tokens_mask=True, date="2025-08-05")]
            except Exception as exc:
                single = ["error", type(exc).__name__]
            try:
                batch = enc.apply_chat_template(rows, return_dict=True, return_assistant_tokens_mask=True, date="2025-08-05")
                got = ["ok", {"input_ids": batch["input_ids"][0].tolist(), "assistant_masks": batch["assistant_masks"][0].tolist()}]
            except Exception as exc:
                got = ["error", type(exc).__name__]
            out[f"{i}/{j}"] = [single, got]
    print(json.dumps(out))
    '''
)


@pytest.mark.slow
def test_bad_chat_values_in_child_process():
    """apply_chat_template fed values of every type in every field: no crash, and each batch's row
    gives what its single call gives (its ids and mask, or an error of the same type)."""
    proc = subprocess.run([sys.executable, "-c", CHAT_CHILD], capture_output=True, text=True, timeout=300, env=dict(os.environ))
    assert proc.returncode == 0, f"child died (rc={proc.returncode}): {proc.stderr[-2000:]}"
    results = json.loads(proc.stdout.strip().splitlines()[-1])
    assert len(results) == 48
    for case, (single, batch) in results.items():
        assert batch == single, case
    assert sum(single[0] == "error" for single, _ in results.values()) > 10  # bad values do raise
