"""Helpers shared by the front-end tests: a .vm program that uses most of the syntax (parser and syntax-error
tests), and importing a Python file with ``vm.jit`` replaced by a recorder, so the @vm.jit front end is tested
on plain functions, independently of the runtime's ``vm.jit``."""
from __future__ import annotations

import contextlib
import importlib.util
import itertools
import pathlib

import vmlang

_COUNTER = itertools.count()

#: a .vm program that uses most of the syntax
EXAMPLE = """\
// W4A16 GEMV: comments start with // and run to end of line
kernel gemv_w4a16<BN = 128, G = 128>(
    x: f16[M, K] global, w: int4[K, N] global, s: f16[K / G, N], y: f16[M, N] global,
    n: int32,                                   // a scalar parameter (no dims)
) grid(cdiv(N, BN), M) warps(4) {
    acc = zeros(f32, [BN]);
    t: shared = load(w[0 : +G, :]);             // placement annotation
    u: f32[BN] register layout("(32,4):(1,32)") = acc;   // full annotation: dtype+dims, space, layout text
    for k0 in range(0, K, G) {
        xt = load(x[block.y, k0 : +G], fill=0.0);
        acc += sum(cast(wt, f32) * xt[:, None], axis=0) * st;
        if k0 > 0 and not (k0 == 8) { acc = acc * 2.0; } else if k0 < 0 { acc = -acc; } else { }
    }
    assume(K % 128 == 0);
    store(y[block.y, block.x * BN : +BN], cast(acc, f16, saturate=true));
}
"""


def recording_jit(fn=None, *, grid=None, warps=None, **_):
    """Stands in for vm.jit: leaves the function alone and records what the decorator was given."""
    def deco(f):
        f.__vm_jit__ = {"grid": grid, "warps": warps}
        return f
    return deco if fn is None else deco(fn)


@contextlib.contextmanager
def jit_recorder():
    missing = object()
    old = vmlang.__dict__.get("jit", missing)
    vmlang.jit = recording_jit
    try:
        yield
    finally:
        if old is missing:
            del vmlang.jit
        else:
            vmlang.jit = old


def import_file(path: pathlib.Path):
    """Import ``path`` as a fresh module (a new name each time) with ``vm.jit`` recording."""
    spec = importlib.util.spec_from_file_location(f"pyfront_case_{next(_COUNTER)}", path)
    mod = importlib.util.module_from_spec(spec)
    with jit_recorder():
        spec.loader.exec_module(mod)
    return mod


def write_file(folder: pathlib.Path, text: str, stem: str = "case") -> pathlib.Path:
    """Write ``text`` to a new, uniquely named ``.py`` file in ``folder``."""
    path = folder / f"{stem}_{next(_COUNTER)}.py"
    path.write_text(text, encoding="utf-8")
    return path
