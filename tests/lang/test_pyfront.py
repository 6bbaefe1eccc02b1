"""The Python front end of @vm.jit (vmlang.lang.pyfront): Python functions -> the .vm AST.

The central check: every kernel of examples/*.vm has a Python twin in examples/jit_examples.py, and the two
give equal ASTs (dataclass equality, locations ignored) and identical printed IR, for the default
compile-time constants and for another set. The other tests pin the language decisions of docs/jit.md
(parameters, annotations, grid/warps, name resolution) against hand-written .vm equivalents, and the
locations of nodes and errors in real file coordinates.

Modules under test are written to tmp files and imported with ``vm.jit`` replaced by a recorder, so the
front end is tested on plain functions, independently of the runtime's ``vm.jit``.
"""
from __future__ import annotations

import dataclasses
import functools
import inspect
import pathlib
import runpy
import textwrap

import numpy as np
import pytest

import vmlang
import vmlang as vm
from vmlang.ir.dtypes import TensorSpec
from vmlang.ir.errors import SourceLoc, VMError, VMSyntaxError, VMTypeError
from vmlang.ir.printer import print_kernel
from vmlang.lang import ast as A
from vmlang.lang.builtins import EXPRESSIONS, STATEMENTS
from vmlang.lang.lower import lower_kernel
from vmlang.lang.parser import parse
from vmlang.lang.pyfront import JitSource, constexpr, parse_function
from vmlang.lang.stubs import STUBS

from lang_support import import_file, write_file  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


# ------------------------------------------------------------------------------------------ helpers
def load(tmp_path: pathlib.Path, text: str, name: str | None = None):
    text = textwrap.dedent(text).lstrip("\n")
    if name is None:
        return import_file(write_file(tmp_path, text))
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return import_file(path)


def jit_parse(fn) -> JitSource:
    return parse_function(fn, **getattr(fn, "__vm_jit__", {}))


def vm_kernel(text: str) -> A.Kernel:
    return parse(textwrap.dedent(text), "expected.vm").kernels[0]


def ir(kernel: A.Kernel, consts=None, source="", filename="<string>") -> str:
    return print_kernel(lower_kernel(kernel, consts or {}, source, filename))


@functools.lru_cache(maxsize=None)
def jit_examples():
    return import_file(EXAMPLES / "jit_examples.py")


# ------------------------------------------------------------------------------------------ examples
OTHER_CONSTS = {
    "vector_add": {"BLOCK": 128},
    "dequant_int3": {"BR": 2, "BC": 64, "G": 16},
    "gemv_nf4": {"BN": 32, "BK": 64},
    "gemv_w4a16": {"BN": 64, "G": 32},
    "matmul_f16": {"BM": 32, "BN": 16, "BK": 16},
    "mxfp4_gemv": {"BN": 32, "BK": 64},
    "softmax": {"BN": 64},
}
NAMES = sorted(OTHER_CONSTS)


def test_every_vm_example_has_a_python_twin():
    assert sorted(p.stem for p in EXAMPLES.glob("*.vm")) == NAMES
    assert sorted(f.__name__ for f in jit_examples().KERNELS) == NAMES


@pytest.mark.parametrize("name", NAMES)
def test_example_ast_equals_vm_ast(name):
    fn = getattr(jit_examples(), name)
    src = jit_parse(fn)
    vm_text = (EXAMPLES / f"{name}.vm").read_text(encoding="utf-8")
    expected = parse(vm_text, f"{name}.vm").kernels[0]
    assert src.kernel.name == name
    for field in ("consts", "params", "grid", "warps", "body"):
        assert getattr(src.kernel, field) == getattr(expected, field), field
    assert src.kernel == expected


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("which", ["defaults", "other"])
def test_example_ir_equals_vm_ir(name, which):
    fn = getattr(jit_examples(), name)
    src = jit_parse(fn)
    path = EXAMPLES / f"{name}.vm"
    vm_text = path.read_text(encoding="utf-8")
    consts = {} if which == "defaults" else OTHER_CONSTS[name]
    got = ir(src.kernel, consts, src.source, src.filename)
    want = ir(parse(vm_text, str(path)).kernels[0], consts, vm_text, str(path))
    assert got == want
    if which == "other":  # the other constants really change the program
        assert got != ir(src.kernel, {}, src.source, src.filename)


