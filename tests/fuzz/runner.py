"""Run a fuzz :class:`~strategies.Case` on a backend and compare it with the NumPy VM (the oracle).

Two kinds of checks:

* ``ROUNDTRIP`` -- an independent second path through the front end: the kernel's IR is printed with
  ``ir.printer.print_kernel``, the text is parsed and lowered again (printing that must give the same text:
  the printer's fixed point), and both kernels run on the VM, the second with every argument passed in
  another style (vm.Tensor / NumPy array / packed bytes). Results must be identical bit for bit, and a
  run-time error of one must be the same error (message, locations aside) in the other.
* a compiled backend (``triton``, ``ptx``) against the VM, by :func:`compare` in "spec" mode: integer,
  bit, packing and cast results bit for bit; float results equal as values (any NaN equals any NaN, as
  the language does not define NaN payloads; the sign of a zero only where it is defined, i.e. not after
  float min/max); approximate results (exp/exp2/log/rsqrt, float %, float sum, float dot) within the
  tolerance of :func:`float_tolerance` (tests/support.py's rule). Where the VM reports a run-time error, a compiled backend must
  fail too with a ``VMError`` -- or, since GPU code cannot raise, the case is *filtered* (counted as a
  Hypothesis event) rather than failed.

:func:`check` does it all and raises ``AssertionError`` with the program, the sizes, the inputs and the
first mismatching element; the tests in this folder call it under Hypothesis, which shrinks the case first;
then :func:`minimize` deletes the statements the failure does not need.
"""
from __future__ import annotations

import hashlib
import math
import os
import re
import tempfile
from dataclasses import dataclass
from typing import Optional

import numpy as np

import vmlang as vm
from vmlang.ir import dtypes as D
from vmlang.ir.errors import BackendError, VMError, VMRuntimeError
from vmlang.ir.packing import pack, unpack
from vmlang.ir.printer import print_kernel
from vmlang.ir.types import BOOL

from .strategies import Case, Param

import sys as _sys
from pathlib import Path as _Path

_sys.path.insert(0, str(_Path(__file__).resolve().parents[1]))   # tests/ (also when replay.py runs alone)
from support import float_tolerance  # noqa: E402  (tests/support.py: the one tolerance rule)

ROUNDTRIP = "vm-roundtrip"
ORACLE = vm.backend("numpy")

_NATIVE = {D.float16: np.float16, D.float32: np.float32, D.int8: np.int8, D.int16: np.int16, D.int32: np.int32,
           D.uint8: np.uint8, D.uint16: np.uint16, D.uint32: np.uint32, BOOL: np.bool_}


class GeneratorBug(AssertionError):
    """The generator wrote a kernel the language rejects."""


# ============================================================================================ running
def make_arg(p: Param):
    """A fresh argument object for parameter ``p`` in its drawn passing style."""
    if p.role == "scalar":
        return p.value
    codes = np.asarray(p.codes)
    if p.style == "native":
        if p.dt == BOOL:
            return codes.astype(bool)
        return codes.astype(p.dt.code_dtype).view(_NATIVE[p.dt]).copy()
    if p.style == "packed":
        if p.dt.nbits == 8:
            return codes.astype(np.uint8).copy()
        return pack(codes, p.dt.nbits)
    return vm.Tensor.from_codes(codes, p.dt)


def _restyled(p: Param) -> Param:
    from dataclasses import replace
    if len(p.styles) < 2:
        return p
    return replace(p, style=p.styles[(p.styles.index(p.style) + 1) % len(p.styles)])


def read_codes(p: Param, arg) -> np.ndarray:
    """The element codes (uint64, logical shape) held by argument object ``arg`` of parameter ``p``."""
    if isinstance(arg, vm.Tensor):
        return np.asarray(arg.codes()).astype(np.uint64)
    arr = np.asarray(arg)
    if p.style == "native":
        if p.dt == BOOL:
            return arr.astype(np.uint64)
        return arr.view(p.dt.code_dtype).astype(np.uint64)
    if p.dt.nbits == 8:
        return arr.astype(np.uint64)
    return unpack(arr, p.dt.nbits, p.shape[-1]).astype(np.uint64)


@dataclass
class Outcome:
    """What one run gave: the codes of every output, or the exception it raised (and at which stage)."""
    outputs: Optional[dict] = None
    error: Optional[BaseException] = None
    stage: str = ""

    @property
    def ok(self) -> bool:
        return self.error is None

    def describe(self) -> str:
        if self.ok:
            return "ran"
        e = self.error
        text = e.render() if isinstance(e, VMError) else f"{type(e).__name__}: {e}"
        return f"raised at {self.stage}: {text}"


