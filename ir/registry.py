"""Type-keyed rule tables: the one mechanism behind the printer's, the VM's and each backend's rules.

>>> table = {}
>>> rule = registrar(table)
>>> @rule(int, bool)
... def show(x):
...     return str(x)
>>> sorted(c.__name__ for c in table)
['bool', 'int']
"""
from __future__ import annotations

from typing import Callable


def registrar(table: dict[type, Callable]):
    """A decorator factory filling ``table``: ``@register(A, B)`` maps each class to the decorated function."""
    def register(*classes):
        def deco(fn):
            for c in classes:
                table[c] = fn
            return fn
        return deco
    return register
