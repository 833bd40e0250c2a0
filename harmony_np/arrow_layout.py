"""Arrow's list and string layouts <-> harmony_np's flat arrays + offsets, without a copy where
the layouts agree.

A ``list<int>`` column is values + offsets, as :class:`~harmony_np.ragged.RaggedTokens` and
``parse_batch``'s flat input are; a ``large_string`` column is bytes + offsets, as the gathered
content bytes of a :class:`~harmony_np.parse_batch.MessageTable` are. Every Arrow input is read
from its buffers and checked here (offsets in bounds and rising, ids in ``uint32`` range, no
missing ids) before any kernel sees it: ``pa.Array.from_buffers`` builds arrays whose offsets
point anywhere.

pyarrow is imported inside the functions only: importing harmony_np never loads it, and
:func:`is_arrow` tells Arrow input apart by its type's module without importing it. Arrays are
built from buffers (:func:`primitive_array`, :func:`string_array`) and read from them
(:func:`primitive_values`, :func:`valid_mask`) rather than with ``pa.array`` or ``to_numpy``:
those import pandas where it is installed, 0.3-0.5 s of every process's first call.
"""

from __future__ import annotations

import itertools
import operator
from typing import Any, Dict, List, NamedTuple, Optional, Sequence

import numpy as np

from .errors import with_index
from .gate import offsets_problem
from .lazy import kernels

__all__ = [
    "ListColumn", "is_arrow", "list_column", "tokens_column", "large_list", "text_array",
    "dictionary_column", "missing_row_error", "primitive_array", "string_array", "primitive_values", "valid_mask", "validity_bitmap",
]


def is_arrow(obj: Any) -> bool:
    """Whether ``obj`` is a pyarrow object (told by its type's module: pyarrow is not imported)."""
    return type(obj).__module__.split(".", 1)[0] == "pyarrow"


class ListColumn(NamedTuple):
    """A list column read from its buffers: row ``i`` is ``values[offsets[i]:offsets[i + 1]]``.

    ``values`` is read-only; for ``uint32`` input it is a view of the Arrow buffer (no copy),
    otherwise a converted copy. ``offsets`` is ``int64``, owned, from 0. ``bad`` maps a row that
    is not a list of token ids (null, holding a null, an id outside ``uint32``) to its error;
    such a row is empty in ``values``.
    """

    values: np.ndarray
    offsets: np.ndarray
    bad: Dict[int, Exception]


def missing_row_error(expected: str = "a list of token ids") -> TypeError:
    """The error of a null row (a missing value of the Arrow column)."""
    return TypeError(f"the row is null (a missing value in the Arrow column), not {expected}")


def _bits(buf: Any, offset: int, n: int) -> np.ndarray:
    """``n`` bits of an Arrow validity bitmap from bit ``offset``, as bool (True: valid)."""
    need = (offset + n + 7) // 8
    raw = np.frombuffer(buf, dtype=np.uint8)
    if raw.shape[0] < need:
        raise ValueError(f"a validity bitmap of {raw.shape[0]} bytes is too short for {offset + n} values")
    return np.unpackbits(raw[:need], bitorder="little")[offset : offset + n].astype(bool)


def _primitive(buf: Any, dtype: np.dtype, offset: int, n: int, what: str) -> np.ndarray:
    """Values ``offset:offset + n`` of a primitive buffer (a view), or an error when the buffer
    is shorter than its array claims."""
    if n == 0:
        return np.zeros(0, dtype=dtype)
    if buf is None:
        raise ValueError(f"{what}: the array has no data buffer")
    raw = np.frombuffer(buf, dtype=np.uint8)
    size = dtype.itemsize
    if raw.shape[0] < (offset + n) * size:
        raise ValueError(f"{what}: a buffer of {raw.shape[0]} bytes is too short for {offset + n} values of {dtype}")
    view = raw[offset * size : (offset + n) * size]
    if view.ctypes.data % size:  # a foreign buffer out of alignment: the kernels need aligned ids
        view = view.copy()
    return view.view(dtype)


