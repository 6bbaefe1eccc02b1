"""Helpers shared by the @vm.jit front-end tests: import a Python file with ``vm.jit`` replaced by a recorder,
so the front end is tested on plain functions, independently of the runtime's ``vm.jit``."""
from __future__ import annotations

import contextlib
import importlib.util
import itertools
import pathlib

import vmlang

_COUNTER = itertools.count()


def recording_jit(fn=None, *, grid=None, warps=None, **_):
    """Stands in for vm.jit: leaves the function alone and records what the decorator was given."""
    def deco(f):
        f.__vm_jit__ = {"grid": grid, "warps": warps}
        return f
    return deco if fn is None else deco(fn)


@contextlib.contextmanager
def jit_recorder():
    missing = object()
    old = vmlang.__dict__.get("jit", missing)
    vmlang.jit = recording_jit
    try:
        yield
    finally:
        if old is missing:
            del vmlang.jit
        else:
            vmlang.jit = old


def import_file(path: pathlib.Path):
    """Import ``path`` as a fresh module (a new name each time) with ``vm.jit`` recording."""
    spec = importlib.util.spec_from_file_location(f"pyfront_case_{next(_COUNTER)}", path)
    mod = importlib.util.module_from_spec(spec)
    with jit_recorder():
        spec.loader.exec_module(mod)
    return mod


def write_file(folder: pathlib.Path, text: str, stem: str = "case") -> pathlib.Path:
    """Write ``text`` to a new, uniquely named ``.py`` file in ``folder``."""
    path = folder / f"{stem}_{next(_COUNTER)}.py"
    path.write_text(text, encoding="utf-8")
    return path
