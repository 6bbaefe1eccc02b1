"""The seven kernels of examples/*.vm written as @vm.jit Python functions.

Each function is the Python twin of the .vm file of the same name: it translates to the same AST and
lowers to the same IR (tests/lang/test_pyfront.py checks both). The header comments of the .vm files
describe the layouts and edge handling; they hold here unchanged.

Conventions of the Python spelling (docs/jit.md):
- tensor parameters are annotated ``vm.<dtype>["dim", ...]``: each dimension is a string holding a .vm
  size expression (a size symbol such as "K", or "cdiv(K, G)"); they always live in global memory;
- compile-time parameters are annotated ``vm.constexpr`` with their default (``BN: vm.constexpr = 128``);
- grid and warps are declared in the decorator; the grid lambda's parameters name kernel sizes and
  constants, and its body is translated, never called;
- ``x[a:+n]`` is the .vm slice ``a : +n`` (n elements from a); ``/`` on integers truncates toward zero.
"""
import vmlang as vm


@vm.jit(grid=lambda N, BLOCK: (vm.cdiv(N, BLOCK),), warps=4)
def vector_add(x: vm.f16["N"], y: vm.f16["N"], z: vm.f16["N"], BLOCK: vm.constexpr = 256):
    """z[i] = x[i] + y[i] for i in [0, N), in f16."""
    i = vm.block.x * BLOCK
    vm.store(z[i:+BLOCK], vm.load(x[i:+BLOCK]) + vm.load(y[i:+BLOCK]))


@vm.jit(grid=lambda C, BC, R, BR: (vm.cdiv(C, BC), vm.cdiv(R, BR)), warps=4)
def dequant_int3(
    y: vm.f16["R", "C"],                   # output
    q: vm.u8["R", "cdiv(3 * C, 8)"],       # packed int3 codes
    s: vm.f16["R", "cdiv(C, G)"],          # per-group scales
    BR: vm.constexpr = 4,
    BC: vm.constexpr = 128,
    G: vm.constexpr = 32,
):
    """int3 dequantization: y[r, c] = q[r, c] * s[r, c / G]."""
    vm.assume(BC % 8 == 0)                 # whole 3-byte granules per tile (checked at compile time)
    vm.assume(BC % G == 0)                 # whole scale groups per tile
    r0 = vm.block.y * BR
    c0 = vm.block.x * BC
    bytes = vm.load(q[r0:+BR, vm.block.x * (3 * BC / 8):+(3 * BC / 8)])  # u8[BR, 3*BC/8]
    codes = vm.view(bytes, vm.int3)                                       # int3[BR, BC]
    sc = vm.cast(vm.load(s[r0:+BR, vm.block.x * (BC / G):+(BC / G)]), vm.f32)
    groups = vm.reshape(vm.cast(codes, vm.f32), [BR, BC / G, G]) * sc[:, :, None]
    vm.store(y[r0:+BR, c0:+BC], vm.cast(vm.reshape(groups, [BR, BC]), vm.f16))


@vm.jit(grid=lambda N, BN, M: (vm.cdiv(N, BN), M), warps=4)
def gemv_nf4(
    x: vm.f16["M", "K"],                   # activations
    w: vm.nf4["N", "K"],                   # 4-bit codes
    absmax: vm.f32["N", "cdiv(K, 64)"],    # one scale per 64 weights of a row
    y: vm.f16["M", "N"],                   # output
    BN: vm.constexpr = 64,
    BK: vm.constexpr = 128,
):
    """NF4 GEMV: y[m, n] = sum_k x[m, k] * NF4[w[n, k]] * absmax[n, k / 64]."""
    vm.assume(BK % 64 == 0)                # whole quantization blocks per step (compile time)
    n0 = vm.block.x * BN
    table = vm.codebook(vm.nf4, vm.f32)    # f32[16]
    acc = vm.zeros(vm.f32, [BN])
    for k0 in range(0, K, BK):
        codes = vm.load(w[n0:+BN, k0:+BK])                            # nf4[BN, BK]
        sc = vm.load(absmax[n0:+BN, k0 / 64:+(BK / 64)])              # f32[BN, BK/64]
        wv = vm.reshape(vm.lookup(table, codes), [BN, BK / 64, 64]) * sc[:, :, None]
        xt = vm.cast(vm.load(x[vm.block.y, k0:+BK]), vm.f32)          # f32[BK]
        acc += vm.sum(vm.reshape(wv, [BN, BK]) * xt[None, :], axis=1)
    vm.store(y[vm.block.y, n0:+BN], vm.cast(acc, vm.f16))


