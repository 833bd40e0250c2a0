"""Validation of token input, before any kernel or table lookup sees it.

openai_harmony takes tokens as a Rust ``Vec<u32>``: anything that is not a sequence of integers in
``[0, 2**32)`` is refused with a ``TypeError`` or ``OverflowError`` whose text is reproduced here.
Ids in range but outside the vocabulary are refused later, with the error of the operation.
"""

from __future__ import annotations

import array
from typing import Any

import numpy as np

from .vocab import N_VOCAB

_U32_MAX = 2**32 - 1
_OVERFLOW = "out of range integral type conversion attempted"


def _element_error(arg: str, item: Any) -> Exception:
    if isinstance(item, (bool, int, np.integer)) or hasattr(item, "__index__"):
        return OverflowError(_OVERFLOW)
    return TypeError(f"argument '{arg}': '{type(item).__name__}' object cannot be interpreted as an integer")


def _slow_check(seq: Any, arg: str) -> None:
    for item in seq:
        try:
            v = item.__index__()
        except (AttributeError, TypeError):
            raise _element_error(arg, item) from None
        if v < 0 or v > _U32_MAX:
            raise OverflowError(_OVERFLOW)


def token_array(tokens: Any, arg: str = "tokens") -> np.ndarray:
    """``tokens`` as a 1-D ``uint32`` array, without a copy where it already is one.

    Raises the oracle's ``TypeError``/``OverflowError`` for non-integers and values outside
    ``[0, 2**32)``; ids at or above the vocabulary size pass (callers report them).
    """
    if isinstance(tokens, np.ndarray):
        if tokens.ndim != 1:
            raise TypeError(f"argument '{arg}': expected a 1-D sequence of token ids, got an array of shape {tokens.shape}")
        kind = tokens.dtype.kind
        if tokens.dtype == np.uint32:
            return tokens
        if kind in "iu":
            if tokens.size and (int(tokens.min()) < 0 or int(tokens.max()) > _U32_MAX):
                raise OverflowError(_OVERFLOW)
            return tokens.astype(np.uint32)
        if kind == "b":
            return tokens.astype(np.uint32)
        if tokens.size == 0:
            return np.empty(0, np.uint32)
        raise TypeError(
            f"argument '{arg}': '{tokens.dtype}' array elements cannot be interpreted as integers"
        )
    if isinstance(tokens, (str, bytes, bytearray)):
        raise TypeError(f"argument '{arg}': Can't extract `{type(tokens).__name__}` to `Vec`")
    if isinstance(tokens, array.array) and tokens.typecode == "I":
        return np.frombuffer(tokens, dtype=np.uint32)
    try:
        arr = array.array("I", tokens)
    except (TypeError, OverflowError, ValueError):
        if not hasattr(tokens, "__iter__"):
            raise TypeError(f"argument '{arg}': '{type(tokens).__name__}' object is not a sequence of token ids") from None
        _slow_check(tokens, arg)
        raise
    if len(arr) == 0:
        return np.empty(0, np.uint32)
    return np.frombuffer(arr, dtype=np.uint32)


def token_list(tokens: Any, arg: str = "tokens") -> list:
    """``tokens`` as a list of Python ints, checked as :func:`token_array` checks."""
    if tokens.__class__ is list:
        try:
            array.array("I", tokens)
        except (TypeError, OverflowError, ValueError):
            _slow_check(tokens, arg)
            raise
        if tokens and tokens[0].__class__ is not int:
            return [t.__index__() for t in tokens]
        for t in tokens:
            if t.__class__ is not int:
                return [t.__index__() for t in tokens]
        return tokens
    return token_array(tokens, arg).tolist()


def first_unknown(arr: np.ndarray) -> int:
    """The first id in ``arr`` that is not in the vocabulary, or -1."""
    if arr.size == 0:
        return -1
    bad = np.flatnonzero(arr >= N_VOCAB)
    return int(arr[bad[0]]) if bad.size else -1
