"""Every tuning threshold and cache bound of harmony_np, in one place, each with what set it.

A crossover is where the faster path changes (measured with ``python benchmarks/crossovers.py``
on the 2-core development machine; the figures below are from that command, medians of two runs
given as ranges over the two, 2026-12-02 at a load average of 0.5-0.8: the thread-pool splits
only pay with the other core idle, and under a load of 4 the pool lost at nearly every size). A
bound caps what a cache holds in approximate bytes (:mod:`harmony_np.caches`), whatever the
input. Modules take these by name (``from .tuning import ...``); a test may patch a module's copy.
"""

from __future__ import annotations

# -- crossovers: NumPy/Numba kernels against Python loops and tiktoken -------------------------

# parse: from this many tokens the Numba scanner finds the formatting tokens, below it a
# comprehension over the ids >= N_ORDINARY does (crossovers.py, 2026-12-02, parse of an analysis
# + final completion as a list: Python 4.8-4.9 µs vs kernel 5.7-6.0 at 40 tokens, 5.9-6.1 vs
# 6.1-6.3 at 80, 8.3-8.5 vs 6.8-6.9 at 160, 12.5-12.9 vs 8.2-8.4 at 320, 21.1-21.3 vs 10.9 at 640:
# the paths cross between 80 and 160).
SCAN_KERNEL_MIN = 160
# parse: up to this many tokens, scanning and gathering the contents' bytes are one kernel call
# (its scratch buffer is 128 bytes a token, uninitialised); longer completions gather per message
# (crossovers.py, 2026-12-02, 4 messages as a list: one call 125-126 µs vs scan + per-message
# gather 136-138 at 16,384 tokens, 266-272 vs 281-289 at 32,768, 860-1015 vs 898-982 at 65,536,
# 2017-2789 vs 2124-2923 at 131,072, 4944-5003 vs 4490-4535 at 262,144: within 10 % of each other
# up to 2x, the one call behind from 4x; the bound also caps that scratch buffer at 8 MiB).
SCAN_GATHER_MAX = 1 << 16
# parse, stream, recover: a content span of at least this many tokens is gathered from the byte
# table by a kernel instead of tiktoken's decode_bytes (crossovers.py, 2026-12-02, 4 messages of
# this many content tokens, tiktoken vs kernel µs a call. parse, per message as past
# SCAN_GATHER_MAX: 12.8 vs 13.0-13.5 at 56, 17.0 vs 15.5 at 112, 26.0-26.4 vs 19.8-20.0 at 224,
# 41.7-42.7 vs 26.9-27.3 at 448, 77-80 vs 42-45 at 896; stream, process_tokens in one call:
# 27.5-41.6 vs 25.7-41.2 at 56, 33.2-34.0 vs 27.8-28.2 at 112, 47.2-49.0 vs 32.2-33.5 at 224;
# recover: 18.5-19.6 vs 19.6-20.0 at 56, 23.9-31.5 vs 21.8-28.6 at 112, 31.6-33.4 vs 25.6-26.7 at
# 224. The paths cross at or below 112 (stream: level at 56): the kernel is 9-21 % faster at 112,
# so about half this value would do a little better, not enough to call it off).
GATHER_MIN = 224
# encoding.decode*: from this many tokens, decoding gathers bytes in a kernel instead of tiktoken
# (crossovers.py, 2026-12-02, decode_bytes of a list, tiktoken vs kernel: 32.3-35.3 µs vs
# 11.2-12.4 at 1,024 tokens, 61.8-68.5 vs 18.7-21.1 at 2,048, 124-126 vs 33.6-37.7 at 4,096,
# 240-265 vs 63-76 at 8,192, 551-572 vs 223-249 at 16,384; decode_utf8 of a list and decode of a
# uint32 array alike, the kernel 2.8-3.9x faster at 1,024. CLEARLY OFF, too high: the kernel wins
# on both sides by about 3x; with --factors (one run), decode_bytes of a list took 4.5 vs 4.0 µs
# at 51 tokens, 6.1 vs 4.4 at 102, 8.9 vs 5.2 at 205: the paths cross below 100 tokens, near
# GATHER_MIN. Not changed here: the value also keeps a process that decodes only short texts from
# importing numba and loading the kernels, 0.26-0.33 s once (measured 2026-12-02, three fresh
# processes); lowering it trades that start-up for mid-sized decodes.)
GATHER_KERNEL_MIN = 4096
# stream.process_tokens: below this many tokens the Python loop beats a kernel call
# (crossovers.py, 2026-12-02, a message's 4,096 ASCII content tokens in chunks of this size, then
# <|end|>, µs a chunk: _feed_small 2.56-2.60 vs _feed 2.78-2.79 at 32, 4.51-4.55 vs 3.17-3.19 at
# 64, 8.1-8.4 vs 3.8-3.9 at 128, 16.0 vs 5.4-5.6 at 256, 30.7-31.5 vs 7.7-8.0 at 512; with
# --factors (one run) 1.07 vs 2.48 at 8, 1.65 vs 2.62 at 16, 3.51 vs 2.93 at 48. CLEARLY OFF, too
# high: the paths cross between 32 and 48, and at 64 the kernel path is already 1.4x faster. Not
# changed here: as with GATHER_KERNEL_MIN, below it a stream never imports numba (0.26-0.33 s).)
STREAM_BULK_MIN = 128

