"""The launchable kernel object that ``@vm.jit`` and ``vm.load`` return.

Launch form (one, for both front ends)::

    kernel(x, w, s, y)                  # the grid is the kernel's declared grid(...)
    kernel(x, w, s, y, BN=64)           # compile-time parameters by keyword
    kernel(x=x, w=w, s=s, y=y)          # arguments by parameter name
    kernel(x, w, s, y, backend="numpy") # pick a backend (default: CompileOptions.from_env())
    kernel(x, w, s, y, options={"stage_loads": "w"})   # CompileOptions fields for this call

**Specialisation.** A call compiles the kernel once per (backend, compile-time values — dtype parameters
included —, which sizes are divisible by 16, 128 or 1024, device); other sizes of the same class reuse it. Sizes
that divide by 16 become ``assume(n % 16 == 0)`` facts (``% 128``, ``% 1024`` for those dividing by more) at the top of
the kernel, so later passes may drop masks and widen accesses. ``kernel.explain_cache()`` lists every compilation and why it happened.

**Caches.** Compiled kernels are kept in memory per kernel object, and on disk (:mod:`.cache`) under a key
made of the kernel's source text, its specialised IR, the options, the vmlang version, the backend's
toolchain versions and the device.
"""
from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass, field

from vmlang.ir import dtypes as D
from vmlang.ir import nodes as N
from vmlang.ir.errors import ArgumentError, VMError
from vmlang.ir.types import GlobalType
from vmlang.lang import ast as A

from . import device as DEV
from .args import Binding, bind_args, infer_dtype
from .cache import DiskCache, cache_key
from .options import CompileOptions
from .progress import status

RESERVED = ("backend", "options")
#: the CompileOptions fields a call's ``options`` may set (the backend is the call's own argument)
_OVERRIDABLE = frozenset(f.name for f in dataclasses.fields(CompileOptions)) - {"backend"}


@dataclass(frozen=True)
class KernelSource:
    """One kernel's AST plus where it came from (a .vm file or a Python function)."""
    kernel: A.Kernel
    source: str          # the text errors are rendered against (line numbers are its lines)
    filename: str
    text: str            # the fingerprint: this kernel's own source text
    origin: str = "vm"


@dataclass
class CacheEvent:
    """One compilation (or disk load) of a kernel: what it was specialised for and why it happened."""
    spec: dict
    reason: str
    outcome: str         # "compiled" | "loaded from disk"
    seconds: float
    files: tuple[str, ...] = field(default=())
    path: str | None = None


def _const_text(v) -> object:
    return v.name if isinstance(v, D.DType) else v


