"""The ``harmony-np`` command: render conversations, parse completions, decode tokens.

Input and output are JSON Lines (``-`` means stdin/stdout), or Parquet files (``.parquet``, in and
out, streamed a batch of rows at a time by :mod:`harmony_np.parquet_io`). Input is read as bytes and each line
is decoded by itself, so a line that is not UTF-8 or not JSON (or JSON nested too deeply) is one
bad line, reported on stderr as ``FILE:LINE: TYPE: TEXT``.

Exit codes: 0 success; 1 some lines failed (with ``--keep-going``); 2 usage, setting or file
error (``-o FILE`` then left as it was); 3 a line failed (without ``--keep-going``: the output lines
before it are written); 130 interrupted (SIGINT; 143 for SIGTERM): the output holds the complete
lines written so far; 141 the reader of stdout went away (``| head``), quietly.

``-o FILE`` is written to a temporary file beside FILE that replaces FILE at the end (FILE's
permissions kept), so a failed run leaves FILE as it was; an output that is the input is refused.
An ``.npz`` output is written whole or not at all.
"""

from __future__ import annotations

import argparse
import codecs
import contextlib
import json
import os
import signal
import stat
import sys
import tempfile
import threading
from typing import Iterator, List, NamedTuple, Optional, Tuple, Union

from ._version import __version__
from .errors import DATA_ERRORS

EXAMPLES = """\
examples:
  harmony-np demo
  harmony-np render --mode conversation conversations.jsonl -o tokens.jsonl
  harmony-np parse tokens.jsonl
  harmony-np render conversations.jsonl -o prompts.jsonl      # prompts ending <|start|>assistant
  harmony-np parse completions.jsonl --role assistant --non-strict
  harmony-np render --mode training conversations.jsonl -o train.npz
  harmony-np render --mode conversation conversations.jsonl | harmony-np parse -
  echo '[200006, 173781, 200008, 12194, 200007]' | harmony-np decode -
  harmony-np parse completions.parquet -o messages.parquet --column tokens --role assistant
  harmony-np render --from chat chats.parquet -o train.parquet
  harmony-np stop-tokens
"""

PARQUET = """\
PARQUET: an input FILE.parquet is read a batch of rows at a time (--batch-rows, 4,096: memory
  stays bounded however large the file), each batch written as a row group of -o FILE.parquet:
  the input's columns, the new ones (render: input_ids, assistant_masks; parse: messages, or with
  --to chat content, reasoning_content, tool_calls; decode: text) and error, error_type (null
  where the row is fine). A bad row is reported on stderr as FILE:row N (N counts from 0) and,
  with --keep-going, stays in its place with its error; without, the run stops there with the
  rows before it written. On SIGINT the row groups written so far are a valid file. Parquet goes
  to Parquet only: Parquet to JSON Lines or stdout, Parquet on stdin, or JSON Lines or .npz into
  FILE.parquet are refused (exit 2). render reads chat rows (--from chat). Needs pyarrow:
  pip install 'harmony-np[arrow]'.
"""

EXIT_CODES = """\
exit codes: 0 done; 1 some lines failed (--keep-going); 2 usage, setting or file error;
  3 a line failed (the lines before it are written); 130 interrupted (the complete lines so far
  are kept, in -o FILE too; an .npz is not written); 141 stdout closed by its reader (| head)
"""

EXIT_OK, EXIT_SOME_FAILED, EXIT_USAGE, EXIT_FAILED = 0, 1, 2, 3
EXIT_BROKEN_PIPE = 128 + 13  # as a Unix tool killed by SIGPIPE

CHUNK = 4096  # lines per batch call
_FLUSH_AT = 1 << 16  # bytes of complete lines held before they are written



class _Usage(Exception):
    """A bad setting, file or option: reported in one line, exit 2."""


class _Stop(Exception):
    """A bad line without ``--keep-going``: the run ends there."""


class _Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM arrived."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


class _Signals:
    """SIGINT and SIGTERM raise :class:`_Interrupted`, except while complete lines are being
    written (``held``): then the signal waits until the write is done, so that an output never
    ends in part of a line. Only the first signal raises: the cleanup it starts (writing the
    lines held, renaming the output) is not cut short by a second one."""

    def __init__(self) -> None:
        self.holding = 0
        self.pending: Optional[int] = None
        self.fired = False
        self._saved: dict = {}

    def install(self) -> None:
        self.holding, self.pending, self.fired = 0, None, False
        if threading.current_thread() is not threading.main_thread():
            return  # signal handlers can only be set from the main thread
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._saved[sig] = signal.signal(sig, self._handler)

    def restore(self) -> None:
        for sig, old in self._saved.items():
            signal.signal(sig, old)
        self._saved.clear()

    def _handler(self, signum, frame) -> None:
        if self.fired:
            return
        if self.holding:
            self.pending = signum
            return
        self.fired = True
        raise _Interrupted(signum)

    @contextlib.contextmanager
    def held(self, reraise: bool = True):
        """Defer SIGINT/SIGTERM over the block; raise it after (if ``reraise``)."""
        self.holding += 1
        try:
            yield
        finally:
            self.holding -= 1
        if not self.holding and self.pending is not None:
            signum, self.pending = self.pending, None
            if reraise and not self.fired:
                self.fired = True
                raise _Interrupted(signum)


