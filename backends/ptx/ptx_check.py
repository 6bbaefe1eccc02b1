"""Checks of generated PTX text that the backend runs on every kernel it compiles.

:func:`barriers_under_thread_branches`: a CTA barrier (``bar.sync`` is ``.aligned``: every thread of the block
must run the same barrier instruction) inside code that only some threads run would hang the block. The
lowering emits each barrier where every thread runs it and marks the call ``convergent``, so LLVM may not
move it under a branch; this scan turns any such PTX -- a compiler bug -- into a clear error at compile time
instead of a GPU that never returns. It is a taint analysis over the text: registers computed from ``%tid``,
``%laneid`` or ``%warpid`` (to a fixed point, across loops) are thread-dependent, and so are predicates
computed from them; a forward ``@%p bra`` on such a predicate skips code some threads run, and the
``bra.uni`` at the end of that code, if any, jumps over the other arm.
"""
from __future__ import annotations

import re

_REG = re.compile(r"%tid\.[xyz]|%laneid|%warpid|%[a-z]+\d*")
_BARRIER = ("bar.sync", "barrier.sync", "bar.arrive", "bar.red", "barrier.red")


def _statements(line: str) -> list[str]:
    """The PTX statements of one line (an inline-asm ``{ ...; ...; }`` line holds several)."""
    body = line.split("//", 1)[0].strip().strip("{}").strip()
    return [s.strip() for s in body.split(";") if s.strip() and not s.strip().startswith(".reg")]


def thread_dependent(ptx: str) -> set[str]:
    """The registers (and predicates) whose value may differ between the threads of a block: computed,
    directly or through any chain of instructions (loads included, to a fixed point across loops), from
    ``%tid``, ``%laneid`` or ``%warpid``. A branch on one of them sends the block's threads different ways."""
    stmts = [s for line in ptx.splitlines() for s in _statements(line)]
    tainted: set[str] = set()
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
            outs = set(_REG.findall(dest))
            ins = set(_REG.findall(srcs)) | set(_REG.findall(guard))
            if any(r.startswith(("%tid", "%laneid", "%warpid")) or r in tainted for r in ins) and not outs <= tainted:
                tainted |= outs
                changed = True
    return tainted


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


__all__ = ["thread_dependent", "barriers_under_thread_branches"]
