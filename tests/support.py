"""Running one test kernel on every backend, and the one tolerance rule for comparing float results.

**The comparison rule.** A compiled backend must agree with the NumPy VM (the oracle):

* bit for bit on every output of a kernel that is *exact*: integer, bit, packing, view and cast kernels,
  and float kernels made of operations that IEEE arithmetic rounds exactly once (+ - * / sqrt, min/max,
  where, loads/stores, casts). The one freedom: any NaN equals any NaN (the language does not define
  NaN payloads or signs; GPUs produce their own canonical NaN).
* within :func:`float_tolerance` on the float outputs of a kernel with *approximate* operations
  (:func:`approximate_ops`): exp, exp2, log, rsqrt, float fmod, float ``sum`` and float ``dot``. Why:
  the VM computes each of these exactly and rounds once; a compiled backend adds in a tree order or
  with tensor cores (any order of ``n`` additions is within ``(n - 1) * u * sum|x|`` of the exact sum),
  and its math functions are within a few float32 ulps, after which the result is rounded once more.

    |got - want| <= (terms + 2) * u * scale + 4 * ulp32 * scale + (terms + 1) * tiny

  ``u`` is the unit roundoff of the output dtype (f16 2**-11, bf16 2**-8, f32 2**-24), ``scale`` the sum of
  the magnitudes of the terms that make up the value (a test that knows it passes it; the default is
  ``|want|``, right for elementwise functions), ``terms`` the number of terms added (default: the longest
  reduction or dot in the kernel), ``ulp32 = 2**-23`` (a float32 math function is within 4 float32 ulps:
  libdevice's expf was measured 3 ulps off on an H100, e.g. exp(-7.02)), ``tiny`` the smallest normal of
  the dtype (flushing subnormals is tolerated). Infinities must match exactly, NaN must match NaN.

Integer outputs of approximate kernels are still compared bit for bit.
"""
from __future__ import annotations

import copy

import numpy as np

import vmlang as vm
from vmlang.ir import dtypes as D
from vmlang.ir import nodes as N
from vmlang.runtime.args import bind_args, written_params

UNIT = {D.float16: 2.0 ** -11, D.bfloat16: 2.0 ** -8, D.float32: 2.0 ** -24}
NUMPY = "numpy"



def compiled_backends(option: str | None) -> list[str]:
    """The compiled backends to test: those named by ``--backend`` (all of them, even if they cannot load:
    the tests then say why), or every compiled backend that loads here (triton under TRITON_INTERPRET=1
    where there is no GPU)."""
    import os
    from vmlang.ir.errors import BackendError
    if option:
        names = [n.strip() for n in option.split(",") if n.strip() and n.strip() != "numpy"]
    else:
        names = [n for n in vm.api.BACKENDS if n != "numpy"]
    out = []
    for n in names:
        if n == "triton" and not vm.api.cuda_available():
            os.environ.setdefault("TRITON_INTERPRET", "1")
        if n == "ptx" and not option and not vm.api.cuda_available():
            continue       # runs only on a GPU; tests/backends/ptx compiles and assembles everything on CPU
        try:
            vm.backend(n)
        except BackendError:
            if option:
                out.append(n)      # asked for explicitly: the test reports why it cannot run
            continue
        out.append(n)
    return out

# ------------------------------------------------------------------------------------------ the rule
def float_tolerance(dt, scale, terms: int = 1) -> np.ndarray:
    """The allowed ``|got - want|`` for an approximate float result of dtype ``dt`` (see module doc)."""
    u = UNIT.get(dt, 2.0 ** -(getattr(dt, "man", 0) + 1))
    tiny = dt.smallest_normal if hasattr(dt, "smallest_normal") else 0.0
    scale = np.asarray(scale, np.float64)
    return ((terms + 2) * u + 4 * 2.0 ** -23) * scale + (terms + 1) * tiny


_APPROX_UNARY = (N.Exp, N.Exp2, N.Log, N.Rsqrt)


def approximate_ops(kernel: N.Kernel) -> list[N.Instr]:
    """The instructions of ``kernel`` a compiled backend may compute approximately."""
    out = []
    for i in N.walk(kernel.body):
        if isinstance(i, _APPROX_UNARY) or isinstance(i, N.Dot) and i.a.dtype.is_float:
            out.append(i)
        elif isinstance(i, (N.Sum, N.Mod)) and i.out.dtype.is_float:
            out.append(i)
    return out


def default_terms(kernel: N.Kernel) -> int:
    n = 1
    for i in approximate_ops(kernel):
        if isinstance(i, N.Sum):
            n = max(n, i.x.shape[i.axis])
        elif isinstance(i, N.Dot):
            n = max(n, i.a.shape[1] + 1)
    return n


# ------------------------------------------------------------------------------------------ comparing
def _values(dt, codes):
    return dt.decode(np.asarray(codes).astype(np.int64)) if dt.nbits <= 32 else None


