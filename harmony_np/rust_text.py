"""The texts of openai_harmony's errors that come from Rust: ``Debug`` of a ``str``, serde_json's
reading and display of numbers, ``FromUtf8Error``, and the JSON hand-over's refusal of a lone
surrogate. One module, so that every layer that raises such an error takes the same words.
"""

from __future__ import annotations

import bisect
import math
import unicodedata

from .caches import BoundedCache, approx_size
from .errors import HarmonyError
from .tuning import DEBUG_CHAR_CACHE_BYTES

__all__ = ["rust_debug_str", "serde_f64", "format_f64", "out_of_range_error", "utf8_error_text", "decode_error", "unknown_token_error", "surrogate_error"]


U64_MAX = (1 << 64) - 1
U64_MAX_DIV10, U64_MAX_MOD10 = divmod(U64_MAX, 10)
I64_MIN = -(1 << 63)
_I32_MAX = (1 << 31) - 1
_I32_MIN = -(1 << 31)
# the same correctly rounded literals 1e0 .. 1e308 that serde_json scales by
_POW10 = tuple(float(f"1e{i}") for i in range(309))


# Rust's <str as Debug> escapes grapheme extenders and non-printable characters by the tables of a
# newer Unicode than Python 3.11's unicodedata (14.0). These ranges are where the two disagree,
# found by comparing every code point with the oracle: escaped by Rust although printable here,
# and printable for Rust although unassigned here.
_DEBUG_ESCAPE_EXTRA = (
    (0xCC0, 0xCC0), (0xCC7, 0xCC8), (0xCCA, 0xCCB), (0x1715, 0x1715), (0x1734, 0x1734), (0x1B3B, 0x1B3B),
    (0x1B3D, 0x1B3D), (0x1B43, 0x1B44), (0x1BAA, 0x1BAA), (0x1BF2, 0x1BF3), (0xA953, 0xA953), (0xA9C0, 0xA9C0),
    (0x111C0, 0x111C0), (0x11235, 0x11235), (0x1134D, 0x1134D), (0x116B6, 0x116B6), (0x1193D, 0x1193D),
    (0x16FF0, 0x16FF1), (0x1D166, 0x1D166), (0x1D16D, 0x1D16D),
)
_DEBUG_PRINT_EXTRA = (
    (0xCF3, 0xCF3), (0x1B4E, 0x1B4F), (0x1B7F, 0x1B7F), (0x1C89, 0x1C8A), (0x2427, 0x2429), (0x2FFC, 0x2FFF),
    (0x31E4, 0x31E5), (0x31EF, 0x31EF), (0xA7CB, 0xA7CD), (0xA7DA, 0xA7DC), (0x105C0, 0x105F3), (0x10D40, 0x10D65),
    (0x10D6E, 0x10D85), (0x10D8E, 0x10D8F), (0x10EC2, 0x10EC4), (0x1123F, 0x11240), (0x11380, 0x11389),
    (0x1138B, 0x1138B), (0x1138E, 0x1138E), (0x11390, 0x113B5), (0x113B7, 0x113B7), (0x113B9, 0x113BA),
    (0x113CA, 0x113CA), (0x113CC, 0x113CD), (0x113D1, 0x113D1), (0x113D3, 0x113D5), (0x113D7, 0x113D8),
    (0x116D0, 0x116E3), (0x1171E, 0x1171E), (0x11B00, 0x11B09), (0x11BC0, 0x11BE1), (0x11BF0, 0x11BF9),
    (0x11F02, 0x11F10), (0x11F12, 0x11F35), (0x11F3E, 0x11F3F), (0x11F43, 0x11F59), (0x1342F, 0x1342F),
    (0x13441, 0x13446), (0x13460, 0x143FA), (0x16100, 0x1611D), (0x1612A, 0x1612C), (0x16130, 0x16139),
    (0x16D40, 0x16D79), (0x18CFF, 0x18CFF), (0x1B132, 0x1B132), (0x1B155, 0x1B155), (0x1CC00, 0x1CCF9),
    (0x1CD00, 0x1CEB3), (0x1D2C0, 0x1D2D3), (0x1DF25, 0x1DF2A), (0x1E030, 0x1E06D), (0x1E4D0, 0x1E4EB),
    (0x1E4F0, 0x1E4F9), (0x1E5D0, 0x1E5ED), (0x1E5F0, 0x1E5FA), (0x1E5FF, 0x1E5FF), (0x1F6DC, 0x1F6DC),
    (0x1F774, 0x1F776), (0x1F77B, 0x1F77F), (0x1F7D9, 0x1F7D9), (0x1F8B2, 0x1F8BB), (0x1F8C0, 0x1F8C1),
    (0x1FA75, 0x1FA77), (0x1FA87, 0x1FA89), (0x1FA8F, 0x1FA8F), (0x1FAAD, 0x1FAAF), (0x1FABB, 0x1FABF),
    (0x1FAC6, 0x1FAC6), (0x1FACE, 0x1FACF), (0x1FADA, 0x1FADC), (0x1FADF, 0x1FADF), (0x1FAE8, 0x1FAE9),
    (0x1FAF7, 0x1FAF8), (0x1FBCB, 0x1FBEF), (0x2B739, 0x2B739), (0x2EBF0, 0x2EE5D), (0x31350, 0x323AF),
)


