"""The comparison command, ``benchmarks/compare.py``, run as a script in a fresh process with the
fewest iterations: every scenario measured for both libraries, and the harmony_np it names is
the one it was pointed at."""

from __future__ import annotations

import json
import os
import subprocess

import pytest
import sys
from pathlib import Path

pytestmark = pytest.mark.slow  # a subprocess that times every scenario

ROOT = Path(__file__).resolve().parent.parent
COMPARE = ROOT / "benchmarks" / "compare.py"


def test_compare_json_has_every_scenario_for_both_libraries(oracle, tmp_path):
    import harmony_np
    from benchmarks import scenarios

    # run from another folder, this checkout named by PYTHONPATH: the way before/after figures
    # of two checkouts are taken
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    done = subprocess.run(
        [sys.executable, str(COMPARE), "--json", "--iters", "2", "--batch", "40", "--chat", "40", "--startup-runs", "1"],
        capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)

    timed = {d["module"]: d for d in report["timed"]}
    assert Path(timed["harmony_np"]["file"]).resolve() == (ROOT / "harmony_np" / "__init__.py").resolve()
    assert timed["openai_harmony"]["file"] == oracle.__file__

    rows = {(r["scenario"], r["kind"]): r for r in report["rows"]}
    ours = scenarios.scenario_calls(harmony_np, scenarios.build_inputs(harmony_np))
    theirs = scenarios.scenario_calls(oracle, scenarios.build_inputs(oracle))
    assert len(ours) > len(theirs) >= 7  # the chunked cases exist for harmony_np only
    for kind in ("warm", "cold"):
        for name in ours:
            row = rows.pop((name, kind))
            assert row["harmony_np_us"] > 0 and row["harmony_np_ops"] > 0, row
            if name in theirs:
                assert row["openai_harmony_us"] > 0 and row["ratio_vs_openai_harmony"] > 0, row
            else:
                assert "openai_harmony_us" not in row, row
    for case in ("render_batch", "render_batch_json_rows", "parse_batch_to_messages", "parse_batch_columnar_flat", "parse_batch_flat_to_messages",
                 "parse_batch_collect_quarter_mutated", "parse_batch_recover_quarter_mutated"):
        row = rows.pop((f"{case}_40", "batch"))
        assert row["harmony_np_s"] > 0 and row["openai_harmony_loop_s"] > 0 and row["ratio_vs_openai_harmony"] > 0, row
    assert rows.pop(("parse_batch_columnar_tokens_per_s_40", "batch"))["harmony_np_tokens_per_s"] > 0
    for case in ("parse_batch_peak_mib", "parse_batch_input_uint32_mib"):
        assert rows.pop((f"{case}_40", "memory"))["MiB"] >= 0
    # the chat template: harmony_np's figures, and the template path's where its reference is here
    for name, kinds in (("apply_chat_template_40", ("chat_first", "chat_best")), ("apply_chat_template_jsonl_40", ("chat_best",))):
        for kind in kinds:
            row = rows.pop((name, kind))
            assert row["harmony_np_s"] > 0, row
            assert ("template_path_s" in row) == ("ratio_vs_template" in row), row
            if "template_path_s" in row:
                assert row["template_path_s"] > 0 and row["ratio_vs_template"] > 0, row
    startup = rows.pop(("startup_import_load_render_parse", "startup"))
    assert startup["harmony_np_us"] > 0 and startup["openai_harmony_us"] > 0
    assert rows == {}, f"rows no scenario accounts for: {sorted(rows)}"
    # only figures measured in this run: nothing relative to another machine's published numbers
    assert not any("harmony_go" in key for row in report["rows"] for key in row), report["rows"]


def test_compare_finds_its_scenarios_from_any_cwd(tmp_path):
    # no PYTHONPATH: the script's own folder is where its scenarios come from
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run([sys.executable, str(COMPARE), "--help"], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "python benchmarks/compare.py" in done.stdout
