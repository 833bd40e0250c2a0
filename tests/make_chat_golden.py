"""Regenerate ``tests/golden/chat_template.json`` from the reference:
``python tests/make_chat_golden.py`` (needs ``../shared/tools/hf_template.py`` and jinja2).

The reference is the gpt-oss chat template as transformers renders it (``hf_template.render``):
for every fixed case of ``chat_cases.py`` and a fixed, derandomized draw of generated ones, the
file holds the case, then the text, the token ids and the assistant mask (as ``[start, stop)``
runs of ones), or the error (its class family in harmony_np and its message). ``test_chat_template.py``
checks harmony_np against it where the reference is absent.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))

import conftest  # noqa: E402,F401  (hypothesis profiles, the vocabulary offline)
from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402

from chat_cases import FIXED_CASES, REFERENCE_PATH, cases, load_reference, mask_spans, reference_outcome  # noqa: E402

TARGET = HERE / "golden" / "chat_template.json"
# generated cases kept: (strategy with raising blocks?, keep the raising ones only?, how many)
GENERATED = ((False, False, 40), (True, True, 20))


def generated_cases(ref, enc, raising: bool, errors_only: bool, count: int) -> list:
    """``count`` distinct cases drawn by hypothesis (with ``errors_only``, only cases the reference
    raises on), the same on every run of the same hypothesis version (derandomized; generation
    phase only, so no shrinking steers the draw)."""
    drawn: list = []
    seen: set = set()

    @settings(max_examples=count * 10, derandomize=True, database=None, phases=[Phase.generate], deadline=None,
              suppress_health_check=list(HealthCheck))
    @given(cases(raising))
    def collect(case):
        key = json.dumps(case, sort_keys=True)
        if len(drawn) >= count or key in seen or not case["messages"]:
            return
        if errors_only and "error" not in reference_outcome(ref, enc, case):
            return
        seen.add(key)
        drawn.append(case)

    collect()
    return drawn


def entry(ref, enc, name: str, case: dict) -> dict:
    out = reference_outcome(ref, enc, case)
    row = {"name": name, "case": case}
    if "error" in out:
        row["error"] = out["error"]
    else:
        row.update(text=out["text"], ids=out["ids"], mask_spans=mask_spans(out["mask"]))
    return row


def main() -> None:
    ref = load_reference()
    if ref is None:
        sys.exit(f"the reference is missing: {REFERENCE_PATH} and jinja2 are needed")
    import harmony_np

    enc = harmony_np.load_harmony_encoding(harmony_np.HarmonyEncodingName.HARMONY_GPT_OSS)
    rows = [entry(ref, enc, name, case) for name, case in FIXED_CASES.items()]
    for raising, errors_only, count in GENERATED:
        for i, case in enumerate(generated_cases(ref, enc, raising, errors_only, count)):
            rows.append(entry(ref, enc, f"generated{'_raising' if raising else ''}_{i:02d}", case))
    TARGET.parent.mkdir(exist_ok=True)
    # one case per line: small and diffable
    lines = ",\n".join(json.dumps(r, ensure_ascii=False, separators=(",", ":")) for r in rows)
    TARGET.write_text(
        '{"reference":"gpt-oss chat template (TRL gptoss.jinja / gptoss_training.jinja) via hf_template.render",\n'
        f'"cases":[\n{lines}\n]}}\n',
        encoding="utf-8",
    )
    errors = sum("error" in r for r in rows)
    print(f"wrote {TARGET}: {len(rows)} cases ({errors} raising), {TARGET.stat().st_size / 1024:.0f} KiB")


if __name__ == "__main__":
    main()
