"""``vm cache``: where the compile cache is, what it holds, and clearing it."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

from vmlang.cli import command


def _configure(p):
    p.add_argument("--clear", action="store_true", help="delete every cached kernel and tuning result")
    p.add_argument("--list", action="store_true", help="list the entries (kernel, backend, device, size)")


@command("cache", "show (or --clear) the on-disk compile cache", _configure)
def _cache(args) -> int:
    from vmlang.runtime.cache import DiskCache
    from vmlang.runtime.options import CompileOptions
    root = Path(CompileOptions().resolved_cache_dir())
    cache = DiskCache(root)
    entries = sorted((root / "kernels").glob("*/*")) if (root / "kernels").is_dir() else []
    tunings = sorted((root / "autotune").glob("*.json")) if (root / "autotune").is_dir() else []
    if args.clear:
        cache.clear()
        shutil.rmtree(root / "autotune", ignore_errors=True)
        print(f"cleared {len(entries)} kernel(s) and {len(tunings)} tuning file(s) from {root}")
        return 0
    size = sum(f.stat().st_size for e in entries for f in e.iterdir() if f.is_file())
    print(f"cache: {root}")
    print(f"  {len(entries)} compiled kernel(s), {size / 1024:.1f} KiB; {len(tunings)} autotuning file(s)")
    if args.list:
        for e in entries:
            meta = cache.meta(e.name) or {}
            spec = meta.get("spec", {})
            files = ", ".join(sorted(f.name for f in e.iterdir() if f.name != "manifest.json"))
            print(f"  {e.name[:16]}  {meta.get('kernel', '?'):<16} {spec.get('backend', '?'):<7} "
                  f"{spec.get('device', '?'):<24} {json.dumps(spec.get('consts', {}))}  [{files}]")
    return 0