@vm.jit(grid=lambda N, BN, M: (vm.cdiv(N, BN), M), warps=4)
def gemv_w4a16(
    x: vm.f16["M", "K"],                   # activations
    w: vm.int4["K", "N"],                  # weights, packed along N (LSB-first)
    s: vm.f16["cdiv(K, G)", "N"],          # per-group scales (K need not be a multiple of G)
    y: vm.f16["M", "N"],                   # output
    BN: vm.constexpr = 128,
    G: vm.constexpr = 128,
):
    """W4A16 GEMV: y[m, :] = x[m, :] @ dequant(w), one f16 scale per group of G rows."""
    acc = vm.zeros(vm.f32, [BN])
    for k0 in range(0, K, G):                                 # one scale group per step
        xt = vm.load(x[vm.block.y, k0:+G])                    # f16[G]
        wt = vm.load(w[k0:+G, vm.block.x * BN:+BN])           # int4[G, BN]
        st = vm.load(s[k0 / G, vm.block.x * BN:+BN])          # f16[BN]
        acc += vm.sum(vm.cast(wt, vm.f32) * xt[:, None], axis=0) * st
    vm.store(y[vm.block.y, vm.block.x * BN:+BN], vm.cast(acc, vm.f16))


@vm.jit(grid=lambda N, BN, M, BM: (vm.cdiv(N, BN), vm.cdiv(M, BM)), warps=lambda W: W)
def matmul_f16(a: vm.f16["M", "K"], b: vm.f16["K", "N"], c: vm.f16["M", "N"],
               BM: vm.constexpr = 64, BN: vm.constexpr = 64, BK: vm.constexpr = 32, W: vm.constexpr = 4):
    """Tiled C = A @ B: f16 inputs, f32 accumulator, f16 result."""
    m0 = vm.block.y * BM
    n0 = vm.block.x * BN
    acc = vm.zeros(vm.f32, [BM, BN])
    for k0 in range(0, K, BK):
        at = vm.load(a[m0:+BM, k0:+BK])     # f16[BM, BK]
        bt = vm.load(b[k0:+BK, n0:+BN])     # f16[BK, BN]
        acc = vm.dot(at, bt, acc)
    vm.store(c[m0:+BM, n0:+BN], vm.cast(acc, vm.f16))


@vm.jit(grid=lambda N, BN, M: (vm.cdiv(N, BN), M), warps=4)
def mxfp4_gemv(
    x: vm.f16["M", "K"],                           # activations
    w: vm.float4_e2m1["N", "K"],                   # fp4 elements
    e: vm.float8_e8m0["N", "cdiv(K, 32)"],         # shared exponents, one per 32 elements
    y: vm.f16["M", "N"],                           # output
    BN: vm.constexpr = 64,
    BK: vm.constexpr = 128,
):
    """MXFP4 GEMV: y[m, n] = sum_k x[m, k] * fp4(w[n, k]) * 2^(e[n, k / 32] - 127)."""
    vm.assume(BK % 32 == 0)                        # whole MX blocks per step (compile time)
    n0 = vm.block.x * BN
    acc = vm.zeros(vm.f32, [BN])
    for k0 in range(0, K, BK):
        wt = vm.cast(vm.load(w[n0:+BN, k0:+BK]), vm.f32)                        # f32[BN, BK]
        sc = vm.cast(vm.load(e[n0:+BN, k0 / 32:+(BK / 32)], fill=1.0), vm.f32)  # f32[BN, BK/32]
        wv = vm.reshape(vm.reshape(wt, [BN, BK / 32, 32]) * sc[:, :, None], [BN, BK])
        xt = vm.cast(vm.load(x[vm.block.y, k0:+BK]), vm.f32)                    # f32[BK]
        acc += vm.sum(wv * xt[None, :], axis=1)
    vm.store(y[vm.block.y, n0:+BN], vm.cast(acc, vm.f16))


@vm.jit(grid=lambda M: M, warps=4)
def softmax(x: vm.f16["M", "N"], y: vm.f16["M", "N"], BN: vm.constexpr = 128):
    """Row softmax, numerically stable (online max and sum), f16 in and out, f32 arithmetic."""
    row = vm.block.x
    mx: vm.f32 = -65504.0                  # running max
    l: vm.f32 = 0.0                        # running sum of exp(x - mx)
    for k0 in range(0, N, BN):
        xt = vm.cast(vm.load(x[row, k0:+BN], fill=-65504.0), vm.f32)
        new_mx = max(mx, max(xt))
        e = vm.where(k0 + vm.arange(BN) < N, vm.exp(xt - new_mx), 0.0)
        l = l * vm.exp(mx - new_mx) + sum(e)
        mx = new_mx
    for k0 in range(0, N, BN):
        xt = vm.cast(vm.load(x[row, k0:+BN]), vm.f32)
        vm.store(y[row, k0:+BN], vm.cast(vm.exp(xt - mx) / l, vm.f16))


KERNELS = [vector_add, dequant_int3, gemv_nf4, gemv_w4a16, matmul_f16, mxfp4_gemv, softmax]
