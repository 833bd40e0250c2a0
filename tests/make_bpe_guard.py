"""Measure where the accelerated BPE backend and tiktoken disagree and write the guard table that
ships with the package: ``python tests/make_bpe_guard.py``.

Every code point is encoded by both in the contexts of :mod:`harmony_np.bpe` (seconds); the
table is keyed by both libraries' versions, so it is only used where they are the ones installed
(elsewhere ``harmony-np bpe-check`` measures and stores a table of the user's own).
"""

import os
import sys
import time

import harmony_np
from harmony_np import bpe


def main() -> int:
    enc = harmony_np.load_harmony_encoding(harmony_np.HarmonyEncodingName.HARMONY_GPT_OSS)
    reference = bpe.ordinary_bpe(enc.vocab).reference
    tokenizer, name = bpe.verified_backend(reference)
    path = os.path.join(os.path.dirname(bpe.__file__), bpe.GUARD_FILE)
    t0 = time.perf_counter()
    ranges = bpe.write_guard_table(path, tokenizer, reference, name)
    count = sum(b - a + 1 for a, b in ranges)
    print(f"{name} against {reference.name}: {count} code points in {len(ranges)} ranges disagree "
          f"({time.perf_counter() - t0:.1f} s); written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