def test_examples_locations_point_into_the_python_file():
    fn = jit_examples().gemv_w4a16
    src = jit_parse(fn)
    lines = src.source.splitlines()
    k = src.kernel
    assert k.loc.file == src.filename == str(EXAMPLES / "jit_examples.py")
    assert lines[k.loc.line - 1][k.loc.column - 1:].startswith("def gemv_w4a16")
    for stmt in k.body:
        assert lines[stmt.loc.line - 1][stmt.loc.column - 1:].split()[0] in ("acc", "for", "vm.store(y[vm.block.y,")
    x = k.params[0]
    assert lines[x.loc.line - 1][x.loc.column - 1:].startswith('x: vm.f16["M", "K"]')
    n_dim = k.params[3].type.dims[1]          # the "N" of y: vm.f16["M", "N"]
    assert lines[n_dim.loc.line - 1][n_dim.loc.column - 1] == "N"
    assert src.text.startswith("@vm.jit(grid=lambda N, BN, M:") and src.text.rstrip().endswith(
        "vm.store(y[vm.block.y, vm.block.x * BN:+BN], vm.cast(acc, vm.f16))")


def test_examples_with_the_real_vm_jit():
    if not hasattr(vmlang, "jit"):
        pytest.skip("vm.jit is not available yet")
    ns = runpy.run_path(str(EXAMPLES / "jit_examples.py"))
    assert len(ns["KERNELS"]) == 7
    x = np.arange(300, dtype=np.float16)
    y = np.full(300, 0.5, np.float16)
    z = np.zeros(300, np.float16)
    try:
        ns["vector_add"](x, y, z)
    except VMError as e:  # a runtime without a usable backend here is not this front end's business
        pytest.skip(f"cannot launch here: {e.message}")
    np.testing.assert_array_equal(z, x + y)


# ------------------------------------------------------------------------------------------ API
def test_jit_source_fields(tmp_path):
    mod = load(tmp_path, '''
        import vmlang as vm

        X = 1


        @vm.jit(
            grid=lambda N: (N,),
        )
        def copy(x: vm.f32["N"], y: vm.f32["N"]):
            vm.store(y[0:+4], vm.load(x[0:+4]))
        Y = 2
        ''', name="api.py")
    src = jit_parse(mod.copy)
    path = tmp_path / "api.py"
    assert isinstance(src, JitSource)
    assert src.filename == str(path)
    assert src.source == path.read_text()
    assert src.text == ('@vm.jit(\n    grid=lambda N: (N,),\n)\ndef copy(x: vm.f32["N"], y: vm.f32["N"]):\n'
                        '    vm.store(y[0:+4], vm.load(x[0:+4]))\n')
    assert src.kernel.name == "copy"
    with pytest.raises(dataclasses.FrozenInstanceError):
        src.text = ""


def test_constexpr_and_tensor_spec():
    assert vm.constexpr is constexpr
    assert repr(constexpr) == "vmlang.constexpr"
    spec = vm.f16["M", "K"]
    assert spec == TensorSpec(vm.float16, ("M", "K"))
    assert vm.int4[128] == TensorSpec(vm.int4, (128,))
    assert repr(spec) == "vmlang.float16['M', 'K']"
    with pytest.raises(TypeError):
        iter(vm.f16)
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.dims = ()


def test_stubs():
    assert set(STUBS) == (set(EXPRESSIONS) | set(STATEMENTS) | {"block"}) - {"load"}
    for name, stub in STUBS.items():
        assert stub.__vm_builtin__ == name
        assert stub.__doc__
        assert getattr(vm, name) is stub
        with pytest.raises(VMError, match=rf"vm\.{name}\(\) can only be used inside a @vm.jit kernel"
                           if name != "block" else "vm.block can only be used"):
            stub(1, 2)
    assert list(inspect.signature(vm.cast).parameters) == ["x", "dtype", "saturate"]
    assert vm.block.x.__vm_builtin__ == "block.x"
    with pytest.raises(VMError):
        int(vm.block.y)
    with pytest.raises(VMError):
        range(vm.block.z)


