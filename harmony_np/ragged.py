"""``RaggedTokens``: token rows of different lengths as flat values + offsets (Arrow's list
layout), the result of ``render_batch``. Its constructor takes the caller's arrays through the
input gate (:func:`harmony_np.gate.ragged_buffers`); a batch hands over its own arrays with
:meth:`RaggedTokens.adopt`.
"""

from __future__ import annotations

import operator
from typing import Any, List, Optional, Tuple

import numpy as np

from .arrow_layout import large_list, list_column
from .errors import with_index
from .gate import offsets_problem, ragged_buffers
from .lazy import kernels

__all__ = ["RaggedTokens"]


class RaggedTokens:
    """Token rows of different lengths: ``tokens`` (flat ``uint32``) split by ``offsets``.

    Row ``i`` is ``tokens[offsets[i]:offsets[i + 1]]``. ``loss_mask`` (``uint8``, aligned with
    ``tokens``) is 1 on the tokens a model is trained to produce, when it was requested.

    The constructor checks its input as awkward-array's ``ListOffsetArray`` does, since the
    kernels that pad rows read memory at these offsets unchecked: ``tokens`` is 1-D integers in
    ``uint32`` range (ids are not checked against a vocabulary: rows are only copied here);
    ``offsets`` is 1-D integers, at least one, the first >= 0, never decreasing, the last at most
    ``len(tokens)``; ``loss_mask`` is 0/1 (or bool), one per token. The arrays are kept as
    read-only copies (``uint32``, ``int64``, ``uint8``): changing the caller's arrays later
    changes nothing here.
    """

    __slots__ = ("_tokens", "_offsets", "_loss_mask")

    def __init__(self, tokens: Any, offsets: Any, loss_mask: Any = None) -> None:
        self._set(*ragged_buffers(tokens, offsets, loss_mask))

    @classmethod
    def adopt(cls, tokens: np.ndarray, offsets: np.ndarray, loss_mask: Optional[np.ndarray]) -> "RaggedTokens":
        """Rows over arrays that a batch built itself and hands over, without a copy: ``tokens``
        ``uint32``, ``offsets`` ``int64`` and ``loss_mask`` ``uint8`` (or None), valid by
        construction. Only their shapes and ends are checked here (O(1)); they are made
        read-only."""
        if not (
            tokens.dtype == np.uint32 and tokens.ndim == 1 and offsets.dtype == np.int64 and offsets.ndim == 1
            and offsets.shape[0] >= 1 and offsets[0] == 0 and offsets[-1] == tokens.shape[0]
            and (loss_mask is None or (loss_mask.dtype == np.uint8 and loss_mask.shape == tokens.shape))
        ):
            raise ValueError("RaggedTokens.adopt: arrays that are not a ragged layout of uint32 tokens")
        self = object.__new__(cls)
        self._set(tokens, offsets, loss_mask)
        return self

    @classmethod
    def from_pieces(cls, blobs: List[Any], occ: Any, flags: Any, row_occ: Any, with_mask: bool, last_token: Optional[Tuple[Any, int]] = None) -> "RaggedTokens":
        """Rows assembled from a table of distinct pieces: ``blobs[p]`` holds piece ``p``'s ids
        (anything with the buffer protocol of ``uint32``: an ``array('I')`` or a ``uint32``
        array); see :meth:`from_piece_table` for the rest. The pieces are joined into one table
        and let go before the rows are assembled (when the caller keeps no reference)."""
        count = len(blobs)
        piece_len = np.fromiter((memoryview(b).nbytes >> 2 for b in blobs), dtype=np.int64, count=count)
        piece_off = np.zeros(count + 1, dtype=np.int64)
        np.cumsum(piece_len, out=piece_off[1:])
        piece_pool = np.frombuffer(b"".join(blobs), dtype=np.uint32) if count else np.zeros(0, np.uint32)
        del blobs  # the joined copy is all that is needed now
        return cls.from_piece_table(piece_pool, piece_off, occ, flags, row_occ, with_mask, last_token)

    @classmethod
    def from_piece_table(cls, pool: np.ndarray, pool_off: np.ndarray, occ: Any, flags: Any, row_occ: Any, with_mask: bool, last_token: Optional[Tuple[Any, int]] = None) -> "RaggedTokens":
        """Rows assembled from pieces: piece ``p`` is ``pool[pool_off[p]:pool_off[p + 1]]``,
        ``occ`` the pieces of every row back to back (row ``r`` is
        ``occ[row_occ[r]:row_occ[r + 1]]``), ``flags[k]`` the loss-mask value of occurrence
        ``k``'s tokens. ``last_token=(rows, token)``: the last token of each of these rows (that
        has one) becomes ``token`` (a training row's final terminator, ``<|return|>``). Checked
        here (the kernel copies unchecked); the copy is one kernel call, rows in parallel."""
        pool = np.ascontiguousarray(pool, dtype=np.uint32)
        pool_off = np.ascontiguousarray(pool_off, dtype=np.int64)
        occ_arr = np.ascontiguousarray(occ, dtype=np.int64)
        flag_arr = np.ascontiguousarray(flags, dtype=np.uint8)
        row_off = np.ascontiguousarray(row_occ, dtype=np.int64)
        count = pool_off.shape[0] - 1
        if count < 0 or pool_off[0] != 0 or pool_off[-1] != pool.shape[0] or bool((np.diff(pool_off) < 0).any()):
            raise ValueError("RaggedTokens.from_piece_table: pool_off is not a layout of the pool")
        if occ_arr.size and (int(occ_arr.min()) < 0 or int(occ_arr.max()) >= count):
            raise ValueError("RaggedTokens.from_piece_table: an occurrence names no piece")
        if flag_arr.shape != occ_arr.shape or row_off.shape[0] < 1 or row_off[0] != 0 or row_off[-1] != occ_arr.shape[0] or bool((np.diff(row_off) < 0).any()):
            raise ValueError("RaggedTokens.from_piece_table: occurrences, flags and rows do not fit together")
        piece_len = np.diff(pool_off)
        occ_cum = np.zeros(occ_arr.shape[0] + 1, dtype=np.int64)
        np.cumsum(piece_len[occ_arr], out=occ_cum[1:])
        offsets = occ_cum[row_off]
        tokens = np.empty(int(offsets[-1]), dtype=np.uint32)
        mask = np.zeros(tokens.shape[0] if with_mask else 0, dtype=np.uint8)
        kernels().assemble_rows(pool, pool_off, occ_arr, flag_arr, row_off, offsets, tokens, mask, with_mask)
        if last_token is not None:
            rows = np.asarray(last_token[0], dtype=np.int64)
            if rows.size and (int(rows.min()) < 0 or int(rows.max()) >= offsets.shape[0] - 1):
                raise ValueError("RaggedTokens.from_piece_table: last_token names a row that is not there")
            ends = offsets[rows + 1]
            nonempty = ends > offsets[rows]
            tokens[ends[nonempty] - 1] = last_token[1]
        return cls.adopt(tokens, offsets, mask if with_mask else None)

    @classmethod
    def from_arrow(cls, array: Any, mask: Any = None) -> "RaggedTokens":
        """Rows from a pyarrow ``ListArray``, ``LargeListArray`` or ``ChunkedArray`` of integer
        lists (``mask``: the loss mask as such a column of 0/1, rows as long as the token rows).

        Checked as the constructor checks (ids in ``uint32`` range, offsets a layout of the
        values, mask 0/1); a null row or a null value is an error naming its row. ``uint32``
        tokens (and a ``uint8`` mask) in one chunk are not copied: the rows are a read-only view
        of the Arrow buffers, and the arrays' owner must not change them (what reads them here
        copies values only, never looks anything up by them). Offsets are always copied.
        """
        col = list_column(array, "tokens")
        if col.bad:
            row, exc = next(iter(col.bad.items()))
            raise with_index(exc, f"tokens row {row}") from None
        loss_mask = None
        if mask is not None:
            mcol = list_column(mask, "mask", np.uint8)
            if mcol.bad:
                row, exc = next(iter(mcol.bad.items()))
                raise with_index(exc, f"mask row {row}") from None
            if mcol.offsets.shape != col.offsets.shape or not np.array_equal(mcol.offsets, col.offsets):
                diff = np.diff(mcol.offsets), np.diff(col.offsets)
                if diff[0].shape != diff[1].shape:
                    raise ValueError(f"mask has {diff[0].shape[0]} rows for {diff[1].shape[0]} token rows")
                row = int(np.flatnonzero(diff[0] != diff[1])[0])
                raise ValueError(f"mask row {row} has {diff[0][row]} values for {diff[1][row]} tokens")
            loss_mask = mcol.values
            if loss_mask.size and int(loss_mask.max()) > 1:
                i = int(np.flatnonzero(loss_mask > 1)[0])
                row = int(np.searchsorted(col.offsets, i, "right")) - 1
                raise ValueError(f"mask row {row}: value {loss_mask[i]} at position {i - int(col.offsets[row])} is not 0 or 1")
        return cls.adopt(col.values, col.offsets, loss_mask)

    def to_arrow(self) -> Any:
        """The rows as a pyarrow ``LargeListArray`` of ``uint32`` over this object's own
        (read-only) token and offset buffers: no copy."""
        return large_list(self._tokens, self._offsets)

    def to_arrow_mask(self) -> Any:
        """The loss mask as a pyarrow ``LargeListArray`` of ``uint8``, rows aligned with
        :meth:`to_arrow`, over the mask and offset buffers (no copy). Raises ``ValueError`` when
        there is no mask."""
        if self._loss_mask is None:
            raise ValueError("this result has no loss mask: render with loss_mask=True or mode='training'")
        return large_list(self._loss_mask, self._offsets)

    def _set(self, tokens: np.ndarray, offsets: np.ndarray, loss_mask: Optional[np.ndarray]) -> None:
        for a in (tokens, offsets, loss_mask):
            if a is not None:
                a.setflags(write=False)
        self._tokens = tokens
        self._offsets = offsets
        self._loss_mask = loss_mask

    @property
    def tokens(self) -> np.ndarray:
        """All rows' tokens back to back (``uint32``, read-only)."""
        return self._tokens

    @property
    def offsets(self) -> np.ndarray:
        """Row boundaries (``int64``, ``len(self) + 1`` values, read-only)."""
        return self._offsets

    @property
    def loss_mask(self) -> Optional[np.ndarray]:
        """``uint8`` per token (read-only), or None when no mask was requested."""
        return self._loss_mask

    def __reduce__(self):
        # a pickled copy is checked again on load, and owns read-only arrays like this one
        return (RaggedTokens, (self._tokens, self._offsets, self._loss_mask))

    def __len__(self) -> int:
        return self._offsets.shape[0] - 1

    def _row(self, i: Any) -> int:
        n = len(self)
        i = operator.index(i)
        if not -n <= i < n:
            raise IndexError(f"row {i} out of range for {n} rows")
        return i % n

    def __getitem__(self, i: int) -> np.ndarray:
        i = self._row(i)
        return self._tokens[self._offsets[i] : self._offsets[i + 1]]

    def __iter__(self):
        for i in range(len(self)):
            yield self[i]

    def __repr__(self) -> str:
        return f"RaggedTokens({len(self)} rows, {self._tokens.shape[0]} tokens{', loss_mask' if self._loss_mask is not None else ''})"

    def lengths(self) -> np.ndarray:
        """Tokens per row."""
        return np.diff(self._offsets)

    def row_mask(self, i: int) -> np.ndarray:
        """The loss mask of row ``i`` (indexed as rows are: negative counts from the end)."""
        if self._loss_mask is None:
            raise ValueError("this result has no loss mask: render with loss_mask=True or mode='training'")
        i = self._row(i)
        return self._loss_mask[self._offsets[i] : self._offsets[i + 1]]

    def to_list(self) -> List[List[int]]:
        """Rows as lists of ints (as the single-call renders return them)."""
        flat = self._tokens.tolist()
        off = self._offsets.tolist()
        return [flat[off[i] : off[i + 1]] for i in range(len(self))]

    def to_padded(self, pad_id: int, *, max_len: Optional[int] = None, side: str = "right", with_loss_mask: bool = False):
        """Rows in a 2-D array padded with ``pad_id``, and the attention mask (1 on real tokens).

        ``side="right"`` pads after the tokens, ``"left"`` before (as for generation). A row
        longer than ``max_len`` is cut: its first ``max_len`` tokens are kept on the right side,
        its last on the left side. With ``with_loss_mask`` a third array, the padded loss mask,
        is returned.
        """
        if side not in ("right", "left"):
            raise ValueError(f"side must be 'right' or 'left', got {side!r}")
        if with_loss_mask and self._loss_mask is None:
            raise ValueError("this result has no loss mask: render with loss_mask=True or mode='training'")
        lengths = self.lengths()
        width = int(lengths.max()) if lengths.size else 0
        if max_len is not None:
            if max_len < 0:
                raise ValueError(f"max_len must be >= 0, got {max_len}")
            width = int(max_len)
        if not 0 <= int(pad_id) < 2**32:
            raise ValueError(f"pad_id must fit in uint32, got {pad_id}")
        n = len(self)
        ids = np.full((n, width), pad_id, dtype=np.uint32)
        attn = np.zeros((n, width), dtype=np.uint8)
        pad_rows = kernels().pad_rows

        # the constructor proved 0 <= offsets[0] <= ... <= offsets[-1] <= len(tokens) ==
        # len(loss_mask) and made the arrays read-only, but a caller may make them writeable
        # again: checked once more (O(rows)) where the kernel reads memory at these offsets
        problem = offsets_problem(self._offsets, self._tokens.shape[0])
        if problem is None and self._loss_mask is not None and self._loss_mask.shape != self._tokens.shape:
            problem = "loss_mask no longer has one value per token"
        if problem is not None:
            raise ValueError(f"RaggedTokens changed after it was made: {problem}")
        pad_rows(self._tokens, self._offsets, ids, attn, side == "left")
        if with_loss_mask:
            lm = np.zeros((n, width), dtype=np.uint8)
            pad_rows(self._loss_mask, self._offsets, lm, np.zeros_like(attn), side == "left")
            return ids, attn, lm
        return ids, attn
