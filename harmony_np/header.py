"""The message header grammar of openai_harmony's parser: the text between ``<|start|>`` and
``<|message|>`` read into role, name, channel, recipient and content type, with the oracle's
errors. Strict only; recovery's lenient reading builds on it (:mod:`harmony_np.recover`).
"""

from __future__ import annotations

import re
from typing import Optional

from .errors import HarmonyError
from .gate import ROLE_BY_VALUE
from .model import Role
from .rust_text import rust_debug_str

__all__ = ["parse_header_string", "channel_value", "header_words", "take_recipient_and_type", "remaining_error", "WHITE_SPACE"]

ERR_NO_CHANNEL = "channel marker present but no channel value found in header"
ERR_NO_ROLE = "message header did not contain a role"

# Unicode White_Space (Rust's char::is_whitespace and str::trim); str.isspace differs.
WHITE_SPACE = "\t\n\x0b\x0c\r \x85\xa0\u1680" + "".join(map(chr, range(0x2000, 0x200B))) + "\u2028\u2029\u202f\u205f\u3000"
_CHANNEL_END = re.compile("[" + re.escape(WHITE_SPACE) + "<]")
# Rust's split_ascii_whitespace: space, \t, \n, \x0c, \r (not \x0b)
_ASCII_WS = re.compile("[ \t\n\x0c\r]+")
CHANNEL_MARK = "<|channel|>"
CONSTRAIN_MARK = "<|constrain|>"


def channel_value(header: str) -> tuple:
    """``(idx, after, end)``: where ``<|channel|>`` starts in ``header`` (-1 if absent), the text
    after it, and the length of the channel value at the start of that text (0: empty)."""
    idx = header.find(CHANNEL_MARK)
    if idx < 0:
        return -1, "", 0
    after = header[idx + len(CHANNEL_MARK) :]
    m = _CHANNEL_END.search(after)
    return idx, after, (m.start() if m is not None else len(after))


def parse_header_string(header: str, role: Optional[Role], with_recipient: bool):
    """The oracle's header rules on decoded header text.

    Returns ``(role, name, channel, recipient, content_type, remaining)``; ``remaining`` is the
    text of the leftover parts (joined by single spaces) or None.
    """
    channel = None
    idx, after, end = channel_value(header)
    if idx >= 0:
        if end == 0:
            raise HarmonyError(ERR_NO_CHANNEL)
        channel = after[:end]
        header = header[:idx] + after[end:]
    parts = header_words(header)

    name = None
    if role is None:
        if not parts:
            raise HarmonyError(ERR_NO_ROLE)
        role_str = parts[0]
        role = ROLE_BY_VALUE.get(role_str)
        if role is None:
            if len(parts) > 1 or role_str.startswith("to="):
                del parts[0]
                role = Role.TOOL
            else:
                raise HarmonyError(f"Unknown role: {role_str}")
        if role is Role.TOOL:
            name = role_str
    if parts and parts[0] == role.value:
        del parts[0]

    recipient = content_type = None
    if with_recipient:
        recipient, content_type = take_recipient_and_type(parts)
    remaining = " ".join(parts) if parts else None
    return role, name, channel, recipient, content_type, remaining


def header_words(header: str) -> list:
    """The words of header text whose channel was taken out, split as the oracle splits them:
    trimmed (Unicode white space), a space put before ``<|constrain|>``, then split on ASCII
    white space only."""
    header = header.strip(WHITE_SPACE)
    if CONSTRAIN_MARK in header:
        header = header.replace(CONSTRAIN_MARK, " " + CONSTRAIN_MARK).strip(WHITE_SPACE)
    return [p for p in _ASCII_WS.split(header) if p]


def take_recipient_and_type(parts: list):
    """``(recipient, content_type)`` popped off the end of a header's words by the oracle's rule:
    a last word ``to=X`` is the recipient alone; a single word is the recipient; otherwise the
    last word is the content type and the one before it the recipient (``to=`` optional)."""
    recipient = content_type = None
    if parts:
        count = len(parts)
        last = parts.pop()
        if last.startswith("to="):
            recipient = last[3:]
        elif count == 1:
            recipient = last
        else:
            content_type = last
            raw = parts.pop()
            recipient = raw[3:] if raw.startswith("to=") else raw
    return recipient, content_type


def remaining_error(remaining: str) -> HarmonyError:
    return HarmonyError(f"unexpected tokens remaining in message header: Some({rust_debug_str(remaining)})")
