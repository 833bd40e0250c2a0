"""The input gate: every argument a caller hands in is coerced and checked here, once, before
any kernel or table lookup sees it (stumpy's ``core.preprocess``, for the Harmony arguments):
token ids, flat tokens with offsets, roles and the ``strict`` flag. The kernels do not
bounds-check; what they read is what these functions returned.

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

from .errors import with_index
from .model import Role
from .vocab import N_VOCAB

U32_MAX = 0xFFFFFFFF
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
    if 0 <= v <= U32_MAX:
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


def numpy_ids(tokens: np.ndarray) -> "array.array":
    """The ids of a plain 1-D integer array (see :func:`int_array`), range-checked, as
    ``array('I')`` (a copy: the caller's array is not kept)."""
    if tokens.size:
        lo = int(tokens.min())
        hi = int(tokens.max())
        if lo < 0 or hi > U32_MAX:
            bad = int(tokens[np.flatnonzero((tokens < 0) | (tokens > U32_MAX))[0]])
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
            return numpy_ids(arr)
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
        if t.__class__ is int and 0 <= t <= U32_MAX:
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


def kernel_token_array(tokens: Any, kernel_min: int) -> np.ndarray:
    """:func:`token_array`, copied when a kernel will read it (``kernel_min`` ids or more) and it
    is the caller's array: the ids checked must be the ids gathered, and another thread may
    write the caller's array in between."""
    arr = token_array(tokens)
    if arr.size >= kernel_min and isinstance(tokens, np.ndarray) and np.may_share_memory(arr, tokens):
        arr = arr.copy()
    return arr


# -- ids checked against the vocabulary (harmony_np's own entry points) ---------------------


def bad_id_error(i: int, v: Any) -> ValueError:
    """The error for id ``v`` at position ``i``, outside the vocabulary."""
    return ValueError(f"token id {v} at position {i} is outside the vocabulary (0..{N_VOCAB - 1})")


def vocab_ids(tokens: Any, check: bool = True, offset: int = 0):
    """``(array('I'), list or None)`` of ``tokens``; any id outside the vocabulary is refused
    with a ``ValueError`` naming it (a non-integer item with a ``TypeError``). ``check=False``
    leaves ids past the vocabulary (but within uint32) to the caller: see :func:`check_ids`.
    ``offset`` is added to the positions an error names."""
    if isinstance(tokens, np.ndarray):
        if tokens.ndim != 1 or tokens.dtype.kind not in "iu":
            raise TypeError(f"tokens must be a 1-D integer array, not {tokens.dtype} with shape {tokens.shape}")
        ints = int_array(tokens)  # a masked array with masked entries goes item by item (below)
    else:
        ints = None
    if ints is not None:
        tokens = ints
        if tokens.dtype == np.uint32 and tokens.dtype.byteorder in "=|":
            buf = array.array("I")
            buf.frombytes(tokens.tobytes())
            if check and len(buf) and max(buf) >= N_VOCAB:
                i = int(np.flatnonzero(tokens >= N_VOCAB)[0])
                raise bad_id_error(offset + i, int(tokens[i]))
            return buf, None
        if tokens.size:
            lo, hi = int(tokens.min()), int(tokens.max())
            if lo < 0 or hi >= N_VOCAB:
                i = int(np.flatnonzero((tokens < 0) | (tokens >= N_VOCAB))[0])
                raise bad_id_error(offset + i, int(tokens[i]))
        return array.array("I", tokens.astype(np.uint32).tobytes()), None
    if tokens.__class__ is not list:
        if isinstance(tokens, array.array) and tokens.typecode == "I":
            tokens = tokens.tolist()
        else:
            tokens = list(tokens)
    try:
        buf = array.array("I", tokens)
    except (TypeError, OverflowError, ValueError):
        buf = None
    if buf is None or (check and tokens and max(tokens) >= N_VOCAB):
        for i, x in enumerate(tokens):
            try:
                v = operator.index(x)
            except TypeError:
                raise TypeError(f"token at position {i} is not an integer: {x!r}") from None
            if not 0 <= v < N_VOCAB:
                raise bad_id_error(offset + i, v)
        buf = array.array("I", [operator.index(x) for x in tokens])
        tokens = buf.tolist()
    return buf, tokens


def check_ids(src: list, positions) -> None:
    """Refuse the first id >= ``N_VOCAB`` among ``src[positions]`` (the positions of every id
    >= ``N_ORDINARY``, so every id that can be out of the vocabulary)."""
    for i in positions:
        if src[i] >= N_VOCAB:
            raise bad_id_error(i, src[i])


def stream_ids(tokens: Any):
    """``(array('I'), error or None)``: the ids of ``tokens`` up to the first one the oracle's
    ``process`` refuses, and that refusal (raised by the caller after feeding the ids before it,
    as feeding them one by one would)."""
    err = None
    ints = None if tokens.__class__ is list else int_array(tokens)
    if ints is not None:
        tokens = ints
        if tokens.size and (int(tokens.min()) < 0 or int(tokens.max()) > U32_MAX):
            k = int(np.flatnonzero((tokens < 0) | (tokens > U32_MAX))[0])
            try:
                as_u32(int(tokens[k]), "token")
            except OverflowError as exc:
                err = exc
            tokens = tokens[:k]
        return array.array("I", np.ascontiguousarray(tokens, dtype=np.uint32).tobytes()), err
    if tokens.__class__ is not list:
        tokens = list(tokens)
    try:
        return array.array("I", tokens), None
    except (TypeError, OverflowError, ValueError):
        k, err = first_bad_token(tokens, "token")
        return array.array("I", [as_u32(x, "token") for x in tokens[:k]]), err


# -- roles and flags --------------------------------------------------------------------------

ROLE_BY_VALUE = {r.value: r for r in Role}


def strict_flag(strict: Any) -> bool:
    """pyo3's ``Option<bool>``: None is the default (True); numpy's bool passes."""
    if strict is None:
        return True
    if strict is True or strict is False:
        return strict
    if isinstance(strict, np.bool_):
        return bool(strict)
    raise TypeError(f"argument 'strict': '{type(strict).__name__}' object cannot be converted to 'PyBool'")


def oracle_role_value(role: Any) -> Optional[str]:
    """What openai_harmony's Python wrapper passes on for ``role``: ``role.value`` (its
    AttributeError for an object without one), or None."""
    if role is None:
        return None
    return role._value_ if role.__class__ is Role else str(role.value)


def role_from_value(value: Optional[str]) -> Optional[Role]:
    """pyo3's reading of a role name: the Role, None for None, or ``ValueError``."""
    if value is None:
        return None
    r = ROLE_BY_VALUE.get(value)
    if r is None:
        raise ValueError(f"unknown role: {value}")
    return r


def role_arg(role: Any) -> Optional[Role]:
    """A role argument of harmony_np's own API: a Role, its name, or an enum-like object whose
    ``value`` is a name; None stays None."""
    if role is None or role.__class__ is Role:
        return role
    return role_from_value(str(getattr(role, "value", role)))


def next_role_arg(role: Any) -> Role:
    """The ``next_turn_role`` of a render for completion: a Role or its name."""
    if role.__class__ is Role:
        return role
    if isinstance(role, str):
        try:
            return Role(role)
        except ValueError:
            raise ValueError(f"unknown role: {role}") from None
    raise TypeError(f"next_turn_role must be a Role, got {type(role).__name__}: {role!r}")


def parse_arguments(tokens: Any, role: Any, strict: Any):
    """``(ids, src, role, strict)`` of ``parse_messages_from_completion_tokens``, checked in the
    oracle's order (``list(tokens)``, ``role.value``, each token, ``strict``, the role name):
    ``ids`` is ``array('I')``, ``src`` the caller's list when it was one (else None)."""
    src = None
    ints = None
    if tokens.__class__ is list:
        src = tokens
    else:
        ints = int_array(tokens)  # a masked array with masked entries goes item by item
        if ints is None:
            src = tokens = list(tokens)
    rv = None if role is None else oracle_role_value(role)
    if src is not None:
        try:
            buf = array.array("I", src)
        except (TypeError, OverflowError, ValueError):
            buf = array.array("I", [as_u32(x, "tokens") for x in src])
            src = None
    else:
        buf = numpy_ids(ints)
    if strict is not True:
        strict = strict_flag(strict)
    return buf, src, None if rv is None else role_from_value(rv), strict


# -- ragged input: flat values + offsets -------------------------------------------------------


def int_values(values: Any, what: str, allow_bool: bool = False) -> np.ndarray:
    """``values`` as a 1-D NumPy array of integers (bools if ``allow_bool``), not yet copied;
    an empty list (NumPy's float64) is an empty array of integers. A masked array with masked
    entries is refused: its buffer holds fill values, not what ``list(values)`` yields."""
    if isinstance(values, np.ma.MaskedArray) and np.ma.is_masked(values):
        i = int(np.flatnonzero(np.ma.getmaskarray(values).ravel())[0])
        raise ValueError(f"{what} is a masked array with masked entries (the first at index {i})")
    a = np.asarray(values)
    if a.ndim != 1:
        raise ValueError(f"{what} must be 1-D, got shape {a.shape}")
    kind = a.dtype.kind
    if kind in "iu" or (allow_bool and kind == "b"):
        return a
    if a.size == 0:
        return np.zeros(0, dtype=np.int64)
    raise TypeError(f"{what} must be integers, got dtype {a.dtype}")


def offsets_problem(o: np.ndarray, n: int, whole: bool = False) -> Optional[str]:
    """What is wrong with ``o`` (1-D integers, at least one) as the offsets of rows over ``n``
    values, naming the first bad entry, or None: the first must be >= 0 (0 if ``whole``), none
    may decrease, the last must be <= ``n`` (``n`` if ``whole``)."""
    if o[0] < 0 or (whole and o[0] != 0):
        return f"offsets[0] = {o[0]} is {'negative' if o[0] < 0 else 'not 0'}"
    down = np.flatnonzero(o[1:] < o[:-1])  # compared, not subtracted: no wrap-around
    if down.size:
        i = int(down[0]) + 1
        return f"offsets must not decrease: offsets[{i}] = {o[i]} < offsets[{i - 1}] = {o[i - 1]}"
    if o[-1] > n:
        i = int(np.flatnonzero(o > n)[0])
        return f"offsets[{i}] = {o[i]} is past the end of the {n} tokens"
    if whole and o[-1] != n:
        return f"offsets[{o.shape[0] - 1}] = {o[-1]} ends before the {n} tokens do"
    return None


def ragged_buffers(tokens: Any, offsets: Any, loss_mask: Any = None):
    """``(uint32 tokens, int64 offsets, uint8 loss mask or None)``: fresh copies of a ragged
    token layout, checked as awkward-array's ``ListOffsetArray`` is (the kernels that pad rows
    read memory at these offsets unchecked): ``tokens`` 1-D integers in ``uint32`` range;
    ``offsets`` 1-D integers, at least one, the first >= 0, never decreasing, the last at most
    ``len(tokens)``; ``loss_mask`` 0/1 (or bool), one per token."""
    t = int_values(tokens, "tokens")
    if t.size and t.dtype.kind in "iu" and (np.iinfo(t.dtype).min < 0 or np.iinfo(t.dtype).max > U32_MAX):
        bad = np.flatnonzero((t < 0) | (t > U32_MAX))
        if bad.size:
            i = int(bad[0])
            raise ValueError(f"tokens[{i}] = {t[i]} is not a token id (0 <= id < 2**32)")
    n = t.shape[0]
    o = int_values(offsets, "offsets")
    if o.shape[0] == 0:
        raise ValueError("offsets must hold at least one value (offsets [0] is no rows)")
    problem = offsets_problem(o, n)
    if problem is not None:
        raise ValueError(problem)
    mask = None
    if loss_mask is not None:
        mask = int_values(loss_mask, "loss_mask", allow_bool=True)
        if mask.shape[0] != n:
            raise ValueError(f"loss_mask has {mask.shape[0]} values for {n} tokens")
        if mask.dtype.kind != "b":
            bad = np.flatnonzero((mask != 0) & (mask != 1))
            if bad.size:
                i = int(bad[0])
                raise ValueError(f"loss_mask[{i}] = {mask[i]} is not 0 or 1")
        mask = np.array(mask, dtype=np.uint8)
    # every value checked is in [0, n]: the int64 cast cannot wrap
    return np.array(t, dtype=np.uint32), np.array(o, dtype=np.int64), mask


def completion_buffers(completions: Any, offsets: Any, errors: str):
    """``(flat uint32 tokens, int64 offsets, {index: exception})`` of ``parse_batch``'s input:
    a list of token lists or arrays, or one flat array with ``offsets``. With ``errors`` other
    than ``"raise"`` a completion that is not token ids is kept as an empty row and its error
    returned by index.

    The flat tokens are read-only and never the caller's memory: a table decodes them later,
    and ids changed in between would reach the kernels unchecked.
    """
    if offsets is not None:
        if isinstance(completions, np.ndarray) and completions.ndim != 1:
            raise TypeError(
                f"with offsets=, completions must be one flat (1-D) token array, got an array of shape {completions.shape}"
            )
        flat = owned_token_array(completions, "completions")
        if isinstance(offsets, np.ma.MaskedArray) and np.ma.is_masked(offsets):
            raise ValueError("offsets must be a 1-D integer array of len n + 1 without masked entries")
        offs = np.asarray(offsets)
        if offs.ndim != 1 or offs.dtype.kind not in "iu" or offs.shape[0] < 1:
            raise ValueError(f"offsets must be a 1-D integer array of len n + 1, got {offs.dtype} with shape {offs.shape}")
        problem = offsets_problem(offs, flat.shape[0])
        if problem is not None:
            raise ValueError(f"offsets must rise from >= 0 to <= {flat.shape[0]} (the number of tokens): {problem}")
        return flat, offs.astype(np.int64), {}
    if isinstance(completions, (str, bytes)) or not hasattr(completions, "__len__"):
        raise TypeError(f"completions must be a list of token lists or arrays (or a flat array with offsets), got {type(completions).__name__}")
    if isinstance(completions, np.ndarray):
        raise TypeError("a flat token array needs offsets=; a 2-D array is not a list of completions")
    items = list(completions)
    lengths = np.zeros(len(items) + 1, dtype=np.int64)
    if all(c.__class__ is list for c in items):
        buf = array.array("I")
        try:
            for c in items:
                buf.fromlist(c)  # twice as fast as one array over a chain of the lists
        except (TypeError, OverflowError, ValueError):
            buf = None
        if buf is not None:
            np.cumsum([len(c) for c in items], out=lengths[1:])
            flat = np.frombuffer(buf, dtype=np.uint32) if len(buf) else np.empty(0, np.uint32)
            flat.flags.writeable = False
            return flat, lengths, {}
    bad: dict = {}
    parts = []
    for i, c in enumerate(items):
        try:
            arr = token_array(c)
        except (TypeError, OverflowError, ValueError) as exc:
            if errors == "raise":
                raise with_index(exc, f"completion {i}") from exc
            # kept for its type and text only: its traceback (and its context's) would hold this
            # frame and its callers' in a reference cycle
            exc.__context__ = exc.__cause__ = None
            bad[i] = exc.with_traceback(None)
            arr = np.empty(0, np.uint32)
        parts.append(arr)
        lengths[i + 1] = lengths[i] + arr.shape[0]
    # concatenate copies even a single part: the result is never a caller's array
    flat = np.concatenate(parts) if parts else np.empty(0, np.uint32)
    flat = flat.astype(np.uint32, copy=False)
    flat.flags.writeable = False
    return flat, lengths, bad
