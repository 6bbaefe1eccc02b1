"""Programs that parse but are wrong: each must give a VMTypeError at the right place, with a
message naming the problem — never a Python traceback from inside the compiler."""
import subprocess
import sys

import pytest

import vmlang as vm

HEAD = "kernel k<C = 4>(x: f16[N] global, w: int4[N] global, y: f32[N] global, n: int32) grid(1) {\n"

# (body lines, line:col of the error (line 1 = kernel header), message regex)
CASES = [
    ("a = zz + 1;", "2:5", r"unknown name zz"),
    ("a = load(q[0 : +4]);", "2:10", r"unknown name q"),
    ("a = zeros(f33, [4]);", "2:11", r"unknown dtype 'f33'.*did you mean"),
    ("a = load(x[0 : +4]) + load(y[0 : +8]);", "2:5", r"shapes \[4\], \[8\] do not broadcast"),
    ("a = load(w[0 : +4]) * 2;", "2:5", r"int4 is a storage type: cast it first"),
    ("a = view(load(w[0 : +5]), int3);", "2:5", r"5 x 4 = 20 bits, which is not a multiple of 3 bits"),
    ("a = load(x[0 : n]);", "2:12", r"compile-time bounds"),
    ("a = load(x[0 : +n]);", "2:17", r"slice length .*compile-time integer"),
    ("a = load(x[0 : +0]);", "2:12", r"slice length must be a positive integer"),
    ("a = load(x[0, 1]);", "2:10", r"1 dimensions but the index has 2 items"),
    ("a = cast(load(x[0 : +4]));", "2:5", r"cast\(\) is missing argument dtype"),
    ("a = exp(load(x[0 : +4]), 2);", "2:5", r"exp\(\) takes at most 1 arguments"),
    ("a = sum(load(x[0 : +4]), axis=3);", "2:31", r"axis 3 out of range"),
    ("a = sum(load(x[0 : +4]), axes=0);", "2:26", r"no argument named axes"),
    ("x = zeros(f32, [4]);", "2:1", r"cannot assign to tensor parameter x"),
    ("C = 3;", "2:1", r"cannot assign to compile-time parameter C"),
    ("store(y[0 : +4], load(x[0 : +4]));", "2:18", r"cannot store float16 values into y \(float32\)"),
    ("a = dot(zeros(f16, [4, 8]), zeros(f16, [4, 8]));", "2:5", r"dot inner dimensions differ"),
    ("a = dot(zeros(f16, [4, 8]), zeros(f32, [8, 4]));", "2:5", r"share a dtype"),
    ("a = zeros(f16, [4]);\nfor i in range(0, 4) { a = cast(a, f32) * 2.0; }", "3:1",
     r"loop-carried variable a changes type from float16\[4\] to float32\[4\]"),
    ("a = load(x[0 : +4]);\nif a > 0.0 { }", "3:4", r"if needs a bool scalar condition.*use where"),
    ("a: f32[4] = load(x[0 : +4]);", "2:4", r"annotation says float32 but the value is float16"),
    ("a: f16[8] = load(x[0 : +4]);", "2:4", r"annotation says shape \[8\]"),
    ("a = where(load(x[0 : +4]), 1.0, 2.0);", "2:11", r"where needs a bool condition, got float16"),
    ("a = lookup(zeros(f32, [4, 4]), zeros(int32, [4]));", "2:12", r"1-d tile"),
    ("a = lookup(zeros(f32, [8]), load(w[0 : +4]));", "2:5", r"int4 code can be up to 15 but the table has only 8"),
    ("a = x + 1.0;", "2:5", r"x is a tensor in global memory: read it with load"),
    ("a = -x / 3;", "2:5", r"x is a tensor in global memory: read it with load"),     # fuzz-found (GPU run)
    ("a = not y;", "2:5", r"y is a tensor in global memory: read it with load"),
    ("a = block.w;", "2:5", r"block has no attribute w"),
    ("a = reshape(zeros(f32, [4, 4]), [3, 5]);", "2:5", r"cannot reshape \[4, 4\] \(16 elements\) to \[3, 5\]"),
    ("a = permute(zeros(f32, [4, 4]), [0, 0]);", "2:33", r"not a permutation"),
    ("a = 1 / 0;", "2:5", r"division by zero"),
    ("a = load(x[0 : +4], fill=1e6);", "2:26", r"1000000.0 cannot be represented as float16"),
    ("a = ~true + 1;", "2:5", r"operator \+ does not apply to False and 1"),
    ("a = load(zeros(f32, [4])[0 : +4]);", "2:10", r"load\(\) takes an indexed tensor|indexed tensor"),
    ("a = zeros(int8, [4]) + 300;", "2:24", r"literal 300 does not fit in int8"),
    ("assume(C == 5);", "2:8", r"assumption is false at compile time"),
    ("sum(load(x[0 : +4]));", "2:1", r"value of sum\(...\) is not used"),
    ("a = empty(f32, [0]);", "2:17", r"tile dimensions must be positive"),
    ("a = load(x[0 : +4]) & load(x[0 : +4]);", "2:5", r"needs integer \(or bool\) operands"),
    ("a = sqrt(zeros(int32, [4]));", "2:10", r"sqrt needs a float operand, got int32"),
    ('a: register layout("((4,8),(2,2)):((32,1),(16,8)) -> (16,8)") = zeros(f32, [8, 16]);', "2:20",
     r"register layout maps onto a tile of shape \[16, 8\], but the value has shape \[8, 16\]"),
    ('a: register layout("(4,8):(1,") = zeros(f32, [4]);', "2:20", r"bad layout"),
]


