"""Vectorised global accesses from the vectorize pass's plans (``ld.global.v4.b32`` and friends).

``vector_load`` / ``vector_store`` return None / False when the instruction has no vector plan; the
caller then accesses element by element.
"""
from __future__ import annotations


def vector_load(lw, i, src, lay):
    return None


def vector_store(lw, i, dst, tile) -> bool:
    return False
