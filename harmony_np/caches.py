"""Caches bounded by their approximate size in bytes, for every cache of the package.

A count of entries bounds nothing: one long unique name or malformed header can weigh as much as
thousands of ordinary ones. A cache that would pass its bound is emptied rather than trimmed by
recency (O(1) amortised); the entries that really recur come back on their next use.
"""

from __future__ import annotations

import sys
from enum import Enum
from typing import Any, Hashable, Optional

# Rough bytes of a cache entry beyond its key and value: dict slot, key tuple, value tuple.
_ENTRY_OVERHEAD = 160


class BoundedCache(dict):
    """A dict whose entries are accounted in approximate bytes and that is emptied before they
    would pass ``max_bytes``. Reads are a dict's own (``get``, ``in``, ``[]``): the hot paths pay
    nothing for the bound. Entries are added by :meth:`put` only; one of more than ``max_entry``
    bytes (default: a sixteenth of the bound) is not stored."""

    __slots__ = ("max_bytes", "max_entry", "nbytes")

    def __init__(self, max_bytes: int, max_entry: Optional[int] = None) -> None:
        super().__init__()
        self.max_bytes = max_bytes
        self.max_entry = max_bytes >> 4 if max_entry is None else max_entry
        self.nbytes = 0  # accounted bytes of the entries held

    def put(self, key: Hashable, value: Any, size: int) -> None:
        """Store ``key -> value``, accounted as ``size`` bytes (see :func:`approx_size`)."""
        if size > self.max_entry:
            return
        # callers put on a miss; a replaced entry stays counted, which only errs on the safe side
        if self.nbytes + size > self.max_bytes:
            self.clear()
        dict.__setitem__(self, key, value)
        self.nbytes += size

    def __setitem__(self, key: Hashable, value: Any) -> None:
        raise TypeError("BoundedCache entries are added with put(key, value, size)")

    def setdefault(self, key: Hashable, default: Any = None) -> Any:
        raise TypeError("BoundedCache entries are added with put(key, value, size)")

    def update(self, *args: Any, **kwargs: Any) -> None:
        raise TypeError("BoundedCache entries are added with put(key, value, size)")

    def clear(self) -> None:
        dict.clear(self)
        self.nbytes = 0


def approx_size(*parts: Any) -> int:
    """Approximate bytes of a cache entry made of ``parts`` (str, bytes, ints, None and
    tuples or lists of them, nested): their ``sys.getsizeof`` plus a per-entry overhead."""
    total = _ENTRY_OVERHEAD
    getsizeof = sys.getsizeof
    stack = list(parts)
    while stack:
        x = stack.pop()
        if x is None or isinstance(x, Enum):
            continue  # shared objects (roles)
        total += getsizeof(x)
        if x.__class__ is tuple or x.__class__ is list:
            stack.extend(x)
    return total
