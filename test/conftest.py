"""Shared fixtures. Reference vectors live in ../shared/reference beside the repository."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

# DDS tests of concurrent runs on one machine (or a robot's own ROS graph) must not hear each
# other: every test session gets its own domain (0..101 are the safe ids on Linux), inherited by
# the nodes the tests start as subprocesses. ASYMTRACK_TEST_DOMAIN_ID pins it.
os.environ["ROS_DOMAIN_ID"] = os.environ.get("ASYMTRACK_TEST_DOMAIN_ID") or str(
    random.SystemRandom().randint(1, 101))
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")

REPO_ROOT = Path(__file__).resolve().parents[1]
REFERENCE_DIR = Path(os.environ.get("ASYMTRACK_REFERENCE_DIR", REPO_ROOT.parent / "shared" / "reference"))


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    if not (REFERENCE_DIR / "ASYMTRACK_SPEC.md").is_file():
        pytest.skip(f"reference vectors not found at {REFERENCE_DIR} "
                    "(set ASYMTRACK_REFERENCE_DIR to the folder with official_*_random.pth.tar)")
    return REFERENCE_DIR
