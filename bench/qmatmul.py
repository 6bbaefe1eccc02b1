"""Benchmark ``vmlang.stdlib.qmatmul`` against cuBLAS fp16 and torch's int4 kernel, in ONE run.

For each weight shape ``[N, K]`` (out x in) and each M, every format is timed on the same activations:

* ours: ``qmatmul(x, qw)`` for int2 .. int8, uint4 (zero points), float4_e2m1, float6_e3m2,
  float8_e4m3 (group 128, f16 scales), nf4 (blocks of 64, f32 absmax), mxfp4 (float4_e2m1, e8m0 per 32);
* cuBLAS fp16: ``x @ W16.T`` (torch.matmul);
* torch int4: ``torch._weight_int4pack_mm`` on bf16 activations, with the uint4 weights (same codes,
  scales and zero points as ours, so its error is measured against the same reference).

Weights are random *valid* codes (never NaN/Inf codes) with random scales, built on the GPU; each
format gets enough copies that the working set exceeds the L2 cache several times, and the timed calls
rotate through them. GPU time per call comes from the torch profiler: the summed duration of the GPU
work (kernels, copies) of ``--iters`` calls divided by the number of calls, so Python launch overhead is
not counted and a call that launches several kernels counts them all. The device-to-device copy bandwidth (read + write) is
measured in the same run, and:

    GB/s  = (packed codes + scales + zero points + x + y bytes) / time
    %copy = GB/s / copy bandwidth
    vs fp16 = cuBLAS fp16 time / our time   (> 1: faster)
    rel.err = ||y - ref|| / ||ref|| over the first 256 output columns, ref = x @ dequantize(qw).T in float64

Usage (on the GPU machine):  python bench/qmatmul.py [--shapes 4096x4096,...] [--ms 1,16,128]
[--formats int4,nf4] [--out bench/RESULTS.md] [--backend triton,ptx]. ``--smoke`` runs tiny shapes (also on a
CPU, timed by the wall clock) to check the script itself.
"""
from __future__ import annotations

import argparse
import datetime
import math
import statistics
import sys
import time

import numpy as np

FORMATS = ["int2", "int3", "int4", "int5", "int6", "int7", "int8", "uint4", "float4_e2m1", "float6_e3m2", "float8_e4m3", "nf4",
           "mxfp4"]
SHAPES = [(4096, 4096), (14336, 4096), (4096, 14336), (28672, 8192)]
MS = [1, 16, 128]
L2_BYTES = 50 << 20
REF_ROWS = 256


