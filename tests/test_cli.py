"""The harmony-np command, always in a child process on real files: render/parse round trip,
.npz, bad lines (bad bytes, over-deep JSON) in their place, exit codes, ``-o`` written beside
its target and never onto the input, settings checked once, SIGINT/SIGTERM leaving complete
lines, a closed pipe, the progress bar, the README's and ``--help``'s examples."""

from __future__ import annotations

import glob
import json
import os
import pty
import re
import select
import signal
import stat
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

CLI = [sys.executable, "-m", "harmony_np"]
COMMANDS = ("render", "parse", "decode")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(args, stdin: str = "", check_rc=None, env=None, timeout=120):
    r = subprocess.run(CLI + args, input=stdin, capture_output=True, text=True, timeout=timeout, env=env)
    if check_rc is not None:
        assert r.returncode == check_rc, r.stderr
    assert "Traceback" not in r.stderr, r.stderr
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


@pytest.mark.slow
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


@pytest.mark.slow
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


@pytest.mark.slow
def test_bad_lines_are_reported_by_number(tmp_path):
    src = tmp_path / "c.jsonl"
    good = json.dumps({"messages": [{"role": "user", "content": "hi"}]})
    src.write_text("\n".join([good, "not json", json.dumps({"messages": [{"role": "tool", "content": "x"}]}), good]) + "\n")
    r = run(["render", str(src)], check_rc=3)
    assert f"{src}:2: JSONDecodeError" in r.stderr
    assert len(r.stdout.splitlines()) == 1  # the good line before the bad one is written
    r = run(["render", "--keep-going", str(src)], check_rc=1)
    assert f"{src}:2: JSONDecodeError" in r.stderr and f"{src}:3: HarmonyError: Tools should have a name!" in r.stderr
    assert "2 line(s) failed" in r.stderr
    out = [json.loads(x) for x in r.stdout.splitlines()]
    assert len(out) == 4  # aligned with the input, as parse and decode have it
    assert out[1] == {"error": "Expecting value: line 1 column 1 (char 0)", "error_type": "JSONDecodeError", "line": 2}
    assert out[2] == {"error": "Tools should have a name!", "error_type": "HarmonyError", "line": 3}
    assert out[0] == out[3] and isinstance(out[0], list)
    toks = tmp_path / "t.jsonl"
    toks.write_text("[200006, 1428, 200008, 3686, 200007]\n[1, 2]\n[200006]\n")
    r = run(["parse", "--keep-going", str(toks)], check_rc=1)
    lines = r.stdout.splitlines()
    assert len(lines) == 3  # aligned with the input
    assert json.loads(lines[0])[0]["content"][0]["text"] == "hi"
    assert json.loads(lines[1]) == {"error": "Unexpected token 1 while expecting start token 200006", "error_type": "HarmonyError", "line": 2}
    assert f"{toks}:3: HarmonyError: Unexpected EOS while waiting for message header to complete" in r.stderr


@pytest.mark.slow
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
    assert json.loads(lines[2]) == {"error": "expected a JSON list of token ids (or an object with 'tokens')", "error_type": "ValueError", "line": 3}
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
@pytest.mark.slow
def test_progress_bar_on_terminal_only():
    lines = "".join(json.dumps({"messages": [{"role": "user", "content": f"q{i}"}]}) + "\n" for i in range(50))
    rc, out, tty = _run_with_tty_stderr(["render", "-"], lines)
    assert rc == 0 and len(out.splitlines()) == 50
    assert "conversations" in tty and "50" in tty  # tqdm's counter went to the terminal
    rc, out, tty = _run_with_tty_stderr(["render", "-q", "-"], lines)
    assert rc == 0 and tty == ""
    r = run(["render", "-"], stdin=lines, check_rc=0)
    assert r.stderr == ""  # not a terminal: no bar


