"""Stress: the attacks of issue 10, larger and randomised, each bounded to a few seconds.

Covered: ids reused after frees (generators, distinct-but-equal objects, cache clears), fork
during first use, a caller's buffer mutated after a parse, hand-built ``RaggedTokens``, unique
malformed headers with RSS measured, and every CLI command on bad bytes, over-deep JSON, ``-o``
onto its own input and SIGINT. Anything that could crash the interpreter runs in a child process.
"""

from __future__ import annotations

import gc
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

pytestmark = pytest.mark.slow  # every test here runs for seconds, most in child processes

CLI = [sys.executable, "-m", "harmony_np"]
MODES = ("completion", "conversation", "training")


def run_child(code: str, timeout: float = 120, env=None) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter; a crash shows as a negative return code."""
    r = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                       timeout=timeout, env=env)
    assert r.returncode == 0, f"child exited {r.returncode}\nstdout: {r.stdout[-2000:]}\nstderr: {r.stderr[-4000:]}"
    return r


# -- ids reused after frees ----------------------------------------------------------------------


def _row_conversation(hnp, i: int, named: bool = True):
    """Conversation ``i``: a system message equal in every row (a new object each time), a
    developer message unique to the row, a user turn (``named``: by one of 13 users) and, in most
    rows, the assistant's reply."""
    msgs = [
        hnp.Message.from_role_and_content(hnp.Role.SYSTEM, hnp.SystemContent.new().with_reasoning_effort(hnp.ReasoningEffort.LOW)),
        hnp.Message.from_role_and_content(hnp.Role.DEVELOPER, hnp.DeveloperContent.new().with_instructions(f"Answer in language #{i % 97}")),
        hnp.Message.from_author_and_content(hnp.Author.new(hnp.Role.USER, f"user{i % 13}" if named else None), f"question {i}"),
    ]
    if i % 5:
        msgs.append(hnp.Message.from_role_and_content(hnp.Role.ASSISTANT, f"think {i}").with_channel("analysis"))
        msgs.append(hnp.Message.from_role_and_content(hnp.Role.ASSISTANT, f"answer {i}").with_channel("final"))
    return hnp.Conversation.from_messages(msgs)


@pytest.mark.parametrize("mode", MODES)
def test_generator_rows_equal_single_calls(enc, hnp, mode):
    """Rows built and freed one by one (their ids are reused at once, and after a collection now
    and then) render as their single calls do."""
    from test_batch_render import SINGLE

    n = 2_000

    def rows():
        for i in range(n):
            if i % 100 == 0:
                gc.collect()  # each walks the whole test session's heap: a few are enough
            yield _row_conversation(hnp, i)

    kwargs = {"next_role": hnp.Role.ASSISTANT} if mode == "completion" else {}
    got = enc.render_batch(rows(), mode=mode, **kwargs).to_list()
    assert len(got) == n
    wrong = [i for i in range(n) if got[i] != SINGLE[mode](enc, hnp, _row_conversation(hnp, i))]
    assert wrong == []


def test_np_render_across_header_cache_clears(enc, hnp):
    """``*_np`` renders equal the list renders while distinct headers pass the header cache's
    bound several times (freed header lists' addresses are reused)."""
    from harmony_np import render

    bound = getattr(render, "HEADER_CACHE_MAX_BYTES")
    sysm = hnp.Message.from_role_and_content(hnp.Role.SYSTEM, hnp.SystemContent.new())
    k = 0
    spent = 0
    start = time.perf_counter()
    # enough distinct headers to fill the byte bound three times, or 20 s, whichever comes first
    while spent < 3 * bound and time.perf_counter() - start < 20:
        msgs = [sysm] + [hnp.Message.from_author_and_content(hnp.Author.new(hnp.Role.USER, f"user{k}_{j}" * 8), "hello")
                         for j in range(k % 4 + 1)]
        c = hnp.Conversation.from_messages(msgs)
        listed = enc.render_conversation(c)
        assert enc.render_conversation_np(c).tolist() == listed, k
        spent += len(listed) * 40
        k += 1
    assert spent >= bound, "the loop never reached the cache bound: the test proves nothing"


# -- fork during first use ----------------------------------------------------------------------


def test_fork_at_random_moments_of_first_use(hnp, tmp_path):
    """Forks at random moments of another thread's first render_batch, parse_batch and long
    parse, with numba compiling afresh: every child finishes its own work (the check and its
    script live in test_threads; here the moments are drawn at random)."""
    from test_threads import test_fork_during_first_use_in_another_thread as fork_check

    rng = np.random.default_rng(int(time.time()))
    delays = ",".join(f"{d:.3f}" for d in sorted(rng.uniform(0, 1.2, 6)))
    fork_check(hnp, tmp_path, "os.fork", delays, True)


# -- buffers the caller keeps ---------------------------------------------------------------------