@pytest.mark.parametrize("obj", [42, None, len, "def f(): pass", functools.partial(print, 1), int,
                                 lambda x: x])
def test_not_a_kernel_function(obj):
    with pytest.raises(VMSyntaxError, match="@vm.jit needs"):
        parse_function(obj, grid=1)


def test_function_without_source():
    ns = {"vm": vm}
    exec(compile('def k(x: vm.f32["N"]):\n    pass\n', "<no file>", "exec"), ns)
    with pytest.raises(VMSyntaxError, match="cannot read the source"):
        parse_function(ns["k"], grid=1)


def test_file_changed_after_import(tmp_path):
    mod = load(tmp_path, '''
        import vmlang as vm

        @vm.jit(grid=1)
        def k(x: vm.f32["N"]):
            pass
        ''', name="changed.py")
    (tmp_path / "changed.py").write_text("# nothing here any more\n")
    import linecache
    linecache.checkcache(str(tmp_path / "changed.py"))
    with pytest.raises(VMSyntaxError, match="cannot find 'def k' at line 3"):
        jit_parse(mod.k)


# ------------------------------------------------------------------------------------------ language
def check_same(tmp_path, py_text: str, vm_text: str, fn: str = "k") -> JitSource:
    src = jit_parse(getattr(load(tmp_path, py_text), fn))
    assert src.kernel == vm_kernel(vm_text)
    return src


def test_parameters_in_any_order(tmp_path):
    check_same(tmp_path, '''
        import vmlang as vm

        @vm.jit(grid=lambda N, BN: vm.cdiv(N, BN), warps=2)
        def k(BN: vm.constexpr, x: vm.f16["N"], n: vm.int32, T: vm.constexpr = vm.int4,
              *, w: "T[K, N]", C: vm.constexpr = 3, out: vm.f32["N"]):
            pass
        ''', '''
        kernel k<BN, T = int4, C = 3>(x: f16[N] global, n: int32, w: T[K, N] global, out: f32[N] global)
            grid(cdiv(N, BN)) warps(2) {}
        ''')


def test_dtype_constexpr_lowers_with_any_dtype(tmp_path):
    src = check_same(tmp_path, '''
        from __future__ import annotations
        import vmlang as vm

        @vm.jit(grid=lambda N, BN: (vm.cdiv(N, BN),))
        def k(w: T["N"], y: vm.f32["N"], T: vm.constexpr = vm.int4, BN: vm.constexpr = 64):
            i = vm.block.x * BN
            vm.store(y[i:+BN], vm.cast(vm.load(w[i:+BN]), vm.f32))
        ''', '''
        kernel k<T = int4, BN = 64>(w: T[N] global, y: f32[N] global) grid(cdiv(N, BN)) {
            i = block.x * BN;
            store(y[i : +BN], cast(load(w[i : +BN]), f32));
        }
        ''')
    assert "w: int4[N] global" in ir(src.kernel)
    assert "w: uint8[N] global" in ir(src.kernel, {"T": vm.uint8})


def test_string_annotations(tmp_path):
    check_same(tmp_path, '''
        import vmlang as vm

        @vm.jit(grid="cdiv(N, 8), M")
        def k(x: "f16[M, N]", y: 'f16[M, N] global', w: "T[N]", n: "int32", T: "constexpr" = vm.u8):
            t: "f16[8]" = vm.load(x[0, 0:+8])
            s: "f16[8] shared" = t
            r: 'f16[8] register layout("(8):(1)")' = s
            u: "shared" = r
            vm.store(y[0, 0:+8], u)
        ''', '''
        kernel k<T = u8>(x: f16[M, N] global, y: f16[M, N] global, w: T[N] global, n: int32)
            grid(cdiv(N, 8), M) {
            t: f16[8] = load(x[0, 0 : +8]);
            s: f16[8] shared = t;
            r: f16[8] register layout("(8):(1)") = s;
            u: shared = r;
            store(y[0, 0 : +8], u);
        }
        ''')


