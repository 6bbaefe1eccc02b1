"""Every fuzz-generated kernel compiles through the PTX backend to PTX that ``ptxas`` accepts for sm_90 and
sm_80 -- on a CPU machine (issue 8, CI). The same random-kernel strategy as tests/fuzz (a fixed-seed,
derandomized campaign), with every block barrier where all threads reach it (test_ptx_barriers.py); running
the kernels against the VM needs a GPU: tests/fuzz with ``--backend ptx``."""
from __future__ import annotations

import importlib

import pytest
from hypothesis import HealthCheck, given, settings

from fuzz.runner import GeneratorBug, compile_case
from fuzz.strategies import cases
from ptx_support import barriers_under_thread_branches

toolchain = importlib.import_module("vmlang.backends.ptx.toolchain")
launch = importlib.import_module("vmlang.backends.ptx.launch")

pytestmark = [
    pytest.mark.skipif(not toolchain.nvptx_available(), reason="this llvmlite has no NVPTX target"),
    pytest.mark.skipif(not toolchain.ptxas_available(), reason="ptxas (CUDA toolkit) is not installed"),
]

#: kernels per architecture in the default run (about 12 s each on two cores)
EXAMPLES = 100


@pytest.mark.parametrize("arch", ["sm_90", "sm_80"])
def test_fuzz_kernels_assemble(arch):
    assembled = []

    @settings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much])
    @given(case=cases())
    def one(case):
        try:
            kernel = compile_case(case)
        except GeneratorBug:
            return                      # an invalid generated program: tests/fuzz reports those
        _, module, _ = launch.lower_program(kernel, None, arch)
        ptx = toolchain.to_ptx(str(module), arch)
        assert f".target {arch}" in ptx
        assert barriers_under_thread_branches(ptx) == [], kernel.name   # every thread reaches each barrier
        toolchain.ptxas_check(ptx, arch)
        assembled.append(kernel.name)

    one()
    assert len(assembled) >= EXAMPLES // 2, f"only {len(assembled)} of {EXAMPLES} generated kernels were valid"