def assert_same_codes(dt, got, want, what: str = "output"):
    """Bit-identical element codes, except that any NaN equals any NaN."""
    got = np.asarray(got, np.uint64)
    want = np.asarray(want, np.uint64)
    assert got.shape == want.shape, f"{what}: shape {got.shape} != {want.shape}"
    bad = got != want
    if dt.is_float and bad.any():
        gv, wv = _values(dt, got), _values(dt, want)
        bad &= ~(np.isnan(gv) & np.isnan(wv))
    if bad.any():
        i = tuple(np.argwhere(bad)[0])
        raise AssertionError(f"{what} ({dt}): {int(bad.sum())} of {bad.size} elements differ; first at {list(i)}: "
                             f"got {_show(dt, got[i])}, want {_show(dt, want[i])}")


def assert_close(dt, got, want, scale=None, terms: int = 1, what: str = "output"):
    """Element codes ``got`` within :func:`float_tolerance` of ``want`` (codes of float dtype ``dt``)."""
    gv, wv = _values(dt, got), _values(dt, want)
    assert gv.shape == wv.shape, f"{what}: shape {gv.shape} != {wv.shape}"
    scale = np.abs(wv) if scale is None else np.broadcast_to(np.asarray(scale, np.float64), wv.shape)
    with np.errstate(invalid="ignore"):
        tol = float_tolerance(dt, np.where(np.isfinite(scale), scale, 0.0), terms)
        err = np.abs(gv - wv)
        ok = (err <= tol) | (gv == wv) | (np.isnan(gv) & np.isnan(wv))
    if not ok.all():
        i = tuple(np.argwhere(~ok)[0])
        raise AssertionError(f"{what} ({dt}): {int((~ok).sum())} of {ok.size} elements outside the tolerance; "
                             f"first at {list(i)}: got {gv[i]!r}, want {wv[i]!r} (tolerance {float(tol[i]):.3g}, "
                             f"terms {terms})")


def _show(dt, code) -> str:
    v = float(dt.decode(np.asarray([int(code)]))[0])
    return f"{v!r} (code 0x{int(code):x})"


# ------------------------------------------------------------------------------------------ running
def _record(kernel: N.Kernel):
    """With ``VMLANG_RECORD_KERNELS=DIR``, keep every test kernel as .vm text in DIR (to compile them all
    for a GPU later: ``TRITON_INTERPRET=0 python -m vmlang.backends.triton.check DIR/*.vm``)."""
    import hashlib
    import os
    d = os.environ.get("VMLANG_RECORD_KERNELS")
    if not d:
        return
    from vmlang.ir.printer import print_kernel
    text = print_kernel(kernel)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, hashlib.sha256(text.encode()).hexdigest()[:16] + ".vm"), "w") as f:
        f.write(text)


def backend_module(name: str):
    return vm.backend(name)


def clone_arg(a):
    if isinstance(a, np.ndarray):
        return a.copy()
    if isinstance(a, vm.Tensor):
        data = a.data.clone() if hasattr(a.data, "clone") else np.array(a.data, copy=True)
        return vm.Tensor(data, a.dtype, a.shape)
    if type(a).__module__.startswith("torch"):
        return a.clone()
    return copy.copy(a)


def copy_into(dst, src):
    if isinstance(dst, np.ndarray):
        np.copyto(dst, src)
    elif isinstance(dst, vm.Tensor):
        dst.data[...] = src.data
    elif type(dst).__module__.startswith("torch"):
        dst.copy_(src)


def run_kernel(backend: str, kernel: N.Kernel, *args, scale=None, terms=None, exact=None, keep="auto",
               options=None):
    """Run ``kernel`` on ``backend`` with ``args`` (outputs written into them), compiled there with
    ``options`` (a dict or CompileOptions; the VM takes none).

    On a compiled backend the kernel also runs on the NumPy VM (on copies of the arguments) and every
    written output must agree with the VM's by the comparison rule of this module; ``exact`` forces the
    mode (default: approximate when the kernel has :func:`approximate_ops`). ``scale`` is an array (or
    a dict by output name) of the magnitude sums the tolerance is relative to. ``keep`` says whose outputs
    stay in ``args`` afterwards: ``"backend"``, ``"vm"``, or ``"auto"`` (the default: the backend's for
    exact kernels -- they are the VM's bits anyway --, the VM's for approximate ones, whose tests go on
    to check exact properties of the VM that the rule only bounds on other backends).
    """
    _record(kernel)
    if backend == NUMPY:
        vm.backend(NUMPY).compile(kernel)(*args)
        return
    ref = [clone_arg(a) for a in args]
    vm.backend(NUMPY).compile(kernel)(*ref)
    vm.backend(backend).compile(kernel, options)(*args)
    if exact is None:
        exact = not approximate_ops(kernel)
    if terms is None:
        terms = default_terms(kernel)
    got_b = bind_args(kernel, tuple(args))
    want_b = bind_args(kernel, tuple(ref))
    for p in kernel.params:
        if p.id not in written_params(kernel):
            continue
        g, w = got_b.tensors[p.id].codes(), want_b.tensors[p.id].codes()
        what = f"{backend} vs numpy VM, output {p.name} of {kernel.name}"
        if exact or not p.dtype.is_float:
            assert_same_codes(p.dtype, g, w, what)
        else:
            sc = scale.get(p.name) if isinstance(scale, dict) else scale
            assert_close(p.dtype, g, w, sc, terms, what)
    if keep == "vm" or (keep == "auto" and not exact):
        for a, r in zip(args, ref):
            copy_into(a, r)