def _in_ranges(cp: int, ranges: tuple) -> bool:
    i = bisect.bisect_right(ranges, (cp, 0x110000)) - 1
    return i >= 0 and ranges[i][0] <= cp <= ranges[i][1]


_OTHER_GRAPHEME_EXTEND = frozenset(
    [0x09BE, 0x09D7, 0x0B3E, 0x0B57, 0x0BBE, 0x0BD7, 0x0CC2, 0x0CD5, 0x0CD6, 0x0D3E, 0x0D57, 0x0DCF, 0x0DDF,
     0x1B35, 0x200C, 0x302E, 0x302F, 0xFF9E, 0xFF9F, 0x1133E, 0x11357, 0x114B0, 0x114BD, 0x115AF, 0x11930,
     0x1D165, 0x1D16E, 0x1D16F, 0x1D170, 0x1D171, 0x1D172]
    + list(range(0xE0020, 0xE0080))
)
_NOT_PRINTABLE = frozenset(("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp", "Zs"))
_SIMPLE_ESCAPES = {"\0": "\\0", "\t": "\\t", "\r": "\\r", "\n": "\\n", "\\": "\\\\", '"': '\\"'}


class _DebugChars(BoundedCache):
    """Code point -> its escape in Rust's Debug (the character itself when it needs none): a
    table for ``str.translate``, which looks every character up in C and fills misses here."""

    __slots__ = ()

    def __missing__(self, cp: int) -> str:
        e = _debug_char(chr(cp))
        self.put(cp, e, approx_size(cp, e))
        return e


_debug_char_cache = _DebugChars(DEBUG_CHAR_CACHE_BYTES)


def _debug_char(c: str) -> str:
    out = _SIMPLE_ESCAPES.get(c)
    if out is not None:
        return out
    cp = ord(c)
    if _in_ranges(cp, _DEBUG_PRINT_EXTRA):
        return c
    cat = unicodedata.category(c)
    if (
        _in_ranges(cp, _DEBUG_ESCAPE_EXTRA)
        or cat in ("Mn", "Me")
        or cp in _OTHER_GRAPHEME_EXTEND
        or (cat in _NOT_PRINTABLE and c != " ")
    ):
        return "\\u{%x}" % cp
    return c


def rust_debug_str(s: str) -> str:
    """``format!("{:?}", s)``: a quoted string with Rust's escapes."""
    if s.isascii() and s.isprintable() and '"' not in s and "\\" not in s:
        return '"' + s + '"'
    return '"' + s.translate(_debug_char_cache) + '"'


def out_of_range_error(text: str) -> ValueError:
    return ValueError(f"number {text} is out of range for serde_json (it would be infinite)")