# -- thread pool ---------------------------------------------------------------------------------

# kernels: below this many tokens (or bytes), one thread copies rows; a hand-off costs more
# (crossovers.py, 2026-12-02, serial vs split over 2 threads, µs a call. gather_spans, spans of
# 200 tokens, by bytes gathered: 48.6-54.8 vs 156-168 at 65,536, 179-215 vs 173-218 at 131,072,
# 517-522 vs 375-391 at 262,144, 1061-1073 vs 799-855 at 524,288, 2107-2148 vs 1309-1469 at
# 1,048,576: the paths cross near 131,072, right for it. assemble_rows, rows of 300 tokens, by
# tokens: 10.1-10.6 vs 78-85 at 65,536, 17.6-18.2 vs 80-90 at 131,072, 31-34 vs 97-105 at 262,144,
# 57-63 vs 98-117 at 524,288, 109-114 vs 135-149 at 1,048,576, and with --factors (one run) 271
# vs 271 at 2 M, 1314 vs 874 at 4 M. CLEARLY OFF for assemble_rows, too low: its token copy is
# fast enough that splitting pays only from 2-4 M tokens. One value serves both kernels; not
# changed here (a row copy of 0.26-2 M tokens loses 50-70 µs a batch to the hand-off).)
KERNEL_SPLIT_MIN = 1 << 18
# render: a plan's fresh texts are encoded in parallel when they hold this many characters...
# (crossovers.py, 2026-12-02, 4 fresh texts of a quarter each, PARALLEL_ONE_TEXT patched to 0:
# serial 113-120 µs vs pool 139-181 at 4,096 chars, 201-213 vs 201-256 at 8,192, 423-549 vs
# 352-353 at 16,384, 783-830 vs 582-605 at 32,768, 1479-1504 vs 969-1300 at 65,536: the paths
# cross between 8,192 and 16,384)
PARALLEL_MIN_CHARS = 16_384
# ... or when one fresh text of the plan is this long (crossovers.py, 2026-12-02, a user and an
# assistant message of this many fresh characters each: one pass 105-113 µs vs pool 151-194 at
# 2,048, 206-218 vs 205-226 at 4,096, 388-390 vs 315-399 at 8,192, 709-720 vs 494-686 at 16,384,
# 1372-1470 vs 965-1246 at 32,768: the paths cross near 8,192, between 4,096 and 16,384).
PARALLEL_ONE_TEXT = 8_192
# render_batch (Renderer.encode_texts): a batch's fresh texts are split over the threads from
# this many characters (crossovers.py, 2026-12-02, fresh texts of 300 characters: serial 398-414
# µs vs pool 334-439 at 16,384, 778-1079 vs 764-885 at 32,768, 1656-1659 vs 1282-1353 at 65,536,
# 3312-3364 vs 2096-2985 at 131,072, 6354-7332 vs 4535-5005 at 262,144: the pool is already
# 2-22 % faster at 32,768 and in one run at 16,384 too, so the paths cross at 32 K or below;
# lower would do a little better, not enough to call it off).
BATCH_PARALLEL_MIN_CHARS = 65_536

# render_table (the gpt-oss template): a shape of plain messages (roles, which have thinking) is
# rendered once as a skeleton and filled per row when at least this many rows of a batch have it
# (making one costs about 30 µs + 9 µs a message; crossovers.py, 2026-12-04, 1,024 rows of 21
# messages in shapes of this many rows each, template per row / skeleton, two runs: 0.29 at 1
# row a shape, 0.47-0.48 at 2, 0.70-0.75 at 4, 0.98-0.99 at 8, 1.21-1.23 at 16, 1.45-1.55 at 32,
# 1.44-1.55 at 64: the paths cross at 8; finding the shapes costs 2.5 ms per 4,000 rows when none
# has enough)
SKELETON_MIN_ROWS = 16

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
