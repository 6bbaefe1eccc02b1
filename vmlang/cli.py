"""The ``vm`` command line.

Subcommands register themselves with :func:`command`; each gets an ``argparse`` sub-parser and
returns an exit status. Errors derived from :class:`vmlang.VMError` are printed as diagnostics
(``file.vm:line:col: error: ...``), never as Python tracebacks, and exit with status 1.
"""
from __future__ import annotations

import argparse
import sys
from typing import Callable

from ._version import __version__
from .ir.errors import VMError

_COMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None], Callable]] = {}


def command(name: str, help: str, configure: Callable[[argparse.ArgumentParser], None] = lambda p: None):
    """Register ``fn(args) -> int`` as the ``vm NAME`` subcommand."""
    def deco(fn):
        _COMMANDS[name] = (help, configure, fn)
        return fn
    return deco


def _fmt(x) -> str:
    if isinstance(x, int):
        return str(x)
    return f"{x:.6g}"


@command("types", "print every element type with its bits and range")
def _types(args) -> int:
    from .ir.dtypes import all_dtypes
    rows = [("name", "bits", "kind", "min", "max", "smallest positive", "smallest subnormal")]
    for t in all_dtypes():
        kind = "codebook" if t.is_codebook else ("float" if t.is_float else
                                                 ("int" if t.is_signed else "uint"))
        pos, sub = ("1" if t.is_int and t.max >= 1 else "-"), "-"
        if t.is_float and not t.is_codebook:
            pos = _fmt(t.smallest_positive)
            sub = "none" if t.smallest_subnormal is None else _fmt(t.smallest_subnormal)
            kind = f"float e{t.exp}m{t.man} {t.flavor}"
        elif t.is_codebook:
            pos = _fmt(min(v for v in t.entries if v > 0))
        rows.append((t.name, str(t.nbits), kind, _fmt(t.min), _fmt(t.max), pos, sub))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for j, r in enumerate(rows):
        print("  ".join(c.ljust(w) if i in (0, 2) else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))))
        if j == 0:
            print("  ".join("-" * w for w in widths))
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="vm", description="vmlang: kernels in arbitrary low-precision types")
    p.add_argument("--version", action="version", version=f"vmlang {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    for name, (help_, configure, _fn) in _COMMANDS.items():
        sp = sub.add_parser(name, help=help_, description=help_)
        configure(sp)
    return p


def _load_commands() -> None:
    """Import the modules that register further subcommands (kept lazy: startup stays fast)."""
    import importlib
    for mod in ("vmlang.commands",):
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as e:
            if e.name != mod:
                raise


def main(argv: list[str] | None = None) -> int:
    _load_commands()
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 0
    _help, _configure, fn = _COMMANDS[args.command]
    try:
        return int(fn(args) or 0)
    except VMError as e:
        print(e.render(), file=sys.stderr)
        return 1
    except BrokenPipeError:  # e.g. `vm types | head`
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
