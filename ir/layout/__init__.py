"""vmlang.ir.layout: the shape:stride layout algebra (docs/layouts.md).

Modules: ``inttuple`` (hierarchical int tuples), ``core`` (``Layout``), ``algebra`` (coalesce,
filter, flatten, fit, predicates), ``composition`` (compose, complement, inverses), ``divide``
(divides and products), ``bits`` (recast, max_common_vector), ``swizzle`` (``Swizzle``,
``MemLayout``), ``tv`` (register layouts, mma fragments), ``analysis`` (vector_bits, check_view,
bank_conflicts, choose_shared_layout) and ``text`` (parsing any form, text grids).

Every operation either raises :class:`LayoutError` naming the failed precondition or returns a
layout that agrees with the brute-force ``table()`` on its whole domain.
"""
from ..errors import LayoutError
from .core import Layout, size, cosize, rank, depth, table, make_layout, row_major, col_major
from .algebra import coalesce, flatten, filter, filter_zeros, fit, is_injective, is_bijective, image
from .composition import compose, complement, right_inverse, left_inverse, extent
from .divide import (logical_divide, zipped_divide, tiled_divide, flat_divide, logical_product,
                     blocked_product, raked_product)
from .bits import recast, max_common_vector, max_common_layout
from .swizzle import Swizzle, MemLayout
from .tv import (TVLayout, spatial, local, replicate, tv_product, MMA_M16N8K16_A, MMA_M16N8K16_B,
                 MMA_M16N8K16_C)
from .analysis import (VectorAccess, BankConflicts, SharedChoice, vector_bits, check_view, view_error,
                       bank_conflicts, choose_shared_layout, thread_bits)
from .text import parse_any, grid, render_text

__all__ = [
    "LayoutError", "Layout", "size", "cosize", "rank", "depth", "table", "make_layout", "row_major",
    "col_major", "coalesce", "flatten", "filter", "filter_zeros", "fit", "is_injective", "is_bijective",
    "image", "compose", "complement", "right_inverse", "left_inverse", "extent", "logical_divide",
    "zipped_divide", "tiled_divide", "flat_divide", "logical_product", "blocked_product", "raked_product",
    "recast", "max_common_vector", "max_common_layout", "Swizzle", "MemLayout", "TVLayout", "spatial",
    "local", "replicate", "tv_product", "MMA_M16N8K16_A", "MMA_M16N8K16_B", "MMA_M16N8K16_C",
    "VectorAccess", "BankConflicts", "SharedChoice", "vector_bits", "check_view", "view_error",
    "bank_conflicts", "choose_shared_layout", "thread_bits", "parse_any", "grid", "render_text",
]