def run(case: Case, kernel, backend, restyle: bool = False) -> Outcome:
    """Compile ``kernel`` (IR) with ``backend`` and run it on fresh copies of the case's arguments
    (``restyle``: pass every argument in another of its styles, e.g. vm.Tensor instead of packed bytes)."""
    if restyle:
        case = Case(case.source, [_restyled(p) for p in case.params], case.sizes, case.features)
    args = [make_arg(p) for p in case.params]
    try:
        compiled = backend.compile(kernel)
    except Exception as e:  # noqa: BLE001 - reported by the caller
        return Outcome(error=e, stage="compile")
    try:
        compiled(*args)
    except Exception as e:  # noqa: BLE001
        return Outcome(error=e, stage="run")
    return Outcome({p.name: read_codes(p, a) for p, a in zip(case.params, args) if p.role in ("out", "scale")})


def compile_case(case: Case):
    try:
        return vm.compile_source(case.source, "fuzz.vm")
    except VMError as e:
        raise GeneratorBug("generator bug: the generated kernel does not compile\n" + e.render()
                           + "\n\n" + numbered(case.source)) from None


def reprint(kernel):
    """Print the IR, parse and lower the text again, and check that printing is a fixed point."""
    text = print_kernel(kernel)
    try:
        k2 = vm.compile_source(text, "printed.vm")
    except VMError as e:
        raise AssertionError("the printed IR does not compile again\n" + e.render() + "\n\nprinted IR:\n"
                             + numbered(text)) from None
    text2 = print_kernel(k2)
    if text2 != text:
        raise AssertionError("printing the re-parsed IR gives different text (no fixed point)\n"
                             + _first_diff(text, text2))
    return text, k2


def _first_diff(a: str, b: str) -> str:
    la, lb = a.splitlines(), b.splitlines()
    for i, (x, y) in enumerate(zip(la, lb), 1):
        if x != y:
            return f"line {i}:\n  first:  {x}\n  second: {y}"
    return f"lengths differ: {len(la)} and {len(lb)} lines"


# ============================================================================================ comparing
@dataclass
class Mismatch:
    output: str
    index: tuple
    want: str
    got: str
    count: int
    total: int
    note: str = ""

    def __str__(self) -> str:
        return (f"output {self.output}: {self.count} of {self.total} elements differ; first at "
                f"{list(self.index)}: want {self.want}, got {self.got}{self.note}")


def _show(dt, code) -> str:
    v = float(dt.decode(np.asarray([int(code)]))[0])
    s = "-0.0" if v == 0 and math.copysign(1, v) < 0 else (str(int(v)) if v.is_integer() and abs(v) < 2 ** 53
                                                           else repr(v))
    return f"{s} (code 0x{int(code):x})"


def compare(case: Case, want: Outcome, got: Outcome, mode: str) -> Optional[Mismatch]:
    """The first output that differs, or None. ``mode`` is "bits" (identical codes everywhere) or "spec"
    (what a conforming compiled backend must reproduce; see the module docstring)."""
    for p in case.outputs:
        w, g = want.outputs[p.name], got.outputs[p.name]
        if w.shape != g.shape:
            return Mismatch(p.name, (), f"shape {w.shape}", f"shape {g.shape}", 1, 1)
        if mode == "bits" or not p.dt.is_float:
            bad = w != g
            note = ""
        else:
            bad, note = _float_mismatch(case, p, want, w, g)
        if bad.any():
            idx = tuple(int(i) for i in np.argwhere(bad)[0])
            return Mismatch(p.name, idx, _show(p.dt, w[idx]), _show(p.dt, g[idx]), int(bad.sum()), bad.size,
                            note)
    return None


def _float_mismatch(case: Case, p: Param, want: Outcome, w: np.ndarray, g: np.ndarray):
    dt = p.dt
    wv = dt.decode(w.astype(np.int64))
    gv = dt.decode(g.astype(np.int64))
    both_nan = np.isnan(wv) & np.isnan(gv)
    var = p.var
    approx = var.approx if var is not None else None
    if approx is None:
        same = (wv == gv) & ((np.signbit(wv) == np.signbit(gv)) | (wv != 0) | var.zero_loose)
        return ~(same | both_nan), ""
    if approx.kind in ("sum", "dot", "fmod"):
        sp = next(q for q in case.outputs if q.var is not None and q.var.name == approx.scale)
        scale = np.abs(sp.dt.decode(want.outputs[sp.name].astype(np.int64)))
    else:
        scale = np.abs(wv)
    with np.errstate(all="ignore"):
        tol = float_tolerance(dt, scale, approx.terms)
        rel = float(float_tolerance(dt, 1.0, approx.terms))
        fw, fg = np.isfinite(wv), np.isfinite(gv)
        ok = both_nan | (wv == gv)
        ok |= fw & fg & (np.abs(gv - wv) <= tol)
        # at the overflow threshold one side may round to Inf and the other to a finite value near max
        ok |= np.isinf(wv) & fg & (np.abs(gv) >= dt.max * (1 - rel))
        ok |= np.isinf(gv) & fw & (np.abs(wv) >= dt.max * (1 - rel))
        if approx.kind in ("sum", "dot"):
            # partial sums beyond the range of dt: any order may overflow differently; not checked
            ok |= ~np.isfinite(scale) | (scale > dt.max)
    return ~ok, f" (approximate {approx.kind} of {approx.terms} term(s); tolerance rule float_tolerance)"