# ------------------------------------------------------------------------------------------- weights
def pack_rows(codes, bits: int):
    """Pack uint8 codes ``[N, K]`` (torch, any device) into the LSB-first stream along K (vmlang's layout,
    ``vmlang.ir.packing.pack``), in chunks of rows to bound the temporary memory."""
    import torch
    N, K = codes.shape
    nbytes = (K * bits + 7) // 8
    out = torch.empty((N, nbytes), dtype=torch.uint8, device=codes.device)
    shifts = torch.arange(bits, dtype=torch.uint8, device=codes.device)
    weights = (1 << torch.arange(8, dtype=torch.int32, device=codes.device))
    step = max(1, (1 << 26) // max(1, K * bits))
    for r in range(0, N, step):
        c = codes[r:r + step]
        b = ((c.unsqueeze(-1) >> shifts) & 1).reshape(c.shape[0], K * bits)
        pad = nbytes * 8 - K * bits
        if pad:
            b = torch.nn.functional.pad(b, (0, pad))
        out[r:r + step] = (b.reshape(c.shape[0], nbytes, 8).to(torch.int32) * weights).sum(-1).to(torch.uint8)
    return out


def scheme_of(fmt: str):
    """(code dtype, scheme, group size, scale kind) of a benchmark format."""
    from vmlang.ir import dtypes as D
    if fmt == "mxfp4":
        return D.float4_e2m1, "mxfp4", 32, "e8m0"
    if fmt == "nf4":
        return D.nf4, "nf4", 64, "f32"
    dt = D.dtype(fmt)
    if dt.is_float:
        return dt, "float", 128, "f16"
    return dt, ("int" if dt.is_signed else "uint"), 128, "f16"


def random_weight(fmt: str, N: int, K: int, device, gen):
    """A QuantizedWeight of random valid codes and scales on ``device``, weights of magnitude ~0.02."""
    import torch
    import vmlang as vm
    from vmlang.stdlib import QuantizedWeight
    dt, scheme, g, skind = scheme_of(fmt)
    g = min(g, K)
    table = dt.decode(np.arange(1 << dt.nbits))
    valid = torch.from_numpy(np.flatnonzero(np.isfinite(table)).astype(np.uint8)).to(device)
    idx = torch.randint(0, len(valid), (N, K), device=device, generator=gen)
    codes = vm.Tensor(pack_rows(valid[idx], dt.nbits), dt, (N, K))
    G = -(-K // g)
    typical = float(np.nanmax(np.abs(table[np.isfinite(table)]))) / 2 or 1.0
    u = torch.rand((N, G), device=device, generator=gen) * 0.5 + 0.75
    zeros = None
    if skind == "e8m0":
        e = (127 + torch.round(torch.log2(0.02 / typical * u))).to(torch.uint8)
        scales = vm.Tensor(e, "float8_e8m0")
    else:
        scales = (0.02 / typical * u).to(torch.float16 if skind == "f16" else torch.float32)
    if scheme == "uint":
        zeros = torch.randint(0, 1 << dt.nbits, (N, G), device=device, generator=gen).to(torch.uint8)
    return QuantizedWeight(codes, scales, zeros, scheme, g)


def head_rows(qw, rows: int):
    """The first ``rows`` output rows of ``qw``, on the CPU (for the float64 reference)."""
    import vmlang as vm
    from vmlang.stdlib import QuantizedWeight

    def cut(a):
        if a is None:
            return None
        if isinstance(a, vm.Tensor):
            return vm.Tensor(a.host_data()[:rows].copy(), a.dtype, (min(rows, a.shape[0]),) + tuple(a.shape[1:]))
        return a[:rows].detach().cpu().numpy() if hasattr(a, "detach") else np.asarray(a)[:rows]
    return QuantizedWeight(cut(qw.codes), cut(qw.scales), cut(qw.zeros), qw.scheme, qw.group_size)


# ------------------------------------------------------------------------------------------- timing
class Timer:
    """GPU time per call: the torch profiler's GPU durations over ``iters`` calls, divided by ``iters``."""

    def __init__(self, device: str):
        self.cuda = device.startswith("cuda")

    def __call__(self, calls, warmup: int = 3, iters: int = 20) -> float:
        import torch
        for i in range(warmup):
            calls[i % len(calls)]()
        if not self.cuda:   # --smoke on a CPU: wall clock
            t = []
            for i in range(iters):
                t0 = time.perf_counter()
                calls[i % len(calls)]()
                t.append((time.perf_counter() - t0) * 1e6)
            return statistics.median(t)
        torch.cuda.synchronize()
        from torch.profiler import ProfilerActivity, profile
        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            for i in range(iters):
                calls[i % len(calls)]()
            torch.cuda.synchronize()
        total = sum(e.time_range.elapsed_us() for e in prof.events()
                    if e.device_type == torch.autograd.DeviceType.CUDA)
        if total <= 0:
            raise RuntimeError("the profiler recorded no GPU activity")
        return total / iters


def copy_bandwidth(device: str, nbytes: int = 1 << 30) -> float:
    """Device-to-device copy bandwidth in GB/s, counting the read and the write."""
    import torch
    if not device.startswith("cuda"):
        return float("nan")
    a = torch.empty(nbytes, dtype=torch.uint8, device=device)
    b = torch.empty_like(a)
    for _ in range(3):
        b.copy_(a)
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    times = []
    for _ in range(10):
        start.record()
        b.copy_(a)
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end) * 1e-3)
    return 2 * nbytes / statistics.median(times) / 1e9


# ------------------------------------------------------------------------------------------- baselines
def torch_int4(qw, device):
    """torch._weight_int4pack_mm operands for a uint4 QuantizedWeight (same weights): (packed, scale_zeros,
    group size), or a string saying why it is not available."""
    import torch
    if qw.scheme != "uint" or qw.dtype.nbits != 4:
        return "needs uint4"
    N, K = qw.shape
    g = qw.group_size
    try:
        codes = torch.from_numpy(qw.codes.codes()) if not qw.codes.is_torch else None
        if codes is None:   # unpack on the GPU: element 2j is the low nibble of byte j
            b = qw.codes.data
            codes = torch.stack([b & 15, b >> 4], dim=-1).reshape(N, -1)[:, :K]
        codes = codes.to(device)
        # torch's int4 layout: uint8 [N, K/2], element 2j in the HIGH nibble (as _convert_weight_to_int4pack wants)
        hi_first = ((codes[:, 0::2] << 4) | codes[:, 1::2]).to(torch.uint8).contiguous()
        packed = torch._convert_weight_to_int4pack(hi_first, 8)
        s = qw.scales.to(device).float()
        z = qw.zeros.to(device).float()
        # (q - z) * s = (q - 8) * s + (8 - z) * s
        sz = torch.stack([s, (8 - z) * s], dim=-1).transpose(0, 1).contiguous().to(torch.bfloat16)
        return packed, sz, g
    except Exception as e:  # noqa: BLE001 - reported in the table
        return f"{type(e).__name__}: {str(e).splitlines()[0][:60]}"


