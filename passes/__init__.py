"""vmlang.passes: compiler passes, one per module, each ``Program -> Program``."""
