"""The threads harmony_np spreads work over: settings, splitting, and processes forked after the
threads and the batch kernels ran."""

from __future__ import annotations

import multiprocessing

import numpy as np
import pytest

from harmony_np.threads import run_parallel, split_by_weight, thread_count


def test_thread_count_setting(monkeypatch):
    monkeypatch.setenv("HARMONY_NP_THREADS", "3")
    assert thread_count() == 3
    for bad in ("0", "-1", "two", ""):
        monkeypatch.setenv("HARMONY_NP_THREADS", bad)
        with pytest.raises(ValueError, match=f"HARMONY_NP_THREADS must be a positive integer, got '{bad}'"):
            thread_count()
    monkeypatch.delenv("HARMONY_NP_THREADS")
    assert 1 <= thread_count() <= 4


def test_split_by_weight():
    cum = np.cumsum([0, 5, 5, 5, 5, 100, 1, 1])  # 7 rows
    ranges = split_by_weight(cum, 2, 10)
    assert ranges[0][0] == 0 and ranges[-1][1] == 7
    assert all(a < z for a, z in ranges) and all(z == a2 for (_, z), (a2, _) in zip(ranges, ranges[1:]))
    assert len(ranges) == 2
    assert split_by_weight(cum, 2, 10_000) == [(0, 7)]  # too little work to split
    assert split_by_weight(np.zeros(1, np.int64), 4, 0) == [(0, 0)]  # no rows
    ranges = split_by_weight(np.arange(101), 4, 0)
    assert ranges == [(0, 25), (25, 50), (50, 75), (75, 100)]


def test_run_parallel_order_and_errors():
    assert run_parallel([lambda i=i: i * i for i in range(5)]) == [0, 1, 4, 9, 16]

    def boom():
        raise KeyError("from a pool thread")

    with pytest.raises(KeyError, match="from a pool thread"):
        run_parallel([lambda: 1, boom])


def _in_forked_child(target, timeout: float):
    """What ``target(queue)`` put on the queue, run in a forked child; fails on a hang or a
    death."""
    if "fork" not in multiprocessing.get_all_start_methods():
        pytest.skip("no fork on this platform")
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=target, args=(queue,))
    child.start()
    child.join(timeout)
    if child.is_alive():
        child.kill()
        pytest.fail("the forked child hung")
    assert child.exitcode == 0, f"the forked child died with exit code {child.exitcode}"
    return queue.get(timeout=5)


def _render_big(h, tag):
    enc = h.load_harmony_encoding(h.HarmonyEncodingName.HARMONY_GPT_OSS)
    msgs = [h.Message.from_role_and_content(h.Role.USER, f"{tag} {i} " + "lorem ipsum " * 2000) for i in range(4)]
    return len(enc.render_conversation(h.Conversation.from_messages(msgs)))


def _batch_work(h, seed):
    from harmony_np.bench import batch_inputs, completions

    enc = h.load_harmony_encoding(h.HarmonyEncodingName.HARMONY_GPT_OSS)
    convs = batch_inputs(h, 3000, seed=seed)
    rb = enc.render_batch(convs)
    assert rb[17].tolist() == enc.render_conversation_for_completion(convs[17], h.Role.ASSISTANT)
    comps = completions(h, 300, seed=seed)
    msgs = enc.parse_batch(comps).to_messages()
    assert [m.to_dict() for m in msgs[5]] == [m.to_dict() for m in enc.parse_messages_from_completion_tokens(comps[5])]
    return len(rb), len(msgs)


def _child_render(queue):
    import harmony_np as h

    queue.put(_render_big(h, "child"))


def _child_batch(queue):
    import harmony_np as h

    queue.put(_batch_work(h, 2))


def test_parallel_render_in_a_forked_child(hnp, monkeypatch):
    # a child forked after the parent used the pool inherits the pool object but not its threads:
    # its own parallel render must start new ones, not wait forever
    monkeypatch.setenv("HARMONY_NP_THREADS", "2")  # threads even on a one-core runner
    assert _render_big(hnp, "parent") > 4 * 2000
    assert _in_forked_child(_child_render, 60) > 4 * 2000


def test_batch_work_in_a_forked_child(hnp, monkeypatch):
    # a data-loader-style worker forked after the parent rendered and parsed batches: its own
    # batch work must run (numba's OpenMP layer killed such a child)
    monkeypatch.setenv("HARMONY_NP_THREADS", "2")
    assert _batch_work(hnp, 1) == (3000, 300)
    assert _in_forked_child(_child_batch, 120) == (3000, 300)
