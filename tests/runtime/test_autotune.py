"""@vm.autotune on the NumPy backend, timing real runs (no mock timers)."""
from __future__ import annotations

import logging
import pathlib

import numpy as np
import pytest

import vmlang as vm
from vmlang.runtime.progress import Bar

ADD = pathlib.Path(__file__).resolve().parents[2] / "examples" / "vector_add.vm"
ACC = """
kernel acc<BN = 16>(x: int32[N] global, y: int32[N] global) grid(cdiv(N, BN)) {
    i = block.x * BN;
    atomic_add(y[i : +BN], load(x[i : +BN]));
}
"""


def tuned_add(**kw):
    # BLOCK=2 launches 1500 blocks of the Python-level VM for N=3000; BLOCK=1024 launches 3: ~100x apart.
    configs = kw.pop("configs", [vm.Config(BLOCK=2), vm.Config(BLOCK=1024)])
    return vm.autotune(configs=configs, key=["N"], **kw)(vm.load(ADD))


def add_args(n, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(n).astype(np.float16)
    y = rng.standard_normal(n).astype(np.float16)
    return x, y, np.zeros(n, np.float16)


def test_picks_the_fastest_config_by_timing():
    k = tuned_add()
    x, y, z = add_args(3000)
    k(x, y, z)
    np.testing.assert_array_equal(z, x + y)
    assert k.tunings == 1
    [cfg] = k.best.values()
    assert cfg == vm.Config(BLOCK=1024)
    times = {repr(r.config): r.seconds for r in k.log}
    assert times["Config(BLOCK=2)"] > 10 * times["Config(BLOCK=1024)"]
    k(*add_args(3000, 1))                 # same key: no new tuning
    assert k.tunings == 1
    k(*add_args(500, 1))                  # another key value: tunes again
    assert k.tunings == 2


def test_failing_config_is_skipped_and_logged(caplog):
    k = tuned_add(configs=[vm.Config(BLOCK=0), vm.Config(BLOCK=128)])
    x, y, z = add_args(100)
    with caplog.at_level(logging.WARNING, logger="vmlang.autotune"):
        k(x, y, z)
    np.testing.assert_array_equal(z, x + y)
    skipped = [r for r in k.log if r.seconds is None]
    assert [r.config for r in skipped] == [vm.Config(BLOCK=0)]
    assert "slice length must be a positive integer" in skipped[0].reason
    assert "vector_add.vm:" in skipped[0].reason                       # where in the source
    assert any("Config(BLOCK=0) skipped" in m for m in caplog.messages)


def test_every_config_failing_is_an_error():
    k = tuned_add(configs=[vm.Config(BLOCK=0), vm.Config(BLOCK=-1)])
    with pytest.raises(vm.VMError, match="no autotune config compiles"):
        k(*add_args(10))


def test_result_cached_on_disk_for_another_process():
    x, y, z = add_args(3000)
    k1 = tuned_add()
    k1(x, y, z)
    k2 = tuned_add()                      # a fresh object, as in a new process
    k2(x, y, z)
    assert k2.tunings == 0 and list(k2.best.values()) == [vm.Config(BLOCK=1024)]


def test_tuning_does_not_change_the_result(tmp_path):
    """The kernel accumulates into y with atomic_add; tuning runs it many times, yet y gets x added once."""
    src = tmp_path / "acc.vm"
    src.write_text(ACC)
    k = vm.autotune(configs=[vm.Config(BN=4), vm.Config(BN=16), vm.Config(BN=64)], key=["N"])(vm.load(src))
    rng = np.random.default_rng(5)
    x = rng.integers(-1000, 1000, 77).astype(np.int32)
    y0 = rng.integers(-1000, 1000, 77).astype(np.int32)
    y = y0.copy()
    k(x, y)
    assert sum(r.seconds is not None for r in k.log) == 3
    np.testing.assert_array_equal(y, y0 + x)


def test_misuse_is_reported():
    with pytest.raises(vm.VMError, match="put it above @vm.jit"):
        vm.autotune(configs=[vm.Config(BLOCK=64)])(lambda x: x)
    with pytest.raises(vm.VMError, match="TILE, which is not a compile-time parameter"):
        vm.autotune(configs=[vm.Config(TILE=64)])(vm.load(ADD))
    with pytest.raises(vm.VMError, match="duplicate"):
        vm.autotune(configs=[vm.Config(BLOCK=64), vm.Config(BLOCK=64)])(vm.load(ADD))
    k = vm.autotune(configs=[vm.Config(BLOCK=64)], key=["Q"])(vm.load(ADD))
    with pytest.raises(vm.ArgumentError, match="autotune key 'Q' is not a size symbol"):
        k(*add_args(10))
    k = tuned_add()
    with pytest.raises(vm.ArgumentError, match="BLOCK is chosen by autotuning"):
        k(*add_args(10), BLOCK=64)


def test_progress_bar_appears_only_after_its_delay(monkeypatch):
    monkeypatch.setenv("VMLANG_PROGRESS", "1")
    with Bar("tuning", 3, delay=0.0) as bar:
        bar.advance("a")
        assert bar.shown
    with Bar("tuning", 3, delay=60.0) as bar:
        bar.advance("a")
        assert not bar.shown
    monkeypatch.setenv("VMLANG_PROGRESS", "0")
    with Bar("tuning", 3, delay=0.0) as bar:
        bar.advance("a")
        assert not bar.shown
