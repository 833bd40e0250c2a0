"""Both sides of every crossover and thread-split threshold of harmony_np: ``python benchmarks/crossovers.py``.

Each threshold of ``harmony_np/tuning.py`` that picks between two paths (a Python loop or
tiktoken against a Numba kernel, one thread against the pool) is timed on both paths at sizes
around its value (1/4x, 1/2x, 1x, 2x and 4x). A path is forced by patching the threshold in the
module that reads it (each takes its copy with ``from .tuning import NAME``), and a counting
wrapper around a function only the second path calls checks, on the first call of each path,
that the patch really switched paths.

Every sample is a loop of calls of about ``--sample-ms`` (GC paused inside it), the two paths
take turns, and the figure is the median of ``--repeat`` samples, after two warm-up calls per
path and size (kernel loads, pool start, each pool thread's own copy of tiktoken's BPE). Inputs
no cache could answer are built afresh for every call where a cache exists (the renderer's text
caches); a parse's header cache does answer, as it does in use.

The harmony_np timed is whichever one ``import harmony_np`` finds (the output names its file):
``PYTHONPATH=/path/to/a/checkout python benchmarks/crossovers.py`` times that checkout.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import importlib
import itertools
import json
import os
import platform
import random
import statistics
import sys
import time
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

# the thresholds time tiktoken's paths: the accelerated backend (harmony_np.bpe) skips them
os.environ["HARMONY_NP_BPE"] = "tiktoken"

# compare.py (for describe) lives beside this file, whatever the cwd; the folder holds no
# harmony_np, so putting it first does not change which harmony_np is imported
_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

from compare import describe  # noqa: E402  (needs the path set above)

FACTORS = (0.25, 0.5, 1.0, 2.0, 4.0)
QUICK_FACTORS = (0.5, 2.0)
# a value no input of this script reaches: the threshold's first path everywhere
NEVER = 1 << 62
# the brief's line for a value that is clearly off: the other path faster by more than this
CLEARLY_OFF = 1.3

Setting = Tuple[ModuleType, str]
Call = Callable[[], Any]


# -- inputs ---------------------------------------------------------------------------------

_WORDS = (
    "the of and to in is that for it as with was on be by this are from at or an not have which but they you were "
    "all one their we can has there been if more when will would who so no model token text parse render stream "
    "batch kernel thread array list value message channel analysis final commentary tool call weather location "
    "temperature sunny reasoning evidence result answer question user assistant because however therefore example "
    "number string object field schema measure split python byte offset span header content completion conversation "
    "Paris London Tuesday October government committee recommendation approximately significant understanding"
).split()


def make_corpus(chars: int, seed: int = 7) -> str:
    """ASCII prose of about ``chars`` characters: sentences of common words, some numbers.

    ASCII only, so that every token of its encoding is valid UTF-8 alone (the streaming parser's
    "plain" tokens, taken in runs).
    """
    rnd = random.Random(seed)
    out: List[str] = []
    size = 0
    while size < chars:
        words = rnd.choices(_WORDS, k=rnd.randint(6, 18))
        if rnd.random() < 0.3:
            words.insert(rnd.randrange(len(words)), str(rnd.randint(2, 99999)))
        sentence = " ".join(words).capitalize() + rnd.choice((". ", ". ", ", ", "? ", ".\n"))
        out.append(sentence)
        size += len(sentence)
    return "".join(out)


class Inputs:
    """The encoding, a corpus, its tokens, and texts that no call has seen before."""

    def __init__(self, h: ModuleType) -> None:
        self.enc = h.load_harmony_encoding(h.HarmonyEncodingName.HARMONY_GPT_OSS)
        self.corpus = make_corpus(400_000)
        self.tokens: List[int] = self.enc.encode_ordinary(self.corpus)
        self._fresh = itertools.count()
        self._rnd = random.Random(11)

    def fresh_text(self, chars: int) -> str:
        """``chars`` characters of the corpus behind a tag no other text has."""
        tag = f"#{next(self._fresh)} "
        n = max(chars - len(tag), 0)
        start = self._rnd.randrange(len(self.corpus) - n)
        return tag + self.corpus[start : start + n]

    def content(self, n: int, start: int = 0) -> List[int]:
        """``n`` ordinary tokens of the corpus from ``start`` (wrapping round)."""
        pool = self.tokens
        start %= len(pool)
        out = pool[start : start + n]
        while len(out) < n:
            out += pool[: n - len(out)]
        return out

    def special(self, text: str) -> List[int]:
        return self.enc.encode(text, allowed_special="all")

    def completion(self, contents: Sequence[List[int]], first_start: bool = True) -> List[int]:
        """A completion of assistant messages with these contents, channels analysis and final
        by turns, each ended by ``<|end|>`` and the last by ``<|return|>``."""
        out: List[int] = []
        for k, content in enumerate(contents):
            channel = "final" if k == len(contents) - 1 else ("analysis" if k % 2 == 0 else "commentary")
            head = self.special(f"<|start|>assistant<|channel|>{channel}<|message|>")
            if k == 0 and not first_start:
                head = head[1:]
            out += head + content + self.special("<|return|>" if k == len(contents) - 1 else "<|end|>")
        return out

    def completion_of(self, n: int, messages: int) -> List[int]:
        """A completion of ``messages`` messages and exactly ``n`` tokens in all."""
        frame = len(self.completion([[] for _ in range(messages)]))
        body = max(n - frame, messages)
        sizes = [body // messages + (1 if k < body % messages else 0) for k in range(messages)]
        return self.completion([self.content(s, 997 * k) for k, s in enumerate(sizes)])


# -- patching and checking ----------------------------------------------------------------------


@contextlib.contextmanager
def patched(settings: Dict[Setting, int]) -> Iterator[None]:
    """The module globals of ``settings`` set to their values, and restored afterwards."""
    old = {}
    for (module, name), value in settings.items():
        if not hasattr(module, name):
            raise AttributeError(f"{module.__name__} has no {name}: the code no longer reads it there")
        old[(module, name)] = getattr(module, name)
        setattr(module, name, value)
    try:
        yield
    finally:
        for (module, name), value in old.items():
            setattr(module, name, value)


@contextlib.contextmanager
def counting(module: ModuleType, attr: str, when: Callable[..., bool]) -> Iterator[List[int]]:
    """``module.attr`` wrapped to count its calls whose arguments satisfy ``when``."""
    original = getattr(module, attr)
    count = [0]

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if when(*args, **kwargs):
            count[0] += 1
        return original(*args, **kwargs)

    setattr(module, attr, wrapper)
    try:
        yield count
    finally:
        setattr(module, attr, original)


def _always(*args: Any, **kwargs: Any) -> bool:
    return True


def _split(tasks: Sequence[Any], *args: Any, **kwargs: Any) -> bool:
    return len(tasks) > 1


@dataclass
class Case:
    """One threshold timed on one kind of input.

    ``paths``: the path the threshold picks below its value and the one it picks from it, each
    as a name and the patches that force it. ``build(size)`` gives ``call_for(i)``, the ``i``-th
    call at that size (with its own input when ``fresh``). ``witness``: a function (module,
    attribute, argument test) that only the second path calls.
    """

    threshold: str
    title: str
    unit: str
    paths: Tuple[Tuple[str, Dict[Setting, int]], Tuple[str, Dict[Setting, int]]]
    build: Callable[[int], Callable[[int], Call]]
    witness: Tuple[ModuleType, str, Callable[..., bool]]
    fresh: bool = False
    per_call: Callable[[int], int] = lambda size: 1  # what a call's time is divided by
    per_label: str = "call"
    inclusive: bool = False  # the first path up to and including the value (n <= MAX)
    threads: bool = False  # a thread-pool split: with one thread, both paths are that thread

    def picked(self, size: int, value: int) -> int:
        """Which path the threshold's real value picks at ``size``."""
        return 0 if (size <= value if self.inclusive else size < value) else 1