FUTURE_GEMV = '''
    from __future__ import annotations

    import vmlang as vm

    GROUP = 128


    @vm.jit(grid=lambda N, BN, M: (vm.cdiv(N, BN), M), warps=4)
    def gemv_w4a16(x: vm.f16[M, K], w: vm.int4[K, N], s: vm.f16[vm.cdiv(K, G), N], y: vm.f16[M, N],
                   BN: vm.constexpr = 128, G: vm.constexpr = GROUP):
        acc = vm.zeros(vm.f32, [BN])
        for k0 in range(0, K, G):
            xt = vm.load(x[vm.block.y, k0:+G])
            wt = vm.load(w[k0:+G, vm.block.x * BN:+BN])
            st = vm.load(s[k0 / G, vm.block.x * BN:+BN])
            acc += vm.sum(vm.cast(wt, vm.f32) * xt[:, None], axis=0) * st
        vm.store(y[vm.block.y, vm.block.x * BN:+BN], vm.cast(acc, vm.f16))
'''


def test_future_annotations_bare_dimensions(tmp_path):
    src = check_same(tmp_path, FUTURE_GEMV, (EXAMPLES / "gemv_w4a16.vm").read_text(), fn="gemv_w4a16")
    lines = src.source.splitlines()
    s = src.kernel.params[2]
    cdiv = s.type.dims[0]
    assert (cdiv.loc.line, cdiv.loc.column, cdiv.loc.end_column) == (9, 61, 74)
    assert lines[8][60:73] == "vm.cdiv(K, G)"


def test_future_annotations_module_ints_in_dims(tmp_path):
    check_same(tmp_path, '''
        from __future__ import annotations
        import vmlang as vm

        ROWS = 16

        @vm.jit(grid=1)
        def k(x: vm.f32[ROWS, N * 2], y: vm.f32[N]):
            pass
        ''', "kernel k(x: f32[16, N * 2] global, y: f32[N] global) grid(1) {}")


def test_python_scope_values(tmp_path):
    check_same(tmp_path, '''
        import numpy as np
        import vmlang as vm
        from vmlang import cast, block, f32

        SCALE = -0.25
        SHIFT = 3
        FLAG = True
        NP_INT = np.int64(5)
        T4 = vm.dtype("int4")
        BN = 999                     # shadowed by the compile-time parameter


        def outer(width):
            half = width // 2

            @vm.jit(grid=lambda N, BN: (vm.cdiv(N, BN),))
            def k(x: vm.f32["N"], y: vm.f32["N"], BN: vm.constexpr = width):
                SHIFT = 1            # a local: assigned in the body
                i = block.x * BN + SHIFT
                t = cast(vm.load(x[i:+half]), f32) * SCALE + NP_INT
                q = vm.cast(t, T4)
                if FLAG:
                    t = max(min(t, 1.0), abs(-2.0)) + sum(t)
                vm.store(y[i:+half], t)
            return k


        k = outer(64)
        ''', '''
        kernel k<BN = 64>(x: f32[N] global, y: f32[N] global) grid(cdiv(N, BN)) {
            SHIFT = 1;
            i = block.x * BN + SHIFT;
            t = cast(load(x[i : +32]), f32) * -0.25 + 5;
            q = cast(t, int4);
            if true {
                t = max(min(t, 1.0), abs(-2.0)) + sum(t);
            }
            store(y[i : +32], t);
        }
        ''')