class Kernel:
    """A kernel you can call; see the module docstring."""

    def __init__(self, src, options: CompileOptions | None = None):
        self.src = src
        ak: A.Kernel = src.kernel
        self.name = ak.name
        self.const_names = [c.name for c in ak.consts]
        self.param_names = [p.name for p in ak.params]
        for r in RESERVED:
            if r in self.const_names or r in self.param_names:
                raise VMError(f"kernel {self.name}: a parameter named {r!r} is reserved by the launcher "
                              f"(kernel(..., {r}=...)); rename it", ak.loc, src.source)
        # dtype parameters: const name -> indices of the params whose dtype it is
        self.dtype_params: dict[str, list[int]] = {}
        for i, p in enumerate(ak.params):
            if p.type.dtype in self.const_names:
                self.dtype_params.setdefault(p.type.dtype, []).append(i)
        self.options = options
        self._ir: dict[tuple, N.Kernel] = {}
        self._compiled: dict[str, object] = {}
        self.events: list[CacheEvent] = []
        self.memory_hits = 0

    def __repr__(self):
        return f"<vm kernel {self.name} from {self.src.filename}>"

    # ------------------------------------------------------------------------------ calling
    def __call__(self, *args, backend: str | None = None, options: dict | None = None, **kwargs):
        compiled, binding = self.prepare(args, kwargs, backend, options=options)
        compiled.launch(binding)

    def prepare(self, args, kwargs, backend=None, consts=None, options: dict | None = None):
        """Check the arguments and find (or build) the compiled kernel: -> (CompiledKernel, Binding).
        ``options``: fields of :class:`CompileOptions` set for this call over the kernel's (or the
        environment's) options, e.g. ``{"stage_loads": "w"}``."""
        consts = dict(consts or {})
        params_kw = {}
        for k, v in kwargs.items():
            if k in self.const_names:
                consts[k] = v
            elif k in self.param_names:
                params_kw[k] = v
            else:
                raise ArgumentError(f"{self.name} has no parameter or compile-time parameter {k} (parameters: "
                                    f"{', '.join(self.param_names)}; compile-time: "
                                    f"{', '.join(self.const_names) or 'none'})")
        opts = self.resolve_options(backend, options)
        consts = self.resolve_consts(consts, args, params_kw)
        base = self.ir(**consts)
        consts = dict(base.consts)            # every compile-time value, defaults included
        binding = bind_args(base, args, params_kw)
        div = self.divisibility(base, binding) if opts.specialize else {}
        compiled = self.compile(consts, div, opts, binding.device)
        return compiled, _remap(binding, base, compiled.kernel)

    def resolve_options(self, backend=None, overrides: dict | None = None) -> CompileOptions:
        """The kernel's options (else the environment's: :meth:`CompileOptions.from_env`), with ``backend``
        and the fields in ``overrides`` replaced; an unknown field is an :class:`ArgumentError`."""
        if self.options is not None:
            opts = self.options if backend is None else self.options.replace(backend=backend)
        else:
            opts = CompileOptions.from_env(backend=backend)
        if overrides:
            bad = sorted(set(overrides) - _OVERRIDABLE)
            if bad:
                raise ArgumentError(f"{self.name}: options has no field {', '.join(map(repr, bad))} (CompileOptions "
                                    f"fields: {', '.join(sorted(_OVERRIDABLE))}; the backend is its own argument)")
            opts = opts.replace(**overrides)
        return opts

    def resolve_consts(self, consts: dict, args, params_kw) -> dict:
        """Validate given compile-time values; infer dtype parameters without a value from the arguments."""
        defaults = {c.name: c.default for c in self.src.kernel.consts}
        for name, v in consts.items():
            if isinstance(v, str):
                try:
                    consts[name] = v = D.dtype(v)
                except VMError:
                    raise ArgumentError(f"{self.name}: compile-time parameter {name}={v!r} is not a number "
                                        f"or a dtype name") from None
            if isinstance(v, bool) or not isinstance(v, (int, float, D.DType)):
                raise ArgumentError(f"{self.name}: compile-time parameter {name} must be a number or a dtype, "
                                    f"got {v!r}")
        for name, users in self.dtype_params.items():
            if name in consts or defaults[name] is not None:
                continue
            seen = {}
            for i in users:
                pname = self.param_names[i]
                obj = params_kw.get(pname) if pname in params_kw else (args[i] if i < len(args) else None)
                dt = infer_dtype(obj) if obj is not None else None
                if dt is not None:
                    seen[pname] = dt
            if not seen:
                raise ArgumentError(f"{self.name}: cannot infer the dtype parameter {name} from the arguments "
                                    f"({', '.join(self.param_names[i] for i in users)}); pass {name}=vm.<dtype> "
                                    f"or a vm.Tensor")
            if len(set(seen.values())) > 1:
                raise ArgumentError(f"{self.name}: dtype parameter {name} is inferred differently from "
                                    + ", ".join(f"{p} ({dt})" for p, dt in seen.items()))
            consts[name] = next(iter(seen.values()))
        return consts

    # ------------------------------------------------------------------------------ IR
    def ir(self, **consts) -> N.Kernel:
        """The kernel's IR for these compile-time values (others take their defaults)."""
        return self._lower(consts, ())

    def _lower(self, consts: dict, facts: tuple[tuple[str, int], ...]) -> N.Kernel:
        """The IR with ``assume(n % d == 0)`` for each ``(n, d)`` in ``facts`` (cached)."""
        from vmlang.lang.lower import lower_kernel
        def key_of(values):
            return tuple(sorted((k, _const_text(v)) for k, v in values)), tuple(facts)
        key = key_of(consts.items())
        if key not in self._ir:
            ak = self.src.kernel
            if facts:
                ak = _with_facts(ak, facts)
            unknown = set(consts) - set(self.const_names)
            if unknown:
                raise ArgumentError(f"{self.name} has no compile-time parameter {', '.join(sorted(unknown))}")
            k = lower_kernel(ak, consts, self.src.source, self.src.filename)
            # the same IR, asked for with every constant spelled out (as compile() does), is not lowered again
            self._ir[key] = self._ir[key_of(k.consts)] = k
        return self._ir[key]

    @staticmethod
    def divisibility(kernel: N.Kernel, binding: Binding) -> dict[str, int]:
        """For each size symbol and integer scalar parameter: the largest of ``DIVISORS`` (1024, 128, 16)
        dividing its value, else 1. 16 lets 16-bit-and-wider rows load 128 bits; 128 does the same for
        the packed sub-byte rows (128 int3 codes are 48 bytes); 1024 proves slabs of up to 1024 inside
        (unmasked loads in a K loop)."""
        names = [s for s, _, _ in kernel.symbols]
        names += [p.name for p in kernel.params if not isinstance(p.type, GlobalType) and p.dtype.is_int
                  and p.dtype != D.uint1]
        return {n: next((d for d in DIVISORS if binding.sizes[n] % d == 0), 1)
                for n in names if n in binding.sizes}

    # ------------------------------------------------------------------------------ compiling
    def spec(self, consts: dict, div: dict, opts: CompileOptions, dev: dict) -> dict:
        return {"backend": opts.backend,
                "consts": {k: _const_text(v) for k, v in sorted(consts.items())},
                "div16": dict(sorted(div.items())),
                "device": DEV.label(dev),
                "options": opts.key()}

    def compile(self, consts: dict, div: dict, opts: CompileOptions, device: str = "cpu"):
        from vmlang.api import backend as get_backend
        from vmlang.ir.printer import print_kernel
        dev = DEV.describe(opts.backend, device)
        spec = self.spec(consts, div, opts, dev)
        mkey = json.dumps(spec, sort_keys=True)
        hit = self._compiled.get(mkey)
        if hit is not None:
            self.memory_hits += 1
            return hit
        reason = self._reason(spec)
        t0 = time.perf_counter()
        ir = self._lower(consts, assumed_facts(div))
        be = get_backend(opts.backend)
        compiled, outcome, path = None, "compiled", None
        cache = DiskCache(opts.resolved_cache_dir()) if opts.disk_cache else None
        key = None
        if cache is not None:
            key = cache_key({"source": self.src.text, "kernel": self.name, "spec": spec,
                             "ir": print_kernel(ir), "vmlang": _version(), "toolchain": be.toolchain(),
                             "device": dev})
            path = str(cache.entry(key))
            files = cache.get(key)
            if files is not None:
                try:
                    compiled = be.load(ir, files, opts)
                    outcome = "loaded from disk"
                except Exception as e:  # noqa: BLE001 - an entry that does not load is not trusted
                    import warnings
                    from .cache import CacheWarning
                    warnings.warn(CacheWarning(f"vmlang cache entry {path} does not load ({e}); recompiling "
                                               f"and replacing it"), stacklevel=2)
                    cache.discard(key)
                    compiled = None
        if compiled is None:
            with status(f"compiling {self.name} for {opts.backend}"):
                compiled = be.compile(ir, opts)
            if cache is not None:
                cache.put(key, dict(compiled.files), {"kernel": self.name, "spec": spec})
        self._compiled[mkey] = compiled
        self.events.append(CacheEvent(spec, reason, outcome, time.perf_counter() - t0,
                                      tuple(sorted(compiled.files)), path))
        return compiled

    def _reason(self, spec: dict) -> str:
        if not self.events:
            return "first call"
        prev = self.events[-1].spec
        changes = []
        for k in ("backend", "device"):
            if spec[k] != prev[k]:
                changes.append(f"{k} {prev[k]} -> {spec[k]}")
        for group, fmt in (("consts", "{k}: {a} -> {b}"), ("div16", None), ("options", "option {k}: {a} -> {b}")):
            a, b = prev[group], spec[group]
            for k in sorted(set(a) | set(b)):
                if a.get(k) == b.get(k):
                    continue
                if fmt is None:          # divisors: say which divisibility changed
                    x, y = a.get(k, 1), b.get(k, 1)
                    d = max(x, y)
                    changes.append(f"{k} % {d} == 0: {x >= d} -> {y >= d}")
                else:
                    changes.append(fmt.format(k=k, a=a.get(k, "-"), b=b.get(k, "-")))
        return "; ".join(changes) or "same specialisation as an earlier one (evicted)"

    def explain(self, *args, sizes: dict | None = None, arch: str | None = None, **kwargs) -> str:
        """What the compiler passes decide for this kernel and why (placement, layouts, vector widths):
        the report ``vm explain`` prints (docs/ptx.md). ``k.explain(BN=64)`` for compile-time values;
        ``k.explain(x, w, s, y)`` or ``k.explain(sizes={"N": 4096})`` also with the facts a call would
        specialise on (``assume(n % 16 == 0)`` for each size divisible by 16); ``arch="sm_90"`` for the
        choices a GPU architecture changes (a dot on warpgroup MMA; default: no particular target, as on
        sm_80). Compiles nothing."""
        import types
        from vmlang.passes import format_report, pipeline
        consts = {k: v for k, v in kwargs.items() if k in self.const_names}
        params_kw = {k: v for k, v in kwargs.items() if k in self.param_names}
        unknown = set(kwargs) - set(consts) - set(params_kw)
        if unknown:
            raise ArgumentError(f"{self.name} has no parameter or compile-time parameter "
                                f"{', '.join(sorted(unknown))}")
        base = self.ir(**self.resolve_consts(consts, args, params_kw))
        if args or params_kw:
            div = self.divisibility(base, bind_args(base, args, params_kw))
        else:
            div = self.divisibility(base, types.SimpleNamespace(sizes=dict(sizes or {})))
        from vmlang.passes.program import with_arch
        from .options import ARCH_NAME
        if arch is not None and not (isinstance(arch, str) and ARCH_NAME.fullmatch(arch)):
            raise ArgumentError(f"{self.name}.explain: arch={arch!r} is not a GPU architecture name such as "
                                f"'sm_80' or 'sm_90'")
        report = format_report(pipeline(self._lower(dict(base.consts), assumed_facts(div)), with_arch(None, arch)))
        if arch is not None:
            report += f"\ntarget: {arch}"
        if div:
            report += "\nspecialised on: " + ", ".join(f"{n} % {d} == 0" if d > 1 else f"{n} % 16 != 0"
                                                         for n, d in div.items())
        return report

    def explain_cache(self) -> str:
        """One line per compilation: when, why, for what, and where its files are."""
        lines = [f"kernel {self.name}: {len(self.events)} compilation(s), {self.memory_hits} in-memory hit(s)"]
        for n, e in enumerate(self.events, 1):
            s = e.spec
            consts = ", ".join(f"{k}={v}" for k, v in s["consts"].items()) or "-"
            div = ", ".join(f"{k} % {d}" if d > 1 else f"{k} not % 16" for k, d in s["div16"].items()) or "-"
            lines.append(f"  #{n} {e.outcome} in {e.seconds * 1e3:.1f} ms because {e.reason}: backend "
                         f"{s['backend']} on {s['device']}; constants {consts}; divisibility {div}"
                         + (f"; cache {e.path}" if e.path else ""))
        return "\n".join(lines)


