"""The BPE seam (harmony_np.bpe): the accelerated backend's ids equal tiktoken's everywhere.

Differential tests against tiktoken (the reference side of the seam) on corpora built to break BPE
ports, the guards (vocabulary check, the measured code-point table, fallbacks), and renders
through the seam equal to openai_harmony's.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import types

import numpy as np
import pytest

import harmony_np
from harmony_np import bpe

quicktok = pytest.importorskip("quicktok", reason="the [fast] extra is not installed")

ENC = harmony_np.load_harmony_encoding(harmony_np.HarmonyEncodingName.HARMONY_GPT_OSS)
SEAM = bpe.ordinary_bpe(ENC.vocab)
REF = SEAM.reference
# code points first assigned in Unicode 17.0, which the backend classifies as letters and
# tiktoken's tables do not (CJK Extension J, Tangut Components Supplement, Sidetic, ...)
UNICODE_17 = [0x323B0, 0x323B5, 0x33479, 0x088F, 0x0C5C, 0x1AEB, 0x10940, 0x18D08, 0x1E6C0]


def _rows(tokens: np.ndarray, lengths: np.ndarray) -> list:
    ends = np.cumsum(lengths)
    return [tokens[a:z].tolist() for a, z in zip((ends - lengths).tolist(), ends.tolist())]


def hard_corpus() -> list:
    """Texts that break BPE ports: samples of every script block, code points in the contexts that
    expose the split pattern's classes, odd-case contractions, digit and whitespace runs, long
    repeats, emoji sequences and the Unicode 17 additions."""
    texts = []
    contexts = ["{c}", "a{c}", "1{c}", "'{c}", " {c}", "\n{c}", "{c}'s", "{c}'LL", "A{c}a", "{c}12", "{c}  x"]
    # every block of 128 code points, three code points of each, in every context
    for base in range(0, 0x32400, 128):
        for c in (base, base + 37, base + 101):
            if 0xD800 <= c <= 0xDFFF:
                continue
            texts.append(" ".join(x.replace("{c}", chr(c)) for x in contexts))
    for c in UNICODE_17:
        texts += [x.replace("{c}", chr(c)) for x in contexts]
        texts.append(f"word{chr(c)}'s {chr(c)}{chr(c)}'RE and 12{chr(c)}3")
    texts += [
        "I'M here, you'Ll see, THEY'RE done, it'S fine, we'vE won, he'D go, 'tis 'T",
        "don't DON'T Don'T can'T I'll i'LL",
        "1 12 123 1234 12345 123456 1234567 3.14159 1,000,000 ١٢٣٤٥ ०१२३ 一二三",
        " " * 17 + "x" + "\t" * 9 + "y" + "\n" * 13 + "z \n \n  \r\n\r\n\t \n",
        "   trailing spaces   ", "\n\n\n", " ", "", "\u3000\u00a0\u2009 mixed spaces",
        "ab" * 50_000, "a" * 100_000, " " * 100_000, "\n" * 100_000, "🙂" * 20_000,
        "👩‍👩‍👧‍👦 👍🏽 🇺🇸🇫🇷 ❤️‍🔥 🏳️‍🌈 #️⃣ 🧑🏿‍🚀 e\u0301\u0302 ñ n\u0303",
        "日本語のテキストと English の混在。中文，标点！한국어 텍스트. Ελληνικά. עברית. ไทย",
        "مرحبا بالعالم العربي ١٢٣ — हिन्दी पाठ — বাংলা — தமிழ் — ქართული — Հայերեն",
        'def f(x):\n    return {"k": [1, 2.5e-3, None]}  # code\n\tif x>=0: pass\n',
        "<|start|>user<|message|> special-token text is plain text here <|end|>",
    ]
    return texts


CORPUS = hard_corpus()


def test_backend_in_use_is_the_verified_fast_one():
    # the [fast] extra is installed here (importorskip above): it verified and is in use
    assert ENC.bpe_backend.startswith(f"{bpe.FAST_BACKEND[1]} "), ENC.bpe_backend


def test_batch_encode_equals_tiktoken_on_the_hard_corpus():
    tokens, lengths = SEAM.encode_flat(CORPUS)
    assert tokens.dtype == np.uint32 and lengths.dtype == np.int64 and lengths.shape == (len(CORPUS),)
    got = _rows(tokens, lengths)
    for i, text in enumerate(CORPUS):
        assert got[i] == REF.encode(text), f"text {i}: {text[:60]!r}"


def test_single_and_list_encodes_equal_tiktoken_on_the_hard_corpus():
    SEAM.encode_flat(["load the backend"])
    for text in CORPUS:
        assert SEAM.encode(text) == REF.encode(text), text[:60]
        assert SEAM.encode_array(text).tolist() == REF.encode(text), text[:60]
    assert SEAM.encode_lists(CORPUS) == [REF.encode(t) for t in CORPUS]


def test_unicode_17_texts_are_exact_though_the_raw_backend_differs():
    texts = [f"a{chr(c)}'s" for c in UNICODE_17] + [f"日本{chr(0x323B0)}'S 1{chr(0x323B0)}23"]
    raw = quicktok.get_encoding("o200k_base")
    # the guard is needed: without it these ids would differ
    assert sum(raw.encode_ordinary(t) != REF.encode(t) for t in texts) >= len(UNICODE_17) - 2
    got = _rows(*SEAM.encode_flat(texts + ["plain ascii", "ça va"]))
    assert got == [REF.encode(t) for t in texts + ["plain ascii", "ça va"]]
    assert [SEAM.encode(t) for t in texts] == [REF.encode(t) for t in texts]
    # mixed batches: the routed rows keep their places
    mixed = ["x" * k + chr(UNICODE_17[k % len(UNICODE_17)]) + "'s" if k % 3 == 0 else f"row {k} é" for k in range(50)]
    assert _rows(*SEAM.encode_flat(mixed)) == [REF.encode(t) for t in mixed]


def test_lone_surrogates_raise_as_tiktoken_does():
    with pytest.raises(UnicodeEncodeError):
        SEAM.encode_flat(["fine", "bad \ud800 text"])
    with pytest.raises(UnicodeEncodeError):
        SEAM.encode("bad \udfff")
    # the facade keeps tiktoken's wrapper rule: replaced, then encoded
    assert ENC.encode_ordinary("a\ud800b") == REF.encode("a\ufffdb")


def test_texts_holding_the_join_token_text_are_encoded_alone():
    # tiktoken's joined call cuts at <|reserved_200999|>: such a text (or two texts that hold
    # it only when joined) must still get its own ids, on both backends
    texts = ["a", "x <|reserved_200999|> y", "ends <|reserved_2009", "99|> starts", "é <|reserved_200999|>"]
    want = [REF.encode(t) for t in texts]
    for seam in (SEAM, bpe.OrdinaryBPE(ENC.vocab, "tiktoken")):
        assert _rows(*seam.encode_flat(texts)) == want
        assert seam.encode_lists(texts) == want


def test_facade_encode_with_allowed_specials_equals_tiktoken():
    tk = ENC.vocab.bpe  # tiktoken's Encoding on the same ranks and specials
    texts = [
        "<|start|>user<|message|>héllo 𲎰's<|end|>", "no specials", "<|start|><|start|>x<|end|>",
        "<|reserved_200999|>a<|reserved_201000|>", "<|constrain|>json<|call|> <|notaspecial|>",
    ]
    for t in texts:
        assert ENC.encode(t, allowed_special="all") == tk.encode(t, allowed_special="all"), t
        assert ENC.encode(t, allowed_special={"<|start|>", "not a special"}, disallowed_special=()) == tk.encode(
            t, allowed_special={"<|start|>"}, disallowed_special=()
        ), t


def test_renders_through_the_seam_equal_openai_harmony(oracle):
    h = oracle
    texts = [t for t in CORPUS if len(t) < 2000][:120]
    convs = []
    for i in range(0, len(texts), 3):
        msgs = [h.Message.from_role_and_content(h.Role.USER, texts[i])]
        if i + 1 < len(texts):
            msgs.append(h.Message.from_role_and_content(h.Role.ASSISTANT, texts[i + 1]).with_channel("analysis"))
        if i + 2 < len(texts):
            msgs.append(h.Message.from_role_and_content(h.Role.ASSISTANT, texts[i + 2]).with_channel("final"))
        convs.append(msgs)
    oenc = h.load_harmony_encoding(h.HarmonyEncodingName.HARMONY_GPT_OSS)
    want = [oenc.render_conversation_for_completion(h.Conversation.from_messages(m), h.Role.ASSISTANT) for m in convs]
    ours = [harmony_np.Conversation.from_json(h.Conversation.from_messages(m).to_json()) for m in convs]
    got = ENC.render_batch(ours)
    assert [row.tolist() for row in got] == want
    assert [ENC.render_conversation_for_completion(c, harmony_np.Role.ASSISTANT) for c in ours] == want


# -- guards ------------------------------------------------------------------------------------


class _Altered:
    """The real backend with one thing changed (what a broken build or another vocabulary gives)."""

    def __init__(self, token: int = -1, shift_encode: bool = False) -> None:
        self.real = quicktok.get_encoding("o200k_base")
        self.token = token
        self.shift_encode = shift_encode
        self.n_vocab = self.real.n_vocab

    def decode_single_token_bytes(self, i: int) -> bytes:
        b = self.real.decode_single_token_bytes(i)
        return b + b"!" if i == self.token else b

    def encode_ordinary(self, text: str) -> list:
        ids = self.real.encode_ordinary(text)
        return [x + 1 for x in ids] if self.shift_encode else ids

    def encode_batch(self, texts, threads=0):
        return self.real.encode_batch(texts, threads)


def test_a_vocabulary_mismatch_is_found_and_the_backend_refused(monkeypatch):
    assert bpe.vocabulary_problem(quicktok.get_encoding("o200k_base"), ENC.vocab) is None
    problem = bpe.vocabulary_problem(_Altered(token=1234), ENC.vocab)
    assert problem is not None and "token 1234" in problem
    assert "differ" in bpe.sample_problem(_Altered(shift_encode=True), REF)
    # the whole load refuses it and keeps tiktoken, saying why
    fake = types.ModuleType("altered_quicktok")
    fake.get_encoding = lambda name: _Altered(token=77)
    monkeypatch.setitem(sys.modules, "altered_quicktok", fake)
    monkeypatch.setattr(bpe, "FAST_BACKEND", ("altered_quicktok", "quicktok-v1"))
    seam = bpe.OrdinaryBPE(ENC.vocab, "auto")
    assert seam.backend.startswith("tiktoken ") and "refused" in seam.backend and "token 77" in seam.backend
    assert _rows(*seam.encode_flat(CORPUS[:50])) == [REF.encode(t) for t in CORPUS[:50]]
    with pytest.raises(RuntimeError, match="refused"):
        bpe.OrdinaryBPE(ENC.vocab, "quicktok").encode_flat(["x"])


def test_without_a_guard_table_every_non_ascii_text_goes_to_tiktoken(monkeypatch):
    monkeypatch.setattr(bpe, "guard_table", lambda backend, reference: None)
    seam = bpe.OrdinaryBPE(ENC.vocab, "auto")
    assert "no guard table" in seam.backend
    texts = [f"a{chr(c)}'s" for c in UNICODE_17] + ["ascii only", "é"]
    assert _rows(*seam.encode_flat(texts)) == [REF.encode(t) for t in texts]


def test_the_guard_table_is_read_only_for_its_own_versions(tmp_path, monkeypatch):
    monkeypatch.setenv("HARMONY_NP_CACHE_DIR", str(tmp_path))
    path = tmp_path / "bpe" / bpe.GUARD_FILE
    path.parent.mkdir()
    key = {"format": bpe.GUARD_FORMAT, "backend": "other 9.9", "reference": "tiktoken 0.0", "contexts": list(bpe._CONTEXTS)}
    path.write_text(json.dumps({"key": key, "ranges": [[65, 70]]}))
    assert bpe.guard_table("other 9.9", "tiktoken 0.0") == [(65, 70)]
    assert bpe.guard_table("other 9.9", "tiktoken 0.1") is None  # another tiktoken: not this table
    path.write_text(json.dumps({"key": key, "ranges": [[65, "x"]]}))
    assert bpe.guard_table("other 9.9", "tiktoken 0.0") is None  # malformed: not used
    path.write_text("{not json")
    assert bpe.guard_table("other 9.9", "tiktoken 0.0") is None


def test_env_var_chooses_tiktoken_and_refuses_unknown_values(monkeypatch):
    monkeypatch.setenv(bpe.BACKEND_ENV, "tiktoken")
    seam = bpe.OrdinaryBPE(ENC.vocab)
    assert seam.backend.startswith("tiktoken ") and bpe.BACKEND_ENV in seam.backend
    monkeypatch.setenv(bpe.BACKEND_ENV, "fastest")
    with pytest.raises(ValueError, match="HARMONY_NP_BPE"):
        bpe.OrdinaryBPE(ENC.vocab)


def _child(code: str, **env: str) -> subprocess.CompletedProcess:
    full = dict(os.environ, **env)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=full, timeout=300)


@pytest.mark.slow
def test_a_missing_backend_falls_back_to_tiktoken_in_a_fresh_process():
    code = (
        "import sys\n"
        "sys.modules['quicktok'] = None  # as if the extra were not installed\n"
        "import harmony_np\n"
        "enc = harmony_np.load_harmony_encoding(harmony_np.HarmonyEncodingName.HARMONY_GPT_OSS)\n"
        "print(enc.bpe_backend)\n"
        "rows = enc.render_batch([[harmony_np.Message.from_role_and_content(harmony_np.Role.USER, 'héllo 𲎰\\'s')]])\n"
        "print(rows[0].tolist() == enc.render_conversation_for_completion([harmony_np.Message.from_role_and_content(harmony_np.Role.USER, 'héllo 𲎰\\'s')], harmony_np.Role.ASSISTANT))\n"
    )
    r = _child(code)
    assert r.returncode == 0, r.stderr
    backend, same = r.stdout.split("\n")[:2]
    assert backend.startswith("tiktoken ") and "quicktok-v1 is not installed" in backend
    assert same == "True"


@pytest.mark.slow
def test_the_backend_keeps_no_threads_of_its_own():
    code = (
        "import os, harmony_np\n"
        "from harmony_np.bpe import ordinary_bpe\n"
        "enc = harmony_np.load_harmony_encoding(harmony_np.HarmonyEncodingName.HARMONY_GPT_OSS)\n"
        "seam = ordinary_bpe(enc.vocab)\n"
        "seam.encode_flat(['warm'])\n"
        "before = len(os.listdir('/proc/self/task'))\n"
        "for _ in range(3):\n"
        "    seam.encode_flat(['some text to encode %d ' % i * 40 for i in range(2000)])\n"
        "print(before, len(os.listdir('/proc/self/task')))\n"
    )
    r = _child(code)
    assert r.returncode == 0, r.stderr
    before, after = map(int, r.stdout.split())
    assert after == before  # the backend's threads end with each call: none stays resident


@pytest.mark.slow
def test_every_code_point_in_every_context_equals_tiktoken():
    """The guard's claim, end to end: every code point (surrogates aside) in the measurement's
    contexts, encoded through the seam, gives tiktoken's ids; and every code point where the raw
    backend differs is one the guard sends to tiktoken."""
    cps = [c for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF]
    texts = [bpe._CONTEXT_TEMPLATE.replace("{c}", chr(c)) for c in cps]
    ref_tokens, ref_lengths = REF.encode_flat(texts)
    tokens, lengths = SEAM.encode_flat(texts)
    assert np.array_equal(lengths, ref_lengths) and np.array_equal(tokens, ref_tokens)
    raw = quicktok.get_encoding("o200k_base")
    raw_tokens, raw_offsets = raw.encode_batch(texts, 2)
    raw_lengths = np.diff(np.asarray(raw_offsets, dtype=np.int64))
    # rows where the raw backend differs (length or any id), each of which the guard must catch
    differs = np.flatnonzero(raw_lengths != ref_lengths).tolist()
    same = np.flatnonzero(raw_lengths == ref_lengths)
    starts_raw = np.cumsum(raw_lengths) - raw_lengths
    starts_ref = np.cumsum(ref_lengths) - ref_lengths
    raw_tokens = np.asarray(raw_tokens)
    for i in same.tolist():
        n = int(ref_lengths[i])
        if not np.array_equal(raw_tokens[starts_raw[i] : starts_raw[i] + n], ref_tokens[starts_ref[i] : starts_ref[i] + n]):
            differs.append(i)
    assert differs, "the raw backend agrees everywhere: this test no longer tests the guard"
    unsafe = bpe._load_fast(REF).unsafe
    assert all(unsafe.search(texts[i]) for i in differs)


@pytest.mark.slow
def test_bpe_check_measures_and_stores_a_table(tmp_path):
    r = subprocess.run(
        [sys.executable, "-m", "harmony_np", "bpe-check"], capture_output=True, text=True, timeout=600,
        env=dict(os.environ, HARMONY_NP_CACHE_DIR=str(tmp_path)),
    )
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert report["backend"].startswith("quicktok-v1 ") and report["table"] == str(tmp_path / "bpe" / bpe.GUARD_FILE)
    stored = json.loads((tmp_path / "bpe" / bpe.GUARD_FILE).read_text())
    assert len(stored["ranges"]) == report["ranges"]
    assert sum(b - a + 1 for a, b in stored["ranges"]) == report["disagreeing_code_points"] > 0
    # the stored table is the shipped one's measurement where the versions are the same
    with open(os.path.join(os.path.dirname(bpe.__file__), bpe.GUARD_FILE), encoding="utf-8") as f:
        shipped = json.load(f)
    if shipped["key"] == stored["key"]:
        assert shipped["ranges"] == stored["ranges"]
