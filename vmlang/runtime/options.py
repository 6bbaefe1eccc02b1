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
  one iteration ahead (``*``: all; :attr:`CompileOptions.l2_prefetch`);
- ``VMLANG_STAGE_LOADS=w``: the global tensors whose register loads in a loop the ptx backend copies
  ahead into shared memory (:attr:`CompileOptions.stage_loads`).
"""
from __future__ import annotations

import dataclasses
import os
import re
from dataclasses import dataclass

#: a GPU architecture name (``CompileOptions.arch``, ``vm explain --arch``): ``sm_80``, ``sm_90``, ``sm_90a`` ...
ARCH_NAME = re.compile(r"^sm_(\d+)[af]?$")


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
    #: ptx: the global tensors (names, comma-separated; ``*``: all) whose register loads in a loop are
    #: staged: ``cp.async`` copies ``S - 1`` iterations ahead into each thread's own shared-memory slots,
    #: read back with ``ld.shared`` (bytes in flight without registers; ``vmlang.backends.ptx.staging``)
    stage_loads: str = ""
    #: ptx: stage buffers of software-pipelined loops (``cp.async`` copies ``pipeline_stages - 1`` iterations
    #: ahead; 0 or 1: no pipelining; None: the backend's default, 3)
    pipeline_stages: int | None = None
    #: ptx: on sm_90, run the dots whose operands are in shared memory on warpgroup MMA (``wgmma``; the
    #: kernel is then emitted for sm_90a). None: on; False: mma.sync (``vmlang.backends.ptx.wgmma``)
    wgmma: bool | None = None

    def replace(self, **changes) -> "CompileOptions":
        return dataclasses.replace(self, **changes)

    def key(self) -> dict:
        """The options that change generated code (part of every cache key; ``l2_prefetch``,
        ``stage_loads``, ``pipeline_stages`` and ``wgmma`` only when set, and only for the ptx backend, the one they
        change: keys without them are what they were before they existed)."""
        key = {"backend": self.backend, "specialize": self.specialize, "arch": self.arch, "debug": self.debug}
        if self.backend == "ptx":
            key.update({k: v for k, v in (("l2_prefetch", self.l2_prefetch), ("stage_loads", self.stage_loads),
                                          ("pipeline_stages", self.pipeline_stages), ("wgmma", self.wgmma))
                        if v not in ("", None)})
        return key

    def resolved_cache_dir(self) -> str:
        return self.cache_dir or os.environ.get("VMLANG_CACHE_DIR") or \
            os.path.join(os.path.expanduser("~"), ".cache", "vmlang")

    @classmethod
    def from_env(cls, **overrides) -> "CompileOptions":
        from vmlang.api import default_backend
        base = dict(backend=default_backend(),
                    disk_cache=os.environ.get("VMLANG_CACHE", "1") not in ("0", "false", "no"),
                    l2_prefetch=os.environ.get("VMLANG_L2_PREFETCH", ""),
                    stage_loads=os.environ.get("VMLANG_STAGE_LOADS", ""))
        base.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**base)
