"""Benchmark ``examples/matmul_f16.vm`` (f16 inputs, f32 accumulate, f16 output) against cuBLAS fp16 in ONE run.

For each size ``M = N = K`` (and other ``MxNxK`` given with ``--shapes``), every vmlang backend named by
``--backend`` (comma-separated, e.g. ``triton,ptx``) and every tile configuration in ``--tiles`` is timed
next to ``torch.matmul`` (cuBLAS) on the same inputs. GPU time per call comes from CUDA events around
``--iters`` calls after ``--warmup`` calls (the median of 5 such runs); the compile happens in the warm-up.

    TFLOP/s = 2 * M * N * K / time
    vs cuBLAS = cuBLAS time / our time   (> 1: faster)
    rel.err = ||C - ref|| / ||ref||, ref = A @ B in float64 (first 256 rows)

Usage (on the GPU machine): ``python bench/matmul.py [--shapes 4096x4096x4096] [--backend triton,ptx]
[--tiles 64x64x32,128x128x32x8] [--out bench/RESULTS.md]``; a tile is ``BMxBNxBK`` or ``BMxBNxBKxW`` (W warps
per block, default 4), optionally followed by ``sS``: compiled with ``pipeline_stages = S`` (ptx: S stage
buffers of the cp.async pipeline, e.g. ``128x128x32x4s4``) and by ``m``: compiled with ``wgmma = False``
(ptx on sm_90: mma.sync instead of warpgroup MMA, e.g. ``128x128x32x4m``); ``--repeat N`` times the whole table N times
(run-to-run spread); ``--smoke`` runs a tiny shape (also on a CPU) to check the script itself.
"""
from __future__ import annotations

import argparse
import datetime
import pathlib
import statistics
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
KERNEL = ROOT / "examples" / "matmul_f16.vm"


def timed(fn, warmup: int, iters: int, device: str) -> float:
    """Median over 5 runs of the time per call in µs."""
    import torch
    for _ in range(warmup):
        fn()
    if not device.startswith("cuda"):
        t0 = time.perf_counter()
        for _ in range(iters):
            fn()
        return (time.perf_counter() - t0) / iters * 1e6
    out = []
    for _ in range(5):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        for _ in range(iters):
            fn()
        b.record()
        torch.cuda.synchronize()
        out.append(a.elapsed_time(b) * 1e3 / iters)
    return statistics.median(out)


def run(args) -> list[dict]:
    import numpy as np
    import torch
    import vmlang as vm
    dev = args.device
    k = vm.load(KERNEL)
    gen = torch.Generator(device=dev)
    gen.manual_seed(0)
    rows = []
    for (M, N, K) in args.shapes:
        a = (torch.randn((M, K), device=dev, generator=gen) * 0.5).to(torch.float16)
        b = (torch.randn((K, N), device=dev, generator=gen) * 0.5).to(torch.float16)
        r = min(M, 256)
        ref = a[:r].double().cpu().numpy() @ b.double().cpu().numpy()

        def err(c):
            return float(np.linalg.norm(c[:r].double().cpu().numpy() - ref) / np.linalg.norm(ref))
        flops = 2.0 * M * N * K
        t_cublas = timed(lambda: a @ b, args.warmup, args.iters, dev)
        rows.append(dict(shape=(M, N, K), impl="cuBLAS fp16", us=t_cublas, err=err(a @ b)))
        for be in args.backends:
            for tile in args.tiles:
                c = torch.empty((M, N), dtype=torch.float16, device=dev)
                tile, stages, mma_sync = tile[:-2], tile[-2], tile[-1]
                name = (f"vmlang {be} {'x'.join(str(v) for v in tile)}{f' s{stages}' if stages else ''}"
                        f"{' mma.sync' if mma_sync else ''}")
                consts = dict(zip(("BM", "BN", "BK", "W"), tile))
                opts = tile_options(stages, mma_sync)
                try:
                    t = timed(lambda: k(a, b, c, backend=be, options=opts, **consts), args.warmup, args.iters, dev)
                    rows.append(dict(shape=(M, N, K), impl=name, us=t, err=err(c)))
                except Exception as e:  # noqa: BLE001 - a failing configuration is reported, the run goes on
                    rows.append(dict(shape=(M, N, K), impl=name, us=float("nan"), err=float("nan"),
                                     note=f"{type(e).__name__}: {str(e).splitlines()[0][:80]}"))
        for row in rows:
            if row["shape"] == (M, N, K):
                row["tflops"] = flops / row["us"] / 1e6 if row["us"] == row["us"] else float("nan")
                row["vs"] = t_cublas / row["us"] if row["us"] == row["us"] else float("nan")
                print(fmt_row(row), flush=True)
    return rows


