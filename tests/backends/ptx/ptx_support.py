"""What the ptx backend's tests share: the toolchain and launch modules, the skip markers for a machine
without llvmlite's NVPTX target or ptxas, the repository root, and small NVPTX kernels built by hand (thread
``t`` reads its words from ``in`` and writes its results to ``out``) with the PTX instruction counts of their
bodies."""
from __future__ import annotations

import importlib
import pathlib
import re

import pytest
from llvmlite import ir

# by module name: the package's ``toolchain()`` (the backend contract) may shadow the submodule attribute
toolchain = importlib.import_module("vmlang.backends.ptx.toolchain")
launch = importlib.import_module("vmlang.backends.ptx.launch")

ROOT = pathlib.Path(__file__).resolve().parents[3]


needs_nvptx = pytest.mark.skipif(not toolchain.nvptx_available(), reason="this llvmlite has no NVPTX target")
needs_ptxas = pytest.mark.skipif(not (toolchain.nvptx_available() and toolchain.ptxas_available()),
                                 reason="needs llvmlite's NVPTX target and ptxas (CUDA toolkit)")

I32, I64 = ir.IntType(32), ir.IntType(64)

#: PTX instructions that move data or compute addresses, not the work a decoding test counts
ADDRESS_OPS = ("ld.", "st.", "mov.", "ret", "cvta", "mul.wide", "add.s64", "shl.b64", "mad.wide", "cvt.u64")


def thread_kernel(mod: ir.Module, name: str):
    """A kernel ``name(ptr addrspace(1) in, ptr addrspace(1) out)`` of up to 128 threads in ``mod``:
    ``(builder at its entry, in, out, t)`` with ``t`` the thread index as an i64."""
    gptr = ir.PointerType(addrspace=1)
    tid = mod.globals.get("llvm.nvvm.read.ptx.sreg.tid.x") or ir.Function(
        mod, ir.FunctionType(I32, []), name="llvm.nvvm.read.ptx.sreg.tid.x")
    fn = ir.Function(mod, ir.FunctionType(ir.VoidType(), [gptr, gptr]), name=name)
    toolchain.mark_kernel(fn, max_threads=128)
    pin, pout = fn.args
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    return b, pin, pout, b.zext(b.call(tid, []), I64)


def loop_text(ptx: str) -> str:
    """The text of the first loop of ``ptx``: from a label to the branch back to it."""
    for m in re.finditer(r"^(\$L__BB\d+_\d+):$", ptx, re.M):
        back = re.search(r"bra(?:\.uni)?\s+" + re.escape(m.group(1)) + ";", ptx[m.end():])
        if back:
            return ptx[m.end():m.end() + back.start()]
    raise AssertionError("no loop")


def entry_instructions(ptx: str, name: str) -> list[str]:
    """The instructions of kernel ``name``'s body in ``ptx`` (no directives, comments, labels, braces)."""
    m = re.search(r"\.entry " + re.escape(name) + r"\(.*?\n\{\n(.*?)\n\}", ptx, re.S)
    assert m, name
    lines = (s.strip() for s in m.group(1).splitlines())
    return [s for s in lines if s and not s.startswith((".", "//", "$", "{", "}"))]


# ------------------------------------------------------------------------------ barriers only some threads reach
# A CTA barrier (``bar.sync`` is ``.aligned``: every thread of the block must run the same barrier instruction)
# in code that only some threads run hangs the block. A taint analysis over the PTX text: registers computed
# from ``%tid``, ``%laneid`` or ``%warpid`` vary, bit by bit of the thread index (a butterfly reduction's
# steps remove the lane bits they combine); a forward ``@%p bra`` on a varying predicate skips code some
# threads run. A test tool, not a compiler check: values made uniform through shared memory (a cross-warp
# reduction's partials, each thread reading its lane's slot of every warp) still count as varying, so a
# multi-warp kernel's ``if`` on a reduced scalar would be a false hit.
_REG = re.compile(r"%tid\.[xyz]|%laneid|%warpid|%[a-z]+\d*")
_BARRIER = ("bar.sync", "barrier.sync", "bar.arrive", "bar.red", "barrier.red")


def _statements(line: str) -> list[str]:
    """The PTX statements of one line (an inline-asm ``{ ...; ...; }`` line holds several)."""
    body = line.split("//", 1)[0].strip().strip("{}").strip()
    return [s.strip() for s in body.split(";") if s.strip() and not s.strip().startswith(".reg")]


#: where a value may vary: bits 0..4 the lane bits, bit 5 "between the warps of the block"
_LANES, _WARPS = 0b011111, 0b100000
_SEEDS = {"%tid.x": _LANES | _WARPS, "%tid.y": _LANES | _WARPS, "%tid.z": _LANES | _WARPS,
          "%laneid": _LANES, "%warpid": _WARPS}
