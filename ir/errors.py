"""The error hierarchy shared by every part of vmlang.

Every error a user can provoke is a :class:`VMError` subclass with a message that names the
problem. Errors that come from source text carry a :class:`SourceLoc` and render as
``file.vm:12:5: error: message`` followed by the source line and a caret.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SourceLoc:
    """A position in a source file (1-based line and column)."""

    file: str
    line: int
    column: int
    end_column: int | None = None

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


class VMError(Exception):
    """Base class of every error vmlang raises on purpose."""

    def __init__(self, message: str, loc: SourceLoc | None = None, source: str | None = None,
                 hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.loc = loc
        self.source = source
        self.hint = hint

    def render(self) -> str:
        """Render as ``file:line:col: error: message`` plus the source line and a caret."""
        head = f"{self.loc}: error: {self.message}" if self.loc else f"error: {self.message}"
        lines = [head]
        if self.loc is not None and self.source is not None:
            src_lines = self.source.splitlines()
            if 1 <= self.loc.line <= len(src_lines):
                text = src_lines[self.loc.line - 1].rstrip("\n")
                lines.append(f"  {text}")
                width = 1
                if self.loc.end_column and self.loc.end_column > self.loc.column:
                    width = self.loc.end_column - self.loc.column
                lines.append("  " + " " * (self.loc.column - 1) + "^" + "~" * (width - 1))
        if self.hint:
            lines.append(f"  note: {self.hint}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.render() if self.loc else self.message


class DTypeError(VMError, ValueError):
    """An unknown dtype name or an invalid dtype description."""


class LayoutError(VMError, ValueError):
    """A layout operation whose precondition does not hold (the message names it)."""


class VMSyntaxError(VMError):
    """A syntax error in a .vm file or in a @vm.jit function."""


class VMTypeError(VMError):
    """A type, shape or placement error found while building or verifying the IR."""


class VerifyError(VMError):
    """The IR verifier found a malformed program (a compiler bug, or a pass that broke an invariant)."""


class VMRuntimeError(VMError):
    """A kernel failed while running (out-of-bounds access, read of uninitialised memory, ...)."""


class ArgumentError(VMError, TypeError):
    """A kernel was called with an argument that does not match its declaration."""


class BackendError(VMError):
    """A backend cannot compile or run something (missing rule, missing toolchain, ...)."""
