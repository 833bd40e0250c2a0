"""harmony-np on Parquet files, always in a child process on real files: render --from chat, parse
and decode equal to the JSON Lines path row for row, several row groups, the row count, a bad row
in the middle (stop, or --keep-going with its error in place), SIGINT leaving a valid file of the
complete row groups, peak RSS bounded by a batch rather than the file, the progress bar's total,
the formats refused, and pyarrow missing."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time

import pytest

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

from test_cli import CLI, _chat_rows, _leftovers, _run_with_tty_stderr, run  # noqa: E402

BATCH_ROWS = 4096  # the CLI's --batch-rows default: one output row group per batch
DATE = "2025-08-05"


def _completions(enc, hnp, n: int, user: bool = True) -> list:
    """``n`` different completions (token lists), every fifth with a tool call; with ``user``, a
    user message first."""
    out = []
    for i in range(n):
        msgs = [hnp.Message.from_role_and_content(hnp.Role.USER, f"q{i} caf\u00e9")] if user else []
        msgs.append(hnp.Message.from_role_and_content(hnp.Role.ASSISTANT, f"think {i}").with_channel("analysis"))
        if i % 5 == 0:
            msgs.append(hnp.Message.from_role_and_content(hnp.Role.ASSISTANT, '{"city": "Paris"}')
                        .with_channel("commentary").with_recipient("functions.get_weather").with_content_type("<|constrain|>json"))
        msgs.append(hnp.Message.from_role_and_content(hnp.Role.ASSISTANT, f"answer {i}").with_channel("final"))
        out.append(enc.render_conversation(hnp.Conversation.from_messages(msgs)))
    return out


def _write_tokens(path, rows, row_group_size, value_type=pa.int64(), list_type=pa.list_, **options):
    table = pa.table({"id": pa.array(range(len(rows)), pa.int64()), "tokens": pa.array(rows, list_type(value_type))})
    pq.write_table(table, path, row_group_size=row_group_size, **options)


def _jsonl(path, rows) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def _message_row(d: dict) -> dict:
    """A harmony message's to_dict form as a row of the ``messages`` column."""
    (part,) = d["content"]
    return {"role": d["role"], "name": d.get("name"), "channel": d.get("channel"), "recipient": d.get("recipient"),
            "content_type": d.get("content_type"), "content": part["text"]}


@pytest.mark.slow
def test_parse_equals_json_lines_over_row_groups(tmp_path, enc, hnp):
    n = 2 * BATCH_ROWS + 300  # three batches, read from row groups of 5,000
    rows = _completions(enc, hnp, n)
    _write_tokens(tmp_path / "in.parquet", rows, 5000)
    _jsonl(tmp_path / "in.jsonl", rows)
    run(["parse", str(tmp_path / "in.parquet"), "-o", str(tmp_path / "out.parquet"), "-q"], check_rc=0)
    lines = run(["parse", str(tmp_path / "in.jsonl"), "-q"], check_rc=0).stdout.splitlines()
    out = pq.ParquetFile(tmp_path / "out.parquet")
    assert out.metadata.num_rows == n and out.metadata.num_row_groups == math.ceil(n / BATCH_ROWS)
    table = out.read()
    assert table.column("id").to_pylist() == list(range(n))  # the input's columns carried
    assert table.column("error").null_count == n
    got = table.column("messages").to_pylist()
    assert len(lines) == n
    for i, line in enumerate(lines):
        assert got[i] == [_message_row(d) for d in json.loads(line)], i


@pytest.mark.slow
def test_parse_to_chat_and_recover_equal_json_lines(tmp_path, enc, hnp):
    rows = _completions(enc, hnp, 40, user=False)  # the assistant's messages: a chat message each
    rows[7] = rows[7][:5] + [200006] + rows[7][5:]  # a stray <|start|>: an error in collect mode, repaired by --recover
    _write_tokens(tmp_path / "in.parquet", rows, 16, pa.uint32(), pa.large_list)
    _jsonl(tmp_path / "in.jsonl", rows)
    for extra in (["--to", "chat"], ["--recover"], ["--recover", "--to", "chat"]):
        r = run(["parse", str(tmp_path / "in.parquet"), "-o", str(tmp_path / "out.parquet"), "-q", "--keep-going"] + extra)
        ref = run(["parse", str(tmp_path / "in.jsonl"), "-q", "--keep-going"] + extra)
        assert r.returncode == ref.returncode, (extra, r.stderr)
        table = pq.read_table(tmp_path / "out.parquet")
        assert table.num_rows == 40
        for i, line in enumerate(ref.stdout.splitlines()):
            want = json.loads(line)
            if "--to" in extra:
                got = {k: table.column(k)[i].as_py() for k in ("content", "reasoning_content", "tool_calls")}
                assert all(got[k] == want.get(k) for k in got if k != "tool_calls"), (extra, i)
            elif "error" in want:
                assert table.column("error")[i].as_py() == want["error"]
            else:
                assert table.column("messages")[i].as_py() == [_message_row(d) for d in want], (extra, i)