def _one_list_array(array: Any, what: str):
    """``(values view of any integer dtype, raw offsets view, row validity or None, value
    validity or None)`` of a ``ListArray`` / ``LargeListArray`` of integers, offsets checked."""
    import pyarrow as pa

    t = array.type
    if not (pa.types.is_list(t) or pa.types.is_large_list(t)):
        raise TypeError(f"{what} must be a list<int> or large_list<int> column, got {t}")
    if not pa.types.is_integer(t.value_type):
        raise TypeError(f"{what} must hold lists of integers, got {t}")
    n = len(array)
    buffers = array.buffers()
    off_dtype = np.dtype(np.int32 if pa.types.is_list(t) else np.int64)
    child = array.values
    value_dtype = np.dtype(t.value_type.to_pandas_dtype())
    child_buffers = child.buffers()
    values = _primitive(child_buffers[1], value_dtype, child.offset, len(child), what)
    if n == 0:
        return values[:0], np.zeros(1, off_dtype), None, None
    offsets = _primitive(buffers[1], off_dtype, array.offset, n + 1, f"{what} offsets")
    problem = offsets_problem(offsets, values.shape[0])
    if problem is not None:
        raise ValueError(f"{what}: the list offsets are not a layout of its {values.shape[0]} values: {problem}")
    rows_valid = _bits(buffers[0], array.offset, n) if array.null_count and buffers[0] is not None else None
    values_valid = None
    if child.null_count and child_buffers[0] is not None:
        values_valid = _bits(child_buffers[0], child.offset, len(child))
    return values, offsets, rows_valid, values_valid


def _chunks(array: Any) -> List[Any]:
    import pyarrow as pa

    if isinstance(array, pa.ChunkedArray):
        return list(array.chunks)
    if isinstance(array, pa.Array):
        return [array]
    raise TypeError(f"expected a pyarrow Array or ChunkedArray of integer lists, got {type(array).__name__}")


def list_column(array: Any, what: str = "the column", dtype: Any = np.uint32) -> ListColumn:
    """The rows of a ``ListArray``, ``LargeListArray`` or ``ChunkedArray`` of integer lists, as
    ``dtype`` values (``uint32``: token ids) and offsets (see :class:`ListColumn`); with one
    chunk of ``dtype`` values and no null row holding values, ``values`` is a view of the Arrow
    buffer. Offsets are checked (``ValueError`` naming ``what``); rows with a value outside
    ``dtype``'s range, a null value, or null themselves are reported in ``bad``."""
    dtype = np.dtype(dtype)
    target = np.iinfo(dtype)
    noun = "token id" if dtype == np.uint32 else "value"
    pieces_values: List[np.ndarray] = []
    pieces_offsets: List[np.ndarray] = [np.zeros(1, np.int64)]
    bad: Dict[int, Exception] = {}
    row0 = 0
    total = 0
    for chunk in _chunks(array):
        values, raw_off, rows_valid, values_valid = _one_list_array(chunk, what)
        n = raw_off.shape[0] - 1
        lo, hi = int(raw_off[0]), int(raw_off[-1])
        values = values[lo:hi]
        off = raw_off.astype(np.int64) - lo
        keep = None  # values to keep, when some rows must be emptied
        if rows_valid is not None:
            for i in np.flatnonzero(~rows_valid).tolist():
                bad[row0 + i] = missing_row_error()
        if values_valid is not None:
            holes = np.flatnonzero(~values_valid[lo:hi])
            if holes.size:
                rows = np.searchsorted(off, holes, "right") - 1
                for r, h in zip(rows.tolist(), holes.tolist()):
                    if row0 + r not in bad:
                        bad[row0 + r] = TypeError(f"token at position {h - int(off[r])} is null (a missing value in the Arrow column)")
        if values.dtype != dtype and values.size:
            info = np.iinfo(values.dtype)
            if info.min < target.min or info.max > target.max:
                out = np.flatnonzero((values < target.min) | (values > target.max))
                if values_valid is not None and out.size:
                    out = out[values_valid[lo:hi][out]]  # a null's slot holds anything
                if out.size:
                    rows = np.searchsorted(off, out, "right") - 1
                    for r, k in zip(rows.tolist(), out.tolist()):
                        if row0 + r not in bad:
                            bad[row0 + r] = OverflowError(f"{noun} {int(values[k])} at position {k - int(off[r])} is not in {dtype} range ({target.min}..{target.max})")
        chunk_bad = [r - row0 for r in bad if r >= row0]
        if chunk_bad:
            rows = np.asarray(chunk_bad, dtype=np.int64)
            lengths = np.diff(off)
            if lengths[rows].any():
                keep = np.ones(values.shape[0], dtype=bool)
                for r in rows.tolist():
                    keep[off[r] : off[r + 1]] = False
                lengths[rows] = 0
                values = values[keep]
                off = np.zeros(n + 1, np.int64)
                np.cumsum(lengths, out=off[1:])
        pieces_values.append(values)
        pieces_offsets.append(off[1:] + total)
        total += values.shape[0]
        row0 += n
    if len(pieces_values) == 1:
        values = pieces_values[0]
    else:
        values = np.concatenate(pieces_values) if pieces_values else np.zeros(0, dtype)
    if values.dtype != dtype:
        values = values.astype(dtype)  # every value was range-checked above
    values.flags.writeable = False  # this view's flag only: the Arrow buffer is as it was
    offsets = np.concatenate(pieces_offsets)
    return ListColumn(values, offsets, {r: bad[r] for r in sorted(bad)})


