"""The ``harmony-np`` command: render conversations, parse completions, decode tokens.

Input and output are JSON Lines; ``-`` means stdin/stdout. Exit codes: 0 success, 1 some input
lines failed (with ``--keep-going``), 2 usage error, 3 a line failed (without ``--keep-going``).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Iterator, List, Optional, TextIO, Tuple

from ._version import __version__

EXAMPLES = """\
examples:
  harmony-np demo
  harmony-np render conversations.jsonl -o tokens.jsonl
  harmony-np render --mode training conversations.jsonl -o train.npz
  harmony-np parse completions.jsonl --role assistant --non-strict
  harmony-np render --mode conversation convs.jsonl | harmony-np parse -
  echo '[200006, 173781, 200008, 12194, 200007]' | harmony-np decode -
  harmony-np stop-tokens
"""

EXIT_OK, EXIT_SOME_FAILED, EXIT_USAGE, EXIT_FAILED = 0, 1, 2, 3


def _open_in(path: str) -> TextIO:
    if path == "-":
        return sys.stdin
    return open(path, encoding="utf-8")


def _open_out(path: Optional[str]) -> TextIO:
    if path is None or path == "-":
        return sys.stdout
    return open(path, "w", encoding="utf-8")


def _close_out(out: Optional[TextIO]) -> None:
    """Close an output file; flush stdout (which stays open)."""
    if out is None:
        return
    if out is sys.stdout:
        out.flush()
    else:
        out.close()


def _encoding():
    from .encoding import load_harmony_encoding

    return load_harmony_encoding("HarmonyGptOss")


CHUNK = 4096  # lines per batch call


def _chunks(items: Iterator, size: int) -> Iterator[list]:
    chunk: list = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


class _Failures:
    """Bad input lines: reported on stderr by line number; stop at the first unless keep_going."""

    def __init__(self, src: str, keep_going: bool) -> None:
        self.src = src
        self.keep_going = keep_going
        self.count = 0

    def report(self, no: int, kind: str, text: str) -> None:
        print(f"harmony-np: {self.src}:{no}: {kind}: {text}", file=sys.stderr)
        self.count += 1
        if not self.keep_going:
            raise _Stop()

    def exit_code(self) -> int:
        if self.count:
            print(f"harmony-np: {self.count} line(s) failed", file=sys.stderr)
            return EXIT_SOME_FAILED
        return EXIT_OK


class _Stop(Exception):
    pass


class _Run:
    """A command's output and progress bar, closed however the command ends; a stop at a bad
    line (``_Stop``) ends the block and sets ``stopped``."""

    def __init__(self, out, bar=None) -> None:
        self.out = out
        self.bar = bar
        self.stopped = False

    def __enter__(self) -> "_Run":
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if self.bar is not None:
            self.bar.close()
        _close_out(self.out)
        self.stopped = exc_type is _Stop
        return self.stopped

    def exit_code(self, failures: "_Failures") -> int:
        return EXIT_FAILED if self.stopped else failures.exit_code()


def _progress(quiet: bool, what: str, total: Optional[int] = None):
    """A tqdm bar on stderr when it is a terminal (and not --quiet), else None."""
    if quiet or not sys.stderr.isatty():
        return None
    from tqdm import tqdm

    return tqdm(total=total, unit=" " + what, file=sys.stderr, dynamic_ncols=True)


def cmd_render(args) -> int:
    from .model import Conversation, RenderConversationConfig, Role

    enc = _encoding()
    cfg = RenderConversationConfig(auto_drop_analysis=not args.keep_analysis)
    next_role = Role(args.next_role)
    npz = args.output is not None and args.output.endswith(".npz")
    want_mask = args.mode == "training" or args.loss_mask
    failures = _Failures(args.input, args.keep_going)
    rows_tokens, rows_offsets, rows_mask, rows_line = [], [0], [], []
    run = _Run(None if npz else _open_out(args.output), _progress(args.quiet, "conversations"))
    out, bar = run.out, run.bar
    with run:
        with _open_in(args.input) as fin:
            lines = ((no, line) for no, line in enumerate(fin, 1) if line.strip())
            for chunk in _chunks(lines, CHUNK):
                convs, nos = [], []
                for no, line in chunk:
                    try:
                        doc = json.loads(line)
                        conv = Conversation.from_dict(doc if isinstance(doc, dict) and "messages" in doc else {"messages": doc})
                    except (ValueError, TypeError, KeyError, AttributeError) as exc:
                        failures.report(no, type(exc).__name__, str(exc))
                        continue
                    convs.append(conv)
                    nos.append(no)
                result = _render_chunk(enc, convs, nos, args.mode, next_role, cfg, want_mask, failures)
                for no, toks, mask in result:
                    if npz:
                        rows_tokens.append(toks)
                        rows_offsets.append(rows_offsets[-1] + len(toks))
                        if want_mask:
                            rows_mask.append(mask)
                        rows_line.append(no)
                    else:
                        out.write(json.dumps(toks.tolist()))
                        out.write("\n")
                if bar is not None:
                    bar.update(len(chunk))
    if run.stopped:
        return EXIT_FAILED
    if npz:
        import numpy as np

        arrays = {
            "tokens": np.concatenate(rows_tokens) if rows_tokens else np.empty(0, np.uint32),
            "offsets": np.asarray(rows_offsets, dtype=np.int64),
            "line": np.asarray(rows_line, dtype=np.int64),
        }
        if want_mask:
            arrays["loss_mask"] = np.concatenate(rows_mask) if rows_mask else np.empty(0, np.uint8)
        np.savez(args.output, **arrays)
    return failures.exit_code()


def _render_chunk(enc, convs, nos, mode, next_role, cfg, want_mask, failures):
    """(line number, tokens, mask) of each conversation that renders; the rest reported."""
    try:
        rb = enc.render_batch(convs, mode=mode, next_role=next_role, config=cfg, loss_mask=want_mask)
    except (ValueError, TypeError, RuntimeError):
        # some conversation is bad: render one by one to report each by its line
        out = []
        for no, conv in zip(nos, convs):
            try:
                one = enc.render_batch([conv], mode=mode, next_role=next_role, config=cfg, loss_mask=want_mask)
            except (ValueError, TypeError, RuntimeError) as exc:
                failures.report(no, type(exc).__name__, str(exc).replace("conversation 0: ", "", 1))
                continue
            out.append((no, one[0], one.row_mask(0) if want_mask else None))
        return out
    return [(no, rb[i], rb.row_mask(i) if want_mask else None) for i, no in enumerate(nos)]


def _token_line(line: str) -> List[int]:
    doc = json.loads(line)
    if isinstance(doc, dict):
        doc = doc.get("tokens")
    if not isinstance(doc, list):
        raise ValueError("expected a JSON list of token ids (or an object with 'tokens')")
    return doc


def _completion_chunks(path: str) -> Iterator[Tuple[list, list]]:
    """Chunks of (line numbers, token lists) from JSON Lines or an .npz (tokens, offsets); a
    line that is not a token list comes as its ``ValueError``, in its place."""
    if path.endswith(".npz"):
        import numpy as np

        with np.load(path) as data:
            if "tokens" not in data or "offsets" not in data:
                raise ValueError(f"{path}: an .npz input needs arrays 'tokens' and 'offsets'")
            tokens, offsets = data["tokens"], data["offsets"]
            lines = data["line"] if "line" in data else np.arange(1, offsets.shape[0])
        n = offsets.shape[0] - 1
        for a in range(0, n, CHUNK):
            z = min(n, a + CHUNK)
            yield lines[a:z].tolist(), [tokens[offsets[i] : offsets[i + 1]] for i in range(a, z)]
        return
    with _open_in(path) as fin:
        lines = ((no, line) for no, line in enumerate(fin, 1) if line.strip())
        for chunk in _chunks(lines, CHUNK):
            nos, comps = [], []
            for no, line in chunk:
                try:
                    toks = _token_line(line)
                except ValueError as exc:
                    toks = exc
                nos.append(no)
                comps.append(toks)
            yield nos, comps


def _error_line(out, failures: "_Failures", no: int, kind: str, text: str) -> None:
    """Report a bad line and write its error in its place, so that output lines stay aligned
    with input lines."""
    failures.report(no, kind, text)
    out.write(json.dumps({"error": text, "error_type": kind}, ensure_ascii=False))
    out.write("\n")


def cmd_parse(args) -> int:
    from .model import Role

    enc = _encoding()
    role = Role(args.role) if args.role else None
    failures = _Failures(args.input, args.keep_going)
    run = _Run(_open_out(args.output), _progress(args.quiet, "completions"))
    out, bar = run.out, run.bar
    with run:
        mode = "recover" if args.recover else "collect"
        for nos, comps in _completion_chunks(args.input):
            good = [c for c in comps if not isinstance(c, ValueError)]
            table = enc.parse_batch(good, role=role, strict=not args.non_strict, errors=mode)
            results = iter(zip(table.to_messages(), table.errors, table.error_types))
            for no, comp in zip(nos, comps):
                if isinstance(comp, ValueError):
                    _error_line(out, failures, no, "ValueError", str(comp))
                    continue
                msgs, err, kind = next(results)
                if err is not None and not (args.recover and kind == "HarmonyError"):
                    _error_line(out, failures, no, kind, err)
                    continue
                if err is not None:
                    # recovered: the messages, and what was repaired, by line
                    print(f"harmony-np: {args.input}:{no}: recovered: {err}", file=sys.stderr)
                out.write(json.dumps([m.to_dict() for m in msgs], ensure_ascii=False))
                out.write("\n")
            if bar is not None:
                bar.update(len(nos))
    return run.exit_code(failures)


def cmd_decode(args) -> int:
    enc = _encoding()
    failures = _Failures(args.input, args.keep_going)
    run = _Run(_open_out(args.output))
    out = run.out
    with run:
        for nos, comps in _completion_chunks(args.input):
            for no, toks in zip(nos, comps):
                try:
                    if isinstance(toks, ValueError):
                        raise toks
                    text = enc.decode(toks)
                except (ValueError, TypeError, RuntimeError, OverflowError) as exc:
                    _error_line(out, failures, no, type(exc).__name__, str(exc))
                    continue
                out.write(json.dumps(text, ensure_ascii=False))
                out.write("\n")
    return run.exit_code(failures)


def cmd_stop_tokens(args) -> int:
    enc = _encoding()
    toks = enc.stop_tokens_for_assistant_actions() if args.assistant_actions else enc.stop_tokens()
    print(json.dumps(toks))
    return EXIT_OK


def cmd_demo(args) -> int:
    from . import (
        Conversation,
        DeveloperContent,
        Message,
        Role,
        SystemContent,
        ToolDescription,
    )

    enc = _encoding()
    convo = Conversation.from_messages(
        [
            Message.from_role_and_content(Role.SYSTEM, SystemContent.new().with_conversation_start_date("2025-09-20")),
            Message.from_role_and_content(
                Role.DEVELOPER,
                DeveloperContent.new()
                .with_instructions("Answer in one sentence.")
                .with_function_tools(
                    [
                        ToolDescription.new(
                            "get_weather",
                            "Gets the current weather.",
                            {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
                        )
                    ]
                ),
            ),
            Message.from_role_and_content(Role.USER, "What is the weather in Paris?"),
        ]
    )
    prompt = enc.render_conversation_for_completion_np(convo, Role.ASSISTANT)
    print(f"rendered prompt: {len(prompt)} tokens (uint32 array)")
    print(prompt.tolist())
    print()
    print(enc.decode_utf8(prompt))
    completion_text = (
        "<|channel|>analysis<|message|>The user wants the weather in Paris; call the tool.<|end|>"
        "<|start|>assistant<|channel|>commentary to=functions.get_weather <|constrain|>json"
        '<|message|>{"city": "Paris"}<|call|>'
    )
    completion = enc.encode(completion_text, allowed_special="all")
    print()
    print(f"completion: {len(completion)} tokens")
    print(completion)
    print()
    print("parsed messages:")
    for m in enc.parse_messages_from_completion_tokens(completion, Role.ASSISTANT):
        print(json.dumps(m.to_dict(), ensure_ascii=False))
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="harmony-np",
        description="Render and parse gpt-oss Harmony conversations (a fast openai_harmony).",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--version", action="version", version=f"harmony-np {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    def io_args(sp):
        sp.add_argument("input", nargs="?", default="-", help="JSON Lines input file, or - for stdin (default)")
        sp.add_argument("-o", "--output", default=None, help="output file (default: stdout)")
        sp.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
        sp.add_argument("--keep-going", action="store_true", help="report bad lines and go on; exit 1 at the end if any failed")

    sp = sub.add_parser(
        "render",
        help="conversations (to_dict JSON, one per line) to token lists",
        description="Render conversations. Output: JSON Lines of token lists, or an .npz (-o x.npz) "
        "with tokens, offsets, line (input line of each row) and, in training mode, loss_mask.",
    )
    io_args(sp)
    sp.add_argument("--mode", choices=["completion", "conversation", "training"], default="completion")
    sp.add_argument("--next-role", default="assistant", help="role of the next turn in completion mode")
    sp.add_argument("--keep-analysis", action="store_true", help="do not drop analysis messages before a final one")
    sp.add_argument("--loss-mask", action="store_true", help="also write the loss mask to an .npz (always in training mode)")
    sp.set_defaults(func=cmd_render)

    sp = sub.add_parser(
        "parse",
        help="completion token lists (one per line, or an .npz) to messages",
        description="Parse completions: one JSON line of messages per input line. A completion that "
        "fails is reported on stderr with its line number (and, with --keep-going, written as "
        '{"error": ...} so that output lines stay aligned with input lines).',
    )
    io_args(sp)
    sp.add_argument("--role", default=None, help="role of the completion when it starts after '<|start|>role'")
    sp.add_argument("--non-strict", action="store_true", help="tolerate a missing <|message|> as the model sometimes writes")
    sp.add_argument("--recover", action="store_true", help="read malformed completions by the recovery rules instead of failing (docs/recovery.md)")
    sp.set_defaults(func=cmd_parse)

    sp = sub.add_parser("decode", help="token lists (one per line) to text")
    io_args(sp)
    sp.set_defaults(func=cmd_decode)

    sp = sub.add_parser("stop-tokens", help="print the stop tokens")
    sp.add_argument("--assistant-actions", action="store_true", help="only <|return|> and <|call|>")
    sp.set_defaults(func=cmd_stop_tokens)

    sp = sub.add_parser("demo", help="render a conversation and parse a completion, printing both")
    sp.set_defaults(func=cmd_demo)
    return p


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return EXIT_USAGE
    try:
        return args.func(args)
    except BrokenPipeError:
        # a closed pipe (e.g. `| head`) is not an error of ours; point stdout at /dev/null so
        # that the interpreter's final flush does not fail again
        import os

        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK
    except (OSError, ValueError) as exc:
        print(f"harmony-np: {exc}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
