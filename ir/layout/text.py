"""Reading any layout from text, and drawing layouts as text grids (terminals, error messages).

``parse_any`` accepts the three text forms (and the names of the built-in fragments):

* ``(4,8):(8,1)``: a plain layout (coordinate -> offset);
* ``Sw<3,4,3> o (8,64):(64,1) @16b``: a memory layout with element bits and an optional swizzle;
* ``((4,8),(2,2,2)):((32,1),(16,8,128)) -> (16,16)``: a register (thread, value) layout.

``grid`` turns any of them into the rows and columns of a picture: a rank-1 domain is one row, a
rank-2 (or higher) domain has ``size(mode 0)`` rows; a register layout is drawn over its tile.
Cells hold the offset (plain layouts), the physical element offset after the swizzle (memory
layouts; a byte address ``b<n>`` when the swizzle splits elements) or ``t<thread>:v<value>``
(register layouts; ``+k`` when ``k`` more threads hold a replicated element).

>>> print(render_text(Layout((2, 4), (4, 1))))
(2,4):(4,1)
   0 1 2 3
  0 0 1 2 3
  1 4 5 6 7
>>> print(render_text(parse_any("(2,2):(2,1) -> (2,2)")))
(2,2):(2,1) -> (2,2)
       0     1
  0 t0:v0 t1:v0
  1 t0:v1 t1:v1
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import LayoutError
from . import inttuple as it
from .core import Layout
from .swizzle import MemLayout
from .tv import TVLayout
from . import tv as _tv

NAMED = {
    "mma_m16n8k16_a": _tv.MMA_M16N8K16_A,
    "mma_m16n8k16_b": _tv.MMA_M16N8K16_B,
    "mma_m16n8k16_c": _tv.MMA_M16N8K16_C,
}


def parse_any(text: str):
    """A Layout, MemLayout or TVLayout from its text form (or a built-in fragment name)."""
    key = text.strip().lower().replace(".", "_")
    if key in NAMED:
        return NAMED[key]
    if "->" in text:
        return TVLayout.parse(text)
    if "@" in text or text.lstrip().startswith("Sw"):
        return MemLayout.parse(text)
    return Layout.parse(text)


@dataclass(frozen=True, slots=True)
class Grid:
    """What a picture shows: ``labels[r][c]``, a colour key per cell (``None``: empty cell) and
    what the key means (``"thread"``, ``"bank"`` or ``"offset"``)."""

    title: str
    labels: tuple
    keys: tuple
    key_kind: str
    key_max: int

    @property
    def rows(self) -> int:
        return len(self.labels)

    @property
    def cols(self) -> int:
        return len(self.labels[0]) if self.labels else 0


def _rows_cols(shape) -> tuple:
    if it.is_int(shape) or len(shape) == 1:
        return 1, it.product(shape)
    r = it.product(shape[0])
    return r, it.product(shape) // r


def grid(x, elem_bits: int | None = None, shared: bool | None = None) -> Grid:
    """The cells of the picture of ``x`` (Layout, MemLayout or TVLayout)."""
    if isinstance(x, str):
        x = parse_any(x)
    if isinstance(x, TVLayout):
        rows, cols = _rows_cols(x.tile)
        owners = x.owners()
        labels, keys = [], []
        for r in range(rows):
            lr, kr = [], []
            for c in range(cols):
                own = owners[r + rows * c]
                if not own:
                    lr.append(".")
                    kr.append(None)
                    continue
                t, v = own[0]
                extra = len({o[0] for o in own}) - 1
                lr.append(f"t{t}:v{v}" + (f"+{extra}" if extra else ""))
                kr.append(t)
            labels.append(tuple(lr))
            keys.append(tuple(kr))
        return Grid(str(x), tuple(labels), tuple(keys), "thread", x.threads)
    if isinstance(x, Layout):
        x = MemLayout(x, elem_bits) if elem_bits else x
    elif isinstance(x, MemLayout):
        if elem_bits is not None and elem_bits != x.elem_bits:
            raise LayoutError(f"show: elem_bits={elem_bits} but {x} says {x.elem_bits}")
    else:
        raise LayoutError(f"cannot draw {x!r}: expected a Layout, MemLayout, TVLayout or their text")
    layout = x.layout if isinstance(x, MemLayout) else x
    rows, cols = _rows_cols(layout.shape)
    if isinstance(x, MemLayout):
        if shared is None:
            shared = x.swizzle is not None
        bt = x.bit_table()
        byte = bt[:, 0] >> 3
        whole = bool((bt == bt[:, :1] + np.arange(x.elem_bits)).all()
                     and (bt[:, 0] % x.elem_bits == 0).all())
        vals = [int(b) // x.elem_bits if whole else None for b in bt[:, 0]]
        text = [str(v) if v is not None else f"b{int(b)}" for v, b in zip(vals, byte)]
        key = [int(b) // 4 % 32 for b in byte] if shared else [int(b) for b in bt[:, 0]]
        kind, kmax = ("bank", 32) if shared else ("offset", int(bt[:, 0].max()) + 1)
        title = str(x) + ("  (colour = shared-memory bank)" if shared else "")
    else:
        t = layout.table()
        text = [str(int(v)) for v in t]
        key = [int(v) for v in t]
        kind, kmax, title = "offset", layout.cosize, str(layout)
    labels = tuple(tuple(text[r + rows * c] for c in range(cols)) for r in range(rows))
    keys = tuple(tuple(key[r + rows * c] for c in range(cols)) for r in range(rows))
    return Grid(title, labels, keys, kind, kmax)


def render_text(x, elem_bits: int | None = None, shared: bool | None = None, max_rows: int = 64,
                max_cols: int = 32) -> str:
    """A text grid with row and column numbers (large grids are cut, with a note)."""
    g = grid(x, elem_bits, shared)
    rows, cols = min(g.rows, max_rows), min(g.cols, max_cols)
    w = max([len(s) for row in g.labels[:rows] for s in row[:cols]] + [len(str(cols - 1))])
    rw = len(str(rows - 1))
    lines = [g.title, " " * (rw + 2) + " ".join(str(c).rjust(w) for c in range(cols))]
    for r in range(rows):
        lines.append(str(r).rjust(rw + 2) + " " + " ".join(s.rjust(w) for s in g.labels[r][:cols]))
    if rows < g.rows or cols < g.cols:
        lines.append(f"... ({g.rows} x {g.cols} cells, showing {rows} x {cols})")
    return "\n".join(lines)
