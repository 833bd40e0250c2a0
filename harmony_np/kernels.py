"""Numba kernels. They take and return plain NumPy arrays and never see Python objects.

Every caller validates its input first (ids below ``N_VOCAB``, offsets monotone): Numba does not
bounds-check, so an unchecked id would read outside the byte table.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def _gather_bytes(flat, offsets, tokens):
    total = 0
    for i in range(tokens.shape[0]):
        t = tokens[i]
        total += offsets[t + 1] - offsets[t]
    out = np.empty(total, np.uint8)
    pos = 0
    for i in range(tokens.shape[0]):
        t = tokens[i]
        a = offsets[t]
        b = offsets[t + 1]
        for j in range(a, b):
            out[pos] = flat[j]
            pos += 1
    return out


def gather_bytes(flat: np.ndarray, offsets: np.ndarray, tokens: np.ndarray) -> np.ndarray:
    """The bytes of ``tokens`` (uint32 ids, already checked to be below ``len(offsets) - 1``)."""
    return _gather_bytes(flat, offsets, np.ascontiguousarray(tokens, dtype=np.uint32))
