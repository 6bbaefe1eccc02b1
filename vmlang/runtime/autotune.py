"""Autotuning over compile-time parameters, by timing real runs.

::

    @vm.autotune(configs=[vm.Config(BN=64), vm.Config(BN=128), vm.Config(BN=256)], key=["N", "K"])
    @vm.jit(grid=lambda N, BN, M: (vm.cdiv(N, BN), M))
    def gemv(...): ...

On the first call for a new *tuning key* — the device, the backend, the values of the ``key`` sizes (all
size symbols and integer scalars when ``key`` is None), the dtypes of the arguments and any compile-time
values given by the caller — every config is compiled and timed on the actual arguments (a warm-up run,
then at least 3 timed runs, median; on CUDA the device is synchronised around each run). A config that fails
to compile or to run (too much shared memory, an invalid tile, ...) is skipped and its reason logged
(logger ``vmlang.autotune``) and kept in :attr:`Autotuned.log`. The tensors the kernel writes are saved
before tuning and restored after every timed run, so tuning never changes the result of the call; the
winner then runs once more for real.

Results are cached in memory and on disk (``<cache dir>/autotune/<kernel>.json``, written atomically with a
checksum) per tuning key, so another process on the same GPU does not tune again.
"""
from __future__ import annotations

import hashlib
import json
import logging
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vmlang.ir.errors import ArgumentError, VMError

from . import device as DEV
from .args import is_torch, written_params
from .cache import read_json, write_json
from .kernel import Kernel, _const_text
from .progress import Bar

log = logging.getLogger("vmlang.autotune")


class Config:
    """One point of the tuning space: values for compile-time parameters (``vm.Config(BN=64, G=128)``)."""

    def __init__(self, **consts):
        if not consts:
            raise VMError("vm.Config needs at least one compile-time value")
        self.consts = dict(consts)

    def key(self) -> str:
        return json.dumps({k: _const_text(v) for k, v in sorted(self.consts.items())}, sort_keys=True)

    def __eq__(self, other):
        return isinstance(other, Config) and self.key() == other.key()

    def __hash__(self):
        return hash(self.key())

    def __repr__(self):
        return "Config(" + ", ".join(f"{k}={_const_text(v)}" for k, v in self.consts.items()) + ")"


@dataclass
class TuneRecord:
    config: Config
    seconds: float | None        # median time of one run; None when skipped
    reason: str = ""             # why it was skipped