def serde_f64(text: str) -> float:
    """The f64 serde_json (without its float_roundtrip feature) parses from a JSON number.

    It gathers at most u64 worth of significant digits and scales them by powers of ten in
    floating point, so the result can differ from Python's correctly rounded ``float(text)``.
    """
    neg = text.startswith("-")
    mantissa, _, exp_text = (text[1:] if neg else text).lower().partition("e")
    whole, _, frac = mantissa.partition(".")

    sig = 0
    exp10 = 0
    full = False
    for ch in whole:
        if full:
            exp10 += 1  # digits past u64 only scale the number
            continue
        digit = ord(ch) - 48
        if sig > U64_MAX_DIV10 or (sig == U64_MAX_DIV10 and digit > U64_MAX_MOD10):
            full = True
            exp10 += 1
        else:
            sig = sig * 10 + digit
    for ch in frac:
        digit = ord(ch) - 48
        if sig > U64_MAX_DIV10 or (sig == U64_MAX_DIV10 and digit > U64_MAX_MOD10):
            break  # the remaining fraction digits are dropped
        sig = sig * 10 + digit
        exp10 -= 1

    if exp_text:
        exp_neg = exp_text.startswith("-")
        exp = int(exp_text.lstrip("+-"))
        if exp > _I32_MAX:
            if sig != 0 and not exp_neg:
                raise out_of_range_error(text)
            return -0.0 if neg else 0.0
        exp10 = exp10 - exp if exp_neg else exp10 + exp
        exp10 = min(max(exp10, _I32_MIN), _I32_MAX)

    value = float(sig)
    while True:
        if abs(exp10) <= 308:
            if exp10 >= 0:
                value *= _POW10[exp10]
                if math.isinf(value):
                    raise out_of_range_error(text)
            else:
                value /= _POW10[-exp10]
            break
        if value == 0.0:
            break
        if exp10 >= 0:
            raise out_of_range_error(text)
        value /= 1e308
        exp10 += 308
    return -value if neg else value


def format_f64(value: float) -> str:
    """An f64 the way serde_json prints it (ryu: shortest digits, its own layout)."""
    if value == 0.0:
        return "-0.0" if math.copysign(1.0, value) < 0 else "0.0"
    text = repr(value)  # the same shortest round-trip digits that ryu finds
    sign = ""
    if text[0] == "-":
        sign, text = "-", text[1:]
    mantissa, _, exp_text = text.partition("e")
    whole, _, frac = mantissa.partition(".")
    if frac == "0":
        frac = ""
    digits = (whole + frac).lstrip("0")
    exp = (int(exp_text) if exp_text else 0) - len(frac)
    stripped = digits.rstrip("0")
    exp += len(digits) - len(stripped)
    digits = stripped
    n = len(digits)
    point = n + exp  # the value is 0.<digits> * 10**point
    if 0 <= exp and point <= 16:
        body = digits + "0" * exp + ".0"
    elif 0 < point <= 16:
        body = digits[:point] + "." + digits[point:]
    elif -5 < point <= 0:
        body = "0." + "0" * -point + digits
    elif n == 1:
        body = f"{digits}e{point - 1}"
    else:
        body = f"{digits[0]}.{digits[1:]}e{point - 1}"
    return sign + body


def utf8_error_text(data: bytes, exc: UnicodeDecodeError) -> str:
    """Rust's ``FromUtf8Error`` text for the first invalid sequence in ``data``."""
    start = exc.start
    # Python reports the bad prefix; Rust distinguishes a truncated sequence at the very end
    if exc.reason == "unexpected end of data":
        return f"incomplete utf-8 byte sequence from index {start}"
    return f"invalid utf-8 sequence of {exc.end - exc.start} bytes from index {start}"


def unknown_token_error(token: int) -> HarmonyError:
    """openai_harmony's error for an id outside the vocabulary met by ``decode_utf8``."""
    return HarmonyError(f"Could not decode tokens: Invalid token error: Invalid token for decoding: {token}")


def decode_error(data: bytes, exc: UnicodeDecodeError) -> HarmonyError:
    """openai_harmony's error for tokens whose bytes are not UTF-8 (``decode_utf8``)."""
    return HarmonyError(f"Could not decode tokens: Invalid utf-8 sequence: {utf8_error_text(data, exc)}")


def surrogate_error(exc: UnicodeEncodeError) -> ValueError:
    # openai_harmony sends the conversation through JSON, where a lone surrogate is invalid
    return ValueError(
        f"invalid conversation JSON: text contains a lone surrogate "
        f"{exc.object[exc.start:exc.end]!r} at index {exc.start}: {exc.object[:80]!r}"
    )
