"""The unit the passes pass along: :class:`Program` = kernel + facts + report, and the pipeline.

A pass is a function ``run(program, options) -> Program``. It may rewrite the kernel (instructions are
frozen dataclasses, so it builds new ones with :func:`map_instr` / :func:`rebuild`), add **facts**
(decisions keyed by an instruction of the *final* kernel, e.g. a ``VectorPlan`` per ``Load``) and
append :class:`Note` lines to the **report** saying what it decided and why.

>>> import vmlang as vm
>>> k = vm.compile_source('''
... kernel double(x: f32[N] global, y: f32[N] global) grid(cdiv(N, 64)) {
...     i = block.x * 64;
...     store(y[i : +64], load(x[i : +64]) * 2.0);
... }''')
>>> p = pipeline(k)
>>> sorted({n.pass_name for n in p.report})
['layout', 'placement', 'vectorize']
>>> [type(i).__name__ for i in p.facts]
['Load', 'Store']

Rebuilding with re-typed values: :func:`rebuild` applies a value map (old value or id -> new value)
to every operand and result, recursively into ``For``/``If`` blocks; each new instruction is
re-validated by its constructor.

>>> from vmlang.ir import nodes as N
>>> t = next(i for i in N.walk(k.body) if isinstance(i, N.Load)).out
>>> k2 = rebuild(k, {t: N.Value(t.id, t.type.with_(space="register"), t.name)})
>>> next(i for i in N.walk(k2.body) if isinstance(i, N.Load)).out.type.space
'register'
"""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Callable, Iterator, Optional

from vmlang.ir import nodes as N
from vmlang.ir.errors import SourceLoc, VerifyError, VMError


# ------------------------------------------------------------------------------------------ report
@dataclass(frozen=True, slots=True)
class Note:
    """One line of the report: which pass, where in the source (may be None) and what it decided."""
    pass_name: str
    loc: Optional[SourceLoc]
    text: str

    def __str__(self) -> str:
        where = f"{_short_loc(self.loc)}: " if self.loc else ""
        return f"{where}{self.text}"


def _short_loc(loc: SourceLoc) -> str:
    import os
    return f"{os.path.basename(loc.file)}:{loc.line}:{loc.column}"


def where(ins) -> str:
    """`` at file.vm:line:col`` of instruction ``ins`` for a report line ("" when it has no location)."""
    loc = getattr(ins, "loc", None)
    return f" at {_short_loc(loc)}" if loc else ""


def op_name(ins) -> str:
    """The instruction's name in reports: its class name in lower case (``ExpandDims`` -> ``expanddims``)."""
    return type(ins).__name__.lower()


class Facts(Mapping):
    """A read-only ``Instr -> decision`` mapping (instructions hash structurally)."""
    __slots__ = ("_d",)

    def __init__(self, d=None):
        object.__setattr__(self, "_d", dict(d or {}))

    def __getitem__(self, k):
        return self._d[k]

    def __iter__(self) -> Iterator:
        return iter(self._d)

    def __len__(self) -> int:
        return len(self._d)

    def __setattr__(self, *_):
        raise AttributeError("Facts is read-only")

    def __repr__(self) -> str:
        return f"Facts({len(self._d)} decisions)"

    def merged(self, more: Mapping) -> "Facts":
        d = dict(self._d)
        d.update(more)
        return Facts(d)

    def of_type(self, cls) -> dict:
        """The decisions that are instances of ``cls``."""
        return {k: v for k, v in self._d.items() if isinstance(v, cls)}


@dataclass(frozen=True)
class Program:
    """``kernel`` (after the passes so far), ``facts`` (Instr -> decision) and the ``report`` notes."""
    kernel: N.Kernel
    facts: Facts = field(default_factory=Facts)
    report: tuple = ()

    def with_(self, kernel: N.Kernel | None = None, facts: Mapping | None = None, notes=()) -> "Program":
        """A new program: another kernel, more facts (merged), more notes (appended)."""
        f = self.facts if facts is None else self.facts.merged(facts)
        return Program(self.kernel if kernel is None else kernel, f, self.report + tuple(notes))

    def notes(self, pass_name: str) -> list[Note]:
        return [n for n in self.report if n.pass_name == pass_name]


# ------------------------------------------------------------------------------------------ options
@dataclass(frozen=True)
class PassOptions:
    """Knobs of the passes (any object with these attributes works too, e.g. CompileOptions)."""
    #: more 32-bit registers per thread than this for one tile: place it in shared memory
    max_regs_per_thread: int = 64
    #: dot operands loaded from global memory of at least this many bytes are staged in shared memory
    dot_shared_min_bytes: int = 1024
    #: alignment the launcher guarantees for tensor base addresses
    base_align_bytes: int = 16
    #: the target GPU architecture (``sm_80``, ``sm_90`` ...; None: none in particular). On ``sm_90`` and
    #: ``sm_90a`` a dot whose operands are in shared memory is laid out for warpgroup MMA (:mod:`.wgmma`)
    arch: str | None = None
    #: use warpgroup MMA where the architecture has it (False: mma.sync layouts everywhere)
    wgmma: bool = True


def with_arch(options, arch: str | None) -> dict:
    """The pass options of ``options`` (a mapping, a CompileOptions or None) as a dict, with ``arch`` set
    (the target a backend resolved, e.g. the current GPU's when the options leave it open)."""
    out = {f.name: option(options, f.name) for f in dataclasses.fields(PassOptions)}
    out["arch"] = arch
    return out


def option(options, name: str):
    """``options.name`` if set there, else the :class:`PassOptions` default."""
    if isinstance(options, Mapping):
        v = options.get(name)
    else:
        v = getattr(options, name, None)
    return getattr(PassOptions, name) if v is None else v