@pytest.mark.skipif(not hasattr(pty, "openpty"), reason="needs a pseudo-terminal")
@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.slow
def test_progress_bar_has_a_total_for_a_file(tmp_path, enc, command):
    src = tmp_path / "in.jsonl"
    src.write_text("\n".join(_good_lines(enc, command, 50)) + "\n\n")  # a blank line counts too
    rc, out, tty = _run_with_tty_stderr([command, str(src)] + _args(command), "")
    assert rc == 0 and len(out.splitlines()) == 50
    assert "51/51" in tty and "100%" in tty


@pytest.mark.slow
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


# -- issue 10: nothing wrong, nothing lost ---------------------------------------------------------


def _good_lines(enc, command: str, n: int) -> list:
    """``n`` different valid input lines (str) for ``command``."""
    convs = [{"messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "channel": "final", "content": f"a{i}"}]} for i in range(n)]
    if command == "render":
        return [json.dumps(c) for c in convs]
    import harmony_np as hnp

    return [json.dumps(enc.render_conversation(hnp.Conversation.from_dict(c))) for c in convs]


def _args(command: str) -> list:
    # conversation mode: rendered rows that parse back
    return ["--mode", "conversation"] if command == "render" else []


def _leftovers(folder) -> list:
    """Temporary files of ``-o`` left in ``folder``."""
    return [p for p in glob.glob(os.path.join(str(folder), ".*")) if p.endswith(".part")]


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.slow
def test_bad_bytes_and_deep_json_are_one_bad_line(tmp_path, enc, command):
    # 1,500 good lines, then a byte that is not UTF-8 (line 1501) and JSON nested 100,000 deep
    # (line 1502), then a good line; all in one chunk
    good = _good_lines(enc, command, 3)
    lines = [good[i % 3].encode() for i in range(1500)] + [b'[1, "\xff"]', b"[" * 100_000, good[0].encode()]
    src = tmp_path / "in.jsonl"
    src.write_bytes(b"\n".join(lines) + b"\n")
    out = tmp_path / "out.jsonl"
    r = run([command, str(src), "-o", str(out), "--keep-going", "-q"] + _args(command), check_rc=1)
    assert f"{src}:1501: UnicodeDecodeError: invalid UTF-8 at byte 5 of the line" in r.stderr
    assert f"{src}:1502: ValueError: JSON nested too deeply" in r.stderr
    got = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(got) == 1503
    assert got[1500] == {"error": "invalid UTF-8 at byte 5 of the line: invalid start byte", "error_type": "UnicodeDecodeError", "line": 1501}
    assert got[1501] == {"error": "JSON nested too deeply", "error_type": "ValueError", "line": 1502}
    assert got[1502] == got[0] and got[:3] != got[1:4]
    # without --keep-going: the 1,500 good lines, then the stop
    r = run([command, str(src), "-o", str(out), "-q"] + _args(command), check_rc=3)
    assert f"{src}:1501: UnicodeDecodeError" in r.stderr and ":1502:" not in r.stderr
    assert [json.loads(x) for x in out.read_text().splitlines()] == got[:1500]
    assert _leftovers(tmp_path) == []
    # the same from stdin, named as such
    r = subprocess.run(CLI + [command, "-", "-q", "--keep-going"] + _args(command), input=src.read_bytes(), capture_output=True, timeout=60)
    assert r.returncode == 1 and b"<stdin>:1501: UnicodeDecodeError" in r.stderr
    assert b"<stdin>:1502: ValueError: JSON nested too deeply" in r.stderr
    assert [json.loads(x) for x in r.stdout.splitlines()] == got


@pytest.mark.parametrize("command", COMMANDS)
def test_failed_run_leaves_output_untouched(tmp_path, enc, command):
    target = tmp_path / "existing.jsonl"
    target.write_text("keep me\n")
    r = run([command, str(tmp_path / "missing.jsonl"), "-o", str(target)], check_rc=2)
    assert "No such file or directory" in r.stderr
    assert target.read_text() == "keep me\n" and _leftovers(tmp_path) == []
    # a bad setting: reported before anything is written
    src = tmp_path / "in.jsonl"
    src.write_text("\n".join(_good_lines(enc, command, 3)) + "\n")
    env = dict(os.environ, HARMONY_NP_THREADS="abc")
    run([command, str(src), "-o", str(target)] + _args(command), env=env, check_rc=2)
    assert target.read_text() == "keep me\n" and _leftovers(tmp_path) == []
    # into a folder that does not exist
    r = run([command, str(src), "-o", str(tmp_path / "no" / "x.jsonl")] + _args(command), check_rc=2)
    assert r.stderr.startswith("harmony-np: cannot write beside")


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.slow
def test_output_onto_input_is_refused(tmp_path, enc, command):
    src = tmp_path / "in.jsonl"
    data = ("\n".join(_good_lines(enc, command, 5)) + "\n").encode()
    src.write_bytes(data)
    (tmp_path / "sym.jsonl").symlink_to(src)
    os.link(src, tmp_path / "hard.jsonl")
    for inp, target in [(src, src), (src, "sym.jsonl"), ("sym.jsonl", src), (src, "hard.jsonl")]:
        r = run([command, str(tmp_path / inp), "-o", str(tmp_path / target)] + _args(command), check_rc=2)
        assert "is the input file" in r.stderr and len(r.stderr.splitlines()) == 1
        assert src.read_bytes() == data
    with open(src, "rb") as fin:  # stdin is the input file
        r = subprocess.run(CLI + [command, "-", "-o", str(src)] + _args(command), stdin=fin, capture_output=True, timeout=60)
    assert r.returncode == 2 and b"is the input file <stdin>" in r.stderr
    with open(src, "ab") as fout:  # stdout appends to the input file: it would read its own output
        r = subprocess.run(CLI + [command, str(src)] + _args(command), stdout=fout, stderr=subprocess.PIPE, timeout=60)
    assert r.returncode == 2 and b"stdout is the input file" in r.stderr
    assert src.read_bytes() == data and _leftovers(tmp_path) == []


@pytest.mark.slow
def test_output_replaces_its_target(tmp_path, enc):
    src = tmp_path / "in.jsonl"
    src.write_text("\n".join(_good_lines(enc, "decode", 4)) + "\n")
    expected = run(["decode", str(src)], check_rc=0).stdout
    target = tmp_path / "out.jsonl"
    target.write_text("old\n")
    os.chmod(target, 0o640)
    run(["decode", str(src), "-o", str(target)], check_rc=0)
    assert target.read_text() == expected and stat.S_IMODE(os.stat(target).st_mode) == 0o640
    # through a symlink: the file it points to is replaced, the link stays a link
    link = tmp_path / "link.jsonl"
    link.symlink_to(target)
    target.write_text("old\n")
    run(["decode", str(src), "-o", str(link)], check_rc=0)
    assert link.is_symlink() and target.read_text() == expected
    # a new file gets the mode that open() would give it
    umask = os.umask(0)
    os.umask(umask)
    run(["decode", str(src), "-o", str(tmp_path / "new.jsonl")], check_rc=0)
    assert stat.S_IMODE(os.stat(tmp_path / "new.jsonl").st_mode) == 0o666 & ~umask
    assert _leftovers(tmp_path) == []


@pytest.mark.slow
def test_output_to_a_fifo_is_written_in_place(tmp_path, enc):
    src = tmp_path / "in.jsonl"
    src.write_text("\n".join(_good_lines(enc, "decode", 4)) + "\n")
    expected = run(["decode", str(src)], check_rc=0).stdout
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    got = []
    reader = threading.Thread(target=lambda: got.append(open(fifo).read()))
    reader.start()
    run(["decode", str(src), "-o", str(fifo)], check_rc=0)
    reader.join(30)
    assert got == [expected] and stat.S_ISFIFO(os.stat(fifo).st_mode) and _leftovers(tmp_path) == []


@pytest.mark.parametrize("command", COMMANDS + ("stop-tokens", "demo"))
@pytest.mark.slow
def test_bad_settings_are_reported_once(tmp_path, enc, command):
    src = tmp_path / "in.jsonl"
    src.write_text("\n".join(_good_lines(enc, command if command in COMMANDS else "render", 50)) + "\n")
    args = [command] + ([str(src), "--keep-going"] + _args(command) if command in COMMANDS else [])
    wrong = tmp_path / "wrong"
    wrong.mkdir()
    (wrong / "o200k_base.tiktoken").write_text("not a vocabulary\n")
    cases = [
        ({"HARMONY_NP_THREADS": "abc"}, "HARMONY_NP_THREADS must be a positive integer, got 'abc'"),
        ({"HARMONY_NP_THREADS": "0"}, "HARMONY_NP_THREADS must be a positive integer, got '0'"),
        ({"TIKTOKEN_ENCODINGS_BASE": str(tmp_path / "nowhere")}, "cannot read the o200k_base vocabulary"),
        ({"TIKTOKEN_ENCODINGS_BASE": str(wrong)}, "the file is corrupt or not o200k_base"),
    ]
    for setting, text in cases:
        r = run(args, env=dict(os.environ, **setting), check_rc=2)
        assert r.stdout == "" and len(r.stderr.splitlines()) == 1 and text in r.stderr, r.stderr


def _feed(proc, data: bytes) -> threading.Thread:
    """Write ``data`` to ``proc``'s stdin from a thread (until the child stops reading)."""

    def feed():
        try:
            proc.stdin.write(data)
            proc.stdin.close()
        except (BrokenPipeError, ValueError, OSError):
            pass

    t = threading.Thread(target=feed, daemon=True)
    t.start()
    return t


def _cycled(enc, command: str, base: list) -> list:
    """The output lines for ``base``, whole: what every output line of a longer run must equal."""
    r = run([command, "-", "-q"] + _args(command), stdin="\n".join(base) + "\n", check_rc=0)
    return r.stdout.encode().splitlines()


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.slow
def test_sigint_on_stdin_leaves_complete_lines(tmp_path, enc, command):
    base = _good_lines(enc, command, 100)
    expected = _cycled(enc, command, base)
    data = ("\n".join(base * 1000) + "\n").encode()  # 100,000 lines from a pipe: longer than the wait
    p = subprocess.Popen(CLI + [command, "-", "-q"] + _args(command), stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0)
    _feed(p, data)
    first = p.stdout.read(1)  # output has started (unbuffered: communicate() sees the rest)
    assert first
    time.sleep(0.2)
    p.send_signal(signal.SIGINT)
    rest, err = p.communicate(timeout=60)
    assert p.returncode == 130, err.decode()[-2000:]
    assert err.decode() == "harmony-np: interrupted\n"
    lines = (first + rest).split(b"\n")
    assert lines[-1] == b"" and 0 < len(lines) - 1 < 100_000
    assert all(line == expected[i % 100] for i, line in enumerate(lines[:-1]))


@pytest.mark.parametrize("command,sig", [(c, signal.SIGINT) for c in COMMANDS] + [("decode", signal.SIGTERM)])
@pytest.mark.slow
def test_interrupt_with_output_file_keeps_complete_lines(tmp_path, enc, command, sig):
    base = _good_lines(enc, command, 100)
    expected = _cycled(enc, command, base)
    src = tmp_path / "in.jsonl"
    src.write_text("\n".join(base * 1000) + "\n")
    target = tmp_path / "out.jsonl"
    target.write_text("old\n")
    p = subprocess.Popen(CLI + [command, str(src), "-o", str(target), "-q"] + _args(command),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30
    while not any(os.path.getsize(f) for f in _leftovers(tmp_path)):  # lines are being written
        assert time.monotonic() < deadline and p.poll() is None
        time.sleep(0.02)
    p.send_signal(sig)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 128 + sig, err.decode()[-2000:]
    assert b"Traceback" not in err
    lines = target.read_bytes().split(b"\n")  # the complete lines so far, in the target's place
    assert lines[-1] == b"" and 0 < len(lines) - 1 < 100_000
    assert all(line == expected[i % 100] for i, line in enumerate(lines[:-1]))
    assert _leftovers(tmp_path) == []


@pytest.mark.slow
def test_interrupted_npz_is_not_written(tmp_path, enc):
    src = tmp_path / "in.jsonl"
    src.write_text("\n".join(_good_lines(enc, "render", 100) * 1000) + "\n")
    target = tmp_path / "out.npz"
    target.write_bytes(b"old")
    p = subprocess.Popen(CLI + ["render", "--mode", "training", str(src), "-o", str(target), "-q"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    time.sleep(2.0)  # started, not done (100,000 conversations)
    assert p.poll() is None
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 130 and b"Traceback" not in err
    assert target.read_bytes() == b"old" and _leftovers(tmp_path) == []


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.slow
def test_closed_pipe_is_quiet(tmp_path, enc, command):
    src = tmp_path / "in.jsonl"
    src.write_text("\n".join(_good_lines(enc, command, 100) * 300) + "\n")
    p = subprocess.Popen(CLI + [command, str(src)] + _args(command), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert p.stdout.readline()  # as `| head -1`
    p.stdout.close()
    err = p.stderr.read()
    p.wait(timeout=60)
    assert p.returncode == 141 and err == b""
    r = subprocess.run(f"{' '.join(CLI)} {command} {src} {' '.join(_args(command))} | head -1", shell=True,
                       capture_output=True, timeout=60)
    assert r.returncode == 0 and r.stderr == b"" and len(r.stdout.splitlines()) == 1


@pytest.mark.slow
def test_training_mask_in_json_lines(tmp_path, hnp, enc):
    convs = conversations(hnp, 6)
    src = tmp_path / "c.jsonl"
    src.write_text("".join(c.to_json() + "\n" for c in convs))
    for args, kw in [(["--mode", "training"], dict(mode="training", loss_mask=True)),
                     (["--mode", "conversation", "--loss-mask"], dict(mode="conversation", loss_mask=True))]:
        rb = enc.render_batch(convs, **kw)
        rows = [json.loads(x) for x in run(["render", str(src)] + args, check_rc=0).stdout.splitlines()]
        assert [r["tokens"] for r in rows] == [rb[i].tolist() for i in range(6)]
        assert [r["loss_mask"] for r in rows] == [rb.row_mask(i).tolist() for i in range(6)]
        assert any(any(r["loss_mask"]) for r in rows)
    # the object lines feed parse and decode as they are
    train = tmp_path / "train.jsonl"
    run(["render", "--mode", "training", str(src), "-o", str(train)], check_rc=0)
    parsed = [json.loads(x) for x in run(["parse", str(train)], check_rc=0).stdout.splitlines()]
    rb = enc.render_batch(convs, mode="training")
    assert parsed == [[m.to_dict() for m in enc.parse_messages_from_completion_tokens(rb[i])] for i in range(6)]
    assert len(run(["decode", str(train)], check_rc=0).stdout.splitlines()) == 6


@pytest.mark.slow
def test_bad_npz_input_is_one_error(tmp_path):
    good = tmp_path / "good.npz"
    np.savez(good, tokens=np.arange(200006, 200010, dtype=np.uint32), offsets=np.array([0, 2, 4], np.int64))
    truncated = tmp_path / "truncated.npz"  # a zip's start: a BadZipFile traceback before
    truncated.write_bytes(good.read_bytes()[:300])
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"not a zip file")
    for bad in (truncated, garbage):
        for command in ("parse", "decode"):
            r = run([command, str(bad)], check_rc=2)
            assert r.stderr.startswith(f"harmony-np: {bad}: not a readable token .npz") and len(r.stderr.splitlines()) == 1
    # offsets that do not cut the tokens into rows (silently short or empty rows before)
    for offsets in ([0, 5], [0, 3, 2, 4], [1, 4], [0, -2, 4]):
        wrong = tmp_path / "wrong.npz"
        np.savez(wrong, tokens=np.arange(200006, 200010, dtype=np.uint32), offsets=np.array(offsets, np.int64))
        for command in ("parse", "decode"):
            r = run([command, str(wrong)], check_rc=2)
            assert "'offsets' rise from 0 to its length" in r.stderr, offsets


@pytest.mark.slow
def test_help_of_each_command():
    for command in COMMANDS + ("stop-tokens", "demo"):
        r = run([command, "--help"], check_rc=0)
        assert r.stdout.startswith(f"usage: harmony-np {command}")
    for command in COMMANDS:
        r = run([command, "--help"], check_rc=0)
        assert "--keep-going" in r.stdout and "exit codes:" in r.stdout and "--quiet" in r.stdout


def _shell_lines(text: str) -> list:
    return [line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def _run_examples(tmp_path, hnp, enc, lines) -> None:
    """Run each example line with bash in ``tmp_path``, ``harmony-np`` being this interpreter's
    ``-m harmony_np``, on small real files: every line must exit 0 (pipes included)."""
    convs = "".join(c.to_json() + "\n" for c in conversations(hnp, 3))
    for name in ("convs.jsonl", "conversations.jsonl"):
        (tmp_path / name).write_text(convs)
    completion = enc.encode("<|channel|>final<|message|>4<|return|>", allowed_special="all")
    (tmp_path / "completions.jsonl").write_text(json.dumps(completion) + "\n")
    (tmp_path / "rows.jsonl").write_text("".join(json.dumps(row) + "\n" for row in _chat_rows()[:2]))
    import pyarrow as pa  # the Parquet examples' inputs (pyarrow is a test dependency)
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"tokens": [completion]}), tmp_path / "completions.parquet")
    good, bare, _ = _chat_rows()
    pq.write_table(pa.table({"messages": [good["messages"], bare], "tools": [good["tools"], None]}), tmp_path / "chats.parquet")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "harmony-np").write_text(f'#!/bin/sh\nexec {sys.executable} -m harmony_np "$@"\n')
    os.chmod(bin_dir / "harmony-np", 0o755)
    env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    assert lines
    for line in lines:
        r = subprocess.run(["bash", "-o", "pipefail", "-c", line], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
        assert r.returncode == 0 and r.stderr == "", f"{line}\n{r.stderr}"
        assert "Traceback" not in r.stderr


@pytest.mark.slow
def test_readme_command_line_examples_run(tmp_path, hnp, enc):
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        section = f.read().split("## Command line", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```(?:bash)?\n(.*?)```", section, re.S).group(1)
    _run_examples(tmp_path, hnp, enc, _shell_lines(block))
    assert (tmp_path / "tokens.jsonl").exists() and (tmp_path / "train.npz").exists()


@pytest.mark.slow
def test_help_examples_run(tmp_path, hnp, enc):
    help_text = run(["--help"], check_rc=0).stdout
    examples = help_text.split("examples:", 1)[1].split("\n\n", 1)[0]
    _run_examples(tmp_path, hnp, enc, _shell_lines(examples))


def _chat_rows():
    tools = [{"type": "function", "function": {"name": "get_weather", "description": "Weather of a city",
              "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]
    good = {"messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Weather in Paris, caf\u00e9 time?"},
        {"role": "assistant", "thinking": "use the tool", "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]},
        {"role": "tool", "tool_call_id": "c1", "content": '{"t": 20}'},
        {"role": "assistant", "content": "20 degrees."},
    ], "tools": tools}
    bare = [{"role": "user", "content": "hi"}, {"role": "assistant", "thinking": "greet", "content": "hello"}]
    tagged = [{"role": "user", "content": "x"}, {"role": "assistant", "content": "<|channel|>final<|message|>y"}]
    return good, bare, tagged


@pytest.mark.slow
def test_render_from_chat_rows_equal_apply_chat_template(tmp_path, enc):
    # one line per chat row (the datasets' layout, or a bare list), bad rows as placeholders in
    # place; each good line is the row's apply_chat_template ids and assistant mask
    good, bare, tagged = _chat_rows()
    src = tmp_path / "chat.jsonl"
    src.write_text("\n".join([json.dumps(good), json.dumps(bare), "not json", json.dumps(tagged)]) + "\n")
    r = run(["render", "--from", "chat", "--date", "2025-08-05", "--keep-going", str(src)], check_rc=1)
    lines = [json.loads(x) for x in r.stdout.splitlines()]
    assert len(lines) == 4
    for line, (messages, tools) in zip(lines[:2], [(good["messages"], good["tools"]), (bare, None)]):
        want = enc.apply_chat_template(messages, tools=tools, return_dict=True, return_assistant_tokens_mask=True, date="2025-08-05")
        assert line == {"tokens": want["input_ids"], "loss_mask": want["assistant_masks"]}
    assert lines[2]["error_type"] == "JSONDecodeError" and lines[2]["line"] == 3
    assert lines[3]["error_type"] == "ChatTemplateError" and "<|channel|> tags in the content field" in lines[3]["error"]
    assert f"{src}:4: ChatTemplateError" in r.stderr


@pytest.mark.slow
def test_render_from_chat_through_harmony_and_parse_to_chat(tmp_path, enc):
    # --template harmony: from_chat, then the harmony renderer (training: the loss mask on); parse
    # --to chat gives back each completion's assistant chat message
    from harmony_np.chat import from_chat, to_chat

    good, bare, _ = _chat_rows()
    src = tmp_path / "chat.jsonl"
    src.write_text(json.dumps(good) + "\n" + json.dumps(bare) + "\n")
    r = run(["render", "--from", "chat", "--template", "harmony", str(src)], check_rc=0)
    lines = [json.loads(x) for x in r.stdout.splitlines()]
    for line, (messages, tools) in zip(lines, [(good["messages"], good["tools"]), (bare, None)]):
        rows = enc.render_batch([from_chat(messages, tools=tools)], mode="training", loss_mask=True)
        assert line == {"tokens": rows[0].tolist(), "loss_mask": rows.row_mask(0).tolist()}
    completion = enc.render_conversation(from_chat(bare))[-12:]
    start = len(completion) - completion[::-1].index(200006) - 1  # the last message, from its <|start|>
    comp = completion[start:]
    r = run(["parse", "--to", "chat", "-"], stdin=json.dumps(comp) + "\n", check_rc=0)
    assert json.loads(r.stdout) == to_chat(enc.parse_messages_from_completion_tokens(comp))


def test_parse_to_chat_keeps_going_past_a_completion_with_no_chat_form(enc):
    # a call to a built-in tool parses but has no chat form: that line becomes a placeholder in
    # its place and the lines after it are still parsed (it used to end the run with a traceback)
    from harmony_np.chat import to_chat

    good = enc.encode("<|start|>assistant<|channel|>final<|message|>Hi.<|return|>", allowed_special="all")
    builtin = enc.encode("<|start|>assistant<|channel|>analysis to=browser.search<|message|>{\"q\": \"x\"}<|call|>", allowed_special="all")
    stdin = "".join(json.dumps(t) + "\n" for t in (good, builtin, good))
    r = run(["parse", "--to", "chat", "--keep-going", "-"], stdin=stdin, check_rc=1)
    lines = [json.loads(x) for x in r.stdout.splitlines()]
    want = to_chat(enc.parse_messages_from_completion_tokens(good))
    assert lines[0] == want and lines[2] == want
    assert lines[1]["line"] == 2 and lines[1]["error_type"] == "ValueError" and "browser.search" in lines[1]["error"]
    assert "Traceback" not in r.stderr and "<stdin>:2: ValueError" in r.stderr
    stopped = run(["parse", "--to", "chat", "-"], stdin=stdin, check_rc=3)  # without --keep-going: stops there
    assert len(stopped.stdout.splitlines()) == 1 and "Traceback" not in stopped.stderr