HEAD = ("| M x N x K | kernel | µs | TFLOP/s | vs cuBLAS fp16 | rel. error |\n"
        "|---|---|---|---|---|---|")


def fmt_row(r) -> str:
    def f(v, spec):
        return "n/a" if v != v else format(v, spec)
    note = f" {r['note']}" if r.get("note") else ""
    M, N, K = r["shape"]
    return (f"| {M}x{N}x{K} | {r['impl']} | {f(r['us'], '.1f')} | {f(r['tflops'], '.1f')} | {f(r['vs'], '.2f')}x | "
            f"{f(r['err'], '.1e')} |{note}")


def parse_tile(text: str) -> tuple:
    """``BMxBNxBK`` or ``BMxBNxBKxW`` (W: warps per block; the kernel's default when left out), with an
    optional ``sS`` (pipeline stages) and an optional ``m`` (mma.sync, not wgmma) -> the tile's values,
    then S (0: the backend's default), then whether ``m`` was given.

    >>> parse_tile("128x128x32x8"), parse_tile("128x128x32s4"), parse_tile("128x128x32x4s2m")
    ((128, 128, 32, 8, 0, False), (128, 128, 32, 4, False), (128, 128, 32, 4, 2, True))
    """
    mma_sync = text.endswith("m")
    body, _, stages = text[:-1 if mma_sync else None].partition("s")
    try:
        vals = tuple(int(v) for v in body.split("x"))
        s = int(stages) if stages else 0
    except ValueError:
        vals, s = (), 0
    if len(vals) not in (3, 4) or s < 0:
        raise SystemExit(f"--tiles: {text!r} is not BMxBNxBK[xW][sS][m]")
    return vals + (s, mma_sync)


def tile_options(stages: int, mma_sync: bool) -> dict | None:
    """The per-call compile options of a tile's suffixes (None: none).

    >>> tile_options(0, False), tile_options(4, True)
    (None, {'pipeline_stages': 4, 'wgmma': False})
    """
    opts = {}
    if stages:
        opts["pipeline_stages"] = stages
    if mma_sync:
        opts["wgmma"] = False
    return opts or None


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--shapes", default="4096x4096x4096")
    p.add_argument("--backend", default="triton,ptx")
    p.add_argument("--tiles", default="64x64x32,128x128x32")
    p.add_argument("--iters", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--out", default=None, help="append the table (markdown) to this file")
    p.add_argument("--repeat", type=int, default=1, help="time the whole table this many times")
    p.add_argument("--smoke", action="store_true", help="a tiny shape, any device: checks the script")
    args = p.parse_args(argv)
    import torch
    args.device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.smoke:
        args.shapes, args.iters, args.warmup = "40x24x40", 1, 1
        if args.tiles == p.get_default("tiles"):
            args.tiles = "16x16x16"
        if args.device == "cpu":
            args.backend = "numpy"
    args.shapes = [tuple(int(v) for v in s.split("x")) for s in args.shapes.split(",")]
    args.tiles = [parse_tile(s) for s in args.tiles.split(",")]
    args.backends = [b for b in args.backend.split(",") if b]
    t0 = time.time()
    print(HEAD)
    rows = [r for _ in range(max(1, args.repeat)) for r in run(args)]
    if args.out:
        dev = torch.cuda.get_device_name() if args.device == "cuda" else "cpu"
        with open(args.out, "a") as fh:
            fh.write(f"\n## matmul_f16, {dev}, {datetime.date.today()}\n\ntorch {torch.__version__}; CUDA events, "
                     f"median of 5 x {args.iters} calls; run took {time.time() - t0:.0f} s. Command: "
                     f"`python bench/matmul.py {' '.join(argv or sys.argv[1:])}`\n\n")
            fh.write(HEAD + "\n" + "\n".join(fmt_row(r) for r in rows) + "\n")
    return 1 if any(r["us"] != r["us"] for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
