from pathlib import Path

import pytest

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
