"""Imports every rule module of the PTX backend, so the registry (:data:`.core.RULES`) is complete."""
from . import control, exchange, reduce, rules_compute, rules_memory  # noqa: F401
