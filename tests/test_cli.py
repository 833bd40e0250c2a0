"""The harmony-np command: render/parse round trip, .npz, bad lines, exit codes, progress bar."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys

import numpy as np
import pytest

CLI = [sys.executable, "-m", "harmony_np"]


def run(args, stdin: str = "", check_rc=None):
    r = subprocess.run(CLI + args, input=stdin, capture_output=True, text=True, timeout=300)
    if check_rc is not None:
        assert r.returncode == check_rc, r.stderr
    return r


def conversations(hnp, n=30):
    out = []
    for i in range(n):
        msgs = [
            hnp.Message.from_role_and_content(hnp.Role.USER, f"Question {i}: caf\u00e9?"),
            hnp.Message.from_role_and_content(hnp.Role.ASSISTANT, f"thinking {i}").with_channel("analysis"),
            hnp.Message.from_role_and_content(hnp.Role.ASSISTANT, f"Answer {i}").with_channel("final"),
        ]
        out.append(hnp.Conversation.from_messages(msgs))
    return out


def test_version_and_help():
    r = run(["--version"], check_rc=0)
    assert r.stdout.startswith("harmony-np ")
    r = run(["--help"], check_rc=0)
    assert "examples:" in r.stdout and "harmony-np render" in r.stdout
    assert run([], check_rc=2).stdout.startswith("usage:")


def test_render_parse_round_trip(tmp_path, hnp, enc):
    convs = conversations(hnp)
    src = tmp_path / "c.jsonl"
    src.write_text("".join(c.to_json() + "\n" for c in convs))
    rendered = run(["render", "--mode", "conversation", "--keep-analysis", str(src)], check_rc=0).stdout.splitlines()
    assert len(rendered) == len(convs)
    for line, c in zip(rendered, convs):
        assert json.loads(line) == enc.render_conversation(c, hnp.RenderConversationConfig(auto_drop_analysis=False))
    parsed = run(["parse", "-"], stdin="\n".join(rendered) + "\n", check_rc=0).stdout.splitlines()
    assert len(parsed) == len(convs)
    for line, c in zip(parsed, convs):
        assert [hnp.Message.from_dict(d) for d in json.loads(line)] == c.messages


def test_npz_round_trip(tmp_path, hnp, enc):
    convs = conversations(hnp, 12)
    src = tmp_path / "c.jsonl"
    src.write_text("".join(c.to_json() + "\n" for c in convs))
    out = tmp_path / "t.npz"
    run(["render", "--mode", "training", str(src), "-o", str(out), "-q"], check_rc=0)
    data = np.load(out)
    rb = enc.render_batch(convs, mode="training")
    assert np.array_equal(data["tokens"], rb.tokens) and np.array_equal(data["offsets"], rb.offsets)
    assert np.array_equal(data["loss_mask"], rb.loss_mask)
    assert data["line"].tolist() == list(range(1, 13))
    parsed = run(["parse", str(out)], check_rc=0).stdout.splitlines()
    assert [json.loads(p) for p in parsed] == [[m.to_dict() for m in enc.parse_messages_from_completion_tokens(rb[i])] for i in range(12)]


def test_bad_lines_are_reported_by_number(tmp_path):
    src = tmp_path / "c.jsonl"
    good = json.dumps({"messages": [{"role": "user", "content": "hi"}]})
    src.write_text("\n".join([good, "not json", json.dumps({"messages": [{"role": "tool", "content": "x"}]}), good]) + "\n")
    r = run(["render", str(src)], check_rc=3)
    assert f"{src}:2: JSONDecodeError" in r.stderr
    r = run(["render", "--keep-going", str(src)], check_rc=1)
    assert f"{src}:2: JSONDecodeError" in r.stderr and f"{src}:3: HarmonyError: Tools should have a name!" in r.stderr
    assert "2 line(s) failed" in r.stderr
    assert len(r.stdout.splitlines()) == 2
    toks = tmp_path / "t.jsonl"
    toks.write_text("[200006, 1428, 200008, 3686, 200007]\n[1, 2]\n[200006]\n")
    r = run(["parse", "--keep-going", str(toks)], check_rc=1)
    lines = r.stdout.splitlines()
    assert len(lines) == 3  # aligned with the input
    assert json.loads(lines[0])[0]["content"][0]["text"] == "hi"
    assert json.loads(lines[1]) == {"error": "Unexpected token 1 while expecting start token 200006", "error_type": "HarmonyError"}
    assert f"{toks}:3: HarmonyError: Unexpected EOS while waiting for message header to complete" in r.stderr


def test_first_bad_line_stops_each_command(tmp_path):
    # without --keep-going every command stops at the first bad line, in line order, with exit
    # code 3, its output closed; with it, every line has its output line (an error object for a
    # bad one) and the exit code is 1
    toks = tmp_path / "t.jsonl"
    toks.write_text("[200006, 1428, 200008, 3686, 200007]\n[1, 2]\n\"x\"\n[200006, 1428, 200008, 3686, 200007]\n")
    r = run(["parse", str(toks)], check_rc=3)
    assert f"{toks}:2: HarmonyError: Unexpected token 1 while expecting start token 200006" in r.stderr
    r = run(["decode", str(toks)], check_rc=3)
    assert f"{toks}:3: ValueError: expected a JSON list of token ids" in r.stderr
    assert len(r.stdout.splitlines()) == 2
    r = run(["decode", "--keep-going", str(toks)], check_rc=1)
    lines = r.stdout.splitlines()
    assert len(lines) == 4 and "1 line(s) failed" in r.stderr  # aligned with the input
    assert json.loads(lines[2]) == {"error": "expected a JSON list of token ids (or an object with 'tokens')", "error_type": "ValueError"}
    r = run(["parse", "--keep-going", str(toks)], check_rc=1)
    lines = r.stdout.splitlines()
    assert len(lines) == 4 and json.loads(lines[2])["error_type"] == "ValueError"
    assert json.loads(lines[3])[0]["content"][0]["text"] == "hi"
    assert r.stderr.index(f"{toks}:2:") < r.stderr.index(f"{toks}:3:")  # reported in line order
    out = tmp_path / "r.npz"
    src = tmp_path / "c.jsonl"
    src.write_text(json.dumps({"messages": [{"role": "user", "content": "hi"}]}) + "\nnot json\n")
    run(["render", "-o", str(out), str(src)], check_rc=3)
    assert not out.exists()  # a stopped render writes no partial .npz


def test_decode_and_stop_tokens():
    r = run(["decode", "-"], stdin="[200006, 1428, 200008, 3686, 200007]\n", check_rc=0)
    assert json.loads(r.stdout) == "<|start|>user<|message|>hi<|end|>"
    assert sorted(json.loads(run(["stop-tokens"], check_rc=0).stdout)) == [200002, 200007, 200012]
    assert sorted(json.loads(run(["stop-tokens", "--assistant-actions"], check_rc=0).stdout)) == [200002, 200012]


def _run_with_tty_stderr(args, stdin_text):
    """Run the CLI with stderr on a pseudo-terminal; return (rc, stdout, terminal output)."""
    import fcntl
    import struct
    import termios

    master, slave = pty.openpty()
    # a terminal 24 rows by 100 columns (a fresh pty has none, and tqdm sizes its bar to it)
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    proc = subprocess.Popen(CLI + args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=slave)
    os.close(slave)
    proc.stdin.write(stdin_text.encode())
    proc.stdin.close()
    seen = b""
    while True:
        ready, _, _ = select.select([master], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(master, 65536)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
        elif proc.poll() is not None:
            break
    out = proc.stdout.read()
    proc.wait(timeout=60)
    os.close(master)
    return proc.returncode, out, seen.decode(errors="replace")


@pytest.mark.skipif(not hasattr(pty, "openpty"), reason="needs a pseudo-terminal")
def test_progress_bar_on_terminal_only():
    lines = "".join(json.dumps({"messages": [{"role": "user", "content": f"q{i}"}]}) + "\n" for i in range(50))
    rc, out, tty = _run_with_tty_stderr(["render", "-"], lines)
    assert rc == 0 and len(out.splitlines()) == 50
    assert "conversations" in tty and "50" in tty  # tqdm's counter went to the terminal
    rc, out, tty = _run_with_tty_stderr(["render", "-q", "-"], lines)
    assert rc == 0 and tty == ""
    r = run(["render", "-"], stdin=lines, check_rc=0)
    assert r.stderr == ""  # not a terminal: no bar


def test_parse_recover(tmp_path, enc):
    # a headerless refusal: text straight after <|start|>assistant, then <|end|>
    toks = enc.encode("<|start|>assistant<|message|>hi<|end|><|start|>I can't help with that.<|end|>", allowed_special="all")
    src = tmp_path / "t.jsonl"
    src.write_text(json.dumps(toks) + "\n")
    run(["parse", str(src)], check_rc=3)
    r = run(["parse", "--recover", str(src)], check_rc=0)
    msgs = json.loads(r.stdout)
    assert msgs == [m.to_dict() for m in enc.recover_messages_from_completion_tokens(toks).messages]
    assert len(msgs) == 2 and "recovered:" in r.stderr