@pytest.mark.slow
def test_decode_equals_json_lines(tmp_path, enc, hnp):
    rows = _completions(enc, hnp, 300) + [[200005, 65, 0xC3]]  # a cut UTF-8 character last
    _write_tokens(tmp_path / "in.parquet", rows, 64, pa.int32())
    _jsonl(tmp_path / "in.jsonl", rows)
    run(["decode", str(tmp_path / "in.parquet"), "-o", str(tmp_path / "out.parquet"), "-q"], check_rc=0)
    lines = run(["decode", str(tmp_path / "in.jsonl"), "-q"], check_rc=0).stdout.splitlines()
    assert pq.read_table(tmp_path / "out.parquet").column("text").to_pylist() == [json.loads(x) for x in lines]


def _chat_table(n: int):
    good, bare, _ = _chat_rows()
    return [good["messages"], bare] * (n // 2), [good["tools"], None] * (n // 2)


@pytest.mark.slow
def test_render_from_chat_equals_json_lines(tmp_path, enc):
    convs, tools = _chat_table(200)
    pq.write_table(pa.table({"messages": convs, "tools": tools}),
                   tmp_path / "chat.parquet", row_group_size=64)
    _jsonl(tmp_path / "chat.jsonl", [{"messages": c, "tools": t} for c, t in zip(convs, tools)])
    for template in ("hf", "harmony"):
        args = ["render", "--from", "chat", "--template", template, "--date", DATE, "-q"]
        run(args + [str(tmp_path / "chat.parquet"), "-o", str(tmp_path / "out.parquet")], check_rc=0)
        lines = run(args + [str(tmp_path / "chat.jsonl")], check_rc=0).stdout.splitlines()
        table = pq.read_table(tmp_path / "out.parquet")
        assert table.num_rows == 200 and table.schema.field("input_ids").type == pa.large_list(pa.uint32())
        ids, masks = table.column("input_ids").to_pylist(), table.column("assistant_masks").to_pylist()
        for i, line in enumerate(lines):
            want = json.loads(line)
            assert ids[i] == want["tokens"] and masks[i] == want["loss_mask"], (template, i)


@pytest.mark.slow
def test_a_bad_row_in_the_middle(tmp_path, enc, hnp):
    rows = _completions(enc, hnp, 3000)
    rows[1500] = [5, 10**9, 7]  # an id out of the vocabulary
    _write_tokens(tmp_path / "in.parquet", rows, 1000)
    _jsonl(tmp_path / "in.jsonl", rows)
    src, out = str(tmp_path / "in.parquet"), str(tmp_path / "out.parquet")
    for command in ("decode", "parse"):
        # without --keep-going: exit 3, the rows before it written, as the lines before a bad line
        r = run([command, src, "-o", out, "-q"], check_rc=3)
        ref = run([command, str(tmp_path / "in.jsonl"), "-q"], check_rc=3)
        kind, text = ref.stderr.splitlines()[0].split("in.jsonl:1501: ", 1)[1].split(": ", 1)
        got_kind, got_text = r.stderr.splitlines()[0].split("in.parquet:row 1500: ", 1)[1].split(": ", 1)
        assert (got_kind, got_text) == (kind, text), (r.stderr, ref.stderr)
        assert pq.read_metadata(out).num_rows == 1500
        # with it: exit 1, the row in its place with its error, the others as they are
        r = run([command, src, "-o", out, "-q", "--keep-going"], check_rc=1)
        assert r.stderr.count("in.parquet:row 1500: ") == 1 and "1 row(s) failed" in r.stderr
        table = pq.read_table(out)
        assert table.num_rows == 3000 and table.column("tokens")[1500].as_py() == [5, 10**9, 7]
        errors = table.column("error").to_pylist()
        assert [i for i, e in enumerate(errors) if e is not None] == [1500]
        assert errors[1500] == text and table.column("error_type")[1500].as_py() == kind
        new = "text" if command == "decode" else "messages"
        assert table.column(new)[1500].as_py() in (None, []) and table.column(new)[1499].as_py()  # parse: no messages
    assert _leftovers(tmp_path) == []


@pytest.mark.slow
def test_sigint_leaves_a_valid_file_of_complete_row_groups(tmp_path, enc, hnp):
    base = _completions(enc, hnp, 100)
    rows = base * 2000  # 200,000 completions: longer than the wait
    _write_tokens(tmp_path / "in.parquet", rows, 20_000)
    target = tmp_path / "out.parquet"
    p = subprocess.Popen(CLI + ["parse", str(tmp_path / "in.parquet"), "-o", str(target), "-q"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while not any(os.path.getsize(f) for f in _leftovers(tmp_path)):  # row groups are being written
        assert time.monotonic() < deadline and p.poll() is None
        time.sleep(0.02)
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 130 and err.decode() == "harmony-np: interrupted\n", err.decode()[-2000:]
    meta = pq.read_metadata(target)
    assert 0 < meta.num_rows < len(rows) and meta.num_rows % BATCH_ROWS == 0
    want = [[_message_row(m.to_dict()) for m in enc.parse_messages_from_completion_tokens(c)] for c in base]
    got = pq.read_table(target, columns=["messages"]).column("messages")
    for i in range(0, meta.num_rows, 997):
        assert got[i].as_py() == want[i % 100]
    assert _leftovers(tmp_path) == []


_PEAK = """
import resource, subprocess, sys
r = subprocess.run(sys.argv[1:], capture_output=True)
sys.stderr.write(r.stderr.decode())
print(r.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024)
"""


def _peak_rss(args) -> int:
    """Peak RSS in bytes of the CLI run with ``args``, measured by a parent of its own."""
    r = subprocess.run([sys.executable, "-c", _PEAK] + CLI + args, capture_output=True, text=True, timeout=600)
    rc, peak = r.stdout.split()
    assert rc == "0" and "Traceback" not in r.stderr, r.stderr
    return int(peak)


@pytest.mark.slow
def test_peak_rss_is_bounded_by_a_batch_not_the_file(tmp_path, enc, hnp):
    # the same rows, 3 batches' worth and 12: the longer file's input and output, read whole,
    # take far more memory than the runs' peaks differ by
    base = _completions(enc, hnp, 64)
    filler = enc.encode(" lorem ipsum dolor sit amet" * 60)  # ~420 tokens more per completion
    rows = [c[:-3] + filler + c[-3:] for c in base]  # inside the final message's text
    whole, peak = {}, {}
    for name, batches in (("short", 3), ("long", 12)):
        src, out = tmp_path / f"{name}.parquet", tmp_path / f"{name}_out.parquet"
        _write_tokens(src, rows * (batches * BATCH_ROWS // 64), BATCH_ROWS)
        peak[name] = _peak_rss(["parse", str(src), "-o", str(out), "-q"])
        assert pq.read_metadata(out).num_rows == batches * BATCH_ROWS
        whole[name] = pq.read_table(src).nbytes + pq.read_table(out).nbytes
    assert peak["long"] - peak["short"] < 0.2 * (whole["long"] - whole["short"]), (peak, whole)
    assert whole["long"] > peak["long"] - peak["short"] + 200e6, (peak, whole)


@pytest.mark.slow
def test_peak_rss_is_bounded_by_a_batch_not_the_row_group(tmp_path, enc, hnp):
    # the same rows in row groups of one batch and in one row group of 12 batches: the reader
    # streams a column chunk's pages (it used to read the whole chunk, so a file written with big
    # row groups took that much more memory)
    base = _completions(enc, hnp, 64)
    filler = enc.encode(" lorem ipsum dolor sit amet" * 150)
    rows = [c[:-3] + filler + c[-3:] for c in base] * (12 * BATCH_ROWS // 64)
    peak = {}
    for name, group in (("small", BATCH_ROWS), ("one", len(rows))):
        src, out = tmp_path / f"{name}.parquet", tmp_path / f"{name}_out.parquet"
        _write_tokens(src, rows, group, pa.uint32(), compression="none", use_dictionary=False)
        peak[name] = _peak_rss(["parse", str(src), "-o", str(out), "-q"])
        assert pq.read_metadata(out).num_rows == len(rows)
    chunk = pq.read_metadata(tmp_path / "one.parquet").row_group(0).total_byte_size
    assert chunk > 150e6
    assert peak["one"] - peak["small"] < 0.2 * chunk, (peak, chunk)


@pytest.mark.slow
def test_progress_bar_knows_the_total(tmp_path, enc, hnp):
    _write_tokens(tmp_path / "in.parquet", _completions(enc, hnp, 300), 100)
    rc, _, tty = _run_with_tty_stderr(["decode", str(tmp_path / "in.parquet"), "-o", str(tmp_path / "o.parquet")], "")
    assert rc == 0
    assert "300/300" in tty and "token lists/s" in tty  # the total from the metadata, and the rate


def test_formats_refused(tmp_path):
    pq.write_table(pa.table({"tokens": [[1, 2]]}), tmp_path / "in.parquet")
    (tmp_path / "in.jsonl").write_text("[1, 2]\n")
    cases = [
        (["decode", str(tmp_path / "in.parquet")], "a Parquet input is written to a Parquet output: add -o FILE.parquet (not stdout)"),
        (["decode", str(tmp_path / "in.parquet"), "-o", str(tmp_path / "o.jsonl")], "add -o FILE.parquet (not"),
        (["decode", str(tmp_path / "in.jsonl"), "-o", str(tmp_path / "o.parquet")], "a Parquet output is written from a Parquet input"),
        (["decode", "-", "-o", str(tmp_path / "o.parquet")], "from a Parquet input (FILE.parquet), not stdin"),
        (["render", str(tmp_path / "in.parquet"), "-o", str(tmp_path / "o.parquet")], "render it with --from chat"),
    ]
    for args, text in cases:
        r = run(args, check_rc=2)
        assert text in r.stderr, (args, r.stderr)
    assert not (tmp_path / "o.parquet").exists() and _leftovers(tmp_path) == []


def test_a_file_of_no_rows(tmp_path):
    pq.write_table(pa.table({"tokens": pa.array([], pa.large_list(pa.uint32()))}), tmp_path / "in.parquet")
    run(["parse", str(tmp_path / "in.parquet"), "-o", str(tmp_path / "o.parquet")], check_rc=0)
    table = pq.read_table(tmp_path / "o.parquet")
    assert table.num_rows == 0 and table.column_names == ["tokens", "messages", "error", "error_type"]


def test_missing_column_and_not_parquet(tmp_path):
    pq.write_table(pa.table({"ids": [[1, 2]]}), tmp_path / "in.parquet")
    r = run(["parse", str(tmp_path / "in.parquet"), "-o", str(tmp_path / "o.parquet")], check_rc=2)
    assert "no column 'tokens' (columns: ids); pick one with --column" in r.stderr
    run(["decode", str(tmp_path / "in.parquet"), "--column", "ids", "-o", str(tmp_path / "o.parquet")], check_rc=0)
    assert pq.read_table(tmp_path / "o.parquet").column("text").to_pylist() == ['"#']
    (tmp_path / "bad.parquet").write_bytes(b"PAR1 but no more")
    r = run(["decode", str(tmp_path / "bad.parquet"), "-o", str(tmp_path / "o2.parquet")], check_rc=2)
    assert "bad.parquet: not a readable Parquet file" in r.stderr and not (tmp_path / "o2.parquet").exists()


def test_without_pyarrow_the_error_says_what_to_install(tmp_path):
    # a pyarrow that cannot be imported, first on the path: as in an environment without it
    shadow = tmp_path / "shadow" / "pyarrow"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError('No module named pyarrow')\n")
    (tmp_path / "in.parquet").write_bytes(b"")
    env = dict(os.environ, PYTHONPATH=str(tmp_path / "shadow"))
    r = run(["parse", str(tmp_path / "in.parquet"), "-o", str(tmp_path / "o.parquet")], check_rc=2, env=env)
    assert "pip install 'harmony-np[arrow]'" in r.stderr and r.stderr.count("\n") == 1
    run(["stop-tokens"], check_rc=0, env=env)  # the rest of the command works without it