# ------------------------------------------------------------------------------------------- the run
def rel_err(y, ref) -> float:
    y = np.asarray(y, np.float64)
    return float(np.linalg.norm(y - ref) / max(np.linalg.norm(ref), 1e-300))


def nbytes_of(a) -> int:
    import vmlang as vm
    if a is None:
        return 0
    if isinstance(a, vm.Tensor):
        a = a.data
    return int(a.numel() * a.element_size()) if hasattr(a, "numel") else int(a.nbytes)


def rotation(args, nbytes: int) -> int:
    """How many copies of a weight the timed calls rotate through: enough to exceed the L2 cache three
    times (at least 2, at most 64); 1 for --smoke."""
    if args.smoke:
        return 1
    return min(64, max(2, math.ceil(3 * L2_BYTES / nbytes)))


def run(args) -> list[dict]:
    import torch
    from vmlang.stdlib import qmatmul
    device = args.device
    gen = torch.Generator(device=device)
    gen.manual_seed(0)
    timer = Timer(device)
    rows = []
    bw = copy_bandwidth(device)
    print(f"device: {torch.cuda.get_device_name() if device.startswith('cuda') else 'cpu'}; copy bandwidth "
          f"{bw:.0f} GB/s (read + write)", flush=True)
    for (N, K) in args.shapes:
        for M in args.ms:
            x = (torch.randn((M, K), device=device, generator=gen) * 0.5).to(torch.float16)
            x64 = x.double().cpu().numpy()
            io = x.numel() * 2 + M * N * 2
            # cuBLAS fp16
            w16 = [(torch.randn((N, K), device=device, generator=gen) * 0.02).to(torch.float16)
                   for _ in range(rotation(args, N * K * 2))]
            t16 = timer([lambda w=w: x @ w.T for w in w16], warmup=args.warmup, iters=args.iters)
            y16 = (x @ w16[0].T)[:, :REF_ROWS].double().cpu().numpy()
            ref16 = x64 @ w16[0][:REF_ROWS].double().cpu().numpy().T
            rows.append(dict(N=N, K=K, M=M, impl="cuBLAS fp16", us=t16, bytes=N * K * 2 + io, err=rel_err(y16, ref16)))
            del w16
            for fmt in args.formats:
                one = random_weight(fmt, N, K, device, gen)
                wbytes = nbytes_of(one.codes) + nbytes_of(one.scales) + nbytes_of(one.zeros)
                copies = [one] + [random_weight(fmt, N, K, device, gen)
                                  for _ in range(rotation(args, wbytes) - 1)]
                for be in args.backends:
                    name = f"vmlang {fmt}" + (f" ({be})" if be else "")
                    try:
                        t = timer([lambda q=q: qmatmul(x, q, backend=be) for q in copies], warmup=args.warmup,
                                  iters=args.iters)
                        y = qmatmul(x, one, backend=be)[:, :REF_ROWS].double().cpu().numpy()
                        ref = x64 @ head_rows(one, REF_ROWS).dequantize().astype(np.float64).T
                        rows.append(dict(N=N, K=K, M=M, impl=name, us=t, bytes=wbytes + io, err=rel_err(y, ref)))
                    except Exception as e:  # noqa: BLE001 - a failing format is reported, the run goes on
                        rows.append(dict(N=N, K=K, M=M, impl=name, us=float("nan"), bytes=wbytes + io,
                                         err=float("nan"), note=f"{type(e).__name__}: {str(e).splitlines()[0][:80]}"))
                if fmt == "uint4" and device.startswith("cuda"):
                    ops = [torch_int4(q, device) for q in copies]
                    if isinstance(ops[0], str):
                        rows.append(dict(N=N, K=K, M=M, impl="torch int4", us=float("nan"), bytes=0,
                                         err=float("nan"), note=ops[0]))
                    else:
                        xb = x.to(torch.bfloat16)
                        try:
                            t4 = timer([lambda o=o: torch._weight_int4pack_mm(xb, o[0], o[2], o[1]) for o in ops],
                                       warmup=args.warmup, iters=args.iters)
                            y4 = torch._weight_int4pack_mm(xb, *[ops[0][0], ops[0][2], ops[0][1]])
                            ref4 = xb.double().cpu().numpy() @ head_rows(one, REF_ROWS).dequantize().astype(np.float64).T
                            rows.append(dict(N=N, K=K, M=M, impl="torch int4", us=t4,
                                             bytes=nbytes_of(ops[0][0]) + nbytes_of(ops[0][1]) + io,
                                             err=rel_err(y4[:, :REF_ROWS].double().cpu().numpy(), ref4)))
                        except Exception as e:  # noqa: BLE001
                            rows.append(dict(N=N, K=K, M=M, impl="torch int4", us=float("nan"), bytes=0,
                                             err=float("nan"), note=f"{type(e).__name__}: {str(e)[:60]}"))
                del copies, one
                torch.cuda.empty_cache() if device.startswith("cuda") else None
            for r in rows:
                if (r["N"], r["K"], r["M"]) == (N, K, M):
                    r["gbs"] = r["bytes"] / r["us"] / 1e3 if r["us"] == r["us"] else float("nan")
                    r["copy"] = r["gbs"] / bw if bw == bw else float("nan")
                    r["vs16"] = t16 / r["us"] if r["us"] == r["us"] else float("nan")
            print_rows([r for r in rows if (r["N"], r["K"], r["M"]) == (N, K, M)], header=(N, K, M == args.ms[0]))
    return rows, bw