def test_statements(tmp_path):
    src = check_same(tmp_path, '''
        import vmlang as vm

        @vm.jit(grid=lambda M: M)
        def k(x: vm.i32["M", "N"], y: vm.i32["M", "N"], BN: vm.constexpr = 32):
            """A docstring is skipped."""
            t = vm.load(x[vm.block.x, 0:+BN])
            acc: vm.i32 = 0
            for j in range(BN):
                acc += vm.sum(t)
                acc -= 1
                acc *= 2
                acc /= 3
                acc %= 5
                acc &= 7
                acc |= 8
                acc ^= 1
                acc <<= 1
                acc >>= 1
            for j in range(1, N):
                pass
            for j in range(0, N, 2):
                if j > 4 and not j == 8 or j < 2:
                    acc = acc + j
                elif j != 3:
                    acc = -acc
                else:
                    acc = ~acc
            vm.assume(BN % 32 == 0)
            vm.barrier()
            vm.store(y[vm.block.x, 0:+BN], t + acc)
            vm.atomic_add(y[vm.block.x, 0], acc, masked=False)
            return
        ''', '''
        kernel k<BN = 32>(x: i32[M, N] global, y: i32[M, N] global) grid(M) {
            t = load(x[block.x, 0 : +BN]);
            acc: i32 = 0;
            for j in range(BN) {
                acc += sum(t);
                acc -= 1;
                acc *= 2;
                acc /= 3;
                acc %= 5;
                acc &= 7;
                acc |= 8;
                acc ^= 1;
                acc <<= 1;
                acc >>= 1;
            }
            for j in range(1, N) {}
            for j in range(0, N, 2) {
                if j > 4 and not j == 8 or j < 2 {
                    acc = acc + j;
                } else if j != 3 {
                    acc = -acc;
                } else {
                    acc = ~acc;
                }
            }
            assume(BN % 32 == 0);
            barrier();
            store(y[block.x, 0 : +BN], t + acc);
            atomic_add(y[block.x, 0], acc, masked=false);
        }
        ''')
    ir(src.kernel)  # and it lowers


def test_indexing_and_shapes(tmp_path):
    check_same(tmp_path, '''
        import vmlang as vm

        @vm.jit(grid=1)
        def k(x: vm.f32["M", "K"], y: vm.f32["M", "K"]):
            t = vm.load(x[0:+8, 0:+16])
            row = t[2, :]
            part = row[4:12]
            head = row[:4]
            tail = row[12:]
            win = row[vm.block.x:+4]
            win2 = row[:+4]
            e = t[1, 3]
            col = part[:, None]
            lin = part[None, :]
            grow = row[vm.block.x:+2 * 2 + 0]
            m = vm.reshape(t, [16, 8]) + vm.reshape(t, (16, 8))
            p = vm.permute(vm.reshape(t, [2, 4, 16]), (2, 0, 1))
            vm.store(y[0:+8, 0:+8], col * lin + e)
        ''', '''
        kernel k(x: f32[M, K] global, y: f32[M, K] global) grid(1) {
            t = load(x[0 : +8, 0 : +16]);
            row = t[2, :];
            part = row[4 : 12];
            head = row[: 4];
            tail = row[12 :];
            win = row[block.x : +4];
            win2 = row[: +4];
            e = t[1, 3];
            col = part[:, None];
            lin = part[None, :];
            grow = row[block.x : +2 * 2 + 0];
            m = reshape(t, [16, 8]) + reshape(t, [16, 8]);
            p = permute(reshape(t, [2, 4, 16]), [2, 0, 1]);
            store(y[0 : +8, 0 : +8], col * lin + e);
        }
        ''')


def test_vm_load_is_the_builtin_whatever_vmlang_load_is(tmp_path, monkeypatch):
    text = '''
        import vmlang
        import vmlang as vm

        @vmlang.jit(grid=1)
        def k(x: vm.f32["N"], y: vm.f32["N"]):
            vm.store(y[0:+4], vmlang.load(x[0:+4], fill=1.0))
        '''
    expected = 'kernel k(x: f32[N] global, y: f32[N] global) grid(1) { store(y[0 : +4], load(x[0 : +4], fill=1.0)); }'
    check_same(tmp_path, text, expected)
    monkeypatch.delattr(vmlang, "load", raising=False)      # before the runtime defined vmlang.load
    check_same(tmp_path, text, expected)
    monkeypatch.setattr(vmlang, "load", lambda path: None, raising=False)   # not marked: still the builtin
    check_same(tmp_path, text, expected)


# ------------------------------------------------------------------------------------------ grid, warps
BODY = '''
    vm.store(y[0:+4], vm.load(x[0:+4]))
'''