#: operations f with f(a, b) == f(b, a): a butterfly step ``f(x, shfl.bfly(x, 2**k))`` no longer varies on bit k
_SYMMETRIC = ("add", "mul", "max", "min", "and", "or", "xor")


def _variation(stmts: list[str]) -> dict[str, int]:
    """For each register, the bits (:data:`_LANES`, :data:`_WARPS`) of the thread index its value may vary on,
    to a fixed point across loops. Sources' variations combine; loads take their address's; a shuffle
    ``shfl.sync.bfly d, x, 2**k`` varies as ``x`` does, and a symmetric operation of ``x`` and that ``d`` (one
    butterfly step of a reduction) no longer on bit k -- so a value all-reduced over the warp's lanes (5
    steps) varies on no lane bit, as the branches of a vmlang ``if`` on a reduced scalar need."""
    var: dict[str, int] = {}
    bfly: dict[str, tuple[str, int]] = {}
    changed = True
    while changed:
        changed = False
        for s in stmts:
            guard, _, rest = s.partition(" ") if s.startswith("@") else ("", "", s)
            op, _, args = rest.partition(" ")
            if not args or op.startswith(("bra", "ret", "st.", "bar", "barrier")):
                continue
            dest, _, srcs = args.partition(",")
            if dest.strip().startswith("{"):                  # a vector destination {%r1, %r2}
                dest, _, srcs = args.partition("}")
            outs = _REG.findall(dest)
            ins = _REG.findall(srcs) + _REG.findall(guard)
            v = 0
            for r in ins:
                v |= _SEEDS.get(r, var.get(r, 0))
            operands = [a.strip() for a in srcs.split(",")]
            if op.startswith("shfl.sync.bfly") and len(outs) == 1 and len(operands) >= 2:
                lane = operands[1]
                if lane.isdigit() and int(lane) in (1, 2, 4, 8, 16):
                    bfly[outs[0]] = (operands[0], int(lane))
                else:
                    v |= _LANES
            elif op.split(".")[0] in _SYMMETRIC and len(operands) == 2:
                a, b = operands
                for x, y in ((a, b), (b, a)):
                    if bfly.get(y, ("", 0))[0] == x:
                        v = var.get(x, 0) & ~bfly[y][1]
            for r in outs:
                if var.get(r, 0) | v != var.get(r, 0):
                    var[r] = var.get(r, 0) | v
                    changed = True
    return var


def thread_dependent(ptx: str) -> set[str]:
    """The registers (and predicates) whose value may differ between the threads of a block: those with a
    lane bit in their :func:`_variation`, or the warp bit when the kernel's block (``.maxntid``) has more
    than one warp. A branch on one of them sends the block's threads different ways."""
    stmts = [s for line in ptx.splitlines() for s in _statements(line)]
    m = re.search(r"\.maxntid (\d+)", ptx)
    bits = _LANES | (_WARPS if m is None or int(m.group(1)) > 32 else 0)
    return {r for r, v in _variation(stmts).items() if v & bits}


def barriers_under_thread_branches(ptx: str) -> list[str]:
    """``bar.sync`` (and the other CTA barriers) that only some threads can reach: inside the code a forward
    ``@%p bra`` skips on a thread-dependent predicate (:func:`thread_dependent`), or in the other arm that a
    ``bra.uni`` at the end of that code jumps over. ``bar.sync`` is ``.aligned``: every thread of the block
    must run the same instruction, or the block waits forever. Each hit is ``"label: instruction"``."""
    lines = [l.split("//", 1)[0].strip() for l in ptx.splitlines()]
    where = {l[:-1]: i for i, l in enumerate(lines) if l.endswith(":") and l.startswith("$")}
    tainted = thread_dependent(ptx)
    hits = []
    for i, l in enumerate(lines):
        m = re.match(r"@!?(%p\d+)\s+bra(?:\.uni)?\s+(\$\w+);", l)
        if not m or m.group(1) not in tainted or where.get(m.group(2), -1) <= i:
            continue
        end = where[m.group(2)]
        arms = [(i + 1, end)]
        j = end - 1
        while j > i and not lines[j]:
            j -= 1
        e = re.match(r"bra(?:\.uni)?\s+(\$\w+);", lines[j])
        if e and where.get(e.group(1), -1) > end:         # if / else: the jump over the other arm
            arms.append((end + 1, where[e.group(1)]))
        for a, b in arms:
            hits += [f"{m.group(2)}: {lines[k]}" for k in range(a, b) if lines[k].startswith(_BARRIER)]
    return hits

