"""Fixtures shared by the whole test tree (helpers that are not fixtures live in exactverify.testing)."""

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BENCHMARKS = REPO.parent / "shared" / "benchmarks"


@pytest.fixture
def benchmarks():
    """The shared VNN-COMP benchmark folder, ../shared/benchmarks; the test skips where it is absent."""
    if not BENCHMARKS.is_dir():
        pytest.skip("../shared/benchmarks is not present")
    return BENCHMARKS
