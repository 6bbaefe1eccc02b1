"""The ptx GEMV's two paths side by side, per code width, in ONE run: what ``PTX_MMA_GEMV_TILES`` is decided on.

For each format and each path spec, ``qmatmul(x, qw, backend=...)`` at M = 1 is timed on the same weights:

* ``default``: what the stdlib chooses (``PTX_GEMV_TILES``, and ``PTX_MMA_GEMV_TILES`` as it stands);
* ``fma``: the FMA GEMV at its ``PTX_GEMV_TILES`` tile (the tensor-core table emptied);
* ``mma:BN:BK:W[:U[:R[:STAGES]]]``: the tensor-core GEMV (the exact few-row dot) at that tile, ``U`` slabs per
  iteration, ``R`` groups per iteration as the dot's rows (qmatmul.vm; defaults 1, 1), split-K by the
  stdlib's rule;
* ``fma:BN:BK:W:C``: the FMA GEMV at that tile (``PTX_GEMV_TILES``' entry for the width replaced);
* any of them with ``+l2``: compiled with ``l2_prefetch="w,s"`` (``VMLANG_L2_PREFETCH`` for that path: each
  step prefetches the next step's codes and scales to L2, backends/ptx/prefetch.py);
* any of them with ``+st``: compiled with ``stage_loads="w"`` (``VMLANG_STAGE_LOADS`` for that path: the
  codes are copied two steps ahead into each thread's own shared-memory slots, backends/ptx/staging.py).
  Suffixes combine (``default+l2+st``).

Timing, rotation and the byte count are bench/qmatmul.py's (torch profiler GPU time per call, weight copies
beyond the L2, ``%copy`` = (codes + scales + x + y bytes) / time / measured copy bandwidth); rel.err is
against ``x @ dequantize(qw).T`` in float64 over the first 256 outputs.

Usage (GPU machine): ``python bench/gemv_paths.py [--shape 28672x8192] [--formats int2,int3]
[--paths default,fma,mma:16:128:2:1:8]``; ``--smoke`` runs a tiny shape on this machine's default backend
(the paths are then the same kernel: it checks the script).
"""
from __future__ import annotations

import argparse
import math
import os
import pathlib
import sys

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import qmatmul as QB  # noqa: E402  (bench/qmatmul.py: weights, timer, copy bandwidth)


#: path suffix -> (the environment variable it sets for that path, CompileOptions.from_env reads it; its value)
SUFFIXES = {"l2": ("VMLANG_L2_PREFETCH", "w,s"), "st": ("VMLANG_STAGE_LOADS", "w")}


def run(args) -> list[dict]:
    import torch
    from vmlang.stdlib import matmul as MM
    from vmlang.stdlib import qmatmul
    dev = args.device
    gen = torch.Generator(device=dev)
    gen.manual_seed(0)
    timer = QB.Timer(dev)
    bw = QB.copy_bandwidth(dev)
    N, K = args.shape
    x = (torch.randn((1, K), device=dev, generator=gen) * 0.5).to(torch.float16)
    ref_x = x.double().cpu().numpy()
    blocks = getattr(args, "min_blocks", None) or MM.PTX_GEMV_MIN_BLOCKS
    print(f"device {torch.cuda.get_device_name() if dev == 'cuda' else 'cpu'}; copy bandwidth {bw:.0f} GB/s; "
          f"split-K until {blocks} blocks\n\n"
          "| weight [N x K] | format | path | µs | % copy BW | rel. error |\n|---|---|---|---|---|---|")
    saved, saved_fma, saved_blocks = dict(MM.PTX_MMA_GEMV_TILES), dict(MM.PTX_GEMV_TILES), MM.PTX_GEMV_MIN_BLOCKS
    saved_env = {var: os.environ.get(var) for var, _ in SUFFIXES.values()}
    MM.PTX_GEMV_MIN_BLOCKS = blocks
    rows = []
    try:
        for fmt in args.formats:
            one = QB.random_weight(fmt, N, K, dev, gen)
            wbytes = QB.nbytes_of(one.codes) + QB.nbytes_of(one.scales) + QB.nbytes_of(one.zeros)
            copies = [one] + [QB.random_weight(fmt, N, K, dev, gen) for _ in range(QB.rotation(args, wbytes) - 1)]
            ref = ref_x @ QB.head_rows(one, QB.REF_ROWS).dequantize().astype(np.float64).T
            bits = one.codes.dtype.nbits
            for path in args.paths:
                MM.PTX_MMA_GEMV_TILES.clear()
                MM.PTX_GEMV_TILES.update(saved_fma)
                spec, *suffixes = path.split("+")
                for suffix, (var, value) in SUFFIXES.items():
                    os.environ.pop(var, None)
                    if suffix in suffixes:
                        os.environ[var] = value
                kind, *tile = spec.split(":")
                if kind == "default":
                    MM.PTX_MMA_GEMV_TILES.update(saved)
                elif kind == "mma":
                    MM.PTX_MMA_GEMV_TILES[bits] = tuple(int(v) for v in tile)
                elif kind == "fma" and tile:
                    MM.PTX_GEMV_TILES[bits] = tuple(int(v) for v in tile)
                t = timer([lambda q=q: qmatmul(x, q, backend=args.backend) for q in copies],
                          warmup=args.warmup, iters=args.iters)
                y = qmatmul(x, one, backend=args.backend)[:, :QB.REF_ROWS].double().cpu().numpy()
                gbs = (wbytes + K * 2 + N * 2) / t / 1e3
                rows.append(dict(fmt=fmt, path=path, us=t, copy=gbs / bw, err=QB.rel_err(y, ref)))
                r = rows[-1]
                print(f"| {N}x{K} | {fmt} | {path} | {t:.1f} | {100 * r['copy']:.0f}% | {r['err']:.1e} |", flush=True)
            del copies, one
    finally:
        for var, value in saved_env.items():
            if value is None:
                os.environ.pop(var, None)
            else:
                os.environ[var] = value
        MM.PTX_MMA_GEMV_TILES.clear()
        MM.PTX_MMA_GEMV_TILES.update(saved)
        MM.PTX_GEMV_TILES.update(saved_fma)
        MM.PTX_GEMV_MIN_BLOCKS = saved_blocks
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--shape", default="28672x8192")
    p.add_argument("--formats", default="int2,int3,int4,int5,int6,int7,int8")
    p.add_argument("--paths", default="default,fma,mma:16:128:2:1:8,mma:16:128:4:1:8,mma:8:128:1:1:8")
    p.add_argument("--backend", default=None, help="default: ptx on a CUDA GPU, else the runtime's default")
    p.add_argument("--iters", type=int, default=30)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--min-blocks", type=int, default=None,
                   help="PTX_GEMV_MIN_BLOCKS for this run (the split-K rule's block target)")
    p.add_argument("--smoke", action="store_true", help="a tiny shape, any device: checks the script")
    args = p.parse_args(argv)
    import torch
    args.device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.smoke:
        args.shape, args.iters, args.warmup = "24x256", 1, 1
    args.backend = args.backend or ("ptx" if args.device == "cuda" else None)
    args.shape = tuple(int(v) for v in args.shape.split("x"))
    args.formats = [f for f in args.formats.split(",") if f]
    args.paths = [q for q in args.paths.split(",") if q]
    for path in args.paths:
        if set(path.split("+")[1:]) - set(SUFFIXES):
            raise SystemExit(f"unknown path suffix in {path!r}: known {', '.join(SUFFIXES)}")
    rows = run(args)
    return 0 if all(math.isfinite(r["us"]) for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
