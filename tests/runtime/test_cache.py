"""The compile cache: in-memory specialisation, the on-disk cache (hits, misses, corruption, concurrency)."""
from __future__ import annotations

import os
import pathlib
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest

import vmlang as vm
from vmlang.runtime.cache import CacheWarning, DiskCache, read_json, write_json

HERE = pathlib.Path(__file__).parent
ADD = pathlib.Path(__file__).resolve().parents[2] / "examples" / "vector_add.vm"


def run_add(k, n, seed=0, **kw):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(n).astype(np.float16)
    y = rng.standard_normal(n).astype(np.float16)
    z = np.zeros(n, np.float16)
    k(x, y, z, **kw)
    np.testing.assert_array_equal(z, x + y)


# ----------------------------------------------------------------------------------- specialisation
def test_one_compile_per_specialisation():
    k = vm.load(ADD)
    for n in (100, 37, 3):           # none divisible by 16: one class
        run_add(k, n)
    assert len(k.events) == 1 and k.memory_hits == 2
    run_add(k, 64)                   # divisible by 16: a new class
    run_add(k, 80)
    assert len(k.events) == 2
    run_add(k, 384)                  # divisible by 128: the third class
    run_add(k, 256)
    assert len(k.events) == 3
    run_add(k, 4096)                 # divisible by 1024 (a K loop of slabs up to 1024 needs no masks): the fourth
    run_add(k, 8192)
    assert len(k.events) == 4
    run_add(k, 100, BLOCK=64)        # another constant
    assert len(k.events) == 5
    reasons = [e.reason for e in k.events]
    assert reasons == ["first call", "N % 16 == 0: False -> True", "N % 128 == 0: False -> True",
                       "N % 1024 == 0: False -> True", "BLOCK: 256 -> 64; N % 1024 == 0: True -> False"]
    text = k.explain_cache()
    assert "5 compilation(s), 5 in-memory hit(s)" in text
    assert "because N % 16 == 0: False -> True" in text and "constants BLOCK=64" in text
    assert "divisibility N % 128" in text and "divisibility N % 1024" in text and "divisibility N not % 16" in text


def test_divisibility_becomes_an_assumption():
    from vmlang.ir import nodes as N
    k = vm.load(ADD)
    run_add(k, 64)
    run_add(k, 65)
    div, plain = [c.kernel for c in k._compiled.values()]
    assumes = [i for i in N.walk(div.body) if isinstance(i, N.Assume)]
    assert len(assumes) == 1
    assert not [i for i in N.walk(plain.body) if isinstance(i, N.Assume)]
    assert len(div.body.instrs) == len(plain.body.instrs) + 6   # N, 16, %, 0, ==, assume


def test_specialisation_can_be_turned_off():
    k = vm.load(ADD)
    k.options = vm.CompileOptions(backend="numpy", specialize=False, disk_cache=False)
    run_add(k, 64)
    run_add(k, 65)
    assert len(k.events) == 1


def test_dtype_parameter_inferred_and_specialised(tmp_path):
    src = tmp_path / "deq.vm"
    src.write_text("""
kernel deq<T, BN = 32>(w: T[N] global, y: f32[N] global) grid(cdiv(N, BN)) {
    i = block.x * BN;
    store(y[i : +BN], cast(load(w[i : +BN]), f32));
}""")
    k = vm.load(src)
    rng = np.random.default_rng(3)
    for dt in (vm.int3, vm.float6_e3m2, vm.nf4, vm.int3):
        codes = rng.integers(1, 2 ** dt.nbits, 50)
        w = vm.Tensor.from_codes(codes, dt)
        y = np.zeros(50, np.float32)
        k(w, y)
        np.testing.assert_array_equal(y, dt.decode(codes).astype(np.float32))
    assert [e.spec["consts"]["T"] for e in k.events] == ["int3", "float6_e3m2", "nf4"]
    assert "T: int3 -> float6_e3m2" in k.events[1].reason
    y = np.zeros(7, np.float32)
    k(np.arange(7, dtype=np.int8), y)                     # inferred from a NumPy dtype
    np.testing.assert_array_equal(y, np.arange(7))
    with pytest.raises(vm.ArgumentError, match="cannot infer the dtype parameter T"):
        k(np.zeros(4, np.uint64), y)
    k(np.zeros(7, np.uint8) + 9, y, T="uint8")            # given explicitly
    assert (y == 9).all()


# ----------------------------------------------------------------------------------- on disk
def test_disk_cache_hit_and_miss(private_cache):
    k1 = vm.load(ADD)
    run_add(k1, 100)
    assert k1.events[0].outcome == "compiled"
    entry = pathlib.Path(k1.events[0].path)
    assert (entry / "manifest.json").exists()
    assert "kernel vector_add" in (entry / "kernel.vm").read_text()    # readable generated source
    k2 = vm.load(ADD)
    run_add(k2, 100)
    assert k2.events[0].outcome == "loaded from disk" and k2.events[0].path == str(entry)
    run_add(k2, 100, BLOCK=128)
    assert k2.events[1].outcome == "compiled"


