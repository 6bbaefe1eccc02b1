"""``vm show LAYOUT [-o FILE]``: draw a layout as a text grid, or as a PNG/SVG picture."""
from __future__ import annotations

from vmlang.cli import command

_EXAMPLES = ('e.g. "(4,8):(8,1)", "Sw<3,4,3> o (8,64):(64,1) @16b", '
             '"((4,8),(2,2,2)):((32,1),(16,8,128)) -> (16,16)" or mma_m16n8k16_a')


def _configure(p) -> None:
    p.add_argument("layout", help=f"the layout in text form, {_EXAMPLES}")
    p.add_argument("-o", "--output", metavar="FILE",
                   help="write a picture (.png, .svg or .pdf); without it print a text grid")
    p.add_argument("--bits", type=int, default=None, metavar="N",
                   help="element bits of a plain memory layout (needed for bank colours)")
    p.add_argument("--shared", action="store_true", default=None,
                   help="colour memory cells by shared-memory bank (default for swizzled layouts)")
    p.add_argument("--title", default=None, help="picture title (default: the layout text)")


@command("show", "draw a layout as a grid (text, or a PNG/SVG picture with -o)", configure=_configure)
def _show(args) -> int:
    from vmlang.ir.errors import LayoutError
    from vmlang.show import show
    shared = args.shared
    if shared and args.bits is None and "@" not in args.layout and not args.layout.lstrip().startswith("Sw"):
        raise LayoutError("--shared needs the element size: add --bits N or write the layout as '... @16b'")
    out = show(args.layout, args.output, elem_bits=args.bits, shared=shared, title=args.title)
    if args.output:
        print(f"wrote {out}")
    else:
        print(out)
    return 0