def test_buffer_mutated_after_parse_batch():
    """A table reads what it owns: overwriting the caller's buffer (with ids past the vocabulary,
    then with other valid ids) changes nothing the table returns, and crashes nothing."""
    run_child("""
        import numpy as np
        import harmony_np as h
        enc = h.load_harmony_encoding(h.HarmonyEncodingName.HARMONY_GPT_OSS)
        rng = np.random.default_rng(7)
        rows = [enc.encode(f"<|start|>assistant<|channel|>final<|message|>answer {i} " + "x" * int(rng.integers(0, 400)) + "<|end|>",
                           allowed_special="all") for i in range(300)]
        offs = np.zeros(len(rows) + 1, np.int64)
        offs[1:] = np.cumsum([len(r) for r in rows])
        buf = np.concatenate([np.asarray(r, np.uint32) for r in rows])
        for step in range(3):
            t = enc.parse_batch(buf, offsets=offs)
            want_texts = [m.content[0].text for ms in t.to_messages() for m in ms]
            buf[:] = 2**32 - 1 if step == 0 else rng.integers(0, 199_998, buf.shape[0], dtype=np.uint32)
            assert t.content_texts() == want_texts
            assert [m.content[0].text for b in range(t.n_completions) for m in t.messages_of(b)] == want_texts
            buf[:] = np.concatenate([np.asarray(r, np.uint32) for r in rows])
        print("ok")
    """)


def test_hand_built_ragged_tokens():
    """Random hand-built rows: each is refused with ValueError or TypeError, or reads exactly the
    rows a pure-Python reference reads; none crashes the interpreter."""
    run_child("""
        import numpy as np
        from harmony_np.ragged import RaggedTokens
        rng = np.random.default_rng(11)
        refused = accepted = 0
        for trial in range(3000):
            n = int(rng.integers(0, 40))
            tokens = rng.integers(0, 2**32, n, dtype=np.uint64).astype(np.uint32)
            k = int(rng.integers(1, 6))
            kind = trial % 6
            if kind == 0:    # valid
                offsets = np.sort(rng.integers(0, n + 1, k))
            elif kind == 1:  # past the end
                offsets = np.sort(rng.integers(0, n + 10**8, k))
            elif kind == 2:  # negative
                offsets = np.sort(rng.integers(-5, n + 1, k))
            elif kind == 3:  # not monotonic
                offsets = rng.integers(0, n + 1, k)
            elif kind == 4:  # odd dtypes and shapes
                offsets = [np.sort(rng.integers(0, n + 1, k)).astype(np.float64),
                           np.sort(rng.integers(0, n + 1, k)).reshape(1, -1),
                           np.sort(rng.integers(0, n + 1, k)).astype(np.int8),
                           np.sort(rng.integers(0, n + 1, k)).astype(np.uint64)][trial % 4]
            else:            # a mask of the wrong length
                offsets = np.sort(rng.integers(0, n + 1, k))
            mask = None
            if kind == 5 or trial % 3 == 0:
                size = n + (int(rng.integers(-3, 4)) if kind == 5 else 0)
                mask = rng.integers(0, 2, max(size, 0), dtype=np.uint8)
            try:
                r = RaggedTokens(tokens, offsets, mask)
            except (ValueError, TypeError):
                refused += 1
                continue
            accepted += 1
            off = np.asarray(offsets).astype(np.int64).tolist()
            want = [tokens[off[i]:off[i + 1]].tolist() for i in range(len(off) - 1)]
            assert r.to_list() == want
            ids, attn = r.to_padded(0, side=("left", "right")[trial % 2])
            for i, row in enumerate(want):
                real = ids[i][attn[i] == 1].tolist()
                assert real == row
            if mask is not None:
                _, _, lm = r.to_padded(0, with_loss_mask=True)
                for i in range(len(want)):
                    assert lm[i][: len(want[i])].tolist() == mask[off[i]:off[i + 1]].tolist()
            tokens[:] = 2**32 - 1  # the rows were copied or are read-only: nothing changes
            assert r.to_list() == want
        assert refused > 1000 and accepted > 500, (refused, accepted)
        print(refused, accepted)
    """)


# -- unique malformed headers ---------------------------------------------------------------------