@pytest.mark.parametrize("deco, grid, warps", [
    ("grid=lambda N, BN: (vm.cdiv(N, BN), 2)", "cdiv(N, BN), 2", None),
    ("grid=lambda N: N", "N", None),
    ("grid=lambda: [4, 2, 1]", "4, 2, 1", None),
    ("grid=8", "8", None),
    ("grid=(4, 2)", "4, 2", None),
    ("grid=(ROWS, 'cdiv(N, BN)')", "16, cdiv(N, BN)", None),
    ("grid=ROWS", "16", None),
    ("grid='cdiv(N, BN), 3,'", "cdiv(N, BN), 3", None),
    ("grid=lambda N, BN: vm.cdiv(N, BN * ROWS), warps=8", "cdiv(N, BN * 16)", "8"),
    ("grid=1, warps='W'", "1", "W"),
    ("grid=1, warps=lambda W: W * 2", "1", "W * 2"),
    ("grid=1, warps=WARPS", "1", "2"),
    ("grid=GRID", "cdiv(N, BN)", None),
    ("grid=None, warps=None", None, None),
])
def test_grid_and_warps_in_the_decorator(tmp_path, deco, grid, warps):
    text = f'''
        import vmlang as vm
        ROWS = 16
        WARPS = 2; GRID = lambda N, BN: vm.cdiv(N, BN)

        @vm.jit({deco})
        def k(x: vm.f32["N"], y: vm.f32["N"], BN: vm.constexpr = 4, W: vm.constexpr = 2):
            vm.store(y[0:+4], vm.load(x[0:+4]))
        '''
    mod = load(tmp_path, text)
    if grid is None:
        with pytest.raises(VMSyntaxError, match="kernel k has no grid") as info:
            jit_parse(mod.k)
        assert (info.value.loc.line, info.value.loc.column, info.value.loc.end_column) == (6, 1, 6)
        return
    src = jit_parse(mod.k)
    expected = vm_kernel(f'''
        kernel k<BN = 4, W = 2>(x: f32[N] global, y: f32[N] global) grid({grid}) {"" if warps is None else f"warps({warps})"} {{
            store(y[0 : +4], load(x[0 : +4]));
        }}''')
    assert src.kernel == expected


def test_grid_given_as_values(tmp_path):
    mod = load(tmp_path, '''
        import vmlang as vm

        def k(x: vm.f32["N"], y: vm.f32["N"], BN: vm.constexpr = 4):
            vm.store(y[0:+4], vm.load(x[0:+4]))

        one = lambda N, BN: (vm.cdiv(N, BN),)
        two, three = lambda N: (N, 2), lambda N: (N, 3)


        def as_def(N, BN):
            "a def with a single return works too"
            return vm.cdiv(N, BN), 7

        kw = vm.jit(grid=lambda N: (N, 5), warps=2)(k)
        ''')
    cases = [(mod.one, "cdiv(N, BN)"), (mod.two, "N, 2"), (mod.three, "N, 3"), (mod.as_def, "cdiv(N, BN), 7"),
             ("cdiv(N, BN), 4", "cdiv(N, BN), 4"), ((4, "N"), "4, N"), ([1, 2, 3], "1, 2, 3"), (6, "6")]
    for grid, expected in cases:
        src = parse_function(mod.k, grid=grid, warps="BN")
        want = vm_kernel(f"kernel k<BN = 4>(x: f32[N] global, y: f32[N] global) grid({expected}) warps(BN) "
                         "{ store(y[0 : +4], load(x[0 : +4])); }")
        assert src.kernel == want, grid
    # the lambda given to vm.jit at the call site
    src = jit_parse(mod.kw)
    assert src.kernel.grid == (A.Name("N", loc=None), A.Int(5, loc=None))
    assert src.kernel.warps == A.Int(2, loc=None)
    # grid nodes of values without source sit at the def line
    src = parse_function(mod.k, grid="N")
    assert src.kernel.grid[0].loc == src.kernel.loc


