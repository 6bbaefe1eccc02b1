"""``vm explain FILE.vm [-D NAME=VALUE ...]``: what the compiler passes decide for a kernel, and why.

Prints the report of :func:`vmlang.passes.pipeline` (placement, layout inference, vectorization; see
docs/ptx.md). ``-D`` sets compile-time parameters like ``vm compile`` (a dtype parameter takes a dtype
name: ``-D T=nf4``); the other ``-D`` values are sizes and scalar arguments, and each that is divisible
by 16 adds the fact ``assume(n % 16 == 0)`` exactly as a call of the kernel would specialise. ``--ir``
also prints the IR after the passes; ``--arch sm_90`` decides for that GPU (a dot on warpgroup MMA).

    $ vm explain stdlib/kernels/qmatmul.vm -D T=int4 -D N=4096 -D K=4096

"""
from __future__ import annotations

from vmlang.cli import command
from vmlang.ir.errors import VMError

from .lang import _defines, _parse_defines, _with_source


def _configure(p) -> None:
    p.add_argument("file")
    _defines(p)
    p.add_argument("--ir", action="store_true", help="also print the IR after the passes (with layouts)")
    p.add_argument("--arch", help="the GPU architecture to decide for, e.g. sm_90 (a dot on warpgroup MMA); "
                                  "default: none in particular")


@command("explain", "explain what the compiler passes decide for a .vm kernel (placement, layouts, vectors)",
         configure=_configure)
def _explain(args) -> int:
    import vmlang.api as api
    try:
        defines = _parse(args.defines)
        k = api.load(args.file, args.kernel) if args.kernel else api.load(args.file)
        if not hasattr(k, "explain"):
            names = ", ".join(k.kernels)
            raise VMError(f"{args.file} defines several kernels ({names}): choose one with --kernel")
        consts = {n: v for n, v in defines.items() if n in k.const_names}
        sizes = {n: v for n, v in defines.items() if n not in consts and isinstance(v, int)}
        print(k.explain(sizes=sizes, arch=args.arch, **consts))
        if args.ir:
            from vmlang.ir.printer import print_kernel
            from vmlang.passes import pipeline
            base = k.ir(**k.resolve_consts(dict(consts), (), {}))
            from vmlang.runtime.kernel import assumed_facts
            facts = assumed_facts(k.divisibility(base, _Sizes(sizes)))
            print()
            from vmlang.passes.program import with_arch
            print(print_kernel(pipeline(k._lower(dict(base.consts), facts), with_arch(None, args.arch)).kernel), end="")
    except VMError as e:
        raise _with_source(e, args.file)
    return 0


def _parse(items: list[str]) -> dict:
    """``-D`` values: numbers, or dtype names for dtype parameters (``-D T=int4``)."""
    out = {}
    for item in items:
        name, eq, text = item.partition("=")
        try:
            out.update(_parse_defines([item]))
        except VMError:
            if not eq or not name.strip().isidentifier() or not text.strip():
                raise
            out[name.strip()] = text.strip()          # resolved as a dtype name by the kernel
    return out


class _Sizes:
    def __init__(self, sizes):
        self.sizes = sizes
