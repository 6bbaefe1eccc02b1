"""Pictures of layouts: ``vmlang.show(layout, "tile.png")`` (PNG, SVG or PDF by suffix).

A layout is drawn as a grid of tile cells (see :func:`vmlang.ir.layout.text.grid`):

* register layouts (``TVLayout``): each cell says which ``t<thread>:v<value>`` holds it, one
  colour per thread (the hue follows the lane, darker shades for later warps);
* memory layouts (``Layout`` / ``MemLayout``): each cell holds its element offset; with
  ``shared=True`` (the default for a swizzled layout) the colour is the shared-memory bank of the
  element's first byte, so bank conflicts show as repeated colours down a column.

Without ``path`` the text rendering is returned instead (for terminals and error messages).
matplotlib is imported only when a picture is written, and never through pyplot, so this works
headless and leaves the caller's backend alone.

>>> print(show("(2,3):(3,1)"))
(2,3):(3,1)
   0 1 2
  0 0 1 2
  1 3 4 5
"""
from __future__ import annotations

import colorsys
import os

from .ir.errors import LayoutError

_FORMATS = (".png", ".svg", ".pdf")


def _colour(key, kind: str, key_max: int):
    if key is None:
        return (0.96, 0.96, 0.96)
    if kind == "thread":
        lane, warp = key % 32, key // 32
        hue = (lane * 13 % 32) / 32
        val = (1.0, 0.86, 0.74, 0.93)[warp % 4]
        return colorsys.hsv_to_rgb(hue, 0.42 + 0.08 * (warp % 2), val)
    if kind == "bank":
        return colorsys.hsv_to_rgb((key * 7 % 32) / 32, 0.38, 1.0)
    frac = key / max(1, key_max - 1)
    return colorsys.hsv_to_rgb(0.58, 0.08 + 0.45 * frac, 1.0 - 0.1 * frac)


def show(layout, path=None, *, elem_bits: int | None = None, shared: bool | None = None,
         title: str | None = None, dpi: int = 110):
    """Draw ``layout`` (a layout object or its text) to ``path``; return the path written, or the
    text rendering when ``path`` is None."""
    from .ir.layout.text import grid, parse_any, render_text
    if isinstance(layout, str):
        layout = parse_any(layout)
    if path is None:
        return render_text(layout, elem_bits, shared)
    suffix = os.path.splitext(str(path))[1].lower()
    if suffix not in _FORMATS:
        raise LayoutError(f"cannot write a picture to {str(path)!r}: use a .png, .svg or .pdf file name")
    g = grid(layout, elem_bits, shared)

    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    longest = max([len(s) for row in g.labels for s in row] + [1])
    font = 7.5 if longest > 6 else 8.5
    cw = max(0.34, 0.072 * longest * font / 8 + 0.14)
    ch = 0.3
    margin_l, margin_t, margin_b = 0.45, 0.75, 0.2
    heading = title or g.title
    width = max(margin_l + g.cols * cw + 0.2, 0.35 + 0.084 * len(heading))
    height = margin_t + g.rows * ch + margin_b
    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, width)
    ax.set_ylim(height, 0)
    ax.axis("off")
    for r in range(g.rows):
        for c in range(g.cols):
            x, y = margin_l + c * cw, margin_t + r * ch
            ax.add_patch(Rectangle((x, y), cw, ch, facecolor=_colour(g.keys[r][c], g.key_kind, g.key_max),
                                   edgecolor="white", linewidth=0.8))
            ax.text(x + cw / 2, y + ch / 2, g.labels[r][c], ha="center", va="center", fontsize=font,
                    family="monospace")
    for c in range(g.cols):
        ax.text(margin_l + (c + 0.5) * cw, margin_t - 0.1, str(c), ha="center", va="bottom", fontsize=7,
                color="0.35")
    for r in range(g.rows):
        ax.text(margin_l - 0.08, margin_t + (r + 0.5) * ch, str(r), ha="right", va="center", fontsize=7,
                color="0.35")
    ax.text(0.12, 0.3, heading, ha="left", va="center", fontsize=10, family="monospace")
    meta = {"svg": {"Date": None}, "png": {"Software": None}, "pdf": {"CreationDate": None}}
    with matplotlib.rc_context({"svg.hashsalt": "vmlang", "svg.fonttype": "none"}):
        fig.savefig(str(path), dpi=dpi, metadata=meta[suffix[1:]])
    return str(path)