def build_cases(h: ModuleType, data: Inputs) -> List[Case]:
    """Every case, built on the modules of the imported harmony_np."""
    parse = importlib.import_module("harmony_np.parse")
    stream = importlib.import_module("harmony_np.stream")
    recover = importlib.import_module("harmony_np.recover")
    encoding = importlib.import_module("harmony_np.encoding")
    kernels = importlib.import_module("harmony_np.kernels")
    render = importlib.import_module("harmony_np.render")
    bpe = importlib.import_module("harmony_np.bpe")
    threads = importlib.import_module("harmony_np.threads")
    import numpy as np

    enc = data.enc
    assistant = h.Role.ASSISTANT
    cases: List[Case] = []

    # parse_completion: below SCAN_KERNEL_MIN, bytes.find / scan_py and one decode per message
    def parse_short_or_kernel(n: int) -> Callable[[int], Call]:
        tokens = data.completion_of(n, 2)
        return lambda i: (lambda: enc.parse_messages_from_completion_tokens(tokens, None))

    cases.append(Case(
        "SCAN_KERNEL_MIN", "parse_messages_from_completion_tokens, an analysis + final completion as a list", "tokens",
        (("python", {(parse, "SCAN_KERNEL_MIN"): NEVER}), ("kernel", {(parse, "SCAN_KERNEL_MIN"): 0})),
        parse_short_or_kernel, (kernels, "scan_gather", _always),
    ))

    def parse_long(n: int) -> Callable[[int], Call]:
        tokens = data.completion_of(n, 4)
        return lambda i: (lambda: enc.parse_messages_from_completion_tokens(tokens, None))

    cases.append(Case(
        "SCAN_GATHER_MAX", "parse_messages_from_completion_tokens, 4 messages as a list", "tokens",
        (("scan_gather", {(parse, "SCAN_GATHER_MAX"): NEVER}), ("scan+gather", {(parse, "SCAN_GATHER_MAX"): 0})),
        parse_long, (kernels, "scan_completion", _always), inclusive=True,
    ))

    # GATHER_MIN, read in three modules; s is the content span of each of 4 messages
    def spans(s: int, first_start: bool = True) -> List[int]:
        return data.completion([data.content(s, 1013 * k) for k in range(4)], first_start)

    def parse_spans(s: int) -> Callable[[int], Call]:
        tokens = spans(s)
        return lambda i: (lambda: enc.parse_messages_from_completion_tokens(tokens, None))

    gather = (kernels, "gather_bytes", _always)
    cases.append(Case(
        "GATHER_MIN", "parse: parse_messages_from_completion_tokens, 4 messages of this many content tokens, "
        "SCAN_GATHER_MAX patched to 0 (the per-message path of completions past it)", "span tokens",
        (("tiktoken", {(parse, "GATHER_MIN"): NEVER, (parse, "SCAN_GATHER_MAX"): 0}),
         ("kernel", {(parse, "GATHER_MIN"): 0, (parse, "SCAN_GATHER_MAX"): 0})),
        parse_spans, gather,
    ))

    def stream_spans(s: int) -> Callable[[int], Call]:
        tokens = spans(s)

        def call() -> Any:
            return h.StreamableParser(enc, None).process_tokens(tokens).messages

        return lambda i: call

    cases.append(Case(
        "GATHER_MIN", "stream: process_tokens of the same completion in one call, then .messages", "span tokens",
        (("tiktoken", {(stream, "GATHER_MIN"): NEVER}), ("kernel", {(stream, "GATHER_MIN"): 0})),
        stream_spans, gather,
    ))

    def recover_spans(s: int) -> Callable[[int], Call]:
        tokens = spans(s, first_start=False)
        return lambda i: (lambda: enc.recover_messages_from_completion_tokens(tokens))

    cases.append(Case(
        "GATHER_MIN", "recover: recover_messages_from_completion_tokens of the same completion without its first <|start|> "
        "(every message through recovery)", "span tokens",
        (("tiktoken", {(recover, "GATHER_MIN"): NEVER}), ("kernel", {(recover, "GATHER_MIN"): 0})),
        recover_spans, gather,
    ))

    # HarmonyEncoding.decode*: tiktoken's decode_bytes below GATHER_KERNEL_MIN, the kernel from it
    decode_paths = (("tiktoken", {(encoding, "GATHER_KERNEL_MIN"): NEVER}), ("kernel", {(encoding, "GATHER_KERNEL_MIN"): 0}))

    def decoding(method: str, as_array: bool) -> Callable[[int], Callable[[int], Call]]:
        def build(n: int) -> Callable[[int], Call]:
            tokens: Any = data.content(n, 31 * n)
            if as_array:
                tokens = np.asarray(tokens, dtype=np.uint32)
            fn = getattr(enc, method)
            return lambda i: (lambda: fn(tokens))

        return build

    for method, as_array in (("decode_bytes", False), ("decode_utf8", False), ("decode", True)):
        kind = "a uint32 array" if as_array else "a list"
        cases.append(Case("GATHER_KERNEL_MIN", f"{method} of {kind}", "tokens", decode_paths, decoding(method, as_array), gather))

    # StreamableParser.process_tokens: 4,096 content tokens in chunks of `c`, then <|end|>
    head = data.special("<|start|>assistant<|channel|>final<|message|>")
    end = data.special("<|end|>")
    body = data.content(4096, 5)

    def chunked(c: int) -> Callable[[int], Call]:
        chunks = [body[k : k + c] for k in range(0, len(body), c)]

        def call_for(i: int) -> Call:
            parser = h.StreamableParser(enc, None)
            parser.process_tokens(head)

            def call() -> None:
                for chunk in chunks:
                    parser.process_tokens(chunk)
                parser.process_tokens(end)

            return call

        return call_for

    cases.append(Case(
        "STREAM_BULK_MIN", "process_tokens: a message's 4,096 content tokens in chunks of this size, then <|end|> "
        "(the message's decode shared out over its chunks)", "tokens a chunk",
        (("_feed_small", {(stream, "STREAM_BULK_MIN"): NEVER}), ("_feed", {(stream, "STREAM_BULK_MIN"): 0})),
        chunked, (kernels, "stream_positions", _always), fresh=True,
        per_call=lambda c: -(-4096 // c), per_label="chunk",
    ))

    # kernels: one thread below KERNEL_SPLIT_MIN tokens (bytes), split over the pool from it
    split_paths = (("serial", {(kernels, "KERNEL_SPLIT_MIN"): NEVER}), ("split", {(kernels, "KERNEL_SPLIT_MIN"): 0}))
    split_witness = (threads, "run_parallel", _split)
    rng = np.random.default_rng(3)

    def assemble(n: int) -> Callable[[int], Call]:
        # rows of a shared 20-token header and a 280-token text of their own, as render_batch's
        # completion mode lays them out (no mask)
        rows = max(n // 300, 1)
        piece_len = np.concatenate([[20], np.full(rows, 280)]).astype(np.int64)
        pool_off = np.zeros(rows + 2, dtype=np.int64)
        np.cumsum(piece_len, out=pool_off[1:])
        pool = rng.integers(0, 200_000, int(pool_off[-1]), dtype=np.uint32)
        occ = np.empty(2 * rows, dtype=np.int64)
        occ[0::2] = 0
        occ[1::2] = np.arange(1, rows + 1)
        flags = np.zeros(2 * rows, dtype=np.uint8)
        row_occ_off = np.arange(0, 2 * rows + 1, 2, dtype=np.int64)
        out_off = np.arange(rows + 1, dtype=np.int64) * 300
        mask = np.zeros(0, dtype=np.uint8)

        def call() -> None:
            out = np.empty(int(out_off[-1]), dtype=np.uint32)
            kernels.assemble_rows(pool, pool_off, occ, flags, row_occ_off, out_off, out, mask, False)

        return lambda i: call

    cases.append(Case(
        "KERNEL_SPLIT_MIN", "assemble_rows: rows of 300 tokens (a shared header and a text), output allocated per call",
        "tokens", split_paths, assemble, split_witness, threads=True,
    ))

    corpus_ids = np.asarray(data.tokens, dtype=np.uint32)
    bytes_per_token = len(data.corpus.encode()) / len(data.tokens)

    def spans_gather(nbytes: int) -> Callable[[int], Call]:
        # parse_batch's content gather: spans of 200 tokens
        n = max(int(nbytes / bytes_per_token), 200)
        reps = -(-n // corpus_ids.shape[0])
        tokens = np.tile(corpus_ids, reps)[:n]
        start = np.arange(0, n, 200, dtype=np.int64)
        stop = np.minimum(start + 200, n)
        return lambda i: (lambda: kernels.gather_spans(enc.vocab.flat, enc.vocab.offsets, tokens, start, stop))

    cases.append(Case(
        "KERNEL_SPLIT_MIN", "gather_spans: spans of 200 tokens, this many bytes in all (its span-size pass "
        "splits from KERNEL_SPLIT_MIN // 8 tokens)", "bytes", split_paths, spans_gather, split_witness, threads=True,
    ))

    # render: a plan's fresh texts encoded on the pool
    render_split = (bpe, "run_parallel", _split)

    def conversation(texts: List[str]) -> Any:
        M, R = h.Message, h.Role
        msgs = []
        for k, text in enumerate(texts):
            if k % 2 == 0:
                msgs.append(M.from_role_and_content(R.USER, text))
            else:
                msgs.append(M.from_role_and_content(R.ASSISTANT, text).with_channel("analysis"))
        return h.Conversation.from_messages(msgs)

    def render_fresh(count: int, each: Callable[[int], int]) -> Callable[[int], Callable[[int], Call]]:
        def build(size: int) -> Callable[[int], Call]:
            def call_for(i: int) -> Call:
                conv = conversation([data.fresh_text(each(size)) for _ in range(count)])
                return lambda: enc.render_conversation_for_completion(conv, assistant)

            return call_for

        return build

    cases.append(Case(
        "PARALLEL_ONE_TEXT", "render_conversation_for_completion: a user and an assistant message, each a fresh "
        "text of this many characters; the pool path with PARALLEL_MIN_CHARS patched to 0 as well", "chars a text",
        (("one pass", {(render, "PARALLEL_ONE_TEXT"): NEVER}),
         ("pool", {(render, "PARALLEL_ONE_TEXT"): 0, (bpe, "PARALLEL_MIN_CHARS"): 0})),
        render_fresh(2, lambda size: size), render_split, fresh=True, threads=True,
    ))
    cases.append(Case(
        "PARALLEL_MIN_CHARS", "render_conversation_for_completion: 4 messages of fresh text, this many characters in "
        "all; PARALLEL_ONE_TEXT patched to 0 on both paths (the plan path at any text length)", "chars",
        (("serial", {(bpe, "PARALLEL_MIN_CHARS"): NEVER, (render, "PARALLEL_ONE_TEXT"): 0}),
         ("pool", {(bpe, "PARALLEL_MIN_CHARS"): 0, (render, "PARALLEL_ONE_TEXT"): 0})),
        render_fresh(4, lambda size: size // 4), render_split, fresh=True, threads=True,
    ))

    def batch_texts(total: int) -> Callable[[int], Call]:
        def call_for(i: int) -> Call:
            texts = [data.fresh_text(300) for _ in range(max(total // 300, 1))]
            return lambda: enc.renderer.encode_texts(texts)

        return call_for

    cases.append(Case(
        "BATCH_PARALLEL_MIN_CHARS", "Renderer.encode_texts (render_batch's fresh texts): fresh texts of 300 "
        "characters, this many characters in all", "chars",
        (("serial", {(bpe, "BATCH_PARALLEL_MIN_CHARS"): NEVER}), ("pool", {(bpe, "BATCH_PARALLEL_MIN_CHARS"): 0})),
        batch_texts, render_split, fresh=True, threads=True,
    ))

    # render_table: a batch of 1,024 rows of plain messages (a system message, then 10 user and
    # assistant turns, some with thinking), in shapes of this many rows each: a skeleton made for
    # each shape or the template walked per row
    import pyarrow as pa

    arrow = importlib.import_module("harmony_np.arrow")
    chat_render = importlib.import_module("harmony_np.chat_render")

    def chat_table(rows_a_shape: int) -> Callable[[int], Call]:
        chats = []
        for i in range(1024):
            shape = i // rows_a_shape  # the thinking of turn j where bit j of it is set
            messages = [{"role": "system", "content": "You are terse."}]
            for j in range(10):
                messages.append({"role": "user", "content": f"question {i}.{j}: and the weather?"})
                answer = {"role": "assistant", "content": f"answer {i}.{j}: sunny"}
                if (shape >> j) & 1:
                    answer["thinking"] = f"row {i}.{j}: look outside"
                messages.append(answer)
            chats.append(messages)
        table = pa.table({"messages": chats})
        return lambda i: (lambda: arrow.render_table(enc, table, date="2025-08-05"))

    cases.append(Case(
        "SKELETON_MIN_ROWS", "render_table: 1,024 rows of 21 plain messages, in shapes of this many rows each",
        "rows a shape", (("template per row", {(arrow, "SKELETON_MIN_ROWS"): NEVER}), ("skeleton", {(arrow, "SKELETON_MIN_ROWS"): 0})),
        chat_table, (chat_render.Skeleton, "plan", _always), per_call=lambda size: 1024, per_label="row",
    ))
    return cases


# -- timing ------------------------------------------------------------------------------------


def sample_us(calls: Sequence[Call]) -> float:
    """µs per call of running ``calls`` in turn, the GC paused (a batch's small garbage is freed
    by reference counts; a full collection in a loop of µs-scale calls would dominate it)."""
    gc.disable()
    try:
        t0 = time.perf_counter()
        for c in calls:
            c()
        return (time.perf_counter() - t0) / len(calls) * 1e6
    finally:
        gc.enable()


def time_case(case: Case, value: int, factors: Sequence[float], repeat: int, sample_s: float, check: bool) -> List[Dict[str, Any]]:
    """The case's rows: for each size, the median (and the least) µs per ``case.per_label`` of
    both paths."""
    rows = []
    names = [name for name, _ in case.paths]
    index = itertools.count()
    module, attr, when = case.witness
    for factor in factors:
        size = max(int(round(value * factor)), 1)
        call_for = case.build(size)
        loops = {}
        for k, (name, settings) in enumerate(case.paths):
            with patched(settings):
                with counting(module, attr, when) as count:
                    call_for(next(index))()
                if check and (count[0] > 0) != (k == 1):
                    raise RuntimeError(
                        f"{case.threshold} ({case.title}): the {name} path {'did not call' if k else 'called'} "
                        f"{module.__name__}.{attr}: patching {sorted(n for _, n in settings)} did not pick it"
                    )
                second = call_for(next(index))
                t0 = time.perf_counter()
                second()
                once = time.perf_counter() - t0
            loops[name] = max(1, min(100_000, int(sample_s / max(once, 1e-7))))
        gc.collect()
        times: Dict[str, List[float]] = {name: [] for name in names}
        for rep in range(repeat):
            order = case.paths if rep % 2 == 0 else case.paths[::-1]
            for name, settings in order:
                calls = [call_for(next(index)) for _ in range(loops[name])] if case.fresh else [call_for(0)] * loops[name]
                with patched(settings):
                    times[name].append(sample_us(calls))
                del calls
        per = case.per_call(size)
        rows.append({
            "size": size, "x": factor,
            "us": {name: round(statistics.median(times[name]) / per, 3) for name in names},
            "min_us": {name: round(min(times[name]) / per, 3) for name in names},
            "picked": names[case.picked(size, value)], "calls_per_sample": loops,
        })
    return rows


def assess(case: Case, rows: List[Dict[str, Any]], value: int) -> Dict[str, Any]:
    """Where the measured paths cross, and whether the value is clearly off: one path faster by
    more than :data:`CLEARLY_OFF` at the nearest measured size on each side of the value."""
    a, b = (name for name, _ in case.paths)
    ratio = [(r["size"], r["us"][a] / r["us"][b]) for r in rows]  # > 1: the second path is faster
    crossings = [[s0, s1] for (s0, q0), (s1, q1) in zip(ratio, ratio[1:]) if (q0 > 1) != (q1 > 1)]
    below = [q for s, q in ratio if s < value]
    above = [q for s, q in ratio if s > value]
    off = None
    if below and above:
        if below[-1] > CLEARLY_OFF and above[0] > CLEARLY_OFF:
            off = f"{b} faster by more than {CLEARLY_OFF - 1:.0%} on both sides: the value looks too high"
        elif below[-1] < 1 / CLEARLY_OFF and above[0] < 1 / CLEARLY_OFF:
            off = f"{a} faster by more than {CLEARLY_OFF - 1:.0%} on both sides: the value looks too low"
    return {"crossings_between": crossings, "clearly_off": off}


# -- output ------------------------------------------------------------------------------------


def _load() -> Optional[float]:
    """The 1-minute load average (other processes share these cores), where the system has one."""
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None


def machine() -> str:
    return f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, {platform.system()}"


def print_tables(report: Dict[str, Any]) -> None:
    """The report as Markdown: one table per case."""
    print(f"# crossovers {report['date']} on {report['machine']}; harmony_np threads: {report['threads']}")
    d = report["timed"]
    commit = f", git {d['git_commit']}" if d["git_commit"] else ""
    print(f"# {d['module']} {d['version']} from {d['file']}{commit}")
    print(f"# median of {report['repeat']} samples of about {report['sample_ms']:g} ms per path and size; "
          f"load average {report['load_average'][0]} before, {report['load_average'][1]} after")
    for c in report["cases"]:
        a, b = c["paths"]
        print()
        print(f"## {c['threshold']} = {c['value']} ({c['module']}): {c['title']}")
        if c.get("note"):
            print(c["note"])
        print(f"| {c['unit']} | x | {a} µs/{c['per']} | {b} µs/{c['per']} | {a}/{b} | picked |")
        print("|---:|---:|---:|---:|---:|---|")
        for r in c["rows"]:
            print(f"| {r['size']} | {r['x']:g} | {r['us'][a]:.2f} | {r['us'][b]:.2f} | {r['us'][a] / r['us'][b]:.2f} | {r['picked']} |")
        crossings = c["crossings_between"]
        where = "; ".join(f"between {s0} and {s1}" for s0, s1 in crossings) or "none inside the measured sizes"
        print(f"paths cross: {where}"
              + (f"; CLEARLY OFF: {c['clearly_off']}" if c["clearly_off"] else ""))


def main(argv: Optional[List[str]] = None) -> int:
    """Run the command line; returns the exit code."""
    ap = argparse.ArgumentParser(prog="python benchmarks/crossovers.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=15, help="samples per path and size; the median is reported (default 15)")
    ap.add_argument("--sample-ms", type=float, default=5.0, help="about how long one sample's loop of calls runs, in ms (default 5)")
    ap.add_argument("--quick", action="store_true", help="sizes 1/2x and 2x only, samples of about 0.2 ms (a smoke run)")
    ap.add_argument("--factors", default="", help="sizes as multiples of each value, comma-separated (default 0.25,0.5,1,2,4)")
    ap.add_argument("--only", default="", help="only the thresholds whose name contains this")
    ap.add_argument("--json", action="store_true", help="print JSON instead of tables")
    a = ap.parse_args(argv)
    if a.repeat < 1:
        ap.error("--repeat must be at least 1")
    factors: Sequence[float] = QUICK_FACTORS if a.quick else FACTORS
    if a.factors:
        try:
            factors = sorted(float(f) for f in a.factors.split(","))
        except ValueError:
            ap.error(f"--factors takes numbers separated by commas, got {a.factors!r}")
        if not factors or factors[0] <= 0:
            ap.error("--factors must be positive")
    sample_s = (0.2 if a.quick else a.sample_ms) / 1e3

    h = importlib.import_module("harmony_np")
    tuning = importlib.import_module("harmony_np.tuning")
    thread_count = importlib.import_module("harmony_np.threads").thread_count()
    data = Inputs(h)
    cases = [c for c in build_cases(h, data) if a.only in c.threshold]
    t_start = time.perf_counter()
    load_before = _load()
    out = []
    for case in cases:
        value = getattr(tuning, case.threshold)
        # one thread: a split path runs on the calling thread alone, so no call tells them apart
        rows = time_case(case, value, factors, a.repeat, sample_s, check=thread_count > 1 or not case.threads)
        module = sorted({m.__name__ for _, settings in case.paths for (m, n) in settings if n == case.threshold})
        out.append({
            "threshold": case.threshold, "value": value, "module": ", ".join(module), "title": case.title,
            "unit": case.unit, "per": case.per_label, "paths": [name for name, _ in case.paths], "rows": rows,
            "note": "harmony_np has one thread here: both paths run on it" if case.threads and thread_count < 2 else "",
            **assess(case, rows, value),
        })
    report = {
        "machine": machine(), "date": time.strftime("%Y-%m-%d %H:%M"), "timed": describe(h), "threads": thread_count,
        "load_average": [load_before, _load()], "repeat": a.repeat, "sample_ms": sample_s * 1e3, "factors": list(factors), "seconds": round(time.perf_counter() - t_start, 1),
        "cases": out,
    }
    if a.json:
        print(json.dumps(report, indent=1))
    else:
        print_tables(report)
        print(f"\n({report['seconds']} s of timing)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
