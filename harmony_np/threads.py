"""The threads harmony_np spreads work over: the calling thread plus one pool per process.

Numba's own parallel loops (``prange``) are not used: with GNU OpenMP, the threading layer that
numba picks on Linux, a process forked after a parallel kernel ran is killed when it runs one
(``fork() called from a process already using GNU OpenMP``), and numba's fallback layer aborts
when two threads call a parallel kernel at once. The kernels are serial, release the GIL
(``nogil=True``), and are called on ranges of rows from these threads instead.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, List, Optional, Sequence

import numpy as np

_pool: Optional[ThreadPoolExecutor] = None
_pool_pid = 0
_pool_lock = threading.Lock()


def thread_count() -> int:
    """How many threads work on one call: ``$HARMONY_NP_THREADS``, else the usable cores, at most
    4 (each thread that encodes text holds its own copy of the BPE, about 47 MiB)."""
    value = os.environ.get("HARMONY_NP_THREADS")
    if value is not None:
        try:
            n = int(value)
        except ValueError:
            n = 0
        if n < 1:
            raise ValueError(f"HARMONY_NP_THREADS must be a positive integer, got {value!r}")
        return n
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, 4))


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