def _version() -> str:
    from vmlang import __version__
    return __version__


#: the divisors the runtime specialises sizes on, largest first: 16 and 128 for 128-bit loads of 16-bit and of
#: packed sub-byte rows, 1024 so that a loop over slabs of up to 1024 elements (the stdlib GEMV's 512 and 1024)
#: needs no masks where K divides by 1024 (LLM weights: 4096, 8192, 14336, 28672)
DIVISORS = (1024, 128, 16)


def assumed_facts(div: dict) -> tuple:
    """``(name, divisor)`` for each size known to divide by more than 1."""
    return tuple((n, d) for n, d in div.items() if d > 1)


def _with_facts(ak: A.Kernel, facts) -> A.Kernel:
    """The AST with ``assume(n % d == 0);`` prepended for each ``(n, d)``."""
    loc = ak.loc
    stmts = tuple(
        A.ExprStmt(A.Call("assume", (A.BinOp("==", A.BinOp("%", A.Name(n, loc=loc), A.Int(d, loc=loc), loc=loc),
                                             A.Int(0, loc=loc), loc=loc),), loc=loc), loc=loc)
        for n, d in facts)
    return A.Kernel(ak.name, ak.consts, ak.params, ak.grid, ak.warps, stmts + ak.body, loc=loc)


def _remap(b: Binding, base: N.Kernel, target: N.Kernel) -> Binding:
    """The same binding keyed by ``target``'s parameter ids (same parameters, maybe other ids)."""
    ids = {p.id: q.id for p, q in zip(base.params, target.params)}
    if all(a == c for a, c in ids.items()):
        return b
    return Binding(b.sizes, {ids[k]: v for k, v in b.tensors.items()}, {ids[k]: v for k, v in b.scalars.items()},
                   b.grid, b.device)