_signals = _Signals()
_temps: set = set()  # temporary outputs not yet in place: removed by main() however it ends


class _Bad(NamedTuple):
    """A bad input line: the error's type name and text."""

    kind: str
    text: str


def _bad(exc: BaseException) -> _Bad:
    return _Bad(type(exc).__name__, str(exc))


def _json(text: str):
    """``json.loads``, with too deep a nesting a ``ValueError`` like any other bad JSON."""
    try:
        return json.loads(text)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None


def _same_file(a: Optional[os.stat_result], b: Optional[os.stat_result]) -> bool:
    return a is not None and b is not None and stat.S_ISREG(a.st_mode) and (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


class _Source:
    """An input file (or stdin, ``-``) read as bytes; ``done`` counts the lines (or .npz rows)
    read so far, for the progress bar."""

    def __init__(self, path: str, npz_ok: bool = False) -> None:
        self.path = path
        self.name = "<stdin>" if path == "-" else path
        self.file = sys.stdin.buffer if path == "-" else open(path, "rb")
        self.stat = os.fstat(self.file.fileno())
        self.done = 0
        self.npz: Optional[tuple] = None
        if npz_ok and path.endswith(".npz"):
            self.npz = self._load_npz()

    def __enter__(self) -> "_Source":
        return self

    def __exit__(self, *exc) -> None:
        if self.file is not sys.stdin.buffer:
            self.file.close()

    def total(self) -> Optional[int]:
        """How many lines (or rows) there are, when that can be known before reading them."""
        if self.npz is not None:
            return len(self.npz[2])
        if not stat.S_ISREG(self.stat.st_mode):
            return None
        n, last = 0, b"\n"
        with open(self.file.fileno(), "rb", closefd=False) as f:
            pos = f.tell()
            f.seek(0)
            for block in iter(lambda: f.read(1 << 20), b""):
                n += block.count(b"\n")
                last = block[-1:]
            f.seek(pos)
        return n + (last != b"\n")

    def lines(self) -> Iterator[Tuple[int, Union[str, _Bad]]]:
        """(line number, text) of each line that is not blank; a line that is not UTF-8 comes
        as its :class:`_Bad`."""
        for no, raw in enumerate(self.file, 1):
            self.done = no
            if no == 1 and raw.startswith(codecs.BOM_UTF8):
                raw = raw[len(codecs.BOM_UTF8) :]
            if not raw.strip():
                continue
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                text = _Bad("UnicodeDecodeError", f"invalid UTF-8 at byte {exc.start} of the line: {exc.reason}")
            yield no, text

    def _load_npz(self) -> tuple:
        import zipfile

        import numpy as np

        from .gate import offsets_problem

        try:
            with np.load(self.file) as data:
                if "tokens" not in data or "offsets" not in data:
                    raise ValueError("an .npz input needs arrays 'tokens' and 'offsets'")
                tokens, offsets = data["tokens"], data["offsets"]
                lines = data["line"] if "line" in data else None
        except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as exc:
            raise _Usage(f"{self.name}: not a readable token .npz: {exc}") from None
        # the rows' ids are each checked where they are used (one bad row is one bad line);
        # the layout is checked here, by the input gate's rule
        ok = tokens.ndim == 1 and offsets.ndim == 1 and offsets.shape[0] >= 1
        ok = ok and tokens.dtype.kind in "iu" and offsets.dtype.kind in "iu"
        problem = offsets_problem(offsets, tokens.shape[0], whole=True) if ok else "not 1-D integer arrays"
        if problem is not None:
            raise _Usage(f"{self.name}: 'tokens' must be a 1-D integer array and 'offsets' rise from 0 to its length ({problem})")
        n = offsets.shape[0] - 1
        if lines is None:
            lines = np.arange(1, n + 1)
        elif lines.shape != (n,) or lines.dtype.kind not in "iu":
            raise _Usage(f"{self.name}: 'line' must hold one integer per row ({n})")
        return tokens, offsets.astype(np.int64), lines.tolist()


class _Sink:
    """Where a command's output goes: stdout, or ``-o FILE`` through a temporary file beside
    FILE (a FIFO or device is written in place). Output is whole lines (``line``); they are
    written in blocks, each write held against SIGINT, so the output only ever ends at a line's
    end. ``commit`` puts the temporary file in FILE's place, ``discard`` removes it."""

    def __init__(self, path: Optional[str], source: Optional[_Source]) -> None:
        self.parts: List[bytes] = []
        self.size = 0
        self.tmp: Optional[str] = None
        self.target: Optional[str] = None
        self.closed = False
        src_stat = source.stat if source is not None else None
        if path is None or path == "-":
            self.fd = sys.stdout.fileno()
            self.own_fd = False
            if _same_file(src_stat, os.fstat(self.fd)):
                raise _Usage(f"stdout is the input file {source.name}: write to another file")
            sys.stdout.flush()
            return
        target = os.path.realpath(path)  # through symlinks: replace the file, not the link
        try:
            st: Optional[os.stat_result] = os.stat(target)
        except FileNotFoundError:
            st = None
        if _same_file(src_stat, st):
            raise _Usage(f"the output {path} is the input file {source.name}: write to another file")
        self.own_fd = True
        if st is not None and not stat.S_ISREG(st.st_mode):
            self.fd = os.open(target, os.O_WRONLY)  # /dev/null, a FIFO: nothing to replace
            return
        folder, base = os.path.split(target)
        try:
            with _signals.held():  # no signal between the file's creation and its record
                self.fd, self.tmp = tempfile.mkstemp(dir=folder, prefix=f".{base}.", suffix=".part")
                _temps.add(self.tmp)
        except OSError as exc:
            raise _Usage(f"cannot write beside {path}: {exc}") from None
        self.target = target
        if st is not None:
            os.fchmod(self.fd, stat.S_IMODE(st.st_mode))
            with contextlib.suppress(OSError):
                os.fchown(self.fd, st.st_uid, st.st_gid)
        else:
            from .parquet_io import new_file_mode

            os.fchmod(self.fd, new_file_mode())

    def line(self, text: str) -> None:
        """Add one output line (``text`` without its newline)."""
        # a lone surrogate can only stand in a JSON string, where \\udXXX is its escape
        data = text.encode("utf-8", "backslashreplace")
        self.parts.append(data)
        self.size += len(data) + 1
        if self.size >= _FLUSH_AT:
            self.flush()

    def flush(self) -> None:
        """Write the lines held so far, all of them, before a signal can stop it."""
        if not self.parts:
            return
        with _signals.held():
            view = memoryview(b"\n".join(self.parts) + b"\n")
            while view:
                view = view[os.write(self.fd, view) :]
            self.parts.clear()
            self.size = 0

    def binary(self):
        """A binary file object on the output, for a whole-file format (.npz)."""
        return open(self.fd, "wb", closefd=False)

    def commit(self) -> None:
        """Write what is held and put the output in place."""
        if self.closed:
            return
        try:
            self.flush()
            if self.tmp is not None:
                os.fsync(self.fd)
        except BaseException:
            self.discard()
            raise
        self._close()
        if self.tmp is not None:
            try:
                os.replace(self.tmp, self.target)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(self.tmp)
                raise
            _temps.discard(self.tmp)
            self.tmp = None
            with contextlib.suppress(OSError):  # make the rename itself durable
                dfd = os.open(os.path.dirname(self.target), os.O_RDONLY)
                try:
                    os.fsync(dfd)
                finally:
                    os.close(dfd)

    def discard(self) -> None:
        """Drop the temporary file (FILE stays as it was); on stdout, write the whole lines
        held, as a pipe has the lines before them already."""
        if self.closed:
            return
        if self.tmp is None:
            with contextlib.suppress(OSError):
                self.flush()
        self.parts.clear()
        self._close()
        if self.tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(self.tmp)
            _temps.discard(self.tmp)
            self.tmp = None

    def _close(self) -> None:
        self.closed = True
        if self.own_fd:
            os.close(self.fd)


def _encoding():
    """The encoding, with the settings checked once: a bad ``HARMONY_NP_THREADS`` or vocabulary
    (``TIKTOKEN_ENCODINGS_BASE``) is a :class:`_Usage` error, not one error per line."""
    from .threads import thread_count
    from .vocab import VocabularyError

    try:
        thread_count()
    except ValueError as exc:
        raise _Usage(str(exc)) from None
    from .encoding import load_harmony_encoding

    try:
        return load_harmony_encoding("HarmonyGptOss")
    except (VocabularyError, OSError) as exc:
        where = os.environ.get("TIKTOKEN_ENCODINGS_BASE")
        raise _Usage((f"TIKTOKEN_ENCODINGS_BASE={where}: " if where else "") + str(exc)) from None


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

    def __init__(self, src: str, keep_going: bool, unit: str = "line") -> None:
        self.src = src
        self.keep_going = keep_going
        self.unit = unit
        self.count = 0

    def report(self, no: Union[int, str], bad: _Bad) -> None:
        print(f"harmony-np: {self.src}:{no}: {bad.kind}: {bad.text}", file=sys.stderr)
        self.count += 1
        if not self.keep_going:
            raise _Stop()

    def exit_code(self) -> int:
        if self.count:
            print(f"harmony-np: {self.count} {self.unit}(s) failed", file=sys.stderr)
            return EXIT_SOME_FAILED
        return EXIT_OK


def _placeholder(no: int, bad: _Bad) -> str:
    """The output line in a bad input line's place (with --keep-going), so that output lines
    stay aligned with input lines: the same shape for every command."""
    return json.dumps({"error": bad.text, "error_type": bad.kind, "line": no}, ensure_ascii=False)


def _progress(quiet: bool, what: str, source: _Source):
    """A tqdm bar on stderr when it is a terminal (and not --quiet), else None; with a total
    when the input is a file."""
    if quiet or not sys.stderr.isatty():
        return None
    from tqdm import tqdm

    return tqdm(total=source.total(), unit=" " + what, file=sys.stderr, dynamic_ncols=True)


class _Run:
    """A command's input, output and progress bar. However the block ends, the bar is closed
    and the output committed (the end, a stop at a bad line, an interruption: the complete
    lines so far) or discarded (any other error; always for a whole-file output, unless the
    block ended normally). A stop (``_Stop``) ends the block and sets ``stopped``."""

    def __init__(self, source: _Source, output: Optional[str], quiet: bool, what: str, whole_file: bool = False) -> None:
        self.source = source
        self.whole_file = whole_file
        self.stopped = False
        self.out = _Sink(output, source)
        self.bar = _progress(quiet, what, source)

    def __enter__(self) -> "_Run":
        return self

    def progress(self) -> None:
        """Write the lines held and move the bar to the lines read so far."""
        self.out.flush()
        if self.bar is not None:
            self.bar.update(self.source.done - self.bar.n)

    def __exit__(self, exc_type, exc, tb) -> bool:
        self.stopped = exc_type is _Stop
        # the output is put in place with any further signal held off; then a signal counts,
        # unless an error is on its way out already
        with _signals.held(reraise=exc_type is None or exc_type is _Stop):
            if self.bar is not None:
                with contextlib.suppress(Exception):
                    self.bar.close()
            partial = exc_type is not None and issubclass(exc_type, (_Stop, _Interrupted))
            if exc_type is None or (partial and not self.whole_file):
                self.out.commit()
            else:
                self.out.discard()
        return self.stopped

    def exit_code(self, failures: _Failures) -> int:
        return EXIT_FAILED if self.stopped else failures.exit_code()


def cmd_render(args) -> int:
    if _parquet_paths(args):
        return _parquet_render(args)
    from .model import RenderConversationConfig, Role

    enc = _encoding()
    cfg = RenderConversationConfig(auto_drop_analysis=not args.keep_analysis)
    next_role = Role(args.next_role)
    npz = args.output is not None and args.output.endswith(".npz")
    chat = args.source_format == "chat"
    mode = args.mode or ("training" if chat else "completion")
    want_mask = mode == "training" or args.loss_mask or chat
    rows_tokens, rows_offsets, rows_mask, rows_line = [], [0], [], []
    with _Source(args.input) as src, _Run(src, args.output, args.quiet, "conversations", whole_file=npz) as run:
        failures = _Failures(src.name, args.keep_going)
        out = run.out
        for chunk in _chunks(src.lines(), CHUNK):
            rendered = (
                _render_chat_chunk(enc, chunk, mode, args) if chat else _render_chunk(enc, chunk, mode, next_role, cfg, want_mask)
            )
            for no, toks, mask in rendered:
                if isinstance(toks, _Bad):
                    failures.report(no, toks)
                    if not npz:
                        out.line(_placeholder(no, toks))
                elif npz:
                    rows_tokens.append(toks)
                    rows_offsets.append(rows_offsets[-1] + len(toks))
                    if want_mask:
                        rows_mask.append(mask)
                    rows_line.append(no)
                elif want_mask:
                    out.line(f'{{"tokens": {json.dumps(toks.tolist())}, "loss_mask": {json.dumps(mask.tolist())}}}')
                else:
                    out.line(json.dumps(toks.tolist()))
            run.progress()
        if npz:
            import numpy as np

            arrays = {
                "tokens": np.concatenate(rows_tokens) if rows_tokens else np.empty(0, np.uint32),
                "offsets": np.asarray(rows_offsets, dtype=np.int64),
                "line": np.asarray(rows_line, dtype=np.int64),
            }
            if want_mask:
                arrays["loss_mask"] = np.concatenate(rows_mask) if rows_mask else np.empty(0, np.uint8)
            with out.binary() as f:
                np.savez(f, **arrays)
    return run.exit_code(failures)


def _read_lines(chunk, convert) -> list:
    """``(line number, convert(text) or :class:`_Bad`)`` of each line of ``chunk``: a line that
    ``convert`` refuses becomes its :class:`_Bad`, in its place."""
    rows: list = []
    for no, text in chunk:
        if not isinstance(text, _Bad):
            try:
                text = convert(text)
            except DATA_ERRORS as exc:
                text = _bad(exc)
        rows.append((no, text))
    return rows


def _render_chunk(enc, chunk, mode, next_role, cfg, want_mask) -> list:
    """(line number, tokens or :class:`_Bad`, mask or None) of each line of ``chunk``, in order."""
    from .model import Conversation

    def conversation(text: str):
        doc = _json(text)
        return Conversation.from_dict(doc if isinstance(doc, dict) and "messages" in doc else {"messages": doc})

    kw = dict(mode=mode, next_role=next_role, config=cfg, loss_mask=want_mask)
    return _rendered_in_place(_read_lines(chunk, conversation), lambda convs: enc.render_batch(convs, **kw), want_mask)


def _rendered_in_place(rows: list, render, want_mask: bool) -> list:
    """``(line number, tokens or :class:`_Bad`, mask or None)`` of each of ``rows`` (``(line
    number, item or :class:`_Bad`)``): the good items in one ``render`` call (a list of them to a
    :class:`RaggedTokens`) or, when one of them fails, one call each, to tell which."""
    good = [item for _, item in rows if not isinstance(item, _Bad)]
    try:
        rb = render(good)
        rendered = iter([(rb[i], rb.row_mask(i) if want_mask else None) for i in range(len(good))])
    except DATA_ERRORS:
        one_by_one = []
        for item in good:
            try:
                one = render([item])
            except DATA_ERRORS as exc:
                one_by_one.append((_Bad(type(exc).__name__, str(exc).replace("conversation 0: ", "", 1)), None))
                continue
            one_by_one.append((one[0], one.row_mask(0) if want_mask else None))
        rendered = iter(one_by_one)
    return [(no, item, None) if isinstance(item, _Bad) else (no, *next(rendered)) for no, item in rows]


def _chat_row(text: str) -> tuple:
    """``(messages, tools)`` of a chat dataset's line: ``{"messages": [...], "tools": [...]}`` or a
    bare list of messages."""
    doc = _json(text)
    if isinstance(doc, dict) and "messages" in doc:
        messages, tools = doc["messages"], doc.get("tools")
    elif isinstance(doc, list):
        messages, tools = doc, None
    else:
        raise ValueError("expected a chat row: an object with 'messages' (and optional 'tools') or a list of messages")
    if not isinstance(messages, list):
        raise TypeError(f"'messages' must be a list of chat messages, got {type(messages).__name__}")
    return messages, tools


def _render_chat_chunk(enc, chunk, mode: str, args) -> list:
    """(line number, tokens or :class:`_Bad`, mask) of each chat row of ``chunk``, in order."""
    if args.template == "harmony":
        from .chat import from_chat
        from .model import RenderConversationConfig, Role

        def conversation(text: str):
            messages, tools = _chat_row(text)
            return from_chat(messages, tools=tools, reasoning_effort=args.reasoning_effort, model_identity=args.model_identity, conversation_start_date=args.date)

        kw = dict(mode=mode, next_role=Role.ASSISTANT, config=RenderConversationConfig(auto_drop_analysis=not args.keep_analysis), loss_mask=True)
        return _rendered_in_place(_read_lines(chunk, conversation), lambda convs: enc.render_batch(convs, **kw), True)
    from .chat_render import render_rows

    kw = dict(add_generation_prompt=mode == "completion", reasoning_effort=args.reasoning_effort, model_identity=args.model_identity, date=args.date)
    return _rendered_in_place(_read_lines(chunk, _chat_row), lambda rows: render_rows(enc, rows, **kw), True)


def _token_line(text: str) -> list:
    doc = _json(text)
    if isinstance(doc, dict):
        doc = doc.get("tokens")
    if not isinstance(doc, list):
        raise ValueError("expected a JSON list of token ids (or an object with 'tokens')")
    return doc


def _completion_chunks(src: _Source) -> Iterator[Tuple[list, list]]:
    """Chunks of (line numbers, token lists) from JSON Lines or an .npz (tokens, offsets); a
    line that is not a token list comes as its :class:`_Bad`, in its place."""
    if src.npz is not None:
        tokens, offsets, lines = src.npz
        for a in range(0, len(lines), CHUNK):
            z = min(len(lines), a + CHUNK)
            src.done = z
            yield lines[a:z], [tokens[offsets[i] : offsets[i + 1]] for i in range(a, z)]
        return
    for chunk in _chunks(src.lines(), CHUNK):
        rows = _read_lines(chunk, _token_line)
        yield [no for no, _ in rows], [value for _, value in rows]


def _parse_chunk(enc, comps: list, role, strict: bool, mode: str) -> list:
    """(messages, error, error type) of each token list in ``comps`` (no :class:`_Bad` there)."""
    try:
        table = enc.parse_batch(comps, role=role, strict=strict, errors=mode)
        return list(zip(table.to_messages(), table.errors, table.error_types))
    except DATA_ERRORS:
        out = []
        for comp in comps:  # one by one, to tell which failed
            try:
                table = enc.parse_batch([comp], role=role, strict=strict, errors=mode)
                out.append((table.to_messages()[0], table.errors[0], table.error_types[0]))
            except DATA_ERRORS as exc:
                out.append(([], str(exc), type(exc).__name__))
        return out


def cmd_parse(args) -> int:
    if _parquet_paths(args):
        return _parquet_parse(args)
    from .model import Role

    enc = _encoding()
    role = Role(args.role) if args.role else None
    mode = "recover" if args.recover else "collect"
    if args.target_format == "chat":
        from .chat import to_chat

        def write(msgs) -> str:
            return json.dumps(to_chat(msgs), ensure_ascii=False)
    else:

        def write(msgs) -> str:
            return json.dumps([m.to_dict() for m in msgs], ensure_ascii=False)

    with _Source(args.input, npz_ok=True) as src, _Run(src, args.output, args.quiet, "completions") as run:
        failures = _Failures(src.name, args.keep_going)
        out = run.out
        for nos, comps in _completion_chunks(src):
            results = iter(_parse_chunk(enc, [c for c in comps if not isinstance(c, _Bad)], role, not args.non_strict, mode))
            for no, comp in zip(nos, comps):
                line = None
                if not isinstance(comp, _Bad):
                    msgs, err, kind = next(results)
                    if err is not None and not (args.recover and kind == "HarmonyError"):
                        comp = _Bad(kind, err)
                    else:
                        try:
                            line = write(msgs)
                        except DATA_ERRORS as exc:  # messages with no chat form (--to chat): this line only
                            comp = _bad(exc)
                if isinstance(comp, _Bad):
                    failures.report(no, comp)
                    out.line(_placeholder(no, comp))
                    continue
                if err is not None:
                    # recovered: the messages, and what was repaired, by line
                    print(f"harmony-np: {src.name}:{no}: recovered: {err}", file=sys.stderr)
                out.line(line)
            run.progress()
    return run.exit_code(failures)


def cmd_decode(args) -> int:
    if _parquet_paths(args):
        return _parquet_decode(args)
    enc = _encoding()
    with _Source(args.input, npz_ok=True) as src, _Run(src, args.output, args.quiet, "token lists") as run:
        failures = _Failures(src.name, args.keep_going)
        out = run.out
        for nos, comps in _completion_chunks(src):
            for no, toks in zip(nos, comps):
                if not isinstance(toks, _Bad):
                    try:
                        out.line(json.dumps(enc.decode(toks), ensure_ascii=False))
                        continue
                    except DATA_ERRORS as exc:
                        toks = _bad(exc)
                failures.report(no, toks)
                out.line(_placeholder(no, toks))
            run.progress()
    return run.exit_code(failures)


def _parquet_paths(args) -> bool:
    """Whether the input or the output is a Parquet file; if so, both must be (refused
    otherwise, as a :class:`_Usage` error that says what is supported)."""
    from .parquet_io import is_parquet_path

    src, dst = is_parquet_path(args.input), is_parquet_path(args.output)
    if src and dst:
        return True
    if src:
        raise _Usage(f"a Parquet input is written to a Parquet output: add -o FILE.parquet (not {args.output or 'stdout'})")
    if dst:
        raise _Usage(f"a Parquet output is written from a Parquet input (FILE.parquet), not {'stdin' if args.input == '-' else args.input}")
    return False


def _parquet_run(args, what: str, column: str, make_transform, failed) -> int:
    """Stream the Parquet file ``args.input`` to ``args.output`` a batch of rows at a time
    through ``make_transform()`` (a ``pa.Table -> pa.Table`` callable), each batch one output row
    group: the output is ``-o FILE`` as for JSON Lines (a temporary file renamed at the end; on an
    interruption or a stop at a bad row, a valid Parquet file of the complete row groups so far).
    A row with an error is reported on stderr by its row index (from 0) and is in the output with
    its ``error`` and ``error_type``; ``failed(bad_row, its output row)`` tells whether it counts
    as failed (else it is a note)."""
    from . import parquet_io

    try:
        src = parquet_io.ParquetSource(args.input)
    except parquet_io.PyArrowMissing as exc:
        raise _Usage(str(exc)) from None
    with src, _Run(src, args.output, args.quiet, what) as run:
        src.require_columns(column)
        transform = make_transform()
        failures = _Failures(src.name, args.keep_going, unit="row")
        out = parquet_io.ParquetOutput(run.out.binary())
        try:
            for first, result, bad_rows in parquet_io.transformed_batches(transform, src, args.batch_rows, DATA_ERRORS):
                for bad in bad_rows:
                    if not failed(bad, result.slice(bad.row - first, 1)):
                        print(f"harmony-np: {src.name}:row {bad.row}: recovered: {bad.text}", file=sys.stderr)
                    elif args.keep_going:
                        failures.report(f"row {bad.row}", _Bad(bad.kind, bad.text))
                    else:
                        with _signals.held():  # the rows before it, as JSON Lines keeps the lines before
                            out.write(result.slice(0, bad.row - first))
                        failures.report(f"row {bad.row}", _Bad(bad.kind, bad.text))
                with _signals.held():  # a row group is written whole before a signal counts
                    out.write(result)
                run.progress()
            if out.schema is None:  # no rows: a file of none, with the columns there would be
                out.schema = parquet_io.output_schema(transform, src.schema.empty_table())
        finally:
            with _signals.held(reraise=False):  # the footer, so that the rows so far are a valid file
                out.close()
    return run.exit_code(failures)


def _arrow_callables():
    """harmony_np.arrow (which needs pyarrow), or the :class:`_Usage` error saying to install it."""
    from .parquet_io import pyarrow_modules

    try:
        pyarrow_modules()
    except ImportError as exc:
        raise _Usage(str(exc)) from None
    from . import arrow

    return arrow


def _parquet_render(args) -> int:
    if args.source_format != "chat":
        raise _Usage("a Parquet input holds chat rows: render it with --from chat (a 'messages' column, --column to pick another)")
    arrow = _arrow_callables()
    _encoding()  # the settings, checked once
    column = args.column or "messages"
    options = dict(column=column, tools_column=args.tools_column, template=args.template, mode=args.mode or "training",
                   reasoning_effort=args.reasoning_effort, model_identity=args.model_identity, date=args.date,
                   keep_analysis=args.keep_analysis, errors="collect")
    return _parquet_run(args, "rows", column, lambda: arrow.ChatRenderer(**options), lambda bad, row: True)


def _parquet_parse(args) -> int:
    arrow = _arrow_callables()
    _encoding()
    column = args.column or "tokens"
    options = dict(column=column, role=args.role, strict=not args.non_strict, errors="recover" if args.recover else "collect",
                   output="chat" if args.target_format == "chat" else "messages")

    def failed(bad, row) -> bool:
        # with --recover, what the parser repaired (a HarmonyError) is a note, as for JSON Lines;
        # without an error_type column, a repaired row is one with messages
        if not args.recover or bad.raised:
            return True
        if row.column("error_type")[0].is_valid:
            return bad.kind != "HarmonyError"
        if options["output"] == "messages":
            return not row.column("messages")[0].as_py()
        return not any(row.column(name)[0].is_valid for name in ("content", "reasoning_content", "tool_calls"))

    return _parquet_run(args, "completions", column, lambda: arrow.CompletionParser(**options), failed)


def _parquet_decode(args) -> int:
    arrow = _arrow_callables()
    _encoding()
    column = args.column or "tokens"
    return _parquet_run(args, "token lists", column, lambda: arrow.TokenDecoder(column=column, errors="collect"), lambda bad, row: True)


def cmd_stop_tokens(args) -> int:
    enc = _encoding()
    toks = enc.stop_tokens_for_assistant_actions() if args.assistant_actions else enc.stop_tokens()
    print(json.dumps(toks))
    return EXIT_OK


def cmd_bpe_check(args) -> int:
    """Measure the accelerated BPE backend against tiktoken and store its guard table."""
    from .bpe import check_and_store

    enc = _encoding()
    print(f"harmony-np: measuring every code point in both BPE backends (this takes a while; in use now: {enc.bpe_backend})", file=sys.stderr)
    try:
        name, ranges, path = check_and_store(enc.vocab)
    except RuntimeError as exc:
        print(f"harmony-np: {exc}", file=sys.stderr)
        return EXIT_FAILED
    count = sum(b - a + 1 for a, b in ranges)
    where = f"stored in {path}" if path else "not stored: no cache folder can be written (set HARMONY_NP_CACHE_DIR)"
    print(json.dumps({"backend": name, "disagreeing_code_points": count, "ranges": len(ranges), "table": path}))
    print(f"harmony-np: {name}: {count} code points in {len(ranges)} ranges go to tiktoken; {where}", file=sys.stderr)
    return EXIT_OK


def cmd_demo(args) -> int:
    from .model import (
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


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="harmony-np",
        description="Render and parse gpt-oss Harmony conversations (a fast openai_harmony).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.epilog = EXAMPLES + "\n" + PARQUET + "\n" + EXIT_CODES
    p.add_argument("--version", action="version", version=f"harmony-np {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    def io_args(sp):
        sp.add_argument("input", nargs="?", default="-",
                        help="JSON Lines input file, or - for stdin (default); FILE.parquet: a Parquet file (see PARQUET below)")
        sp.add_argument(
            "-o", "--output", default=None,
            help="output file (default: stdout), written beside it and renamed into place at the end; not the input",
        )
        sp.add_argument("-q", "--quiet", action="store_true", help="no progress bar (shown on a terminal only)")
        sp.add_argument(
            "--keep-going", action="store_true",
            help='report bad lines and go on, writing {"error", "error_type", "line"} in their place; exit 1 at the end if any failed',
        )
        sp.add_argument("--column", default=None,
                        help="Parquet: the input column (default: messages for render, tokens for parse and decode)")
        sp.add_argument("--batch-rows", type=_positive, default=CHUNK, metavar="N",
                        help=f"Parquet: rows read, transformed and written (as one row group) at a time (default {CHUNK})")

    sp = sub.add_parser(
        "render",
        help="conversations (to_dict JSON, one per line) to token lists",
        description="Render conversations. Output: JSON Lines of token lists (with a loss mask: objects "
        '{"tokens": [...], "loss_mask": [...]}), or an .npz (-o x.npz) with tokens, offsets, line (input '
        "line of each row) and, with a loss mask, loss_mask; an .npz is written whole or not at all and "
        "holds no rows for bad lines (its 'line' array tells which input lines are there).",
        epilog=PARQUET + "\n" + EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    io_args(sp)
    sp.add_argument("--mode", choices=["completion", "conversation", "training"], default=None,
                    help="completion (the default for harmony conversations): end with <|start|> and the next role; "
                    "training (the default with --from chat): the last assistant turn ends in <|return|>")
    sp.add_argument("--next-role", default="assistant", help="role of the next turn in completion mode")
    sp.add_argument("--keep-analysis", action="store_true", help="do not drop analysis messages before a final one")
    sp.add_argument("--loss-mask", action="store_true", help="also write the loss mask (always in training mode and with --from chat)")
    sp.add_argument("--from", dest="source_format", choices=["harmony", "chat"], default="harmony",
                    help="input lines: harmony conversations (to_dict JSON) or chat rows "
                    "({\"messages\": [...], \"tools\": [...]}, or a bare list of messages: the datasets' layout)")
    sp.add_argument("--template", choices=["hf", "harmony"], default="hf",
                    help="with --from chat: the gpt-oss chat template as transformers renders it (hf; the loss mask is "
                    "its assistant mask), or harmony_np.chat.from_chat and the harmony renderer")
    sp.add_argument("--reasoning-effort", default=None, help="with --from chat: the template's reasoning effort (default medium)")
    sp.add_argument("--model-identity", default=None, help="with --from chat: the template's model identity")
    sp.add_argument("--date", default=None, help="with --from chat: the current date the template prints (default today)")
    sp.add_argument("--tools-column", default="tools", help="Parquet with --from chat: the column of each row's tools (if there is one)")
    sp.set_defaults(func=cmd_render)

    sp = sub.add_parser(
        "parse",
        help="completion token lists (one per line, or an .npz) to messages",
        description="Parse completions: one JSON line of messages per input line. A completion that "
        "fails is reported on stderr with its line number (and, with --keep-going, written as "
        '{"error": ..., "error_type": ..., "line": N} so that output lines stay aligned with input lines). '
        "Input lines: a JSON list of token ids, or an object with 'tokens' (as render writes with a loss mask).",
        epilog=PARQUET + "\n" + EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    io_args(sp)
    sp.add_argument("--role", default=None, help="role of the completion when it starts after '<|start|>role'")
    sp.add_argument("--non-strict", action="store_true", help="tolerate a missing <|message|> as the model sometimes writes")
    sp.add_argument("--recover", action="store_true", help="read malformed completions by the recovery rules instead of failing (docs/recovery.md)")
    sp.add_argument("--to", dest="target_format", choices=["harmony", "chat"], default="harmony",
                    help="output lines: harmony messages (to_dict JSON), or the assistant chat message of each "
                    "completion ({\"role\", \"content\", \"reasoning_content\", \"tool_calls\"}, harmony_np.chat.to_chat)")
    sp.set_defaults(func=cmd_parse)

    sp = sub.add_parser(
        "decode",
        help="token lists (one per line, or an .npz) to text",
        description="Decode token lists: one JSON string per input line (invalid UTF-8 replaced).",
        epilog=PARQUET + "\n" + EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    io_args(sp)
    sp.set_defaults(func=cmd_decode)

    sp = sub.add_parser("stop-tokens", help="print the stop tokens")
    sp.add_argument("--assistant-actions", action="store_true", help="only <|return|> and <|call|>")
    sp.set_defaults(func=cmd_stop_tokens)

    sp = sub.add_parser(
        "bpe-check",
        help="measure the accelerated BPE backend (harmony-np[fast]) against tiktoken on every code point and store "
        "the table of code points that must go to tiktoken (needed when the installed versions differ from the shipped table's)",
    )
    sp.set_defaults(func=cmd_bpe_check)

    sp = sub.add_parser("demo", help="render a conversation and parse a completion, printing both")
    sp.set_defaults(func=cmd_demo)
    return p


def _quiet_stdout() -> None:
    """Point stdout at /dev/null, so that the interpreter's last flush of a closed pipe is
    silent too."""
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())


def main(argv: Optional[List[str]] = None) -> int:
    """Run the command line ``argv`` (default: ``sys.argv[1:]``); return the exit code."""
    _signals.install()
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        if not getattr(args, "command", None):
            parser.print_help()
            return EXIT_USAGE
        return args.func(args)
    except _Interrupted as exc:
        with contextlib.suppress(OSError):
            print("harmony-np: interrupted", file=sys.stderr)
        return 128 + exc.signum
    except BrokenPipeError:
        # the reader went away (`| head`): not an error of ours, nothing to say
        _quiet_stdout()
        return EXIT_BROKEN_PIPE
    except (_Usage, OSError, ValueError) as exc:
        print(f"harmony-np: {exc}", file=sys.stderr)
        return EXIT_USAGE
    finally:
        with _signals.held(reraise=False):
            for path in _temps:
                with contextlib.suppress(OSError):
                    os.unlink(path)
            _temps.clear()
        _signals.restore()


if __name__ == "__main__":
    sys.exit(main())
