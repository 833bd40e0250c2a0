"""Hypothesis profiles of the test suite, and each property test's share of them.

A profile sets one number, ``max_examples``: the examples a test of weight 1 runs. A test that
needs relatively more or fewer examples than others says so with a weight
(``@settings(max_examples=example_count(8))``), never with a fixed count, so that one profile
option scales the whole suite:

* ``quick``: the development loop (a tenth of ``thorough``);
* ``standard``: a local run without options (three tenths of ``thorough``);
* ``thorough``: what CI runs (``--hypothesis-profile=thorough``; also the default when ``$CI``
  is set). Weight times its count is each test's count from before the profiles existed, the
  largest 3,000: CI runs no fewer examples than it did. The rest is what hypothesis' own ``ci``
  profile (loaded in CI before these profiles) sets: derandomized, so that a CI failure replays
  the same locally; no example database; failing examples printed as blobs; no deadline.

``tests/conftest.py`` registers the profiles and loads the default before any test module is
imported; hypothesis' pytest plugin then loads the one ``--hypothesis-profile`` names.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

# max_examples of a weight-1 test, per profile
PROFILE_EXAMPLES = {"quick": 10, "standard": 30, "thorough": 100}


def register_profiles() -> None:
    """Register the profiles with hypothesis (registering again replaces them)."""
    settings.register_profile("quick", max_examples=PROFILE_EXAMPLES["quick"])
    settings.register_profile("standard", max_examples=PROFILE_EXAMPLES["standard"])
    settings.register_profile(
        "thorough",
        max_examples=PROFILE_EXAMPLES["thorough"],
        derandomize=True,
        database=None,
        print_blob=True,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )


def default_profile() -> str:
    """``thorough`` when ``$CI`` is set (not empty), else ``standard``."""
    return "thorough" if os.environ.get("CI") else "standard"


def example_count(weight: float = 1.0) -> int:
    """The ``max_examples`` of a test of relative ``weight`` under the loaded profile: ``weight``
    times the profile's count, at least 1. Read when the test is decorated, which is after the
    plugin loaded the chosen profile (modules are imported at collection)."""
    return max(1, round(settings().max_examples * weight))

