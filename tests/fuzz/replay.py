"""Replay a saved fuzz case: ``python tests/fuzz/replay.py CASE.npz [--backend NAME] [--vm FILE.vm]``.

A failing differential test saves its shrunk case as ``case-<hash>.vm`` + ``case-<hash>.npz`` (in
``VMLANG_FUZZ_SAVE`` or ``$TMPDIR/vmlang-fuzz``). This script rebuilds the case (program, sizes, argument
codes and passing styles) and runs the same check as the test, printing the outcome or the failure
message. ``--vm FILE`` replaces the program text (edit the saved .vm to minimise further by hand; the
parameters must stay the same). ``--backend`` is ``vm-roundtrip`` (the default) or a compiled backend.
"""
from __future__ import annotations

import argparse
import ast
import os
import pathlib
import sys

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))   # tests/ -> import fuzz

from fuzz.runner import ROUNDTRIP, check  # noqa: E402
from fuzz.strategies import Approx, Case, Param, Var  # noqa: E402
from vmlang.ir.dtypes import dtype  # noqa: E402


def load_case(path: str, source: str | None = None) -> Case:
    data = np.load(path, allow_pickle=False)
    params = []
    i = 0
    while f"p{i}_meta" in data:
        meta = ast.literal_eval(str(data[f"p{i}_meta"]))
        dt = dtype(meta["dt"])
        p = Param(meta["name"], dt, meta["role"], meta["dims"], meta["shape"],
                  data[f"p{i}_codes"] if f"p{i}_codes" in data else None, meta["value"], meta["style"])
        p.styles = (p.style,)
        v = meta.get("var")
        if v is not None:
            approx = Approx(*v["approx"]) if v["approx"] else None
            p.var = Var(v["name"], dt, (), nan_loose=v["nan_loose"], zero_loose=v["zero_loose"], approx=approx)
        params.append(p)
        i += 1
    sizes = ast.literal_eval(str(data["sizes"]))
    return Case(source if source is not None else str(data["source"]), params, sizes)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("case", help="the saved .npz")
    ap.add_argument("--backend", default=ROUNDTRIP, help=f"{ROUNDTRIP} (default), triton, ptx")
    ap.add_argument("--vm", default=None, help="a .vm file replacing the saved program")
    args = ap.parse_args(argv)
    if args.backend == "triton":
        os.environ.setdefault("TRITON_INTERPRET", "1")
    source = pathlib.Path(args.vm).read_text(encoding="utf-8") if args.vm else None
    case = load_case(args.case, source)
    try:
        result = check(case, args.backend, events=lambda s: print("event:", s))
    except AssertionError as e:
        print(e)
        return 1
    print(f"{args.backend}: {result}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