@pytest.mark.parametrize("body,where,pattern", CASES, ids=[c[2][:40] for c in CASES])
def test_type_error(body, where, pattern):
    src = HEAD + body + "\n}\n"
    with pytest.raises(vm.VMTypeError) as ei:
        vm.compile_source(src, "bad.vm")
    e = ei.value
    assert e.loc is not None, e
    assert f"{e.loc.line}:{e.loc.column}" == where, (e.render(), where)
    assert e.loc.file == "bad.vm"
    import re
    assert re.search(pattern, e.message), e.message
    text = e.render()
    assert text.startswith(f"bad.vm:{where}: error: ")
    caret_line = text.splitlines()[2]
    assert caret_line.index("^") - 2 == e.loc.column - 1


def test_kernel_level_errors():
    with pytest.raises(vm.VMTypeError, match="C has no default and no value was given"):
        vm.compile_source("kernel k<C>(x: f16[N] global) grid(1) { }")
    with pytest.raises(vm.VMTypeError, match="tensor parameter x lives in global memory, not shared"):
        vm.compile_source("kernel k(x: f16[N] shared) grid(1) { }")
    with pytest.raises(vm.VMTypeError, match="warps must be an integer in 1..32"):
        vm.compile_source("kernel k(x: f16[N] global) grid(1) warps(64) { }")
    with pytest.raises(vm.VMTypeError, match="unknown size Q"):
        vm.compile_source("kernel k(x: f16[N] global) grid(Q) { }")
    with pytest.raises(vm.VMTypeError, match="declared twice"):
        vm.compile_source("kernel k(x: f16[N] global, x: f16[N] global) grid(1) { }")
    with pytest.raises(vm.VMError, match="no compile-time parameter Z"):
        vm.compile_source("kernel k<C = 1>(x: f16[N] global) grid(1) { }", consts={"Z": 1})


def test_cli_reports_diagnostics_without_traceback(tmp_path):
    f = tmp_path / "bad.vm"
    f.write_text(HEAD + "a = load(w[0 : +4]) * 2;\n}\n")
    r = subprocess.run([sys.executable, "-m", "vmlang", "check", str(f)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 1
    assert "Traceback" not in r.stderr
    assert f"{f}:2:5: error: operator * needs a compute dtype" in r.stderr
    assert "^" in r.stderr
    f.write_text("kernel k(x: f16[N] global) grid(1) {\n  a = ;\n}\n")
    r = subprocess.run([sys.executable, "-m", "vmlang", "check", str(f)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "Traceback" not in r.stderr and f"{f}:2:7: error:" in r.stderr


@pytest.mark.parametrize("expr", ["1 << -1", "2 >> -1", "5 % 0.0", "5.0 / 0.0", "1 << 100000000", "1 << 999999999999",
                                  "1 << 1000000000000000000000000000000", "1.5 & 1", "1 << 2.0"])
def test_constant_folding_errors_are_diagnostics(expr):
    """(found by the parser fuzzer) folding used Python's operators unguarded: negative shifts, fmod by zero
    and huge shifts raised ValueError/MemoryError/OverflowError (on the H100 machine the huge shift took
    the test worker down)."""
    src = f"kernel k(x: f32[N] global) grid(1) {{\n    a = {expr};\n}}\n"
    with pytest.raises(vm.VMError) as info:
        vm.compile_source(src, "fold.vm")
    assert info.value.loc is not None and info.value.loc.line == 2
    assert any(w in info.value.message for w in ("compile-time", "does not apply", "division by zero"))


def test_codebook_that_does_not_fit_its_dtype_is_a_diagnostic():
    """(found by the fuzzer) float8_e5m2 reaches 57344 and has Inf/NaN; float8_e4m3 stops at 448 and has no
    Inf. The table is static, so this is a compile-time error at the codebook call (it was a raw CastError
    from inside the VM)."""
    src = """
kernel k(y: f32[N] global) grid(1) {
    t = codebook(float8_e5m2, float8_e4m3);
    store(y[0 : +256], cast(t, f32));
}"""
    with pytest.raises(vm.VMError) as info:
        vm.compile_source(src, "bug.vm")
    assert info.value.loc.line == 3 and "float8_e4m3 cannot hold" in info.value.message