def test_grid_value_errors(tmp_path):
    mod = load(tmp_path, '''
        import vmlang as vm

        def k(x: vm.f32["N"]):
            pass
        ''')
    ns = {"vm": vm}
    exec("g = lambda N: N", ns)  # no source file
    with pytest.raises(VMSyntaxError, match=r"cannot locate the source of the grid function") as info:
        parse_function(mod.k, grid=ns["g"])
    assert "write grid in the decorator" in info.value.hint
    assert (info.value.loc.line, info.value.loc.column) == (3, 1)
    with pytest.raises(VMSyntaxError, match="unexpected end of the string") as info:
        parse_function(mod.k, grid="cdiv(N, 4) +")
    assert info.value.loc == SourceLoc("<grid>", 1, 13, 14)
    assert info.value.render().splitlines()[1:] == ["  cdiv(N, 4) +", "              ^"]
    with pytest.raises(VMSyntaxError, match="empty expression"):
        parse_function(mod.k, grid="N,,1")
    with pytest.raises(VMSyntaxError, match="grid takes 1 to 3 sizes, got 4"):
        parse_function(mod.k, grid=(1, 2, 3, 4))
    with pytest.raises(VMSyntaxError, match="grid must be .* not float"):
        parse_function(mod.k, grid=2.0)
    with pytest.raises(VMSyntaxError, match="not a bool"):
        parse_function(mod.k, grid=True)
    with pytest.raises(VMSyntaxError, match="warps must be .* not tuple"):
        parse_function(mod.k, grid=1, warps=(4,))


def test_grid_lambda_sees_its_own_closure(tmp_path):
    mod = load(tmp_path, '''
        import vmlang as vm

        def make(rows, warps):
            @vm.jit(grid=lambda N: (vm.cdiv(N, 4), rows), warps=lambda: warps)
            def k(x: vm.f32["N"]):
                pass
            return k

        k = make(3, 8)
        ''')
    src = jit_parse(mod.k)
    assert src.kernel.grid == (vm_kernel("kernel k(x: f32[N]) grid(cdiv(N, 4)) {}").grid[0], A.Int(3, loc=None))
    assert src.kernel.warps == A.Int(8, loc=None)
    with pytest.raises(VMSyntaxError, match="name 'rows' is not defined"):
        parse_function(mod.k)   # without the lambda object its closure is out of reach


def test_source_file_that_no_longer_parses(tmp_path):
    """The file was edited after import (a syntax error elsewhere): the function's block is parsed alone,
    with its real line and column numbers."""
    mod = load(tmp_path, '''
        import vmlang as vm


        class Holder:
            @vm.jit(grid=lambda N: N)
            def k(x: vm.f32["N"], y: vm.f32["N"]):
                t = vm.load(x[0:+4])
                vm.store(y[0:+4], t // 2)
        ''', name="edited.py")
    path = tmp_path / "edited.py"
    path.write_text(path.read_text() + "\ndef broken(:\n")
    import linecache
    linecache.checkcache(str(path))
    with pytest.raises(VMSyntaxError, match="'//' is not supported") as info:
        jit_parse(mod.Holder.k)
    assert (info.value.loc.line, info.value.loc.column) == (8, 29)
    assert info.value.source == path.read_text()


def test_the_decorator_in_the_source_wins(tmp_path):
    mod = load(tmp_path, '''
        import vmlang as vm

        @vm.jit(grid=lambda N: N)
        def k(x: vm.f32["N"]):
            pass
        ''')
    src = parse_function(mod.k, grid=(9,), warps=8)   # what a runtime would pass: ignored for grid
    assert src.kernel.grid == (A.Name("N", loc=None),)
    assert src.kernel.warps == A.Int(8, loc=None)     # not in the decorator: the value is used