def tokens_column(array: Any, errors: str, what: str = "completion") -> ListColumn:
    """:func:`list_column` for a batch entry point: with ``errors="raise"`` the first bad row is
    raised, named ``"<what> <row>: ..."``."""
    col = list_column(array, f"the {what}s column")
    if errors == "raise" and col.bad:
        row, exc = next(iter(col.bad.items()))
        raise with_index(exc, f"{what} {row}") from None
    return col


def validity_bitmap(valid: np.ndarray):
    """``(bitmap, null count)`` of an Arrow array whose values are valid where ``valid`` (bool)
    is True: the bitmap a ``pa.Buffer``, or None when nothing is null."""
    import pyarrow as pa

    nulls = int(valid.shape[0] - np.count_nonzero(valid))
    return (pa.py_buffer(np.packbits(valid, bitorder="little")) if nulls else None), nulls


def primitive_array(values: np.ndarray, valid: Optional[np.ndarray] = None) -> Any:
    """An Arrow array sharing ``values`` (1-D, a NumPy numeric type; copied only when not
    contiguous), null where ``valid`` (bool, same length) is False."""
    import pyarrow as pa

    values = np.ascontiguousarray(values)
    if values.ndim != 1:
        raise ValueError(f"expected a 1-D array, got shape {values.shape}")
    bitmap, nulls = None, 0
    if valid is not None:
        valid = np.asarray(valid, dtype=bool)
        if valid.shape != values.shape:
            raise ValueError(f"valid: shape {valid.shape} differs from the values' {values.shape}")
        bitmap, nulls = validity_bitmap(valid)
    return pa.Array.from_buffers(pa.from_numpy_dtype(values.dtype), values.shape[0], [bitmap, pa.py_buffer(values)], null_count=nulls)


def string_array(texts: Sequence[Optional[str]], large: bool = False, rows: Optional[np.ndarray] = None) -> Any:
    """A ``string`` (or ``large_string``) array of ``texts`` (a list), None as null. ``rows``,
    when given, are the positions of the texts that are not None, ascending (an error column's
    rows): checked, they spare a pass over every row in Python."""
    import pyarrow as pa

    texts = texts if isinstance(texts, list) else list(texts)
    n, nulls = len(texts), texts.count(None)
    kind = pa.large_string() if large else pa.string()
    if nulls == n:  # a column of no errors, the common case: no pass over the rows
        return pa.nulls(n, kind)
    if not nulls:
        kept, positions = texts, None
    else:
        positions = _not_none_rows(texts) if rows is None else np.asarray(rows, dtype=np.int64)
        if positions.ndim != 1 or (positions.shape[0] and (positions[0] < 0 or positions[-1] >= n or (np.diff(positions) <= 0).any())):
            raise ValueError(f"rows: expected ascending positions in [0, {n}), got {positions!r}")
        kept = [texts[i] for i in positions.tolist()]
        if len(kept) != n - nulls or kept.count(None):  # distinct, none None and as many as not None: all of them
            raise ValueError("rows: not the positions of the texts that are not None")
    joined = "".join(kept)
    if joined.isascii():  # a character a byte: the lengths are the strings' own
        data, sizes = joined.encode("ascii"), np.fromiter(map(len, kept), dtype=np.int64, count=len(kept))
    else:
        encoded = [t.encode("utf-8") for t in kept]
        data, sizes = b"".join(encoded), np.fromiter(map(len, encoded), dtype=np.int64, count=len(kept))
    byte_off = np.zeros(n + 1, dtype=np.int64)
    bitmap = None
    if positions is not None:
        full = np.zeros(n, dtype=np.int64)
        full[positions] = sizes
        sizes = full
        valid = np.zeros(n, dtype=bool)
        valid[positions] = True
        bitmap = validity_bitmap(valid)[0]
    np.cumsum(sizes, out=byte_off[1:])
    if not large and byte_off[-1] >= 2**31:
        raise ValueError(f"{byte_off[-1]} bytes of text do not fit a string array (use large=True)")
    offsets = byte_off if large else byte_off.astype(np.int32)
    return pa.Array.from_buffers(kind, n, [bitmap, pa.py_buffer(offsets), pa.py_buffer(data)], null_count=nulls)


def _not_none_rows(texts: List[Any]) -> np.ndarray:
    return np.flatnonzero(np.fromiter(map(operator.is_not, texts, itertools.repeat(None)), dtype=bool, count=len(texts)))


_NUMPY_TYPES = {"int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64"}
_FLOAT_TYPES = {"halffloat": "float16", "float": "float32", "double": "float64"}