# ------------------------------------------------------------------------------------------ pipeline
PASSES = ("placement", "layout", "vectorize")


def pipeline(kernel: N.Kernel, options=None) -> Program:
    """Run placement, layout and vectorize in order, verifying the IR after each pass."""
    import importlib
    from vmlang.ir.verify import verify
    try:
        verify(kernel)
    except VMError as e:
        raise VerifyError(f"the kernel given to the passes is malformed: {e.message}", e.loc) from None
    program = Program(kernel)
    for name in PASSES:
        mod = importlib.import_module(f"vmlang.passes.{name}")
        program = mod.run(program, options)
        try:
            verify(program.kernel)
        except VMError as e:
            raise VerifyError(f"after pass {name}: {e.message}", e.loc) from None
    return program


def format_report(program: Program) -> str:
    """The report as text: a header, then the notes grouped by pass in pipeline order."""
    k = program.kernel
    lines = [f"kernel {k.name}: {k.warps} warps ({k.warps * 32} threads)"
             + (f", {', '.join(f'{n} = {_cv(v)}' for n, v in k.consts)}" if k.consts else "")]
    order = list(PASSES) + sorted({n.pass_name for n in program.report} - set(PASSES))
    for name in order:
        notes = program.notes(name)
        if not notes:
            continue
        lines.append(f"{name}:")
        for n in notes:
            lines.append(f"  {n}")
    return "\n".join(lines)


def _cv(v) -> str:
    return getattr(v, "name", None) or str(v)


# ------------------------------------------------------------------------------------------ rebuilding
def map_instr(ins: N.Instr, value: Callable[[N.Value, str], N.Value],
              block: Callable[[N.Block], N.Block] | None = None) -> N.Instr:
    """``ins`` with every value ``v`` in field ``f`` replaced by ``value(v, f)`` (index items and
    tuples included) and every nested block by ``block(b)``; the constructor re-validates it.

    Tuple fields pass ``"inits[0]"``-style names so a caller can tell the positions apart.
    """
    changes = {}
    for f in dataclasses.fields(ins):
        if f.name == "loc":
            continue
        x = getattr(ins, f.name)
        if isinstance(x, N.Value):
            y = value(x, f.name)
        elif isinstance(x, N.Block):
            y = block(x) if block is not None else x
        elif isinstance(x, tuple):
            y = tuple(_map_item(e, value, f"{f.name}[{i}]") for i, e in enumerate(x))
        else:
            continue
        if isinstance(x, tuple) and any(a is not b for a, b in zip(x, y)) or not isinstance(x, tuple) and y is not x:
            changes[f.name] = y
    return dataclasses.replace(ins, **changes) if changes else ins


def _map_item(e, value, name):
    if isinstance(e, N.Value):
        return value(e, name)
    if isinstance(e, N.At):
        x = value(e.index, name)
        return e if x is e.index else N.At(x)
    if isinstance(e, N.Range):
        x = value(e.start, name)
        return e if x is e.start else N.Range(x, e.length)
    return e


def rebuild_block(block: N.Block, vmap: Mapping) -> N.Block:
    """``block`` with the value map applied to every instruction (recursively)."""
    m = _by_id(vmap)

    def val(v, _f):
        return m.get(v.id, v)
    instrs = tuple(map_instr(i, val, lambda b: rebuild_block(b, m)) for i in block.instrs)
    return block if all(a is b for a, b in zip(instrs, block.instrs)) else N.Block(instrs)


def rebuild(kernel: N.Kernel, vmap: Mapping) -> N.Kernel:
    """``kernel`` with values replaced: ``vmap`` maps an old value (or its id) to the new value (same
    id, usually a new type). Parameters are not replaced."""
    return dataclasses.replace(kernel, body=rebuild_block(kernel.body, vmap))


def _by_id(vmap: Mapping) -> dict:
    return {(k.id if isinstance(k, N.Value) else k): v for k, v in vmap.items()}


def all_values(kernel: N.Kernel) -> Iterator[N.Value]:
    """Every value the kernel defines: parameters, results, loop variables and carried values."""
    yield from kernel.params
    for ins in N.walk(kernel.body):
        if isinstance(ins, N.For):
            yield ins.var
            yield from ins.carried
        yield from ins.results


class Ids:
    """Fresh value ids above every id the kernel uses (the builder numbers from 0 upward)."""

    def __init__(self, kernel: N.Kernel):
        self.next = max((v.id for v in all_values(kernel)), default=-1) + 1

    def value(self, type_, name: str = "") -> N.Value:
        v = N.Value(self.next, type_, name)
        self.next += 1
        return v


def definitions(kernel: N.Kernel) -> dict:
    """value id -> the instruction defining it (For for loop variables and carried values; None for
    parameters)."""
    out = {p.id: None for p in kernel.params}
    for ins in N.walk(kernel.body):
        if isinstance(ins, N.For):
            out[ins.var.id] = ins
            for c in ins.carried:
                out[c.id] = ins
        for r in ins.results:
            out[r.id] = ins
    return out


_DEFINING = ("out", "var", "carried", "outs")


def uses(kernel: N.Kernel) -> dict:
    """value id -> list of ``(instr, field name)`` using it (For yields and If yields included)."""
    out: dict = {}

    def add(v, ins, f):
        if f.split("[")[0] not in _DEFINING:
            out.setdefault(v.id, []).append((ins, f))
    for ins in N.walk(kernel.body):
        map_instr(ins, lambda v, f, ins=ins: (add(v, ins, f), v)[1], None)
    return out


def value_label(v: N.Value) -> str:
    """How notes name a value: its source name and id, ``wt%14``."""
    return f"{v.name or 'v'}%{v.id}"
