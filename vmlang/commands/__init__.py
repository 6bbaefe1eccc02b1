"""``vm`` subcommands beyond the built-in ones; each module registers itself with ``vmlang.cli.command``."""
import importlib as _importlib

for _mod in ("lang", "show", "cache", "explain"):
    _importlib.import_module(f"{__name__}.{_mod}")