def test_unique_malformed_headers_stay_bounded():
    """40,000 completions that forgot ``<|message|>``, each with a long unique "header": RSS
    grows by less than the caches' byte bounds allow, in batches and in single calls."""
    r = run_child("""
        import numpy as np
        import harmony_np as h
        enc = h.load_harmony_encoding(h.HarmonyEncodingName.HARMONY_GPT_OSS)

        def rss():
            with open("/proc/self/statm") as f:
                return int(f.read().split()[1]) * 4096

        words = enc.encode(" ".join(f"w{i}" for i in range(400)))
        start, end, channel, message = 200006, 200007, 200005, 200008
        def completion(i):
            # the model forgot <|message|> after the channel and wrote it after its text: the
            # "header" is the channel and 400 words and a unique number
            return ([start] + enc.encode("assistant") + [channel] + enc.encode("final") + words + enc.encode(f" {i}")
                    + [message] + enc.encode("x") + [end])

        def once(lo, hi):
            batch = [completion(i) for i in range(lo, hi)]
            enc.parse_batch(batch, errors="collect")
            enc.parse_batch(batch, strict=False, errors="collect")
            for c in batch[:: 10]:
                try:
                    enc.parse_messages_from_completion_tokens(c, strict=False)
                except Exception:
                    pass
                enc.recover_messages_from_completion_tokens(c)

        once(0, 2000)  # warm: kernels compiled, caches at their working size
        base = rss()
        for lo in range(2000, 40000, 2000):
            once(lo, lo + 2000)
        grown = (rss() - base) / 2**20
        print(grown)
        assert grown < 96, f"RSS grew by {grown:.0f} MiB over 38,000 unique headers"
    """, timeout=300)
    assert float(r.stdout.split()[-1]) < 96


# -- the command line -----------------------------------------------------------------------------


def _good_lines(hnp, enc, command: str, n: int) -> list:
    """``n`` valid input lines for ``command``."""
    # parsing reads "user:NAME" as an unknown role, as openai_harmony does: no names there
    convs = [_row_conversation(hnp, i, named=command == "render") for i in range(n)]
    if command == "render":
        return [c.to_json() for c in convs]
    return [json.dumps(enc.render_conversation(c)) for c in convs]


@pytest.mark.parametrize("command", ["render", "parse", "decode"])
def test_cli_bad_lines_keep_their_place(tmp_path, hnp, enc, command):
    """Undecodable bytes and over-deep JSON at random lines of a long input are each one bad line:
    with ``--keep-going`` every input line has its output line, the bad ones a placeholder naming
    the line."""
    rng = np.random.default_rng(3)
    n = 1_500
    lines = [s.encode() for s in _good_lines(hnp, enc, command, n)]
    bad = sorted(rng.choice(n, 12, replace=False).tolist())
    for k, i in enumerate(bad):
        lines[i] = [b'{"x": "\xff"}', b"[" * 100_000, b"\xc3(", b"{" * 50_000][k % 4]
    src = tmp_path / "in.jsonl"
    src.write_bytes(b"\n".join(lines) + b"\n")
    out = tmp_path / "out.jsonl"
    args = [command, str(src), "-o", str(out), "--keep-going", "-q"]
    if command == "render":
        args += ["--mode", "conversation"]
    r = subprocess.run(CLI + args, capture_output=True, text=True, timeout=120)
    assert r.returncode == 1, r.stderr
    assert "Traceback" not in r.stderr
    got = out.read_text().splitlines()
    assert len(got) == n
    for i, line in enumerate(got):
        value = json.loads(line)
        is_placeholder = isinstance(value, dict) and "error" in value
        assert is_placeholder == (i in bad), i
        if is_placeholder:
            assert value["line"] == i + 1


@pytest.mark.parametrize("command", ["render", "parse", "decode"])
def test_cli_refuses_output_onto_input(tmp_path, hnp, enc, command):
    src = tmp_path / "in.jsonl"
    data = ("\n".join(_good_lines(hnp, enc, command, 5)) + "\n").encode()
    src.write_bytes(data)
    link = tmp_path / "link.jsonl"
    link.symlink_to(src)
    for target in (src, link):
        r = subprocess.run(CLI + [command, str(src), "-o", str(target), "-q"], capture_output=True, text=True, timeout=60)
        assert r.returncode == 2, r.stderr
        assert "Traceback" not in r.stderr
        assert src.read_bytes() == data


@pytest.mark.parametrize("command", ["render", "parse", "decode"])
def test_cli_sigint_leaves_complete_lines(tmp_path, hnp, enc, command):
    """Ctrl-C in the middle of a long run: exit 130, no traceback, only complete output lines."""
    base = _good_lines(hnp, enc, command, 200)
    src = tmp_path / "in.jsonl"
    src.write_text("\n".join(base * 1000) + "\n")  # 200,000 lines: longer than the wait below
    p = subprocess.Popen(CLI + [command, str(src), "-q"] + (["--mode", "conversation"] if command == "render" else []),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0)
    first = p.stdout.readline()  # output has started
    assert first
    time.sleep(0.3)
    p.send_signal(signal.SIGINT)
    rest, err = p.communicate(timeout=60)
    assert p.returncode == 130, err.decode()[-2000:]
    assert b"Traceback" not in err
    out = first + rest
    assert out.endswith(b"\n")
    for line in out.splitlines():
        json.loads(line)