def _strip_locations(msg: str) -> str:
    return re.sub(r"\S+\.vm:\d+:\d+", "<loc>", msg)


# ============================================================================================ the check
def numbered(source: str) -> str:
    return "\n".join(f"{i:4d} | {line}" for i, line in enumerate(source.splitlines(), 1))


def check(case: Case, backend_name: str, events=None, reproduce: str = "", backend=None) -> str:
    """Run ``case`` on the oracle and on ``backend_name`` (or the reprint path) and compare.

    Returns a short outcome tag ("ok", "vm-error", "filtered"); raises AssertionError on a failure, after
    shrinking the program further by deleting statements (:func:`minimize`) when Hypothesis is done.
    ``events`` (a callable taking a string, e.g. ``hypothesis.event``) records statistics; ``backend`` is
    the backend module to use instead of ``vm.backend(backend_name)``.
    """
    tag, problem = diff(case, backend_name, events, backend)
    if problem is not None:
        if _is_final():
            case, problem = minimize(case, backend_name, backend, problem)
        fail(case, backend_name, problem, reproduce)
    return tag


def diff(case: Case, backend_name: str, events=None, backend=None):
    """The comparison of :func:`check`: ``(tag, None)`` or ``("fail", description of the failure)``."""
    ev = events or (lambda s: None)
    kernel = compile_case(case)
    want = run(case, kernel, ORACLE)
    if not want.ok and not isinstance(want.error, VMRuntimeError):
        return "fail", "the NumPy VM crashed (anything but a VMRuntimeError is a VM bug): " + want.describe()
    if backend_name == ROUNDTRIP:
        try:
            _, k2 = reprint(kernel)
        except AssertionError as e:
            return "fail", str(e)
        got = run(case, k2, ORACLE, restyle=True)
        if not want.ok:
            ev("vm error: " + _error_kind(want.error))
            if got.ok or _strip_locations(str(got.error.message if isinstance(got.error, VMError) else got.error)) \
                    != _strip_locations(want.error.message):
                return "fail", "the original kernel " + want.describe() + "\nbut the reprinted one " + got.describe()
            return "vm-error", None
        if not got.ok:
            return "fail", "the original kernel ran but the reprinted one " + got.describe()
        mm = compare(case, want, got, "bits")
    else:
        backend = backend or vm.backend(backend_name)
        got = run(case, kernel, backend)
        if not want.ok:
            if got.ok:
                ev(f"filtered on {backend_name}: the VM reports an error ({_error_kind(want.error)}); compiled "
                   f"code need not detect it")
                return "filtered", None
            if not isinstance(got.error, VMError):
                return "fail", f"the VM reports an error and {backend_name} crashed: " + got.describe()
            ev("vm error, backend error too")
            return "vm-error", None
        if not got.ok:
            if isinstance(got.error, BackendError) and got.stage == "compile":
                ev(f"filtered on {backend_name}: unsupported: {_short(got.error)}")
                return "filtered", None
            return "fail", f"the VM ran the kernel but {backend_name} " + got.describe()
        mm = compare(case, want, got, "spec")
    if mm is not None:
        return "fail", str(mm)
    ev("ran cleanly")
    return "ok", None


def _is_final() -> bool:
    try:
        from hypothesis.control import current_build_context
        return bool(current_build_context().is_final)
    except Exception:  # noqa: BLE001 - not under Hypothesis
        return True


def _signature(problem: str) -> str:
    """What kind of failure: for a mismatch the output, first element and both values (not the count); for
    anything else the first line with numbers blanked (generated names carry numbers)."""
    first = problem.split("\n")[0]
    if " elements differ; first at " in first:     # the same output, element and values
        return re.sub(r"\d+ of \d+ elements", "# of # elements", first)
    return re.sub(r"0x[0-9a-f]+|\d+", "#", first)[:120]