def primitive_values(array: Any) -> np.ndarray:
    """The values of an integer or floating-point Arrow array (nulls' slots as the buffer has
    them: see :func:`valid_mask`) as a read-only NumPy view of its buffer."""
    name = str(array.type)
    if name not in _NUMPY_TYPES and name not in _FLOAT_TYPES:
        raise TypeError(f"expected an array of integers or floats, got {array.type}")
    dtype = np.dtype(_FLOAT_TYPES.get(name, name))
    view = _primitive(array.buffers()[1], dtype, array.offset, len(array), "the array")
    view.flags.writeable = False
    return view


def valid_mask(array: Any) -> np.ndarray:
    """bool per value of an Arrow array: True where it is not null."""
    import pyarrow as pa

    if pa.types.is_union(array.type):  # a union's nulls are its children's: no bitmap of its own
        return array.is_valid().to_numpy(zero_copy_only=False)
    n, nulls = len(array), array.null_count
    if nulls == 0:
        return np.ones(n, dtype=bool)
    if nulls == n:
        return np.zeros(n, dtype=bool)
    return _bits(array.buffers()[0], array.offset, n)


def large_list(values: np.ndarray, offsets: np.ndarray) -> Any:
    """A ``LargeListArray`` over ``values`` (a 1-D NumPy array of a primitive type) and ``int64``
    ``offsets``, both shared, not copied: keep them unchanged (read-only arrays are the safe
    kind)."""
    import pyarrow as pa

    value_type = pa.from_numpy_dtype(values.dtype)

    child = pa.Array.from_buffers(value_type, values.shape[0], [None, pa.py_buffer(values)])
    return pa.Array.from_buffers(pa.large_list(value_type), offsets.shape[0] - 1, [None, pa.py_buffer(offsets)], children=[child])


def _splice(data: np.ndarray, byte_off: np.ndarray, rows: Sequence[int], texts: Sequence[bytes]):
    """``(data, byte_off)`` with each row ``rows[k]`` (ascending) holding ``texts[k]`` instead."""
    sizes = np.diff(byte_off)
    rows_arr = np.asarray(rows, dtype=np.int64)
    sizes[rows_arr] = [len(t) for t in texts]
    new_off = np.zeros(byte_off.shape[0], dtype=np.int64)
    np.cumsum(sizes, out=new_off[1:])
    view = memoryview(data)
    pieces: List[Any] = []
    at = 0
    for r, text in zip(rows_arr.tolist(), texts):
        pieces.append(view[at : int(byte_off[r])])
        pieces.append(text)
        at = int(byte_off[r + 1])
    pieces.append(view[at:])
    joined = b"".join(pieces)
    return np.frombuffer(joined, dtype=np.uint8), new_off


def text_array(data: np.ndarray, byte_off: np.ndarray, replacements: Optional[Dict[int, str]] = None) -> Any:
    """A ``large_string`` array of rows ``data[byte_off[i]:byte_off[i + 1]]`` (``uint8`` data,
    ``int64`` offsets from 0 to ``len(data)``), each row's text as ``bytes.decode("utf-8",
    "replace")`` gives it, with the rows of ``replacements`` given as text instead. No Python
    string is made per row: the bytes become the string buffer, only rows that are not valid
    UTF-8 (found by one validation pass) are decoded and spliced back."""
    import pyarrow as pa

    if replacements:
        rows = sorted(replacements)
        data, byte_off = _splice(data, byte_off, rows, [replacements[r].encode("utf-8", "surrogatepass") for r in rows])
    n = byte_off.shape[0] - 1
    out = pa.Array.from_buffers(pa.large_string(), n, [None, pa.py_buffer(byte_off), pa.py_buffer(data)])
    try:
        out.validate(full=True)  # Arrow's UTF-8 check, row by row (vectorised for ASCII)
        return out
    except pa.ArrowInvalid:
        pass
    bad = np.flatnonzero(kernels().utf8_invalid_rows(data, byte_off))
    view = memoryview(data)
    fixed = [str(view[int(byte_off[r]) : int(byte_off[r + 1])], "utf-8", "replace").encode("utf-8") for r in bad.tolist()]
    data, byte_off = _splice(data, byte_off, bad.tolist(), fixed)
    out = pa.Array.from_buffers(pa.large_string(), n, [None, pa.py_buffer(byte_off), pa.py_buffer(data)])
    out.validate(full=True)
    return out


def dictionary_column(codes: np.ndarray, dictionary: Sequence[str]) -> Any:
    """A dictionary-encoded string column of ``codes`` into ``dictionary`` (code -1: null)."""
    import pyarrow as pa

    indices = primitive_array(codes, codes >= 0)
    return pa.DictionaryArray.from_arrays(indices, string_array(list(dictionary)))
