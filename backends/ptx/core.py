"""The core of the PTX lowering: the kernel signature, how IR values are held, the rule registry, thread
coordinates from register layouts, shared-memory scratch and predicated memory accesses.

Representation (docs/ptx.md): the generated LLVM function is the program of *one thread*.

* a **scalar** is one LLVM value (block-uniform);
* a **register tile** is a :class:`Tile`: one LLVM value per value slot of its ``TVLayout``; thread ``t``
  slot ``v`` holds tile element ``layout.coord(t, v)``. Its linear tile index is split as
  ``thread_part(t) + value_part(v)`` (a layout is a sum over its modes), so the thread part is computed
  once per layout at run time and the value part is a constant;
* a **shared tile** is a :class:`SharedTile`: a byte offset into the block's dynamic shared memory and
  its memory layout (tile coordinate -> element offset).

Element reprs (:mod:`.convert`): bool ``i1``, ints and every storage code in ``i8``/``i16``/``i32``
(unsigned bits; the dtype says how to read them), ``half``, ``float`` (f32, and bf16 as exact f32).
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Callable

from llvmlite import ir

from vmlang.ir import dtypes as D
from vmlang.ir import nodes as N
from vmlang.ir.errors import BackendError
from vmlang.ir.layout import inttuple as it
from vmlang.ir.registry import registrar
from vmlang.ir.types import BOOL, GlobalType, TileType

from . import convert as C
from . import toolchain

I1, I8, I16, I32, I64 = ir.IntType(1), ir.IntType(8), ir.IntType(16), ir.IntType(32), ir.IntType(64)
F16, F32 = ir.HalfType(), ir.FloatType()
GPTR = ir.PointerType(addrspace=1)
SPTR = ir.PointerType(addrspace=3)

RULES: dict[type, Callable] = {}

#: ``@lower(N.Add, ...)`` registers the rule of one or more instruction classes
lower = registrar(RULES)


def const_i32(x: int) -> ir.Constant:
    return ir.Constant(I32, int(x))


# ----------------------------------------------------------------------------------- signature
@dataclass
class Signature:
    """Kernel parameters, in order: per global tensor a pointer, its shape (i32 each) and the storage
    strides of its leading axes (i32, in storage elements: bytes for packed types); then the size
    symbols (i32), then the scalar parameters (i32 bit patterns, as the Triton backend passes them)."""
    tensors: list = field(default_factory=list)   # (param, n_shape, n_strides)
    sizes: list = field(default_factory=list)     # symbol names
    scalars: list = field(default_factory=list)   # params

    def llvm_types(self) -> list:
        out = [GPTR for _ in self.tensors]
        for _, ns, nt in self.tensors:
            out += [I32] * (ns + nt)
        out += [I32] * (len(self.sizes) + len(self.scalars))
        return out


def signature(kernel: N.Kernel) -> Signature:
    sig = Signature()
    scalar_names = {p.name for p in kernel.params if not isinstance(p.type, GlobalType)}
    symbols = set()
    for p in kernel.params:
        if isinstance(p.type, GlobalType):
            rank = len(p.type.dims)
            sig.tensors.append((p, rank, max(rank - 1, 0)))
            for d in p.type.dims:
                symbols |= d.symbols()
    for ins in N.walk(kernel.body):
        if isinstance(ins, N.SizeOf):
            symbols.add(ins.symbol)
    sig.sizes = sorted(symbols - scalar_names)
    sig.scalars = [p for p in kernel.params if not isinstance(p.type, GlobalType)]
    return sig


# ----------------------------------------------------------------------------------- values
@dataclass(frozen=True)
class Packed:
    """Where the codes of a tile's value slots sit in the 32-bit words a vector load read (:mod:`.vector`):
    ``words`` are i32 values, ``where[v]`` is ``(word index, bit offset)`` of slot ``v``'s ``bits``-bit
    code (its low bit first), or None for a code that straddles two words. The slots are the words' bit
    stream cut in order (:func:`.vector.split_words`): slot ``v`` is stream bits ``[v * bits, (v + 1) * bits)``,
    word ``j`` stream bits ``[32 j, 32 j + 32)``. Lets a cast decode two codes per word operation
    (:mod:`.unpack`)."""
    words: tuple
    where: tuple
    bits: int


@dataclass
class Tile:
    """A register tile: one LLVM value per value slot of ``layout`` (a TVLayout). ``packed``: the words
    the slots' codes were cut from (set by a vector load, None otherwise; a rule that builds a new tile
    drops it)."""
    slots: list
    layout: object
    dtype: object
    packed: Packed | None = None


@dataclass
class SharedTile:
    """A tile in shared memory at byte ``offset`` of the dynamic allocation; element size ``ebytes``."""
    offset: int
    layout: object        # tile coordinate -> element offset (Layout or MemLayout)
    dtype: object
    shape: tuple
    ebytes: int


@dataclass
class GlobalArg:
    ptr: ir.Value
    shape: list           # i32 values
    strides: list         # i32 values (storage elements), one per leading axis
    dtype: object


def tensor_names(spec: str | None) -> frozenset:
    """The global tensors an option such as ``l2_prefetch`` or ``stage_loads`` names (``"w, s"``; ``"*"``:
    every tensor), parsed once per compilation.

    >>> sorted(tensor_names("w, s,")), tensor_names("")
    (['s', 'w'], frozenset())
    """
    return frozenset(n.strip() for n in (spec or "").split(",") if n.strip())


def names_tensor(names: frozenset, tensor) -> bool:
    """Whether ``names`` (:func:`tensor_names`) selects the global tensor ``tensor`` (a parameter value)."""
    return "*" in names or tensor.name in names


def elem_bytes(dt) -> int:
    """Bytes of one element's repr in scratch/shared memory."""
    t = C.repr_type(dt)
    if t == I1:
        return 1
    return max(1, t.width // 8) if isinstance(t, ir.IntType) else (2 if t == F16 else 4)


class Lowerer:
    """Lowers one kernel (with layouts and placement from :func:`vmlang.passes.pipeline`) into an
    llvmlite module holding one ``ptx_kernel`` function."""

    def __init__(self, program, arch: str = "sm_90", wgmma: bool = True):
        self.program = program
        self.kernel = program.kernel
        self.facts = program.facts
        self.arch = arch
        self.module = ir.Module(name=self.kernel.name)
        self.module.triple = "nvptx64-nvidia-cuda"
        self.sig = signature(self.kernel)
        fnty = ir.FunctionType(ir.VoidType(), self.sig.llvm_types())
        self.fn = ir.Function(self.module, fnty, name=_symbol(self.kernel.name))
        # the launch always runs warps * 32 threads: .maxntid lets ptxas budget registers for exactly
        # that block (the int2 tensor-core GEMV: 96 registers instead of 106, ten blocks per SM for nine)
        toolchain.mark_kernel(self.fn, max_threads=self.kernel.warps * 32)
        entry = self.fn.append_basic_block("entry")
        self.b = ir.IRBuilder(entry)
        self.env: dict[int, object] = {}
        self.consts: dict[int, object] = {}       # value id -> Python constant (for folding)
        self.shared_top = 0                       # bytes of dynamic shared memory in use
        self.shared_max = 0                       # the peak: what the launch asks for
        self.persistent_end = 0                   # end of the last region that is never freed
        self._thread_parts: dict = {}
        self.smem = ir.GlobalVariable(self.module, ir.ArrayType(I8, 0), "vm_smem", addrspace=3)
        self.smem.linkage = "external"
        # a kernel with a warpgroup-MMA dot: its operands are swizzled on absolute shared addresses (tiles
        # 1024-byte aligned) and read through the async proxy (a proxy fence before each barrier)
        from vmlang.passes.conversions import DotPlan
        from vmlang.passes.wgmma import ARCHS
        self.wgmma = wgmma and arch in ARCHS and any(p.wgmma for p in self.facts.of_type(DotPlan).values())
        self.wgmma_dots = 0                       # dots lowered on wgmma (.wgmma.try_lower)
        self.tile_align = 1024 if self.wgmma else 16
        self.smem.align = self.tile_align
        self._bind_params()

    # -- parameters ------------------------------------------------------------------------
    def _bind_params(self):
        args = list(self.fn.args)
        n = len(self.sig.tensors)
        ptrs, rest = args[:n], args[n:]
        for (p, ns, nt), ptr in zip(self.sig.tensors, ptrs):
            ptr.name = _symbol(p.name) + "_ptr"
            shape, rest = rest[:ns], rest[ns:]
            strides, rest = rest[:nt], rest[nt:]
            self.env[p.id] = GlobalArg(ptr, list(shape), list(strides), p.dtype)
        self.sizes = {}
        for s in self.sig.sizes:
            a, rest = rest[0], rest[1:]
            a.name = _symbol(s)
            self.sizes[s] = a
        for p in self.sig.scalars:
            a, rest = rest[0], rest[1:]
            a.name = _symbol(p.name)
            self.env[p.id] = _scalar_from_bits(self.b, p.dtype, a)

    # -- values ----------------------------------------------------------------------------
    @functools.cached_property
    def definitions(self) -> dict:
        """value id -> the instruction defining it (:func:`vmlang.passes.program.definitions`), built once."""
        from vmlang.passes.program import definitions
        return definitions(self.kernel)

    @functools.cached_property
    def scalar_facts(self):
        """What is known of the kernel's scalars (:class:`vmlang.passes.scalars.ScalarFacts`: divisibility,
        bounds), built once."""
        from vmlang.passes.scalars import ScalarFacts
        return ScalarFacts(self.kernel)

    def get(self, v: N.Value):
        try:
            return self.env[v.id]
        except KeyError:
            raise BackendError(f"ptx: value %{v.id} ({v.name or 'unnamed'}) used before it was lowered") from None

    def set(self, v: N.Value, x):
        """Bind a lowered value; a register result of a tile placed in shared memory is written there."""
        if isinstance(x, Tile) and isinstance(v.type, TileType) and v.type.space == "shared":
            from .exchange import tile_to_shared
            x = tile_to_shared(self, x, v)
        self.env[v.id] = x

    def tile(self, v: N.Value) -> Tile:
        x = self.get(v)
        if not isinstance(x, Tile):
            raise BackendError(f"ptx: %{v.id} ({v.name or 'unnamed'}) is not a register tile here "
                               f"(layout inference should have converted it)")
        return x

    def layout_of(self, v: N.Value):
        """The register layout a rule computes ``v`` in (a shared tile: the default layout, written to
        shared memory by :meth:`set`)."""
        if isinstance(v.type, TileType) and v.type.space == "shared":
            return self.default_layout(v)
        lay = v.type.layout if isinstance(v.type, TileType) else None
        if lay is None:
            raise BackendError(f"ptx: tile %{v.id} ({v.name or 'unnamed'}) has no layout: run vmlang.passes.pipeline")
        return lay

    def slots(self, v: N.Value, n: int) -> list:
        """The per-slot values of an elementwise operand: a tile's slots, or a scalar repeated."""
        x = self.get(v)
        if isinstance(x, Tile):
            if len(x.slots) != n:
                raise BackendError(f"ptx: operand %{v.id} has {len(x.slots)} slots where {n} were expected "
                                   f"(layouts differ)")
            return x.slots
        if isinstance(x, SharedTile):
            raise BackendError(f"ptx: elementwise operand %{v.id} lives in shared memory")
        return [x] * n

    def default_layout(self, v: N.Value):
        return self.default_layout_for(v.shape, v.dtype)

    def default_layout_for(self, shape, dt):
        from vmlang.passes.tvmaps import default_layout
        return default_layout(tuple(shape), dt.nbits, self.kernel.warps * 32)

    # -- thread coordinates ------------------------------------------------------------------
    def tid(self) -> ir.Value:
        return self.sreg("tid.x")

    def sreg(self, name: str) -> ir.Value:
        fn = self.intrinsic(f"llvm.nvvm.read.ptx.sreg.{name}", ir.FunctionType(I32, []))
        return self.b.call(fn, [])

    def intrinsic(self, name: str, fnty) -> ir.Function:
        g = self.module.globals.get(name)
        if g is None:
            g = ir.Function(self.module, fnty, name=name)
        return g

    def thread_part(self, layout):
        """(index, valid, primary) of this thread under a TVLayout: the thread mode's tile-index part
        (i32), whether the thread holds values (``tid < threads``) and whether it is the first holder of
        its values (every stride-0 thread leaf at coordinate 0)."""
        key = str(layout)
        hit = self._thread_parts.get(key)
        if hit is not None:
            return hit
        b = self.b
        block = self.fn.entry_basic_block
        # computed in the entry block so every later block may use it
        with b.goto_block(block):
            if block.terminator is not None:
                b.position_before(block.terminator)
            t = self.tid()
            mode = layout.thread_layout
            leaves = list(zip(it.flatten(mode.shape), it.flatten(mode.stride)))
            idx = const_i32(0)
            primary = ir.Constant(I1, 1)
            rest = t
            for s, d in leaves:
                c = b.urem(rest, const_i32(s)) if s > 1 else const_i32(0)
                rest = b.udiv(rest, const_i32(s)) if s > 1 else rest
                if d:
                    idx = b.add(idx, b.mul(c, const_i32(d)))
                elif s > 1:
                    primary = b.and_(primary, b.icmp_unsigned("==", c, const_i32(0)))
            # every launched thread (warps * 32 of them) holds values: no test
            valid = (ir.Constant(I1, 1) if layout.threads >= self.kernel.warps * 32
                     else b.icmp_unsigned("<", t, const_i32(layout.threads)))
        hit = (idx, valid, primary)
        self._thread_parts[key] = hit
        return hit

    def value_parts(self, layout) -> list[int]:
        """Tile index part of each value slot (constants)."""
        return [_value_part(layout, v) for v in range(layout.values)]

    def coords(self, layout, shape) -> list[list]:
        """Per slot, the tile coordinates (i32 values) this thread holds."""
        return [self.slot_coords(layout, shape, v) for v in range(layout.values)]

    def slot_coords(self, layout, shape, slot: int) -> list:
        """The tile coordinates (i32 values) of value slot ``slot`` of this thread."""
        idx, _, _ = self.thread_part(layout)
        vp = _value_part(layout, slot)
        lin = self.b.add(idx, const_i32(vp)) if vp else idx
        strides = _colex(shape)
        return [self._digit(lin, strides[a], shape[a]) for a in range(len(shape))]

    def _digit(self, lin, stride: int, size: int):
        if size == 1:
            return const_i32(0)
        q = self.b.udiv(lin, const_i32(stride)) if stride > 1 else lin
        return self.b.urem(q, const_i32(size))

    # -- shared memory -----------------------------------------------------------------------
    def alloc_shared(self, nbytes: int, align: int | None = None, transient: bool = False) -> int:
        """Byte offset of ``nbytes`` of dynamic shared memory. A **transient** region (scratch that one rule
        writes and reads) is free again once that rule is done (:meth:`run_block`), so the next rule's
        scratch reuses it; other regions (shared tiles, values) live to the end of the kernel. Every writer
        of shared memory synchronises (``bar.sync``) before writing, so a reused region's earlier readers
        are done. ``align`` defaults to 16 for transient regions and to :attr:`tile_align` for the rest."""
        align = align or (16 if transient else self.tile_align)
        off = (self.shared_top + align - 1) // align * align
        self.shared_top = off + nbytes
        self.shared_max = max(self.shared_max, self.shared_top)
        if not transient:
            self.persistent_end = max(self.persistent_end, self.shared_top)
        return off

    def shared_ptr(self, byte_offset) -> ir.Value:
        off = byte_offset if isinstance(byte_offset, ir.Value) else const_i32(byte_offset)
        p = self.b.gep(self.smem, [off], source_etype=I8)
        p.type = SPTR        # llvmlite types a global's GEP by its pointee; the IR is opaque-pointer IR
        return p

    def barrier(self):
        """``bar.sync 0``: every thread of the block reaches the same barrier instruction (``.aligned``). The
        call is ``convergent``: LLVM then never moves or duplicates it into code that only some threads run
        (jump threading once copied it into both arms of a ``tid < n`` branch: warps split across the two
        copies waited for each other forever)."""
        text = "bar.sync 0;"
        if self.wgmma:     # what the barrier publishes is read by wgmma through the async proxy
            text = "fence.proxy.async.shared::cta; " + text
        asm = ir.InlineAsm(ir.FunctionType(ir.VoidType(), []), text, "~{memory}", side_effect=True)
        self.b.call(asm, [], attrs=("convergent",))

    # -- emitting ------------------------------------------------------------------------------
    def run_block(self, block: N.Block):
        for ins in block.instrs:
            rule = RULES.get(type(ins))
            if rule is None:
                raise BackendError(f"the ptx backend has no rule for instruction {type(ins).__name__}", ins.loc)
            mark = self.shared_top
            try:
                rule(self, ins)
            except BackendError:
                raise
            except Exception as e:  # a bug in a rule: name the instruction and where it came from
                raise BackendError(f"ptx: lowering {type(ins).__name__} failed: {type(e).__name__}: {e}",
                                   ins.loc) from e
            # the rule's transient scratch is free again; what it allocated for good stays
            self.shared_top = max(mark, self.persistent_end)

    def finish(self) -> ir.Module:
        self.run_block(self.kernel.body)
        self.b.ret_void()
        return self.module


def _value_part(layout, v: int) -> int:
    """Tile index contribution of value slot ``v`` (thread 0's index minus thread 0's thread part)."""
    mode = layout.value_layout
    return int(mode(v))


def _colex(shape) -> list[int]:
    out, acc = [], 1
    for s in shape:
        out.append(acc)
        acc *= s
    return out


def _symbol(name: str) -> str:
    s = "".join(ch if ch.isalnum() or ch == "_" else "_" for ch in name) or "v"
    return s if not s[0].isdigit() else "v" + s


def _scalar_from_bits(b, dt, a):
    """A scalar parameter passed as an i32 bit pattern -> its repr."""
    if dt == BOOL:
        return b.icmp_unsigned("!=", b.and_(a, const_i32(1)), const_i32(0))
    if dt == D.float32 or dt == D.bfloat16:
        f = b.bitcast(a, F32)
        return f if dt == D.float32 else b.bitcast(b.shl(b.and_(a, const_i32(0xFFFF)), const_i32(16)), F32)
    if dt == D.float16:
        return b.bitcast(b.trunc(a, I16), F16)
    t = C.repr_type(dt)
    return b.trunc(a, t) if t.width < 32 else a


# ----------------------------------------------------------------------------------- codes
def code_bits(dt) -> int:
    """Bits of a dtype's code in memory (bool: 1 in packed global tensors)."""
    return dt.nbits


def to_code(b, dt, x) -> ir.Value:
    """repr -> its bit pattern, zero-extended in an i32."""
    t = x.type
    if t == F32:
        bits = b.bitcast(x, I32)
        return b.lshr(bits, const_i32(16)) if dt == D.bfloat16 else bits
    if t == F16:
        return b.zext(b.bitcast(x, I16), I32)
    if t == I32:
        return x
    return b.zext(x, I32)


def from_code(b, dt, c) -> ir.Value:
    """An i32 holding a bit pattern (low bits) -> repr of ``dt``."""
    t = C.repr_type(dt)
    if dt == D.bfloat16:
        return b.bitcast(b.shl(c, const_i32(16)), F32)
    if t == F32:
        return b.bitcast(c, F32)
    if t == F16:
        return b.bitcast(b.trunc(c, I16), F16)
    if t == I1:
        return b.icmp_unsigned("!=", b.and_(c, const_i32(1)), const_i32(0))
    if t == I32:
        return c
    return b.trunc(c, t)
