"""The one options object every compilation step receives.

>>> from vmlang.runtime.options import CompileOptions
>>> o = CompileOptions(backend="numpy")
>>> o.replace(specialize=False).specialize
False

Environment variables are documented overrides of the defaults, read once by :meth:`CompileOptions.from_env`:

- ``VMLANG_BACKEND``: the default backend (else triton when a CUDA GPU and triton are present, else numpy);
- ``VMLANG_CACHE_DIR``: the on-disk cache folder (default ``~/.cache/vmlang``);
- ``VMLANG_CACHE=0``: do not read or write the on-disk cache;
- ``VMLANG_PROGRESS=1``/``0``: force the progress display on or off (default: on when stderr is a terminal);
- ``VMLANG_L2_PREFETCH=w,s``: the global tensors whose loads in a loop the ptx backend prefetches to L2
  one iteration ahead (``*``: all; :attr:`CompileOptions.l2_prefetch`).
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class CompileOptions:
    #: numpy | triton | ptx
    backend: str = "numpy"
    #: specialise on sizes divisible by 16 (adds ``assume(n % 16 == 0)`` facts to the IR)
    specialize: bool = True
    #: read and write the on-disk cache
    disk_cache: bool = True
    #: the on-disk cache folder (None: ``VMLANG_CACHE_DIR`` or ``~/.cache/vmlang``)
    cache_dir: str | None = None
    #: target architecture for GPU backends, e.g. ``"sm_90"`` (None: the current device's)
    arch: str | None = None
    #: keep extra checks and debug information in generated code
    debug: bool = False
    #: ptx: the global tensors (parameter names, comma-separated; ``*``: all) whose loads in a loop are
    #: prefetched to L2 one iteration ahead (``prefetch.global.L2`` at the top of each iteration: no
    #: registers, no waiting; ``vmlang.backends.ptx.prefetch``). Empty by default until measured
    l2_prefetch: str = ""

    def replace(self, **changes) -> "CompileOptions":
        return dataclasses.replace(self, **changes)

    def key(self) -> dict:
        """The options that change generated code (part of every cache key; ``l2_prefetch`` only when set,
        and only for the ptx backend, the one it changes)."""
        key = {"backend": self.backend, "specialize": self.specialize, "arch": self.arch, "debug": self.debug}
        if self.l2_prefetch and self.backend == "ptx":
            key["l2_prefetch"] = self.l2_prefetch
        return key

    def resolved_cache_dir(self) -> str:
        return self.cache_dir or os.environ.get("VMLANG_CACHE_DIR") or \
            os.path.join(os.path.expanduser("~"), ".cache", "vmlang")

    @classmethod
    def from_env(cls, **overrides) -> "CompileOptions":
        from vmlang.api import default_backend
        base = dict(backend=default_backend(),
                    disk_cache=os.environ.get("VMLANG_CACHE", "1") not in ("0", "false", "no"),
                    l2_prefetch=os.environ.get("VMLANG_L2_PREFETCH", ""))
        base.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**base)
