"""The BPE seam: ordinary text (special-token text is plain text here) to o200k ids.

Every encode and render path of the package turns text into ids through :class:`OrdinaryBPE`.
tiktoken is the reference and the default. An accelerated backend (``quicktok``, from the
``harmony-np[fast]`` extra) is used when it is installed, unless ``HARMONY_NP_BPE=tiktoken``,
and only behind guards that keep every id equal to tiktoken's:

- its vocabulary is checked, token by token, against the o200k ranks before first use, and its
  output on a fixed corpus and on every ASCII code point in the split pattern's contexts is
  compared with tiktoken's; a backend that differs, fails to import or fails to load is not
  used (:attr:`OrdinaryBPE.backend` says why);
- texts holding a code point on which the two disagree go to tiktoken. Those code points are
  measured, not listed by hand: every code point is encoded by both in contexts that expose how
  the split pattern classifies it (:func:`measure_disagreements`). The measurement takes seconds,
  so its result is kept in a table keyed by both libraries' versions: the one shipped with the
  package (made by ``tests/make_bpe_guard.py``), or one in the user's cache folder
  (``harmony-np bpe-check`` makes it). Without a table for the installed versions, every
  non-ASCII text goes to tiktoken;
- texts with lone surrogates go to tiktoken, which raises the error the renderers report.

The accelerated backend is loaded (about 0.5 s) by the first batch encode (:meth:`encode_flat`:
``render_batch``, ``apply_chat_template`` on a batch, the table functions), or by reading
:attr:`backend`; single encodes use it once it is loaded, tiktoken before.
"""

from __future__ import annotations

import json
import os
import re
import threading
from typing import Any, Callable, List, Optional, Sequence, Tuple

import numpy as np

from .threads import first_import, first_use, run_parallel, thread_count
from .tuning import BATCH_PARALLEL_MIN_CHARS, PARALLEL_MIN_CHARS
from .vocab import N_ORDINARY, Vocabulary, writable_cache_folder, cache_folders

__all__ = ["OrdinaryBPE", "ordinary_bpe", "measure_disagreements", "verified_backend", "guard_table", "write_guard_table", "BACKEND_ENV", "FAST_BACKEND", "JOIN_TEXT", "balanced_groups"]

BACKEND_ENV = "HARMONY_NP_BPE"
FAST_BACKEND = ("quicktok", "quicktok-v1")  # (module, distribution); pinned in pyproject's [fast] extra
GUARD_FILE = "bpe_guard.json"
# auto: the accelerated backend where it verifies; quicktok: that backend or an error; tiktoken
_CHOICES = ("auto", "quicktok", "tiktoken")

# Fresh texts are joined by this special token and encoded in one tiktoken call: tiktoken encodes
# the text between special tokens on its own, so each text gets exactly its encode_ordinary
# tokens, without one Python-to-Rust call per text. (A text holding the separator itself is
# refused by encode_flat. The separator cannot arise across a text boundary: no proper prefix of
# it is also a suffix of it.)
JOIN_TEXT = "<|reserved_200999|>"
_JOIN_ID = 200999
_JOIN_SET = frozenset([JOIN_TEXT])
_NO_SPECIAL: frozenset = frozenset()

# Contexts in which the split pattern's classes of a code point c (upper/title, lower,
# modifier/other letter, mark, number, whitespace, newline, other) change the ids: a letter run
# takes a contraction and one leading non-letter, numbers group by three, punctuation runs take
# trailing newlines and slashes, whitespace before a non-space splits. Joined by newlines.
_CONTEXTS = ("{c}'s", "{c}'LL", " {c}", "!{c}", "A{c}a", "a{c}A", "a{c}", "{c}a", "1{c}23", "{c}12", "!{c}!", "{c}/\n", "{c}  a", " {c}\n", "{c}{c}")
_CONTEXT_TEMPLATE = "\n".join(_CONTEXTS)
# what the guard table was measured with: a change here makes every stored table stale
GUARD_FORMAT = 1

# texts that must reach tiktoken whatever the table says: lone surrogates (tiktoken raises the
# error the renderers turn into openai_harmony's)
_SURROGATES = "\ud800-\udfff"


def _version(distribution: str) -> str:
    from importlib import metadata  # only where a version is asked for

    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "unknown"


