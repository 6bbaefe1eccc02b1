"""vmlang.passes: compiler passes, one per module, each ``Program -> Program`` (docs/ptx.md).

``pipeline(kernel, options)`` runs placement, layout inference and vectorization, verifying the IR
after each, and returns a :class:`Program` (kernel, facts, report); ``format_report`` prints the
report that ``vm explain`` shows.
"""
from .program import Facts, Ids, Note, PassOptions, Program, format_report, pipeline, rebuild
from .tvmaps import default_layout
from .vectorize import VectorPlan
from .conversions import DotPlan, ReducePlan, ShapePlan

__all__ = ["Facts", "Ids", "Note", "PassOptions", "Program", "format_report", "pipeline", "rebuild",
           "default_layout", "VectorPlan", "DotPlan", "ReducePlan", "ShapePlan"]
