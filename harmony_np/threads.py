"""The threads harmony_np spreads work over: the calling thread plus one pool per process.

Numba's own parallel loops (``prange``) are not used: with GNU OpenMP, the threading layer that
numba picks on Linux, a process forked after a parallel kernel ran is killed when it runs one
(``fork() called from a process already using GNU OpenMP``), and numba's fallback layer aborts
when two threads call a parallel kernel at once. The kernels are serial, release the GIL
(``nogil=True``), and are called on ranges of rows from these threads instead.

A fork waits until no first use is half done in another thread (a lazy import, a numba compile,
the pool's start): the child would inherit a lock held by a thread it does not have, and hang on
its own first use (see :func:`first_import`).
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import os
import sys
import threading
from types import ModuleType
from typing import Any, Callable, Dict, List, Optional, Sequence

import numpy as np

# Imported here, not with the first pool: importing it registers fork hooks (its shutdown lock
# taken before a fork, released after), and an import that lands while a fork's hooks wait for
# harmony_np's locks in another thread (tiktoken's import brings it too) would release a lock
# that fork never took. Every use that encodes text imports it anyway, with tiktoken.
from concurrent.futures import ThreadPoolExecutor

_pool: Optional[ThreadPoolExecutor] = None
_pool_pid = 0
_pool_lock = threading.Lock()

# Held while harmony_np imports one of its lazy modules (the kernels, and numba with them): a
# child forked mid-import would find the module half made and wait forever on its import lock.
_first_use_lock = threading.RLock()
_imported: Dict[str, ModuleType] = {}


@contextlib.contextmanager
def first_use():
    """Hold the lock a fork waits for, around a first use that builds shared state (a backend
    loaded, an object attached to the vocabulary): a child forked meanwhile would inherit it half
    built, or a lock held by a thread it does not have. Reentrant."""
    with _first_use_lock:
        yield


def first_import(name: str) -> ModuleType:
    """The module ``name`` (absolute), imported under the lock that :func:`os.fork` waits for."""
    module = _imported.get(name)
    if module is None:
        with _first_use_lock:
            module = importlib.import_module(name)
        _imported[name] = module
    return module


def _fork_locks() -> list:
    """After :data:`_first_use_lock`, the locks a fork takes, in the order every other user takes
    them: numba's compiler lock (held through each compile and cache load), the LLVM lock (held
    through each call into LLVM; private to llvmlite, so looked up with care), the pool's. Looked
    up once the first lock is held: an import it waited for may have brought numba in."""
    locks: list = []
    compiler = sys.modules.get("numba.core.compiler_lock")
    lock = getattr(compiler, "global_compiler_lock", None)
    if lock is not None:
        locks.append(lock)
    ffi = sys.modules.get("llvmlite.binding.ffi")
    lock = getattr(getattr(getattr(ffi, "lib", None), "_lock", None), "_lock", None)
    if lock is not None and hasattr(lock, "acquire") and hasattr(lock, "release"):
        locks.append(lock)
    locks.append(_pool_lock)
    return locks


_held_for_fork: List[list] = []


def _before_fork() -> None:
    held: list = []
    _held_for_fork.append(held)
    _first_use_lock.acquire()
    held.append(_first_use_lock)
    for lock in _fork_locks():
        lock.acquire()
        held.append(lock)


def _after_fork() -> None:
    # the child's only thread is the one that forked, with the same ident, so it owns these
    # locks there too and releases them like the parent
    held = _held_for_fork.pop() if _held_for_fork else []
    for lock in reversed(held):
        lock.release()


if hasattr(os, "register_at_fork") and not globals().get("_fork_hooks"):
    # Registered here, before any first use can hold a lock (once: a reload keeps this flag).
    # Fork hooks run last registered first, and logging's takes logging's lock, which numba's
    # import needs: logging comes in first (2 ms), so that ours runs before it, else a fork
    # holding that lock would wait for an import waiting for it.
    import logging  # noqa: F401

    os.register_at_fork(before=_before_fork, after_in_parent=_after_fork, after_in_child=_after_fork)
    _fork_hooks = True


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity where the platform tells it)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not on Linux
        return os.cpu_count() or 1


def thread_count() -> int:
    """How many threads work on one call: ``$HARMONY_NP_THREADS``, else at most 4 and at most
    ``$OMP_NUM_THREADS`` where that is set (Ray sets it to a task's or actor's CPUs, so that
    actors sharing a machine do not each take all its cores), and never more than the usable
    cores (each thread that encodes text holds its own copy of the BPE, about 47 MiB, and
    threads beyond the cores only add copies)."""
    value = os.environ.get("HARMONY_NP_THREADS")
    if value is not None:
        try:
            n = int(value)
        except ValueError:
            n = 0
        if n < 1:
            raise ValueError(f"HARMONY_NP_THREADS must be a positive integer, got {value!r}")
        return min(n, usable_cores())
    n = min(usable_cores(), 4)
    omp = os.environ.get("OMP_NUM_THREADS", "")
    if omp.isdigit() and int(omp) >= 1:  # another library's setting: honoured, never refused
        n = min(n, int(omp))
    return n


def pool() -> ThreadPoolExecutor:
    """The process's pool of ``thread_count() - 1`` threads (started on first use, and again in a
    forked child, which inherits the pool object but not its threads)."""
    global _pool, _pool_pid
    with _pool_lock:
        if _pool is None or _pool_pid != os.getpid():
            _pool = ThreadPoolExecutor(max(1, thread_count() - 1), thread_name_prefix="harmony_np")
            _pool_pid = os.getpid()
        return _pool


def run_parallel(tasks: Sequence[Callable[[], Any]]) -> List[Any]:
    """The results of ``tasks``: the first runs on the calling thread, the others on the pool."""
    if len(tasks) == 1:
        return [tasks[0]()]
    futures = [pool().submit(t) for t in tasks[1:]]
    first = tasks[0]()
    return [first] + [f.result() for f in futures]


def split_by_weight(cumulative: np.ndarray, parts: int, min_weight: int) -> List[tuple]:
    """``[(lo, hi), ...]``: rows ``0..n`` cut into at most ``parts`` contiguous ranges of similar
    weight, given ``cumulative`` (len n + 1, rising from 0); one range when the whole weighs less
    than ``min_weight``."""
    n = cumulative.shape[0] - 1
    total = int(cumulative[-1]) if n >= 0 else 0
    if parts <= 1 or n <= 1 or total < min_weight:
        return [(0, max(n, 0))]
    cuts = np.searchsorted(cumulative, [total * i / parts for i in range(1, parts)]).tolist()
    bounds = [0] + [min(max(c, 0), n) for c in cuts] + [n]
    return [(a, z) for a, z in zip(bounds, bounds[1:]) if z > a]


@contextlib.contextmanager
def gc_paused():
    """Pause the cyclic GC: a batch allocates many small acyclic containers, and each full
    collection would walk the caller's whole heap (often millions of objects) for nothing."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
