"""The thresholds command, ``benchmarks/crossovers.py``, run as a script in a fresh process with
its smallest setting: every crossover and split threshold of harmony_np.tuning timed on both of
its paths, on the harmony_np it was pointed at."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CROSSOVERS = ROOT / "benchmarks" / "crossovers.py"

# the thresholds that pick a path; the other names of tuning.py bound caches
TIMED = {
    "SCAN_KERNEL_MIN", "SCAN_GATHER_MAX", "GATHER_MIN", "GATHER_KERNEL_MIN", "STREAM_BULK_MIN",
    "KERNEL_SPLIT_MIN", "PARALLEL_MIN_CHARS", "PARALLEL_ONE_TEXT", "BATCH_PARALLEL_MIN_CHARS",
    "SKELETON_MIN_ROWS",
}


def test_tuning_names_are_the_timed_thresholds_and_cache_bounds():
    from harmony_np import tuning

    names = {n for n in vars(tuning) if n.isupper()}
    bounds = {n for n in names if "CACHE" in n or "BYTES" in n or n == "HEADER_KEY_MAX"}
    assert names - bounds == TIMED  # a new threshold needs its measurement in crossovers.py


def test_crossovers_json_times_both_paths_of_every_threshold(tmp_path):
    from harmony_np import tuning

    # from another folder, this checkout named by PYTHONPATH (as tests/test_benchmarks.py runs
    # compare.py); the default thread count, whatever the caller set
    env = {k: v for k, v in os.environ.items() if k != "HARMONY_NP_THREADS"}
    env["PYTHONPATH"] = str(ROOT)
    done = subprocess.run(
        [sys.executable, str(CROSSOVERS), "--json", "--repeat", "1", "--quick"],
        capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120,
    )
    # a patch that did not switch paths makes the script fail (its witness check)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert Path(report["timed"]["file"]).resolve() == (ROOT / "harmony_np" / "__init__.py").resolve()

    seen = set()
    for case in report["cases"]:
        name = case["threshold"]
        seen.add(name)
        assert case["value"] == getattr(tuning, name), case
        first, second = case["paths"]
        assert first != second
        assert [r["x"] for r in case["rows"]] == [0.5, 2.0], case
        for row in case["rows"]:
            assert row["size"] > 0
            assert row["us"][first] > 0 and row["us"][second] > 0, (name, row)
        # below the value the first path is the one the threshold picks, above it the second
        assert [r["picked"] for r in case["rows"]] == [first, second], case
    assert seen == TIMED
    # GATHER_MIN is read in three modules, each timed
    assert {c["module"] for c in report["cases"] if c["threshold"] == "GATHER_MIN"} == {
        "harmony_np.parse", "harmony_np.stream", "harmony_np.recover"
    }
