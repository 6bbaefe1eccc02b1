"""The Triton backend's own tests: skipped where triton (or torch) is not installed."""
import pytest

pytest.importorskip("torch")
pytest.importorskip("vmlang.backends.triton")   # chooses the interpreter where there is no GPU
