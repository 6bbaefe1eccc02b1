"""Every runtime test gets a private on-disk cache folder (never the user's ~/.cache/vmlang)."""
from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    d = tmp_path / "vmcache"
    monkeypatch.setenv("VMLANG_CACHE_DIR", str(d))
    monkeypatch.delenv("VMLANG_CACHE", raising=False)
    monkeypatch.setenv("VMLANG_BACKEND", "numpy")
    return d
