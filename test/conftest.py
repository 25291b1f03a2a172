"""Shared fixtures. Reference vectors live in ../shared/reference beside the repository."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

# DDS tests of concurrent runs on one machine must not hear each other.
os.environ.setdefault("ROS_DOMAIN_ID", str(random.Random(os.getpid()).randint(1, 100)))
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")

REPO_ROOT = Path(__file__).resolve().parents[1]
REFERENCE_DIR = Path(os.environ.get("ASYMTRACK_REFERENCE_DIR", REPO_ROOT.parent / "shared" / "reference"))


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    if not (REFERENCE_DIR / "ASYMTRACK_SPEC.md").is_file():
        pytest.skip(f"reference vectors not found at {REFERENCE_DIR} "
                    "(set ASYMTRACK_REFERENCE_DIR to the folder with official_*_random.pth.tar)")
    return REFERENCE_DIR