def minimize(case: Case, backend_name: str, backend, problem: str, budget: int = 200):
    """Delete statements (and whole loops / branches) of the program while the same kind of failure remains.

    Hypothesis shrinks the *choices* that generated the program; deleting lines of the text afterwards
    removes what the choices could not (dead statements between the ones that matter). The parameters and
    inputs stay as they are. Returns the smaller case and its failure description.
    """
    sig = _signature(problem)
    lines = case.source.split("\n")
    body_start = next(i for i, l in enumerate(lines) if ") grid(" in l) + 1
    tries = 0
    changed = True
    while changed and tries < budget:
        changed = False
        end = max(i for i, l in enumerate(lines) if l.strip() == "}")
        i = end - 1
        while i >= body_start and tries < budget:
            stop = _block_end(lines, i)
            if stop is not None and lines[i].strip() not in ("}", "} else {"):
                cand_lines = lines[:i] + lines[stop + 1:]
                cand = Case("\n".join(cand_lines), case.params, case.sizes, case.features)
                tries += 1
                try:
                    vm.compile_source(cand.source, "fuzz.vm")
                    tag, p2 = diff(cand, backend_name, None, backend)
                except Exception:  # noqa: BLE001 - an invalid candidate
                    p2 = None
                if p2 is not None and _signature(p2) == sig:
                    lines, case, problem, changed = cand_lines, cand, p2, True
            i -= 1
    return case, problem


def _block_end(lines, i):
    """The last line of the statement starting at line ``i`` (a whole block for 'for'/'if'), or None."""
    text = lines[i].strip()
    if not text.endswith("{"):
        return i if text.endswith(";") else None
    depth = 0
    for j in range(i, len(lines)):
        t = lines[j].strip()
        depth += t.count("{") - t.count("}")
        if depth == 0:
            return j
        if depth == 1 and t == "} else {" and j > i:
            continue
    return None


def _short(e) -> str:
    return str(getattr(e, "message", e)).split("\n")[0][:80]


def _error_kind(e) -> str:
    msg = getattr(e, "message", str(e))
    for key in ("out-of-bounds", "uninitialised", "cast", "division by zero", "negative shift", "lookup",
                "assumption", "loop step"):
        if key in msg:
            return key
    return msg[:40]


def fail(case: Case, backend_name: str, what: str, reproduce: str = ""):
    vs = "the reprinted IR on the VM" if backend_name == ROUNDTRIP else backend_name
    saved = save_case(case) if _is_final() else None
    msg = [f"differential fuzz: {vs} disagrees with the NumPy VM", what, "", "program (fuzz.vm):",
           numbered(case.source), "", case.summary()]
    if saved:
        msg.append(f"\nsaved as {saved}.vm / .npz; replay: python tests/fuzz/replay.py {saved}.npz "
                   f"--backend {backend_name}")
    if reproduce:
        msg.append(reproduce)
    raise AssertionError("\n".join(msg))


def save_case(case: Case) -> Optional[str]:
    """Write the case as ``<dir>/case-<hash>.vm`` and ``.npz`` (dir: ``VMLANG_FUZZ_SAVE`` or the temp dir)."""
    d = os.environ.get("VMLANG_FUZZ_SAVE") or os.path.join(tempfile.gettempdir(), "vmlang-fuzz")
    try:
        os.makedirs(d, exist_ok=True)
        h = hashlib.sha1(case.source.encode()).hexdigest()[:10]
        base = os.path.join(d, f"case-{h}")
        with open(base + ".vm", "w", encoding="utf-8") as f:
            f.write(case.source)
        np.savez(base + ".npz", **case_arrays(case))
        return base
    except OSError:
        return None


def case_arrays(case: Case) -> dict:
    """Everything needed to rebuild the case (see replay.py), as arrays."""
    out = {"source": np.asarray(case.source), "sizes": np.asarray(repr(case.sizes))}
    for i, p in enumerate(case.params):
        var = None
        if p.var is not None:
            a = p.var.approx
            var = {"name": p.var.name, "nan_loose": p.var.nan_loose, "zero_loose": p.var.zero_loose,
                   "approx": None if a is None else (a.kind, a.terms, a.scale)}
        meta = repr({"name": p.name, "dt": p.dt.name, "role": p.role, "dims": p.dims, "shape": p.shape,
                     "value": p.value, "style": p.style, "var": var})
        out[f"p{i}_meta"] = np.asarray(meta)
        if p.codes is not None:
            out[f"p{i}_codes"] = np.asarray(p.codes)
    return out

