"""Validation of token input, before any kernel or table lookup sees it.

openai_harmony's wrappers call ``list(tokens)`` and pyo3 then converts every item to a Rust
``u32``: anything else is refused with a ``TypeError`` or ``OverflowError`` whose text is
reproduced here. Ids in range but outside the vocabulary pass; each operation reports them with
its own error.

:func:`int_array` is the one gate through which every token entry point reads a NumPy array by
its buffer: an array whose buffer is not what ``list(tokens)`` yields (a masked array with
masked entries) is sent down the item-by-item path, where pyo3's error for the first masked item
is reproduced.
"""

from __future__ import annotations

import array
import operator
from typing import Any, Optional

import numpy as np

from .vocab import N_VOCAB

_U32_MAX = 0xFFFFFFFF
_I64_MIN = -(2**63)
_I64_MAX = 2**63 - 1
_OVERFLOW = "out of range integral type conversion attempted"
_TOO_LARGE = "Python int too large to convert to C long"



def as_u32(item: Any, arg: str) -> int:
    """``item`` as a token id, or the oracle's error for it (pyo3's ``u32`` extraction)."""
    if item.__class__ is int:
        v = item
    else:
        try:
            v = int(operator.index(item))
        except TypeError as exc:
            raise TypeError(f"argument '{arg}': {exc}") from None
    if 0 <= v <= _U32_MAX:
        return v
    if v < _I64_MIN or v > _I64_MAX:
        raise OverflowError(_TOO_LARGE)
    raise OverflowError(_OVERFLOW)


def int_array(tokens: Any) -> Optional[np.ndarray]:
    """``tokens`` as a plain 1-D integer ``ndarray`` whose buffer holds exactly the values
    ``list(tokens)`` yields, or None when it must be read item by item (not such an array).

    A masked array with masked entries is None: ``list()`` yields ``np.ma.masked`` for them,
    which the oracle refuses (``__index__`` raises), whereas its buffer holds fill values.
    """
    if not isinstance(tokens, np.ndarray) or tokens.ndim != 1 or tokens.dtype.kind not in "iu":
        return None
    if tokens.__class__ is np.ndarray:
        return tokens
    if isinstance(tokens, np.ma.MaskedArray):
        return None if np.ma.is_masked(tokens) else tokens.data
    return tokens.view(np.ndarray)


def _numpy_ints(tokens: np.ndarray) -> "array.array":
    """The ids of a plain 1-D integer array (see :func:`int_array`), range-checked, as
    ``array('I')`` (a copy: the caller's array is not kept)."""
    if tokens.size:
        lo = int(tokens.min())
        hi = int(tokens.max())
        if lo < 0 or hi > _U32_MAX:
            bad = int(tokens[np.flatnonzero((tokens < 0) | (tokens > _U32_MAX))[0]])
            as_u32(bad, "tokens")
    buf = array.array("I")
    if tokens.dtype == np.uint32 and tokens.dtype.byteorder in "=|":
        buf.frombytes(np.ascontiguousarray(tokens).tobytes())
    else:
        buf.frombytes(tokens.astype(np.uint32).tobytes())
    return buf


def token_buffer(tokens: Any, arg: str = "tokens") -> "array.array":
    """The tokens as ``array('I')``, refused exactly as the oracle refuses them.

    The oracle's wrapper calls ``list(tokens)`` (so any iterable passes, and a non-iterable
    raises that call's ``TypeError``) and pyo3 then converts every item to ``u32`` in order.
    """
    if tokens.__class__ is not list:
        arr = int_array(tokens)
        if arr is not None:
            return _numpy_ints(arr)
        if isinstance(tokens, array.array) and tokens.typecode == "I":
            return array.array("I", tokens)
        tokens = list(tokens)
    try:
        return array.array("I", tokens)
    except (TypeError, OverflowError, ValueError):
        pass
    return array.array("I", [as_u32(t, arg) for t in tokens])


def first_bad_token(tokens: list, arg: str):
    """``(index, exception)`` of the first item pyo3 would refuse, or ``(len, None)``."""
    for i, t in enumerate(tokens):
        if t.__class__ is int and 0 <= t <= _U32_MAX:
            continue
        try:
            as_u32(t, arg)
        except Exception as exc:  # noqa: BLE001 - whatever __index__ raises is what pyo3 raises
            return i, exc
    return len(tokens), None


def token_array(tokens: Any, arg: str = "tokens") -> np.ndarray:
    """``tokens`` as a contiguous 1-D ``uint32`` array in native byte order, checked as
    :func:`token_buffer` checks. It may be the caller's own array: a caller that keeps it past
    the call must copy it (see :func:`owned_token_array`)."""
    if tokens.__class__ is np.ndarray and tokens.dtype == np.uint32 and tokens.ndim == 1:
        # a strided array is copied; the kernels and byte views need unit stride
        return tokens if tokens.flags.c_contiguous else np.ascontiguousarray(tokens)
    buf = token_buffer(tokens, arg)
    return np.frombuffer(buf, dtype=np.uint32) if len(buf) else np.empty(0, np.uint32)


def owned_token_array(tokens: Any, arg: str = "tokens") -> np.ndarray:
    """:func:`token_array`, in read-only memory that shares nothing with the caller's object.

    For an object that decodes the ids later: a caller's buffer changed in between would
    otherwise feed the kernels ids that were never checked. An array over a ``bytes`` copy
    cannot be made writeable again.
    """
    arr = token_array(tokens, arg)
    if isinstance(tokens, np.ndarray) and np.may_share_memory(arr, tokens):
        arr = np.frombuffer(arr.tobytes(), dtype=np.uint32)
    else:
        arr.flags.writeable = False  # built here: nobody else holds it
    return arr


def first_unknown(arr: np.ndarray) -> int:
    """The first id in ``arr`` that is not in the vocabulary, or -1."""
    if arr.size == 0:
        return -1
    bad = np.flatnonzero(arr >= N_VOCAB)
    return int(arr[bad[0]]) if bad.size else -1
