"""Every tuning threshold and cache bound of harmony_np, in one place, each with what set it.

A crossover is where the faster path changes (measured with ``python benchmarks/crossovers.py``
on the 2-core development machine; the figures below are from that command). A bound caps what
a cache holds in approximate bytes (:mod:`harmony_np.caches`), whatever the input. Modules take
these by name (``from .tuning import ...``); a test may patch a module's copy.
"""

from __future__ import annotations

# -- crossovers: NumPy/Numba kernels against Python loops and tiktoken -------------------------

# parse: from this many tokens the Numba scanner finds the formatting tokens, below it a
# comprehension over the ids >= N_ORDINARY does.
SCAN_KERNEL_MIN = 160
# parse: up to this many tokens, scanning and gathering the contents' bytes are one kernel call
# (its scratch buffer is 128 bytes a token, uninitialised); longer completions gather per message.
SCAN_GATHER_MAX = 1 << 16
# parse, stream, recover: a content span of at least this many tokens is gathered from the byte
# table by a kernel instead of tiktoken's decode_bytes.
GATHER_MIN = 224
# encoding.decode*: from this many tokens, decoding gathers bytes in a kernel instead of tiktoken.
GATHER_KERNEL_MIN = 4096
# stream.process_tokens: below this many tokens the Python loop beats a kernel call.
STREAM_BULK_MIN = 128

# -- thread pool ---------------------------------------------------------------------------------

# kernels: below this many tokens (or bytes), one thread copies rows; a hand-off costs more.
KERNEL_SPLIT_MIN = 1 << 18
# render: a plan's fresh texts are encoded in parallel when they hold this many characters...
PARALLEL_MIN_CHARS = 16_384
# ... or when one fresh text of the plan is this long.
PARALLEL_ONE_TEXT = 8_192
# render_batch (Renderer.encode_texts): a batch's fresh texts are split over the threads from
# this many characters.
BATCH_PARALLEL_MIN_CHARS = 65_536

# -- cache bounds (approximate bytes, keys included) --------------------------------------------

# render: headers (role, name, channel, recipient, content type) and encoded texts; the text
# bound holds for the token-list cache and, apart from it, for the uint32 array cache.
HEADER_CACHE_MAX_BYTES = 32 << 20
TEXT_CACHE_MAX_BYTES = 64 << 20
# render: longer texts are encoded each time, never cached.
TEXT_CACHE_MAX_CHARS = 1 << 20
# render_batch: a batch's distinct pieces and memos; past this the pending texts are encoded and
# the dedup index and memos start over, so a batch read from a generator keeps its tokens, not
# every text it has seen.
BATCH_POOL_MAX_BYTES = 64 << 20
# parse: one malformed header (a completion that forgot <|message|>) can weigh as much as
# thousands of real ones, so these are bytes, not entries.
HEADER_CACHE_BYTES = 8 << 20  # Tables.headers: strict headers (parse, parse_batch, streaming)
RECOVER_CACHE_BYTES = 8 << 20  # Tables.recover_headers: recovery's header readings
REENCODED_CACHE_BYTES = 4 << 20  # Tables.reencoded: a token's encode_ordinary (state_data)
# parse: a header of more token bytes (256 ids) is junk that will not recur: never cached.
HEADER_KEY_MAX = 1024
# rust_text: Rust's Debug escape of each character met.
DEBUG_CHAR_CACHE_BYTES = 1 << 20
