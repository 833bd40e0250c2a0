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
  harmony-np render --mode training - < conversations.jsonl
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


def _lines(stream: TextIO, quiet: bool, what: str) -> Iterator[Tuple[int, str]]:
    """(line number, text) of each non-blank line, with a progress bar on a terminal."""
    show = not quiet and sys.stderr.isatty()
    bar = None
    if show:
        from tqdm import tqdm

        bar = tqdm(unit=" " + what, file=sys.stderr, dynamic_ncols=True)
    try:
        for no, line in enumerate(stream, 1):
            if line.strip():
                yield no, line
                if bar is not None:
                    bar.update(1)
    finally:
        if bar is not None:
            bar.close()


def _encoding():
    from .encoding import load_harmony_encoding

    return load_harmony_encoding("HarmonyGptOss")


def _report(no: int, exc: Exception, src: str) -> None:
    print(f"harmony-np: {src}:{no}: {type(exc).__name__}: {exc}", file=sys.stderr)


def _run_lines(args, what: str, handle) -> int:
    failed = 0
    with _open_in(args.input) as fin:
        out = _open_out(args.output)
        try:
            for no, line in _lines(fin, args.quiet, what):
                try:
                    result = handle(line)
                except (ValueError, TypeError, KeyError, RuntimeError, OverflowError) as exc:
                    _report(no, exc, args.input)
                    failed += 1
                    if not args.keep_going:
                        return EXIT_FAILED
                    continue
                out.write(result)
                out.write("\n")
        finally:
            if out is not sys.stdout:
                out.close()
            else:
                out.flush()
    if failed:
        print(f"harmony-np: {failed} line(s) failed", file=sys.stderr)
        return EXIT_SOME_FAILED
    return EXIT_OK


def cmd_render(args) -> int:
    from .model import Conversation, RenderConversationConfig, Role

    enc = _encoding()
    cfg = RenderConversationConfig(auto_drop_analysis=not args.keep_analysis)
    next_role = Role(args.next_role)

    def handle(line: str) -> str:
        doc = json.loads(line)
        conv = Conversation.from_dict(doc if isinstance(doc, dict) and "messages" in doc else {"messages": doc})
        if args.mode == "completion":
            toks = enc.render_conversation_for_completion(conv, next_role, cfg)
        elif args.mode == "training":
            toks = enc.render_conversation_for_training(conv, cfg)
        else:
            toks = enc.render_conversation(conv, cfg)
        return json.dumps(toks)

    return _run_lines(args, "conversations", handle)


def _token_line(line: str) -> List[int]:
    doc = json.loads(line)
    if isinstance(doc, dict):
        doc = doc.get("tokens")
    if not isinstance(doc, list):
        raise ValueError("expected a JSON list of token ids (or an object with 'tokens')")
    return doc


def cmd_parse(args) -> int:
    from .model import Role

    enc = _encoding()
    role = Role(args.role) if args.role else None

    def handle(line: str) -> str:
        toks = _token_line(line)
        msgs = enc.parse_messages_from_completion_tokens(toks, role, strict=not args.non_strict)
        return json.dumps([m.to_dict() for m in msgs], ensure_ascii=False)

    return _run_lines(args, "completions", handle)


def cmd_decode(args) -> int:
    enc = _encoding()

    def handle(line: str) -> str:
        return json.dumps(enc.decode(_token_line(line)), ensure_ascii=False)

    return _run_lines(args, "lines", handle)


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

    sp = sub.add_parser("render", help="conversations (to_dict JSON, one per line) to token lists")
    io_args(sp)
    sp.add_argument("--mode", choices=["completion", "conversation", "training"], default="completion")
    sp.add_argument("--next-role", default="assistant", help="role of the next turn in completion mode")
    sp.add_argument("--keep-analysis", action="store_true", help="do not drop analysis messages before a final one")
    sp.set_defaults(func=cmd_render)

    sp = sub.add_parser("parse", help="completion token lists (one per line) to messages")
    io_args(sp)
    sp.add_argument("--role", default=None, help="role of the completion when it starts after '<|start|>role'")
    sp.add_argument("--non-strict", action="store_true", help="tolerate a missing <|message|> as the model sometimes writes")
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
        # a closed pipe (e.g. `| head`) is not an error of ours
        try:
            sys.stdout = None  # type: ignore[assignment]
        finally:
            return EXIT_OK
    except (OSError, ValueError) as exc:
        print(f"harmony-np: {exc}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