# ------------------------------------------------------------------------------------------ locations
def test_locations_of_a_kernel_in_a_class_and_a_function(tmp_path):
    mod = load(tmp_path, '''
        import vmlang as vm


        class Kernels:
            """Kernels as class attributes."""

            @staticmethod
            @vm.jit(grid=lambda N: N)
            def scale(x: vm.f32["N"], y: vm.f32["N"]):
                t = vm.load(x[0:+4])
                vm.store(y[0:+4], t * 2.0)


        def factory():
            def helper():
                @vm.jit(grid=lambda N: N)
                def bad(x: vm.f32["N"], y: vm.f16["N"]):
                    t = vm.load(x[0:+4])
                    vm.store(y[0:+4], t * 2.0)
                return bad
            return helper()
        ''', name="nested.py")
    src = parse_function(mod.Kernels.__dict__["scale"])   # the staticmethod object
    k = src.kernel
    assert (k.loc.line, k.loc.column) == (9, 5)
    assert (k.body[0].loc.line, k.body[0].loc.column) == (10, 9)
    mul = k.body[1].expr.args[1]
    assert (mul.loc.line, mul.loc.column, mul.loc.end_column) == (11, 27, 34)
    assert src.text.startswith("    @staticmethod\n    @vm.jit(grid=lambda N: N)\n    def scale(")
    ir(k)

    src = jit_parse(mod.factory())
    with pytest.raises(VMTypeError) as info:
        lower_kernel(src.kernel, {}, src.source, src.filename)
    err = info.value
    assert err.loc.file == str(tmp_path / "nested.py")
    assert (err.loc.line, err.loc.column) == (19, 31)
    lines = err.render().splitlines()
    assert lines[0].startswith(f"{tmp_path / 'nested.py'}:19:31: error: cannot store float32 values into y")
    assert lines[1] == "              vm.store(y[0:+4], t * 2.0)"
    assert lines[2].index("^") == 2 + 30


def test_syntax_error_locations_in_indented_code(tmp_path):
    mod = load(tmp_path, '''
        import vmlang as vm


        def factory():
            @vm.jit(grid=lambda N: N)
            def k(x: vm.f32["N"]):
                if True:
                    while x:
                        pass
            return k
        ''')
    with pytest.raises(VMSyntaxError) as info:
        jit_parse(mod.factory())
    assert (info.value.loc.line, info.value.loc.column, info.value.loc.end_column) == (8, 13, 18)
    assert info.value.render().splitlines()[2] == "  " + " " * 12 + "^~~~~"


def test_locations_inside_string_annotations(tmp_path):
    mod = load(tmp_path, '''
        from __future__ import annotations
        import vmlang as vm

        @vm.jit(grid=lambda N: N)
        def k(x: vm.f32["cdiv(N, 4)", M], y: "f32[M, N] global", z: "f32[N, (M]"):
            pass
        ''')
    with pytest.raises(VMSyntaxError) as info:
        jit_parse(mod.k)
    err = info.value
    line = err.source.splitlines()[err.loc.line - 1]
    assert (err.loc.line, err.loc.column) == (5, 71)
    assert line[err.loc.column - 1] == "]"
    assert "unexpected ']'" in err.message


def test_node_locations_inside_strings(tmp_path):
    mod = load(tmp_path, '''
        import vmlang as vm

        @vm.jit(grid="cdiv(N, BN),  M")
        def k(x: vm.f32["M", "cdiv(N, 4)"], y: "f32[M, N] global", BN: vm.constexpr = 4):
            pass
        ''')
    src = jit_parse(mod.k)
    lines = src.source.splitlines()

    def at(node):
        return lines[node.loc.line - 1][node.loc.column - 1:node.loc.end_column - 1]

    assert at(src.kernel.grid[0]) == "cdiv(N, BN)"
    assert at(src.kernel.grid[1]) == "M"
    assert at(src.kernel.params[0].type.dims[1]) == "cdiv(N, 4)"
    assert at(src.kernel.params[0].type.dims[1].args[1]) == "4"
    assert at(src.kernel.params[1].type.dims[1]) == "N"
    assert at(src.kernel.params[1].type) == "f32[M, N] global"


def test_non_ascii_columns(tmp_path):
    mod = load(tmp_path, '''
        import vmlang as vm

        @vm.jit(grid=1)
        def k(x: vm.f32["N"], y: vm.f32["N"]):
            é = vm.load(x[0:+4]); ü = é ** 2
        ''')
    with pytest.raises(VMSyntaxError) as info:
        jit_parse(mod.k)
    assert (info.value.loc.line, info.value.loc.column, info.value.loc.end_column) == (5, 33, 35)
    assert info.value.render().splitlines()[2] == "  " + " " * 32 + "^~"