def test_cache_key_covers_the_source(tmp_path):
    src = tmp_path / "add.vm"
    src.write_text(ADD.read_text())
    k1 = vm.load(src)
    run_add(k1, 10)
    src.write_text(ADD.read_text().replace("z[i : +BLOCK]", "z[i : +BLOCK] ").replace("(f16 (", "(f16 ("))
    src.write_text(src.read_text() + "\n// edited\n")
    k2 = vm.load(src)
    run_add(k2, 10)
    assert k2.events[0].outcome == "compiled" and k2.events[0].path != k1.events[0].path


def _corrupt(entry: pathlib.Path, how: str):
    f = entry / "kernel.vm"
    if how == "flip":
        data = bytearray(f.read_bytes())
        data[len(data) // 2] ^= 0x20
        f.write_bytes(bytes(data))
    elif how == "truncate":
        f.write_bytes(f.read_bytes()[:10])
    elif how == "delete file":
        f.unlink()
    elif how == "bad manifest":
        (entry / "manifest.json").write_text("{not json")
    elif how == "no manifest":
        (entry / "manifest.json").unlink()
    elif how == "consistent but wrong":   # a well-formed entry whose content is not this kernel's IR
        import hashlib
        import json
        text = "kernel other() grid(1) {}\n"
        f.write_text(text)
        m = json.loads((entry / "manifest.json").read_text())
        m["files"]["kernel.vm"] = {"sha256": hashlib.sha256(text.encode()).hexdigest(), "size": len(text),
                                   "text": True}
        (entry / "manifest.json").write_text(json.dumps(m))


@pytest.mark.parametrize("how", ["flip", "truncate", "delete file", "bad manifest", "no manifest",
                                 "consistent but wrong"])
def test_corrupt_entry_is_rebuilt(how):
    k1 = vm.load(ADD)
    run_add(k1, 33)
    entry = pathlib.Path(k1.events[0].path)
    _corrupt(entry, how)
    k2 = vm.load(ADD)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run_add(k2, 33)                                     # still the right answer
    assert k2.events[0].outcome == "compiled"
    assert any(issubclass(w.category, CacheWarning) for w in caught), [str(w.message) for w in caught]
    k3 = vm.load(ADD)                                       # the entry was replaced by a good one
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        run_add(k3, 33)
    assert k3.events[0].outcome == "loaded from disk"


def test_disable_disk_cache(private_cache, monkeypatch):
    monkeypatch.setenv("VMLANG_CACHE", "0")
    k = vm.load(ADD)
    run_add(k, 5)
    assert k.events[0].path is None and not (private_cache / "kernels").exists()


def test_unwritable_cache_warns_and_still_runs(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("VMLANG_CACHE_DIR", str(blocker))
    k = vm.load(ADD)
    with pytest.warns(CacheWarning, match="cannot write"):
        run_add(k, 5)


def test_json_records_are_verified(tmp_path):
    p = tmp_path / "t.json"
    write_json(p, {"a": 1})
    assert read_json(p) == {"a": 1}
    p.write_text(p.read_text().replace('"a": 1', '"a": 2'))
    with pytest.warns(CacheWarning, match="corrupt"):
        assert read_json(p) is None
    assert not p.exists()


# ----------------------------------------------------------------------------------- two processes at once
WORKER = textwrap.dedent("""
    import os, sys, time, numpy as np, vmlang as vm, warnings
    warnings.simplefilter("error")
    start = sys.argv[1]
    while not os.path.exists(start):
        time.sleep(0.001)
    for n in (100, 64, 7, 80):
        k = vm.load(sys.argv[2])
        x = np.arange(n, dtype=np.float16); y = np.ones(n, np.float16); z = np.zeros(n, np.float16)
        k(x, y, z)
        assert (z == x + y).all()
        print(k.events[0].outcome)
""")


def test_concurrent_processes_share_the_cache(private_cache, tmp_path):
    start = tmp_path / "go"
    env = dict(os.environ)
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, str(start), str(ADD)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(4)]
    start.write_text("go")
    outs = [p.communicate(timeout=120) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err
    for out, _ in outs:
        lines = out.splitlines()
        assert len(lines) == 4 and set(lines) <= {"compiled", "loaded from disk"}
        # by its third and fourth kernel objects every process finds both entries on disk
        assert lines[2:] == ["loaded from disk", "loaded from disk"]
    entries = list((private_cache / "kernels").glob("*/*"))
    assert len(entries) == 2                     # N % 16 (64, 80) and N not % 16 (100, 7)
    cache = DiskCache(private_cache)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for e in entries:
            assert cache.get(e.name) is not None
    assert not any((private_cache / "tmp").iterdir())


PUTTER = textwrap.dedent("""
    import sys, warnings
    from vmlang.runtime.cache import DiskCache
    warnings.simplefilter("error")
    c = DiskCache(sys.argv[1])
    key = "ab" * 32
    files = {"kernel.vm": "x" * 100000, "bin": bytes(range(256)) * 100}
    for i in range(40):
        c.put(key, files, {"writer": sys.argv[2]})
        got = c.get(key)
        assert got is not None and got["kernel.vm"] == files["kernel.vm"] and got["bin"] == files["bin"]
""")


def test_concurrent_writers_of_one_entry(tmp_path):
    procs = [subprocess.Popen([sys.executable, "-c", PUTTER, str(tmp_path), str(i)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(4)]
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    assert DiskCache(tmp_path).get("ab" * 32) is not None
    assert not any((tmp_path / "tmp").iterdir())