def fmt_row(r) -> str:
    def f(v, spec):
        return "n/a" if v != v else format(v, spec)
    note = f" {r['note']}" if r.get("note") else ""
    return (f"| {r['N']}x{r['K']} | {r['M']} | {r['impl']} | {f(r['us'], '.1f')} | {f(r['gbs'], '.0f')} | "
            f"{f(100 * r['copy'], '.0f')}% | {f(r['vs16'], '.2f')}x | {f(r['err'], '.1e')} |{note}")


HEAD = ("| weight [N x K] | M | kernel | µs | GB/s | % copy BW | vs cuBLAS fp16 | rel. error |\n"
        "|---|---|---|---|---|---|---|---|")


def print_rows(rows, header):
    if header[2]:
        print("\n" + HEAD)
    for r in rows:
        print(fmt_row(r), flush=True)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--shapes", default=",".join(f"{n}x{k}" for n, k in SHAPES))
    p.add_argument("--ms", default=",".join(map(str, MS)))
    p.add_argument("--formats", default=",".join(FORMATS))
    p.add_argument("--backend", default=None, help="vmlang backend(s), comma-separated (e.g. triton,ptx: "
                                                     "side by side in one run); default: the runtime's default")
    p.add_argument("--iters", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--out", default=None, help="append the table (markdown) to this file")
    p.add_argument("--smoke", action="store_true", help="tiny shapes, any device: checks the script")
    args = p.parse_args(argv)
    import torch
    args.device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.smoke:
        args.shapes, args.ms, args.iters, args.warmup = "24x40", "1,16", 1, 1
    args.shapes = [tuple(int(v) for v in s.split("x")) for s in args.shapes.split(",")]
    args.ms = [int(m) for m in args.ms.split(",")]
    args.formats = [f for f in args.formats.split(",") if f]
    args.backends = [b for b in (args.backend or "").split(",") if b] or [None]
    t0 = time.time()
    rows, bw = run(args)
    took = time.time() - t0
    if args.out:
        dev = torch.cuda.get_device_name() if args.device == "cuda" else "cpu"
        import triton
        with open(args.out, "a") as fh:
            fh.write(f"\n## qmatmul, {dev}, {datetime.date.today()}, backend {args.backend or 'default'}\n\n"
                     f"torch {torch.__version__}, triton {triton.__version__}; copy bandwidth {bw:.0f} GB/s "
                     f"(read + write); {args.iters} profiled calls per row (GPU time / call); run "
                     f"took {took:.0f} s. Command: `python bench/qmatmul.py {' '.join(argv or sys.argv[1:])}`\n\n")
            fh.write(HEAD + "\n" + "\n".join(fmt_row(r) for r in rows) + "\n")
    bad = [r for r in rows if r["impl"].startswith("vmlang") and r["us"] != r["us"]]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
