"""Test-wide options, markers and the ``backend`` fixture.

- ``--backend NAME[,NAME]``: the compiled backends the backend-parametrised tests run on, besides the numpy
  reference VM (default: every backend whose toolchain is importable here; triton runs under
  ``TRITON_INTERPRET=1`` when there is no GPU).
- ``--fuzz-long``: run the differential fuzzer with its long budget (``VMLANG_FUZZ_EXAMPLES`` sets the count).
- marker ``gpu``: needs a CUDA GPU; skipped where there is none.
- fixture ``backend``: a test (or an autouse fixture) that asks for it runs once on ``"numpy"`` and once per
  compiled backend; ``tests/support.py`` runs a kernel there and compares it with the VM.
- marker ``numpy_only(reason)``: such a test runs on the VM only (for checks compiled code cannot make, such
  as run-time errors raised from inside a kernel).
"""
from __future__ import annotations

import os

import pytest


def pytest_addoption(parser):
    parser.addoption("--backend", action="store", default=None,
                     help="comma-separated backends to test besides numpy (default: all available)")
    parser.addoption("--fuzz-long", action="store_true", default=False,
                     help="run the differential fuzzer with its long budget")


def pytest_configure(config):
    # Triton's interpreter must be chosen before anything imports triton (see backends/triton/env.py)
    import importlib.util
    if importlib.util.find_spec("triton") is not None and "TRITON_INTERPRET" not in os.environ:
        from vmlang.api import cuda_available
        if not cuda_available():
            os.environ["TRITON_INTERPRET"] = "1"
    config.addinivalue_line("markers", "gpu: needs a CUDA GPU (skipped where there is none)")
    config.addinivalue_line("markers", "fuzz_long: a long fuzz campaign (only with --fuzz-long)")
    config.addinivalue_line("markers", "numpy_only(reason): runs on the NumPy VM only (see tests/conftest.py)")


def compiled_backends(config) -> list[str]:
    """The compiled backends named by ``--backend`` (all of them, even if they cannot load: the tests then
    say why), or every compiled backend that loads here."""
    cached = getattr(config, "_vm_compiled_backends", None)
    if cached is None:
        from support import compiled_backends as names
        cached = config._vm_compiled_backends = names(config.getoption("--backend"))
    return cached


def pytest_generate_tests(metafunc):
    if "backend" not in metafunc.fixturenames:
        return
    names = ["numpy"]
    if not metafunc.definition.get_closest_marker("numpy_only"):
        names += compiled_backends(metafunc.config)
    metafunc.parametrize("backend", names, scope="function")


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
