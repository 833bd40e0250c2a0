"""The threads harmony_np spreads work over: settings, splitting, and processes forked after the
threads and the batch kernels ran."""

from __future__ import annotations

import multiprocessing

import numpy as np
import pytest

from harmony_np.threads import run_parallel, split_by_weight, thread_count


def _usable_cores() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def test_thread_count_setting(monkeypatch):
    monkeypatch.setenv("HARMONY_NP_THREADS", "3")
    assert thread_count() == min(3, _usable_cores())
    for bad in ("0", "-1", "two", ""):
        monkeypatch.setenv("HARMONY_NP_THREADS", bad)
        with pytest.raises(ValueError, match=f"HARMONY_NP_THREADS must be a positive integer, got '{bad}'"):
            thread_count()
    monkeypatch.delenv("HARMONY_NP_THREADS")
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
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
    from benchmarks.scenarios import batch_inputs, completions

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


def test_thread_count_capped_at_usable_cores(monkeypatch):
    # each thread that encodes holds a 47 MiB BPE copy: threads beyond the cores only cost memory
    cores = _usable_cores()
    monkeypatch.setenv("HARMONY_NP_THREADS", str(cores + 3))
    assert thread_count() == cores
    monkeypatch.setenv("HARMONY_NP_THREADS", "1")
    assert thread_count() == 1
    monkeypatch.delenv("HARMONY_NP_THREADS")
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert thread_count() == min(cores, 4)


def test_thread_count_honours_omp_num_threads(monkeypatch):
    # Ray sets OMP_NUM_THREADS to an actor's CPUs: actors sharing a machine then take one core
    # each, not all of them; our own setting still wins, and a value we cannot read is ignored
    monkeypatch.delenv("HARMONY_NP_THREADS", raising=False)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert thread_count() == 1
    monkeypatch.setenv("OMP_NUM_THREADS", "64")
    assert thread_count() == min(_usable_cores(), 4)
    for ignored in ("0", "two", ""):
        monkeypatch.setenv("OMP_NUM_THREADS", ignored)
        assert thread_count() == min(_usable_cores(), 4)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("HARMONY_NP_THREADS", "2")
    assert thread_count() == min(2, _usable_cores())


def test_pool_threads_capped_at_usable_cores(tmp_path):
    # a fresh process asked for more threads than it has cores starts no more than it has
    import os
    import subprocess
    import sys

    cores = _usable_cores()
    code = """
import threading
import harmony_np as h
enc = h.load_harmony_encoding(h.HarmonyEncodingName.HARMONY_GPT_OSS)
msgs = [h.Message.from_role_and_content(h.Role.USER, f"part {i} " + "lorem ipsum dolor " * 3000) for i in range(16)]
assert len(enc.render_conversation(h.Conversation.from_messages(msgs))) > 16 * 3000
print(sum(t.name.startswith("harmony_np") for t in threading.enumerate()))
"""
    env = dict(os.environ, HARMONY_NP_THREADS=str(cores + 6))
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    started = int(r.stdout.strip())
    assert started <= cores - 1
    if cores > 1:
        assert started >= 1  # the render used the pool, or the cap went untested


