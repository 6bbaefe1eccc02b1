"""The stdlib's kernels, written in vmlang (``.vm`` files loaded with ``vm.load``).

``kernel("qmatmul")`` is the launchable :class:`vmlang.runtime.kernel.Kernel` of ``qmatmul.vm`` in this
folder, loaded once per process (its compilations are cached on the object and on disk).
"""
from __future__ import annotations

import functools
import os

DIR = os.path.dirname(os.path.abspath(__file__))


def path(name: str) -> str:
    """The file of the stdlib kernel ``name`` (``name.vm`` in this folder)."""
    return os.path.join(DIR, f"{name}.vm")


@functools.cache
def kernel(name: str, entry: str | None = None):
    """The launchable kernel ``entry`` (default: the only one) of ``name.vm``."""
    import vmlang as vm
    return vm.load(path(name), entry)
