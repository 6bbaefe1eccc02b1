"""Python stand-ins for the builtins of the kernel language: ``vm.cast``, ``vm.store``, ``vm.block``, ...

A ``@vm.jit`` function is never executed: its source is translated (:mod:`vmlang.lang.pyfront`). The
objects here exist so that ``vm.cast`` and friends are real names (editors complete them, ``help(vm.cast)``
documents them, linters see them defined) and so that the front end can recognise them: every stub carries
``__vm_builtin__ = "<name>"``, and any object with a string ``__vm_builtin__`` attribute is taken for that
builtin inside a kernel. Called from ordinary Python, a stub raises :class:`~vmlang.ir.errors.VMError`.

``STUBS`` maps each builtin name of :data:`vmlang.lang.builtins.EXPRESSIONS` and ``STATEMENTS`` (except
``load``: ``vmlang.load`` loads a ``.vm`` file from Python and is marked as the builtin by the runtime) plus
``block`` to its stub. ``constexpr`` is the annotation of compile-time parameters (``BN: vm.constexpr = 128``).
"""
from __future__ import annotations

import inspect

from vmlang.ir.errors import VMError

__all__ = ["STUBS", "constexpr", "ConstExpr", "block", "BUILTIN_DOCS"]

#: signature (as in docs/language.md section 9) and one line of documentation per builtin
BUILTIN_DOCS: dict[str, tuple[str, str]] = {
    "load": ("ref, fill=None, masked=True",
             "Read the region ref (x[...]) of a global tensor or a tile; out-of-shape positions read fill."),
    "store": ("ref, value, masked=True",
              "Statement: write value into the region ref of a global tensor (or rebind a tile)."),
    "atomic_add": ("ref, value, masked=True", "Statement: ref += value atomically (global tensors)."),
    "insert": ("ref, value", "A copy of tile t (ref = t[...]) with the region replaced by value."),
    "assume": ("cond", "Statement: a fact the compiler may rely on (checked at compile time or by the VM)."),
    "barrier": ("", "Statement: synchronise the threads of the block."),
    "zeros": ("dtype, shape", "A tile of zeros."),
    "full": ("dtype, shape, value", "A tile filled with value."),
    "empty": ("dtype, shape", "An uninitialised tile (poison until written)."),
    "arange": ("n", "The int32 tile [0, 1, ..., n-1] (n a compile-time integer)."),
    "codebook": ("of, dtype=float32", "The value table of a dtype of at most 8 bits, shape [2**bits]."),
    "cast": ("x, dtype, saturate=False", "Convert a tile or scalar to dtype (round to nearest even)."),
    "view": ("x, dtype", "Reinterpret the packed bits of the last axis as another dtype."),
    "lookup": ("table, codes", "table[codes] elementwise (the codebook / NF4 primitive)."),
    "exp": ("x", "e ** x (float dtypes)."),
    "exp2": ("x", "2 ** x (float dtypes)."),
    "log": ("x", "Natural logarithm (float dtypes)."),
    "sqrt": ("x", "Square root (float dtypes)."),
    "rsqrt": ("x", "1 / sqrt(x) (float dtypes)."),
    "abs": ("x", "Absolute value."),
    "where": ("cond, a, b", "cond ? a : b elementwise, with broadcasting."),
    "sum": ("x, axis=None", "Sum along axis (required for tiles of rank > 1)."),
    "max": ("x, b=None, axis=None", "max(x, axis=...) reduces; max(a, b) is the elementwise maximum."),
    "min": ("x, b=None, axis=None", "min(x, axis=...) reduces; min(a, b) is the elementwise minimum."),
    "reshape": ("x, shape", "Same elements in row-major order, new static shape."),
    "permute": ("x, perm", "Permute the axes of a tile: out.shape[i] == x.shape[perm[i]]."),
    "trans": ("x", "Transpose a 2-d tile."),
    "broadcast": ("x, shape", "Broadcast a scalar or a tile to shape."),
    "dot": ("a, b, acc=None", "a @ b + acc for tiles a[M, K], b[K, N] (f32 accumulator; int32 for int8)."),
    "cdiv": ("a, b", "Ceiling division (a + b - 1) / b of integers."),
}


def _outside(name: str):
    raise VMError(f"vm.{name}() can only be used inside a @vm.jit kernel",
                  hint="kernel bodies are translated, never run as Python")


def _signature(spec: str) -> inspect.Signature:
    params = []
    for item in filter(None, (s.strip() for s in spec.split(","))):
        if "=" in item:
            pname, default_text = item.split("=", 1)
            default = {"None": None, "True": True, "False": False}.get(default_text, default_text)
            params.append(inspect.Parameter(pname, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=default))
        else:
            params.append(inspect.Parameter(item, inspect.Parameter.POSITIONAL_OR_KEYWORD))
    return inspect.Signature(params)


def _make_stub(name: str):
    spec, doc = BUILTIN_DOCS.get(name, ("*args, **kwargs", "A vmlang builtin."))

    def stub(*args, **kwargs):
        _outside(name)

    stub.__name__ = stub.__qualname__ = name
    stub.__module__ = "vmlang"
    stub.__doc__ = (f"vm.{name}({spec})\n\n{doc}\n\nOnly valid inside a @vm.jit kernel "
                    f"(see docs/language.md for the exact semantics).")
    try:
        stub.__signature__ = _signature(spec)
    except ValueError:  # pragma: no cover - a malformed spec above
        pass
    stub.__vm_builtin__ = name
    return stub


class _BlockAxis:
    """``vm.block.x`` / ``.y`` / ``.z``: the block's position on the grid (an int32 scalar in a kernel)."""

    __slots__ = ("__vm_builtin__", "axis")

    def __init__(self, axis: str):
        self.axis = axis
        self.__vm_builtin__ = f"block.{axis}"

    def __repr__(self) -> str:
        return f"vmlang.block.{self.axis}"

    def _outside(self, *args, **kwargs):
        raise VMError(f"vm.block.{self.axis} can only be used inside a @vm.jit kernel")

    __call__ = __index__ = __int__ = _outside


class _Block:
    """``vm.block``: the position of the running block on the grid, ``vm.block.x``, ``.y``, ``.z``
    (int32 scalars). Only valid inside a @vm.jit kernel."""

    __slots__ = ("x", "y", "z")
    __vm_builtin__ = "block"

    def __init__(self):
        self.x, self.y, self.z = _BlockAxis("x"), _BlockAxis("y"), _BlockAxis("z")

    def __repr__(self) -> str:
        return "vmlang.block"

    def __call__(self, *args, **kwargs):
        raise VMError("vm.block can only be used inside a @vm.jit kernel (as vm.block.x, .y or .z)")


class ConstExpr:
    """The annotation of a compile-time parameter of a @vm.jit kernel.

    ``BN: vm.constexpr = 128`` (a number), ``T: vm.constexpr = vm.int4`` (a dtype) or ``T: vm.constexpr``
    (no default: given at launch). It becomes ``<BN = 128>`` in .vm terms.
    """

    _instance = None

    def __new__(cls):
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "vmlang.constexpr"

    def __reduce__(self):
        return (ConstExpr, ())


constexpr = ConstExpr()
block = _Block()


def _build() -> dict[str, object]:
    from vmlang.lang.builtins import EXPRESSIONS, STATEMENTS
    names = sorted((set(EXPRESSIONS) | set(STATEMENTS)) - {"load"})
    out: dict[str, object] = {n: _make_stub(n) for n in names}
    out["block"] = block
    return out


STUBS: dict[str, object] = _build()