class _Tiktoken:
    """tiktoken's Rust ``CoreBPE`` for one vocabulary, with a copy per pool thread (threads
    sharing one encode no faster than one thread; see :meth:`Vocabulary.new_bpe`)."""

    def __init__(self, vocab: Vocabulary) -> None:
        self.vocab = vocab
        core = vocab.core_bpe
        # the Rust methods themselves: tiktoken's wrapper only adds a retry for lone surrogates,
        # which openai_harmony refuses (see rust_text.surrogate_error)
        self.encode = getattr(core, "encode_ordinary", None) or vocab.bpe.encode_ordinary
        self.buffer = getattr(core, "encode_to_tiktoken_buffer", None)
        self.core = core
        self.workers = thread_count() if core is not None else 1
        self._local = threading.local()
        self.name = f"tiktoken {_version('tiktoken')}"

    def thread_core(self):
        core = getattr(self._local, "core", None)
        if core is None:
            core = self._local.core = self.vocab.new_bpe()._core_bpe
        return core

    def run_parallel(self, fn: Callable[[Any, Any], Any], groups: Sequence[Any]) -> list:
        """``[fn(core, group) for group in groups]``, the first group on the calling thread with
        the vocabulary's own ``CoreBPE``, the others on the pool, each with its own copy."""
        tasks = [lambda: fn(self.core, groups[0])]
        tasks += [lambda g=g: fn(self.thread_core(), g) for g in groups[1:]]
        return run_parallel(tasks)

    def encode_array(self, text: str) -> np.ndarray:
        if self.buffer is None:  # pragma: no cover - tiktoken without the buffer API
            return np.asarray(self.encode(text), dtype=np.uint32)
        return np.frombuffer(self.buffer(text, _NO_SPECIAL), dtype=np.uint32)

    def encode_flat(self, texts: List[str]) -> Tuple[np.ndarray, np.ndarray]:
        if self.buffer is None:  # pragma: no cover - tiktoken without the buffer API
            lists = [self.encode(t) for t in texts]
            return np.fromiter((x for toks in lists for x in toks), dtype=np.uint32), np.array([len(t) for t in lists], np.int64)
        sizes = np.fromiter((len(t) for t in texts), dtype=np.int64, count=len(texts))
        total = int(sizes.sum())
        workers = self.workers
        if workers > 1 and total >= BATCH_PARALLEL_MIN_CHARS:
            cum = np.cumsum(sizes)
            cuts = np.searchsorted(cum, [total * i / workers for i in range(1, workers)]).tolist()
            bounds = [0] + [min(c + 1, len(texts)) for c in cuts] + [len(texts)]
            groups = [texts[a:z] for a, z in zip(bounds, bounds[1:]) if z > a]
            parts = self.run_parallel(lambda core, g: _joined_flat(core.encode_to_tiktoken_buffer, g), groups)
            return np.concatenate([t for t, _ in parts]), np.concatenate([n for _, n in parts])
        return _joined_flat(self.buffer, texts)

    def encode_lists(self, texts: List[str]) -> List[List[int]]:
        total = 0
        for t in texts:
            total += len(t)
        if self.workers > 1 and len(texts) > 1 and total >= PARALLEL_MIN_CHARS:
            groups = balanced_groups([len(t) for t in texts], self.workers)
            results = self.run_parallel(lambda core, g: [core.encode_ordinary(texts[k]) for k in g], groups)
            out: List[Any] = [None] * len(texts)
            for g, lists in zip(groups, results):
                for k, toks in zip(g, lists):
                    out[k] = toks
            return out
        return [self.encode(t) for t in texts]


def _joined_flat(buf, texts: List[str]) -> Tuple[np.ndarray, np.ndarray]:
    """``(tokens, lengths)``: the ids of ``texts`` back to back (separators dropped) and how many
    each has, from one joined tiktoken call."""
    arr = np.frombuffer(buf(JOIN_TEXT.join(texts), _JOIN_SET), dtype=np.uint32)
    cuts = np.flatnonzero(arr == _JOIN_ID)
    bounds = np.empty(cuts.shape[0] + 2, dtype=np.int64)
    bounds[0] = -1
    bounds[1:-1] = cuts
    bounds[-1] = arr.shape[0]
    return arr[arr != _JOIN_ID], np.diff(bounds) - 1


