"""Placement: every ``auto`` tile becomes ``register`` or ``shared``, each decision a note.

Values that must share a type are decided together (a *group*): a loop's init, carried value, yield
and result; an ``if``'s two yields and its result; ``insert``'s tile and result. For a group of
``auto`` tiles, in order:

1. **computed** -- produced by an instruction that computes per thread (elementwise, cast, where,
   view, lookup, shape instructions, reductions, dot): ``register``. Layout inference converts such a
   value where a consumer needs it elsewhere (a computed lookup table is copied to shared memory).
   Over the register budget it still stays in registers (a shared copy would only add a round trip);
   the note warns about spills.
2. a 1-d tile used as the ``table`` of ``lookup``: ``shared`` (indexed by data: ``ld.shared``);
3. operand ``a``/``b`` of ``dot``, loaded from memory, at least ``dot_shared_min_bytes``: ``shared``
   (staged with ``cp.async``, read with ``ldmatrix``) -- not ``a`` of a dot with 1, 2, 4 or 8 rows, which
   each lane reads from registers (:mod:`.mma_rows`);
4. more than ``max_regs_per_thread`` 32-bit registers per thread (``numel * bits / threads``):
   ``shared``;
5. everything else: ``register``.

Tiles already placed in the source (``t: shared = ...``) keep their space ("user"). A final note
estimates the registers per thread (peak of the live register tiles) and the shared bytes per block.

>>> import vmlang as vm
>>> from vmlang.passes.program import Program
>>> k = vm.compile_file("examples/gemv_nf4.vm")
>>> p = run(Program(k), None)
>>> print(next(n.text for n in p.report if n.text.startswith("table")))
table%7 f32[16] (64 B): shared: the table of lookup at gemv_nf4.vm:28:22 is indexed by data (each thread reads table[code]): ld.shared
"""
from __future__ import annotations


from vmlang.ir import nodes as N
from vmlang.ir.types import AUTO, REGISTER, SHARED, TileType

from .mma_rows import applies as few_rows
from .program import Note, Program, definitions, option, rebuild, uses, value_label
from .program import op_name as _opname
from .program import where as _where

PASS = "placement"

COMPUTED = (N.Unary, N.Binary, N.Where, N.Cast, N.View, N.Lookup, N.ExpandDims, N.Reshape, N.Permute,
            N.Reduce, N.Dot)


def tile_bytes(t: TileType) -> int:
    return (t.numel * t.dtype.nbits + 7) // 8


