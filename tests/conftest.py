import os
from pathlib import Path

import pytest
from hypothesis import settings

# The suite is reproducible: hypothesis draws the same examples on every run
# (a CI run never fails on a case no earlier run saw). To explore new cases,
# run with HYPOTHESIS_PROFILE=explore (random draws, more examples).
settings.register_profile("repeatable", derandomize=True)
settings.register_profile("explore", derandomize=False, max_examples=1000)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "repeatable"))

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture
def shared_data():
    """The team's read-only data folder (../shared/data); skip where absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"{SHARED_DATA} is not available")
    return SHARED_DATA


@pytest.fixture(autouse=True)
def private_reuse_cache_dir(tmp_path, monkeypatch):
    """``--fast_run`` writes its cache under $LLMSIM_CACHE_DIR: never the user's."""
    monkeypatch.setenv("LLMSIM_CACHE_DIR", str(tmp_path / "llmsim-cache"))