def balanced_groups(sizes: Sequence[int], k: int) -> List[List[int]]:
    """Indices of ``sizes`` in at most ``k`` non-empty groups of similar total size (largest
    first, each to the lightest group so far)."""
    groups: List[List[int]] = [[] for _ in range(min(k, len(sizes)))]
    totals = [0] * len(groups)
    for i in sorted(range(len(sizes)), key=lambda i: -sizes[i]):
        g = totals.index(min(totals))
        groups[g].append(i)
        totals[g] += sizes[i]
    return groups


class _Fast:
    """The accelerated backend, verified against tiktoken, with its guard: the code points whose
    texts must go to tiktoken (lone surrogates, the measured disagreements, or every non-ASCII
    code point when ``ranges`` is None: no table fits the installed versions)."""

    def __init__(self, tokenizer, name: str, ranges: Optional[List[Tuple[int, int]]], note: str) -> None:
        self.tokenizer = tokenizer
        self.encode = tokenizer.encode_ordinary
        self.name = name
        self.note = note
        table = np.zeros(0x110000, dtype=np.bool_)  # 1.1 MB, one per vocabulary
        table[0xD800:0xE000] = True
        if ranges is None:
            table[0x80:] = True
            ranges = [(0x80, 0x10FFFF)]
        for a, b in ranges:
            table[a : b + 1] = True
        self.unsafe_table = table
        # for one short text a regex beats the table's conversion
        self.unsafe = re.compile("[" + _SURROGATES + "".join(re.escape(chr(a)) + ("" if a == b else "-" + re.escape(chr(b))) for a, b in ranges) + "]")

    def unsafe_rows(self, texts: List[str], joined: str) -> np.ndarray:
        """The indices of ``texts`` (``joined`` is their concatenation) holding an unsafe code
        point: code points looked up in the table, a bounded slice of the text at a time."""
        table = self.unsafe_table
        hits = []
        for at in range(0, len(joined), _GUARD_SLICE):
            part = joined[at : at + _GUARD_SLICE]
            if part.isascii():
                continue
            cps = np.frombuffer(part.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
            found = np.flatnonzero(table[cps])
            if found.size:
                hits.append(found + at)
        if not hits:
            return np.zeros(0, dtype=np.int64)
        ends = np.cumsum(np.fromiter(map(len, texts), dtype=np.int64, count=len(texts)))
        return np.unique(np.searchsorted(ends, np.concatenate(hits), side="right"))

    def encode_flat(self, texts: List[str]) -> Tuple[np.ndarray, np.ndarray]:
        tokens, offsets = self.tokenizer.encode_batch(texts, thread_count())
        return np.asarray(tokens, dtype=np.uint32), np.diff(np.asarray(offsets, dtype=np.int64))


# characters of text checked against the guard table at a time (4 bytes each while checked)
_GUARD_SLICE = 1 << 20


class OrdinaryBPE:
    """Ordinary text to ids for one vocabulary: tiktoken, or the accelerated backend behind its
    guards (see the module's text). One per vocabulary (:func:`ordinary_bpe`)."""

    def __init__(self, vocab: Vocabulary, choice: Optional[str] = None) -> None:
        self.reference = _Tiktoken(vocab)
        self.vocab = vocab
        choice = os.environ.get(BACKEND_ENV, "auto") if choice is None else choice
        if choice not in _CHOICES:
            raise ValueError(f"{BACKEND_ENV} must be one of {_CHOICES}, got {choice!r}")
        self._choice = choice
        self._fast: Optional[_Fast] = None
        self._loaded = choice == "tiktoken"
        self._why = f"{BACKEND_ENV}=tiktoken" if choice == "tiktoken" else ""

    # -- which backend ------------------------------------------------------------------------
    @property
    def backend(self) -> str:
        """The backend batch encodes use, with the reason when it is tiktoken, e.g.
        ``"quicktok-v1 0.4.0"`` or ``"tiktoken 0.14.0 (quicktok is not installed)"``; loads and
        verifies the accelerated backend if that has not happened yet."""
        fast = self._load()
        if fast is not None:
            return fast.name + (f" ({fast.note})" if fast.note else "")
        return self.reference.name + (f" ({self._why})" if self._why else "")

    def _load(self) -> Optional[_Fast]:
        if self._loaded:
            return self._fast
        with first_use():  # a fork waits for the load (see harmony_np.threads)
            if not self._loaded:
                try:
                    self._fast = _load_fast(self.reference)
                except _Refused as exc:
                    self._why = str(exc)
                    if self._choice == "quicktok":
                        raise RuntimeError(f"{BACKEND_ENV}=quicktok: {exc}") from None
                self._loaded = True
        return self._fast

    # -- encoding -----------------------------------------------------------------------------
    def encode(self, text: str) -> List[int]:
        """The ids of one text, as Python ints (anything but a ``str`` gets tiktoken's error)."""
        fast = self._fast
        if fast is not None and text.__class__ is str and (text.isascii() or not fast.unsafe.search(text)):
            return fast.encode(text)
        return self.reference.encode(text)

    def encode_array(self, text: str) -> np.ndarray:
        """The ids of one text as a ``uint32`` array."""
        fast = self._fast
        if fast is not None and text.__class__ is str and (text.isascii() or not fast.unsafe.search(text)):
            return np.asarray(fast.encode(text), dtype=np.uint32)
        return self.reference.encode_array(text)

    def encode_lists(self, texts: List[str]) -> List[List[int]]:
        """The ids of each text as a list, on the thread pool when there is enough text."""
        if self._fast is None:
            return self.reference.encode_lists(texts)
        flat, lengths = self.encode_flat(texts)
        ids = flat.tolist()
        out = []
        at = 0
        for n in lengths.tolist():
            out.append(ids[at : at + n])
            at += n
        return out

    def encode_flat(self, texts: Sequence[str]) -> Tuple[np.ndarray, np.ndarray]:
        """``(tokens, lengths)`` of ``texts``: their ids back to back (``uint32``) and the number
        of ids of each (``int64``), split over the usable cores when there is enough text; no
        Python object per text or token. Raises ``UnicodeEncodeError`` for a text with a lone
        surrogate."""
        texts = list(texts)
        if not texts:
            return np.zeros(0, np.uint32), np.zeros(0, np.int64)
        joined = "".join(texts)
        # tiktoken's joined call cuts at this token's text: a text holding it is encoded alone
        # (in the joined string it may also span two texts, hence the check of each)
        alone = [i for i, t in enumerate(texts) if JOIN_TEXT in t] if JOIN_TEXT in joined else []
        fast = self._load()
        unsafe: List[int] = []
        if fast is not None and not joined.isascii():
            unsafe = fast.unsafe_rows(texts, joined).tolist()
        del joined
        if fast is None and not alone:
            return self.reference.encode_flat(texts)
        if fast is not None and not alone and not unsafe:
            return fast.encode_flat(texts)
        # rows split between the encoders, then merged back in order
        routed = set(alone) | set(unsafe)
        joined_ref = sorted(set(unsafe) - set(alone)) if fast is not None else [i for i in range(len(texts)) if i not in routed]
        rest = [i for i in range(len(texts)) if i not in routed] if fast is not None else []
        parts = []
        if alone:
            lists = [self.reference.encode(texts[i]) for i in alone]
            parts.append((alone, np.fromiter((x for ids in lists for x in ids), dtype=np.uint32), np.array([len(x) for x in lists], dtype=np.int64)))
        if joined_ref:
            parts.append((joined_ref, *self.reference.encode_flat([texts[i] for i in joined_ref])))
        if rest:
            parts.append((rest, *fast.encode_flat([texts[i] for i in rest])))  # type: ignore[union-attr]
        return _merged(len(texts), parts)


def _merged(n: int, parts: List[Tuple[List[int], np.ndarray, np.ndarray]]) -> Tuple[np.ndarray, np.ndarray]:
    """``(tokens, lengths)`` of ``n`` rows from parts ``(rows, tokens, lengths)`` that together
    hold every row once, each part's rows in rising order."""
    lengths = np.zeros(n, dtype=np.int64)
    for rows, _, part_lengths in parts:
        lengths[rows] = part_lengths
    starts = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(lengths, out=starts[1:])
    tokens = np.empty(int(starts[-1]), dtype=np.uint32)
    for rows, part, part_lengths in parts:
        # the destination of every token of these rows, in their order
        dest_start = np.repeat(starts[rows], part_lengths)
        src_start = np.repeat(np.cumsum(part_lengths) - part_lengths, part_lengths)
        tokens[dest_start + (np.arange(part.shape[0]) - src_start)] = part
    return tokens, lengths


class _Refused(Exception):
    """Why the accelerated backend is not used."""


def verified_backend(reference: _Tiktoken) -> Tuple[Any, str]:
    """``(tokenizer, name with version)`` of the accelerated backend, imported, loaded and
    verified against ``reference``, or :class:`_Refused` saying why not."""
    module, distribution = FAST_BACKEND
    try:
        quicktok = first_import(module)
    except ImportError:
        raise _Refused(f"{distribution} is not installed") from None
    name = f"{distribution} {_version(distribution)}"
    try:
        tokenizer = quicktok.get_encoding("o200k_base")
    except Exception as exc:  # its loader's errors are its own
        raise _Refused(f"{name} failed to load o200k_base: {exc}") from None
    problem = vocabulary_problem(tokenizer, reference.vocab)
    if problem is None:
        problem = sample_problem(tokenizer, reference)
    if problem is not None:
        raise _Refused(f"{name} refused: {problem}")
    return tokenizer, name


def _load_fast(reference: _Tiktoken) -> _Fast:
    """The accelerated backend with its guard, or :class:`_Refused`."""
    tokenizer, name = verified_backend(reference)
    table = guard_table(name, reference.name)
    if table is None:
        return _Fast(tokenizer, name, None, "non-ASCII text via tiktoken: no guard table for these versions, see harmony-np bpe-check")
    return _Fast(tokenizer, name, table, "")


def vocabulary_problem(tokenizer, vocab: Vocabulary) -> Optional[str]:
    """What differs between the backend's vocabulary and the o200k ranks (every token's bytes at
    its rank, and nothing past them), or None."""
    try:
        if int(tokenizer.n_vocab) < N_ORDINARY:
            return f"its vocabulary has {tokenizer.n_vocab} tokens, o200k has {N_ORDINARY}"
        theirs = [tokenizer.decode_single_token_bytes(i) for i in range(N_ORDINARY)]
    except Exception as exc:
        return f"its vocabulary cannot be read: {exc}"
    ours = vocab.token_bytes_list()[:N_ORDINARY]
    if theirs != ours:
        i = next(k for k in range(N_ORDINARY) if theirs[k] != ours[k])
        return f"token {i} is {theirs[i]!r}, o200k has {ours[i]!r}"
    return None


# A fixed corpus of the split pattern's hard cases, for the check at load (the code-point
# measurement is the guard; this catches a backend that is wrong everywhere, in milliseconds).
_SAMPLES = (
    "Hello, world! It's 2026; you'Ll see I'M here.  \n\n\tdef f(x):\n        return x**2 // 3\n",
    "1234567 89 0.5e-3 ١٢٣ ½ 𝟙𝟚𝟛",
    "Привет мир. 你好，世界。 مرحبا بالعالم नमस्ते दुनिया สวัสดีชาวโลก 안녕하세요 Γειά σου",
    "   leading and trailing   \r\n\r\n  mixed\u00a0spaces\u2003here \u200b zero-width",
    "emoji 👩‍👩‍👧‍👦 🇺🇸 👍🏽 ❤️ and combining e\u0301 a\u0308\u0304",
    '{"a": [1, 2, {"b": "c\\n"}], "d": null}  <|start|> not special here',
    "x" * 300 + " " * 300 + "ab" * 150 + "\n" * 50,
)


def sample_problem(tokenizer, reference: _Tiktoken) -> Optional[str]:
    """The first text of a fixed corpus, and of every ASCII code point in the guard's contexts,
    on which the backend's ids differ from tiktoken's, or None."""
    texts = list(_SAMPLES) + [_CONTEXT_TEMPLATE.replace("{c}", chr(c)) for c in range(128)]
    for text in texts:
        try:
            theirs = tokenizer.encode_ordinary(text)
        except Exception as exc:
            return f"it fails on {text[:40]!r}: {exc}"
        if theirs != reference.encode(text):
            return f"its ids differ from tiktoken's on {text[:40]!r}"
    return None


# -- the guard table -------------------------------------------------------------------------


def measure_disagreements(tokenizer, reference: _Tiktoken, code_points: Optional[Sequence[int]] = None) -> List[Tuple[int, int]]:
    """The code points (default: all but surrogates) on which the backend's ids differ from
    tiktoken's in the guard's contexts, as sorted inclusive ranges ``[(first, last), ...]``.
    Every code point's contexts are one text, encoded by both; takes seconds for all of them."""
    if code_points is None:
        code_points = [c for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF]
    cps = list(code_points)
    template = _CONTEXT_TEMPLATE
    texts = [template.replace("{c}", chr(c)) for c in cps]
    theirs, their_len = _Fast(tokenizer, "", [], "").encode_flat(texts)
    ours, our_len = reference.encode_flat(texts)
    bad = np.flatnonzero(their_len != our_len)
    same = np.flatnonzero(their_len == our_len)
    if same.size:
        # compare the rows of equal length token by token, each side at its own offsets
        their_start = np.cumsum(their_len) - their_len
        our_start = np.cumsum(our_len) - our_len
        n = our_len[same]
        row = np.repeat(np.arange(same.shape[0]), n)
        within = np.arange(int(n.sum())) - np.repeat(np.cumsum(n) - n, n)
        differ = theirs[their_start[same][row] + within] != ours[our_start[same][row] + within]
        bad = np.union1d(bad, same[np.unique(row[differ])])
    out: List[Tuple[int, int]] = []
    for c in (cps[i] for i in bad.tolist()):
        if out and out[-1][1] == c - 1:
            out[-1] = (out[-1][0], c)
        else:
            out.append((c, c))
    return out


def _table_key(backend: str, reference: str) -> dict:
    return {"format": GUARD_FORMAT, "backend": backend, "reference": reference, "contexts": list(_CONTEXTS)}


def _read_table(path, key: dict) -> Optional[List[Tuple[int, int]]]:
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("key") != key:
        return None
    ranges = data.get("ranges")
    if not isinstance(ranges, list) or not all(isinstance(r, list) and len(r) == 2 and all(isinstance(v, int) for v in r) for r in ranges):
        return None
    return [(a, b) for a, b in ranges]


def guard_table(backend: str, reference: str) -> Optional[List[Tuple[int, int]]]:
    """The measured disagreements for these two backends (names with versions): the table shipped
    with the package, else one in the user's cache folders, else None."""
    key = _table_key(backend, reference)
    shipped = _read_table(os.path.join(os.path.dirname(__file__), GUARD_FILE), key)
    if shipped is not None:
        return shipped
    for folder in cache_folders("bpe"):
        table = _read_table(folder / GUARD_FILE, key)
        if table is not None:
            return table
    return None


def write_guard_table(path, tokenizer, reference: _Tiktoken, backend: str) -> List[Tuple[int, int]]:
    """Measure the disagreements and write them to ``path`` (through a temporary file)."""
    ranges = measure_disagreements(tokenizer, reference)
    data = {"key": _table_key(backend, reference.name), "ranges": [list(r) for r in ranges]}
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        # one range a line: a new measurement shows as a readable diff
        f.write('{"key": ' + json.dumps(data["key"]) + ',\n"ranges": [\n')
        f.write(",\n".join(json.dumps(r) for r in data["ranges"]))
        f.write("\n]}\n")
    os.replace(tmp, path)
    return ranges


def check_and_store(vocab: Vocabulary) -> Tuple[str, List[Tuple[int, int]], Optional[str]]:
    """For ``harmony-np bpe-check``: measure the installed backend against tiktoken and store the
    table in the user's cache folder. ``(backend, ranges, path or None)``; raises
    ``RuntimeError`` if the backend cannot be used at all."""
    reference = _Tiktoken(vocab)
    try:
        tokenizer, name = verified_backend(reference)
    except _Refused as exc:
        raise RuntimeError(f"{exc} (pip install 'harmony-np[fast]')") from None
    folder = writable_cache_folder("bpe")
    if folder is None:
        return name, measure_disagreements(tokenizer, reference), None
    path = folder / GUARD_FILE
    return name, write_guard_table(path, tokenizer, reference, name), str(path)


def ordinary_bpe(vocab: Vocabulary) -> OrdinaryBPE:
    """The seam of ``vocab`` (one per vocabulary, made on first use)."""
    return vocab.attached("ordinary_bpe", OrdinaryBPE)

