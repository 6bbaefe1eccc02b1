"""vmlang/runtime/options.py: ``CompileOptions.key()`` (part of every cache key) and the documented environment
overrides that ``from_env`` reads."""
import vmlang as vm


def test_l2_prefetch_changes_only_ptx_keys():
    """``l2_prefetch`` changes the ptx backend's code and nothing else's: it is in a ptx key when set (two
    settings, two keys), and absent otherwise -- numpy and triton keys, and unset ptx keys, are what they
    were before the option existed."""
    base = vm.CompileOptions(backend="ptx")
    assert set(base.key()) == {"backend", "specialize", "arch", "debug"}
    assert base.replace(l2_prefetch="w,s").key() == {**base.key(), "l2_prefetch": "w,s"}
    assert base.replace(l2_prefetch="w").key() != base.replace(l2_prefetch="w,s").key()
    for other in ("numpy", "triton"):
        o = vm.CompileOptions(backend=other)
        assert o.replace(l2_prefetch="w,s").key() == o.key()


def test_from_env_reads_the_l2_prefetch_override(monkeypatch):
    monkeypatch.setenv("VMLANG_L2_PREFETCH", "w,s")
    assert vm.CompileOptions.from_env(backend="ptx").l2_prefetch == "w,s"
    monkeypatch.delenv("VMLANG_L2_PREFETCH")
    assert vm.CompileOptions.from_env(backend="ptx").l2_prefetch == ""
