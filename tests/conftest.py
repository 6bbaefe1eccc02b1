"""Test-wide options and markers.

- ``--backend NAME[,NAME]``: the compiled backends the backend-parametrised tests run on, besides the numpy
  reference VM (default: every backend whose toolchain is importable here; triton runs under
  ``TRITON_INTERPRET=1`` when there is no GPU).
- ``--fuzz-long``: run the differential fuzzer with its long budget (``VMLANG_FUZZ_EXAMPLES`` sets the count).
- marker ``gpu``: needs a CUDA GPU; skipped where there is none.
"""
from __future__ import annotations

import pytest


def pytest_addoption(parser):
    parser.addoption("--backend", action="store", default=None,
                     help="comma-separated backends to test besides numpy (default: all available)")
    parser.addoption("--fuzz-long", action="store_true", default=False,
                     help="run the differential fuzzer with its long budget")


def pytest_configure(config):
    config.addinivalue_line("markers", "gpu: needs a CUDA GPU (skipped where there is none)")
    config.addinivalue_line("markers", "fuzz_long: a long fuzz campaign (only with --fuzz-long)")


def pytest_collection_modifyitems(config, items):
    from vmlang.api import cuda_available
    has_gpu = cuda_available()
    skip_gpu = pytest.mark.skip(reason="needs a CUDA GPU")
    skip_long = pytest.mark.skip(reason="long fuzz campaign: run with --fuzz-long")
    for item in items:
        if "gpu" in item.keywords and not has_gpu:
            item.add_marker(skip_gpu)
        if "fuzz_long" in item.keywords and not config.getoption("--fuzz-long"):
            item.add_marker(skip_long)