# A fresh interpreter whose first use of harmony_np (the vocabulary, the lazy modules, numba's
# import and compiles, the pool) runs in a thread while the main thread forks at a few delays.
# Each child does the same work and writes a digest of it; the script prints its own and each
# child's. A child that inherited a lock held by the busy thread hangs: it is killed at its
# deadline and reported.
_FIRST_USE_FORK_SCRIPT = r'''
import hashlib, json, multiprocessing, os, sys, threading, time, traceback

import harmony_np as h

method, delays, data_path, out_dir = sys.argv[1], [float(d) for d in sys.argv[2].split(",")], sys.argv[3], sys.argv[4]
DEADLINE = 60.0  # seconds a child has, from its fork, to finish (a hung one never does; under load a child came near 20)

with open(data_path) as f:
    data = json.load(f)
M, R = h.Message, h.Role
convs = [
    h.Conversation.from_messages([M.from_role_and_content(R.SYSTEM, "You are terse."), M.from_role_and_content(R.USER, text)])
    for text in data["texts"]
]


def work():
    enc = h.load_harmony_encoding(h.HarmonyEncodingName.HARMONY_GPT_OSS)
    rows = enc.render_batch(convs)
    table = enc.parse_batch(data["completions"])
    big = enc.parse_messages_from_completion_tokens(data["big"])
    single = enc.render_conversation_for_completion(convs[0], R.ASSISTANT)
    out = [
        [rows[i].tolist() for i in range(len(rows))],
        [[m.to_dict() for m in ms] for ms in table.to_messages()],
        [m.to_dict() for m in big],
        single,
    ]
    return hashlib.sha256(json.dumps(out, sort_keys=True).encode()).hexdigest()


def child(i):
    try:
        text = work()
        code = 0
    except BaseException:
        text, code = "error: " + traceback.format_exc(), 3
    with open(os.path.join(out_dir, f"child-{i}"), "w") as f:
        f.write(text)
    os._exit(code)


parent = []


def first_use():
    try:
        parent.append(work())
    except BaseException:
        parent.append("error: " + traceback.format_exc())


busy = threading.Thread(target=first_use)
t0 = time.monotonic()
busy.start()
children = []
for i, d in enumerate(delays):
    time.sleep(max(0.0, t0 + d - time.monotonic()))
    if method == "os.fork":
        pid = os.fork()
        if pid == 0:
            child(i)
        children.append((i, d, pid, time.monotonic()))
    else:
        p = multiprocessing.get_context("fork").Process(target=child, args=(i,))
        p.start()
        children.append((i, d, p, time.monotonic()))
busy.join()
report = {"parent": parent[0] if parent else None, "children": []}
for i, d, c, forked in children:
    left = max(0.0, forked + DEADLINE - time.monotonic())
    if method == "os.fork":
        while True:
            pid, status = os.waitpid(c, os.WNOHANG)
            if pid or left <= 0:
                break
            time.sleep(0.05)
            left -= 0.05
        if not pid:
            os.kill(c, 9)
            os.waitpid(c, 0)
            code = "hung"
        else:
            code = os.waitstatus_to_exitcode(status)
    else:
        c.join(left)
        if c.is_alive():
            c.kill()
            c.join()
            code = "hung"
        else:
            code = c.exitcode
    path = os.path.join(out_dir, f"child-{i}")
    text = open(path).read() if os.path.exists(path) else None
    report["children"].append({"delay": d, "exit": code, "digest": text})
print(json.dumps(report))
'''


@pytest.mark.parametrize(
    "method, delays, fresh_cache",
    [
        ("os.fork", "0,0.005,0.02,0.05,0.1,0.2,0.35", False),
        ("os.fork", "0,0.05,0.2,0.5,0.9,1.4", True),
        ("multiprocessing", "0,0.03,0.15,0.4,0.8", True),
    ],
)
@pytest.mark.slow
def test_fork_during_first_use_in_another_thread(hnp, tmp_path, method, delays, fresh_cache):
    # forked while another thread is in its first render_batch / parse_batch / long parse, the
    # child must do its own and exit (it hung for good: the busy thread held the import lock of
    # harmony_np.kernels or numba, or numba's compiler lock); fresh_cache: numba compiles the
    # kernels during the forks instead of loading them
    import json
    import os
    import subprocess
    import sys

    if not hasattr(os, "fork"):
        pytest.skip("no fork on this platform")
    enc = hnp.load_harmony_encoding(hnp.HarmonyEncodingName.HARMONY_GPT_OSS)
    M, R = hnp.Message, hnp.Role
    texts = [f"question {i}: " + "tell me about the weather and the sea " * (40 + 7 * i) for i in range(12)]
    completions = [
        enc.render_conversation(
            hnp.Conversation.from_messages([M.from_role_and_content(R.ASSISTANT, f"answer {i} " + "sunny and calm " * (i + 3)).with_channel("final")])
        )
        for i in range(20)
    ]
    from harmony_np.parse import SCAN_KERNEL_MIN

    big = enc.render_conversation(
        hnp.Conversation.from_messages(
            [
                M.from_role_and_content(R.ASSISTANT, "let me think " * 200).with_channel("analysis"),
                M.from_role_and_content(R.ASSISTANT, "the answer is calm seas " * 100).with_channel("final"),
            ]
        ),
        hnp.RenderConversationConfig(auto_drop_analysis=False),
    )
    assert len(big) > 2 * SCAN_KERNEL_MIN  # long enough for the scanning kernel
    data = tmp_path / "data.json"
    data.write_text(json.dumps({"texts": texts, "completions": completions, "big": big}))
    script = tmp_path / "first_use_fork.py"
    script.write_text(_FIRST_USE_FORK_SCRIPT)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    env = dict(os.environ, HARMONY_NP_THREADS="2")
    if fresh_cache:
        env["NUMBA_CACHE_DIR"] = str(tmp_path / "numba")
    r = subprocess.run(
        [sys.executable, str(script), method, delays, str(data), str(out_dir)], capture_output=True, text=True, env=env, timeout=180
    )
    assert r.returncode == 0, r.stderr[-3000:]
    report = json.loads(r.stdout.strip().splitlines()[-1])
    assert report["parent"] and not report["parent"].startswith("error"), report["parent"]
    bad = [c for c in report["children"] if c["exit"] != 0 or c["digest"] != report["parent"]]
    assert not bad, bad
