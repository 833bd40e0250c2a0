"""Modules imported on first use: the Numba kernels (importing numba costs start-up time that a
process parsing only short completions never pays) and the facade's heavier layers. Every such
import goes through :func:`harmony_np.threads.first_import`, so that a fork waits until it is
done.
"""

from __future__ import annotations

from types import ModuleType

from .threads import first_import

__all__ = ["kernels", "lazy_module"]

_KERNELS = None


def kernels() -> ModuleType:
    """:mod:`harmony_np.kernels`, imported on first use (then one global read per call)."""
    global _KERNELS
    k = _KERNELS
    if k is None:
        k = _KERNELS = lazy_module("kernels")
    return k


def lazy_module(name: str) -> ModuleType:
    """``harmony_np.<name>``, imported on first use under the first-use lock."""
    return first_import(f"{__package__}.{name}")
