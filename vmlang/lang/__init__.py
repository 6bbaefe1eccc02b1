"""Front ends: the .vm language (grammar, parser, AST) and the lowering of the AST to the IR."""