class Autotuned:
    """A kernel that picks its compile-time values by timing; call it like the kernel."""

    def __init__(self, kernel: Kernel, configs, key=None, min_reps: int = 3, max_reps: int = 20,
                 min_time_s: float = 0.05):
        if not isinstance(kernel, Kernel):
            raise VMError("@vm.autotune applies to a kernel: put it above @vm.jit, or apply it to vm.load(...)")
        configs = [c if isinstance(c, Config) else Config(**c) for c in configs]
        if not configs:
            raise VMError(f"@vm.autotune on {kernel.name}: no configs")
        for c in configs:
            unknown = set(c.consts) - set(kernel.const_names)
            if unknown:
                raise VMError(f"@vm.autotune on {kernel.name}: {c} sets {', '.join(sorted(unknown))}, which is not "
                              f"a compile-time parameter (they are: {', '.join(kernel.const_names) or 'none'})")
        if len(set(configs)) != len(configs):
            raise VMError(f"@vm.autotune on {kernel.name}: duplicate configs")
        self.kernel = kernel
        self.configs = configs
        self.key = None if key is None else list(key)
        self.min_reps, self.max_reps, self.min_time_s = min_reps, max_reps, min_time_s
        self.best: dict[str, Config] = {}
        self.log: list[TuneRecord] = []
        self.tunings = 0
        self.__name__ = kernel.name
        self.__doc__ = kernel.__doc__

    def __repr__(self):
        return f"<vm autotuned kernel {self.kernel.name}: {len(self.configs)} configs>"

    # ------------------------------------------------------------------------------ calling
    def __call__(self, *args, backend: str | None = None, **kwargs):
        cfg, prepared = self._choose(args, kwargs, backend)
        compiled, binding = prepared if prepared is not None else \
            self.kernel.prepare(args, kwargs, backend, consts=cfg.consts)
        compiled.launch(binding)

    def choose(self, args, kwargs, backend=None) -> Config:
        """The best config for these arguments (tuning now if this tuning key is new)."""
        return self._choose(args, kwargs, backend)[0]

    def _choose(self, args, kwargs, backend):
        """-> (best config, its (compiled, binding) when finding the tuning key already prepared it)."""
        clash = {k for c in self.configs for k in c.consts} & set(kwargs)
        if clash:
            raise ArgumentError(f"{self.kernel.name}: {', '.join(sorted(clash))} is chosen by autotuning; do not "
                                f"pass it (or call the kernel without @vm.autotune)")
        opts = self.kernel.resolve_options(backend)
        tkey, probe, prepared = self._tuning_key(args, kwargs, backend, opts)

        def result(cfg):
            return cfg, (prepared if cfg == probe else None)
        if tkey in self.best:
            return result(self.best[tkey])
        path = Path(opts.resolved_cache_dir()) / "autotune" / f"{self._file_id()}.json"
        stored = (read_json(path) or {}) if opts.disk_cache else {}
        if tkey in stored:
            cfg = Config(**stored[tkey]["config"])
            if cfg in self.configs:
                self.best[tkey] = cfg
                return result(cfg)
        cfg, timings = self._tune(args, kwargs, backend)
        self.best[tkey] = cfg
        if opts.disk_cache:
            stored = read_json(path) or {}
            stored[tkey] = {"config": {k: _const_text(v) for k, v in cfg.consts.items()}, "timings": timings}
            write_json(path, stored)
        return result(cfg)

    def _file_id(self) -> str:
        h = hashlib.sha256((self.kernel.src.text + "\0" + self.kernel.name).encode()).hexdigest()[:24]
        return f"{self.kernel.name}-{h}"

    def _tuning_key(self, args, kwargs, backend, opts):
        """-> (tuning key, the config used to find it, that config's (compiled, binding))."""
        last_err = None
        for cfg in self.configs:     # any config that compiles tells the sizes and the device
            try:
                compiled, binding = self.kernel.prepare(args, kwargs, backend, consts=cfg.consts)
                break
            except ArgumentError:
                raise
            except VMError as e:
                last_err = e
        else:
            raise VMError(f"{self.kernel.name}: no autotune config compiles; the last error was: {last_err}")
        k = compiled.kernel
        names = self.key if self.key is not None else sorted(binding.sizes)
        values = {}
        for n in names:
            if n not in binding.sizes:
                raise ArgumentError(f"{self.kernel.name}: autotune key {n!r} is not a size symbol or an integer "
                                    f"scalar parameter (they are: {', '.join(sorted(binding.sizes))})")
            values[n] = binding.sizes[n]
        given = {kk: _const_text(v) for kk, v in kwargs.items() if kk in self.kernel.const_names}
        tkey = json.dumps({"device": DEV.label(DEV.describe(opts.backend, binding.device)), "backend": opts.backend,
                           "key": values, "dtypes": [p.dtype.name for p in k.params], "given": given},
                          sort_keys=True)
        return tkey, cfg, (compiled, binding)

    # ------------------------------------------------------------------------------ tuning
    def _tune(self, args, kwargs, backend):
        self.tunings += 1
        written = _written_args(self.kernel, args, kwargs, backend, self.configs)
        saved = [(obj, _snapshot(obj)) for obj in written]
        results: dict[str, float] = {}
        best = None
        with Bar(f"tuning {self.kernel.name}", len(self.configs)) as bar:
            for cfg in self.configs:
                try:
                    compiled, b = self.kernel.prepare(args, kwargs, backend, consts=cfg.consts)
                    t = self._time(compiled, lambda: self.kernel.prepare(args, kwargs, backend,
                                                                         consts=cfg.consts)[1], saved)
                except ArgumentError:
                    _restore(saved)
                    raise
                except VMError as e:
                    _restore(saved)
                    reason = f"{e.loc}: {e.message}" if e.loc else e.message
                    log.warning("autotune %s: %s skipped: %s", self.kernel.name, cfg, reason)
                    self.log.append(TuneRecord(cfg, None, reason))
                    bar.advance(f"{cfg} skipped")
                    continue
                self.log.append(TuneRecord(cfg, t))
                log.info("autotune %s: %s %.3f ms", self.kernel.name, cfg, t * 1e3)
                results[repr(cfg)] = t
                if best is None or t < best[1]:
                    best = (cfg, t)
                bar.advance(f"{cfg} {t * 1e3:.3g} ms")
        _restore(saved)
        if best is None:
            reasons = "; ".join(f"{r.config}: {r.reason}" for r in self.log[-len(self.configs):])
            raise VMError(f"{self.kernel.name}: every autotune config failed ({reasons})")
        log.info("autotune %s: chose %s", self.kernel.name, best[0])
        return best[0], results

    def _time(self, compiled, rebind, saved) -> float:
        sync = _synchronizer(compiled)
        compiled.launch(rebind())           # warm-up (and the first check that it runs at all)
        sync()
        _restore(saved)
        times = []
        total = 0.0
        while len(times) < self.min_reps or (total < self.min_time_s and len(times) < self.max_reps):
            b = rebind()
            sync()
            t0 = time.perf_counter()
            compiled.launch(b)
            sync()
            dt = time.perf_counter() - t0
            times.append(dt)
            total += dt
            _restore(saved)
        return statistics.median(times)


def autotune(configs, key=None, **tuning):
    """Decorator: ``@vm.autotune(configs=[vm.Config(BN=64), ...], key=["N"])`` above ``@vm.jit``."""
    def wrap(kernel):
        return Autotuned(kernel, configs, key, **tuning)
    return wrap


# ----------------------------------------------------------------------------------- helpers
def _synchronizer(compiled):
    if getattr(compiled, "backend", "numpy") == "numpy":
        return lambda: None
    try:
        import torch
        if torch.cuda.is_available():
            return torch.cuda.synchronize
    except ImportError:
        pass
    return lambda: None


def _written_args(kernel: Kernel, args, kwargs, backend, configs) -> list:
    """The argument objects the kernel writes (found from the IR of the first config that compiles)."""
    for cfg in configs:
        try:
            ir = kernel.ir(**kernel.resolve_consts(dict(cfg.consts), args, kwargs))
            break
        except VMError:
            continue
    else:
        return []
    ids = written_params(ir)
    out = []
    for i, p in enumerate(ir.params):
        if p.id in ids:
            out.append(kwargs[p.name] if p.name in kwargs else args[i])
    return out


def _storage_of(obj):
    from .tensor import Tensor
    return obj.data if isinstance(obj, Tensor) else obj


def _snapshot(obj):
    s = _storage_of(obj)
    return s.clone() if is_torch(s) else np.array(s, copy=True)


def _restore(saved) -> None:
    for obj, snap in saved:
        s = _storage_of(obj)
        if is_torch(s):
            s.copy_(snap)
        else:
            np.copyto(s, snap)
