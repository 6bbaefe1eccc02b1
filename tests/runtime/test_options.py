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


def test_staging_options_change_only_ptx_keys():
    """``stage_loads`` and ``pipeline_stages`` (ptx: backends/ptx/staging.py, pipeline.py) are in a ptx key
    when set and nowhere else, like ``l2_prefetch``."""
    base = vm.CompileOptions(backend="ptx")
    assert base.replace(stage_loads="w").key() == {**base.key(), "stage_loads": "w"}
    assert base.replace(pipeline_stages=2).key() == {**base.key(), "pipeline_stages": 2}
    assert base.replace(pipeline_stages=2).key() != base.replace(pipeline_stages=3).key()
    assert base.replace(pipeline_stages=0).key() == {**base.key(), "pipeline_stages": 0}   # 0: pipelining off
    for other in ("numpy", "triton"):
        o = vm.CompileOptions(backend=other)
        assert o.replace(stage_loads="w", pipeline_stages=2).key() == o.key()


def test_from_env_reads_the_stage_loads_override(monkeypatch):
    monkeypatch.setenv("VMLANG_STAGE_LOADS", "w")
    assert vm.CompileOptions.from_env(backend="ptx").stage_loads == "w"
    monkeypatch.delenv("VMLANG_STAGE_LOADS")
    assert vm.CompileOptions.from_env(backend="ptx").stage_loads == ""