def regs_per_thread(t: TileType, threads: int) -> int:
    """32-bit registers per thread if the tile is spread evenly: ``ceil(numel * bits / threads / 32)``."""
    return -(-t.numel * t.dtype.nbits // (threads * 32))


def size_text(t: TileType) -> str:
    b = tile_bytes(t)
    return f"{b // 1024} KiB" if b >= 4096 and b % 1024 == 0 else f"{b} B"




class _Groups:
    def __init__(self):
        self.parent: dict[int, int] = {}

    def find(self, x: int) -> int:
        self.parent.setdefault(x, x)
        while self.parent[x] != x:
            self.parent[x] = self.parent[self.parent[x]]
            x = self.parent[x]
        return x

    def union(self, a: int, b: int):
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def _tiles(kernel):
    for ins in N.walk(kernel.body):
        vals = list(ins.results) + (list(ins.carried) if isinstance(ins, N.For) else [])
        for v in vals:
            if v.is_tile:
                yield v, ins


def run(program: Program, options=None) -> Program:
    k = program.kernel
    threads = k.warps * 32
    budget = option(options, "max_regs_per_thread")
    dot_min = option(options, "dot_shared_min_bytes")
    defs = definitions(k)
    use = uses(k)
    groups = _Groups()
    values: dict[int, N.Value] = {}
    for v, _ in _tiles(k):
        values[v.id] = v
        groups.find(v.id)
    for ins in N.walk(k.body):
        if isinstance(ins, N.For):
            for a, b, c, d in zip(ins.inits, ins.carried, ins.yields, ins.outs):
                if b.is_tile:
                    for x in (a, c, d):
                        groups.union(b.id, x.id)
        elif isinstance(ins, N.If):
            for a, b, c in zip(ins.then_yields, ins.else_yields, ins.outs):
                if c.is_tile:
                    groups.union(c.id, a.id)
                    groups.union(c.id, b.id)
        elif isinstance(ins, N.Insert):
            groups.union(ins.out.id, ins.dst.id)
    members: dict[int, list[int]] = {}
    for vid in values:
        members.setdefault(groups.find(vid), []).append(vid)

    vmap, notes = {}, []
    for root in sorted(members):
        vids = sorted(members[root])
        head = values[vids[0]]
        t = head.type
        space, why = _decide(head, vids, values, defs, use, threads, budget, dot_min)
        loc = getattr(defs.get(head.id), "loc", None)
        names = ", ".join(value_label(values[v]) for v in vids)
        notes.append(Note(PASS, loc, f"{names} {_short(t)} ({size_text(t)}): {space}: {why}"))
        if t.space == AUTO:
            for vid in vids:
                v = values[vid]
                vmap[vid] = N.Value(v.id, v.type.with_(space=space), v.name)
    kernel = rebuild(k, vmap) if vmap else k
    notes.append(Note(PASS, None, _estimate(kernel, threads)))
    return program.with_(kernel=kernel, notes=notes)


def _short(t: TileType) -> str:
    from vmlang.ir.types import TileType as _T
    return str(_T(t.dtype, t.shape)).replace("float32", "f32").replace("float16", "f16") \
        .replace("bfloat16", "bf16")


def _decide(head, vids, values, defs, use, threads, budget, dot_min):
    t = head.type
    regs = regs_per_thread(t, threads)
    if t.space != AUTO:
        return t.space, "user"
    producers = [defs.get(v) for v in vids if not isinstance(defs.get(v), (N.For, N.If))]
    computed = [p for p in producers if isinstance(p, COMPUTED) or isinstance(p, N.Broadcast) and p.x.is_tile]
    if computed:
        p = computed[0]
        why = f"computed per thread by {_opname(p)}{_where(p)}"
        if regs > budget:
            why += (f"; {regs} registers per thread is over the budget of {budget}: expect spills "
                    f"(smaller tiles would fit)")
        else:
            why += f" ({regs} register{'s' if regs != 1 else ''} per thread)"
        return REGISTER, why
    all_uses = [(ins, f) for v in vids for ins, f in use.get(v, [])]
    for ins, f in all_uses:
        if isinstance(ins, N.Lookup) and f == "table" and len(t.shape) == 1:
            return SHARED, (f"the table of lookup{_where(ins)} is indexed by data (each thread reads "
                            f"table[code]): ld.shared")
    loaded = any(isinstance(p, N.Load) for p in producers)
    for ins, f in all_uses:
        if isinstance(ins, N.Dot) and f in ("a", "b") and loaded and tile_bytes(t) >= dot_min \
                and not (f == "a" and _few_rows(ins)):
            return SHARED, (f"operand {f} of dot{_where(ins)}, loaded from memory and at least "
                            f"{dot_min} B: staged in shared memory (cp.async), read by the tensor cores")
    if regs > budget:
        return SHARED, f"{regs} registers per thread would exceed the budget of {budget}"
    return REGISTER, f"{regs} register{'s' if regs != 1 else ''} per thread"


def _few_rows(ins: N.Dot) -> bool:
    """A dot with few rows (:mod:`.mma_rows`): its ``a`` (x) is read by each lane from registers."""
    (m, k), n = ins.a.shape, ins.b.shape[1]
    return few_rows(m, n, k)


def _estimate(kernel, threads) -> str:
    """Peak registers per thread of the live register tiles, and shared bytes per block."""
    order: list = []
    spans: list = []            # loops: (first, last) positions

    def visit(block):
        for ins in block.instrs:
            p = len(order)
            order.append(ins)
            for b in ins.blocks():
                visit(b)
            if ins.blocks():
                spans.append((p, len(order) - 1))
    visit(kernel.body)
    pos = {id(ins): i for i, ins in enumerate(order)}
    first, last, types = {}, {}, {}
    for ins in order:
        p = pos[id(ins)]
        defined = list(ins.results) + (list(ins.carried) if isinstance(ins, N.For) else [])
        for v in defined:
            if v.is_tile:
                first.setdefault(v.id, p)
                types[v.id] = v.type
        for v in ins.operands + (tuple(ins.yields) if isinstance(ins, N.For) else ()) + (
                tuple(ins.then_yields) + tuple(ins.else_yields) if isinstance(ins, N.If) else ()):
            if v.is_tile:
                q = p if not ins.blocks() else max(p, max((e for s, e in spans if s == p), default=p))
                last[v.id] = max(last.get(v.id, q), q)
    for vid, d in first.items():
        u = last.get(vid, d)
        for s, e in spans:
            if s <= u <= e and d < s:
                u = max(u, e)
        last[vid] = u
    peak_r = peak_s = 0
    n_shared = 0
    for p in range(len(order)):
        r = s = 0
        for vid, d in first.items():
            if d <= p <= last[vid]:
                t = types[vid]
                if t.space == SHARED:
                    s += tile_bytes(t)
                else:
                    r += regs_per_thread(t, threads)
        peak_r, peak_s = max(peak_r, r), max(peak_s, s)
    n_shared = sum(1 for t in types.values() if t.space == SHARED)
    return (f"estimate: {peak_r} registers of 32 bits per thread for the live register tiles at the peak "
            f"(scalars and addresses not counted); {peak_s} B of shared memory per block at the peak "
            f"({n_shared} shared tile{'s' if n_shared != 1 else ''})")
