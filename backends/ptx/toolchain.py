"""LLVM IR -> PTX text (llvmlite's NVPTX target), and ``ptxas`` as the checker of that PTX.

What llvmlite 0.50 (LLVM 22) needs, found by trying:

* no ``llvm.initialize()`` (it raises in 0.50: LLVM initialises itself); the NVPTX target and its
  assembly printer are registered by ``initialize_all_targets()`` / ``initialize_all_asmprinters()``;
* triple ``nvptx64-nvidia-cuda``, cpu = the arch (``sm_80``, ``sm_90``, ``sm_90a`` ...), no features:
  LLVM 22 picks the lowest PTX ISA the arch allows (``.version 7.0`` for sm_80, ``7.8`` for sm_90).
  ``ptx=80`` asks for a newer ISA (feature ``+ptx80``), for instructions that need one;
* a kernel is a function with the **``ptx_kernel`` calling convention** (``fn.calling_convention =
  "ptx_kernel"`` in ``llvmlite.ir``); LLVM 22 no longer reads ``!nvvm.annotations`` for anything but the
  old ``"kernel"`` marker. Launch bounds are string function attributes (``"nvvm.maxntid"="256"``,
  ``"nvvm.minctasm"="2"``), which ``llvmlite.ir`` refuses as unknown: :func:`mark_kernel` adds them;
* global pointers are ``ptr addrspace(1)``, shared ``addrspace(3)``; thread coordinates come from the
  ``llvm.nvvm.read.ptx.sreg.tid.x`` / ``ctaid.x`` / ``ntid.x`` intrinsics;
* optimisation is the new pass manager: ``create_pipeline_tuning_options(speed_level=opt)``,
  ``create_pass_builder(target_machine, pto).getModulePassManager().run(module, pb)`` (the O1-O3
  per-module pipeline, with the NVPTX passes the target machine registers);
* floating point: with no ``contract`` / ``fast`` flags NVPTX emits no ``fma`` (``mul.rn`` + ``add.rn``),
  and ``fdiv float`` / ``llvm.sqrt.f32`` become IEEE ``div.rn.f32`` / ``sqrt.rn.f32``; denormals are kept.
"""
from __future__ import annotations

import functools
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import threading

from vmlang.ir.errors import BackendError
from vmlang.runtime.options import ARCH_NAME

TRIPLE = "nvptx64-nvidia-cuda"
DEFAULT_ARCH = "sm_90"
_init_lock = threading.Lock()
_initialised = False


# ----------------------------------------------------------------------------------- LLVM target
def _llvm():
    """llvmlite.binding with the NVPTX target and asm printer registered (once per process)."""
    global _initialised
    import llvmlite.binding as llvm
    if not _initialised:
        with _init_lock:
            if not _initialised:
                llvm.initialize_all_targets()
                llvm.initialize_all_asmprinters()
                _initialised = True
    return llvm


def nvptx_available() -> bool:
    """True when llvmlite's LLVM was built with the NVPTX target."""
    try:
        _llvm().Target.from_triple(TRIPLE)
    except Exception:  # noqa: BLE001 - any failure means: no NVPTX here
        return False
    return True


def _check_arch(arch: str) -> str:
    m = ARCH_NAME.match(arch) if isinstance(arch, str) else None
    if m is None:
        raise BackendError(f"ptx: {arch!r} is not a GPU architecture name such as 'sm_80' or 'sm_90'")
    if int(m.group(1)) < 70:
        raise BackendError(f"ptx: the ptx backend targets sm_70 and newer, not {arch}")
    return arch


@functools.cache
def target_machine(arch: str = DEFAULT_ARCH, ptx: int | None = None):
    """The llvmlite ``TargetMachine`` for ``nvptx64-nvidia-cuda`` and ``arch`` (cached per arguments).

    ``ptx``: the PTX ISA version times ten (``80`` for PTX 8.0); ``None`` lets LLVM choose the lowest
    version that supports ``arch`` (7.8 for sm_90). Code generation runs at ``-O3``.
    """
    _check_arch(arch)
    llvm = _llvm()
    try:
        target = llvm.Target.from_triple(TRIPLE)
    except RuntimeError as e:
        raise BackendError(f"ptx: this llvmlite has no NVPTX target ({e}); the ptx backend needs an "
                           "llvmlite built with NVPTX (the PyPI wheels are)") from None
    features = f"+ptx{int(ptx)}" if ptx is not None else ""
    tm = target.create_target_machine(cpu=arch, features=features, opt=3)
    # LLVM warns on stderr and falls back to its generic defaults (PTX ISA 3.2) for a cpu name it does
    # not know, but still writes ".target <name>": refuse those
    probe = llvm.parse_assembly(f'target triple = "{TRIPLE}"\n')
    m = re.search(r"^\.version (\d+)\.(\d+)", tm.emit_assembly(probe), re.MULTILINE)
    if m is None or (int(m.group(1)), int(m.group(2))) < (6, 0):
        raise BackendError(f"ptx: LLVM {'.'.join(map(str, llvm.llvm_version_info))} does not know the "
                           f"architecture {arch!r}" + (f" with PTX ISA {ptx / 10:.1f}" if ptx else ""))
    return tm


def mark_kernel(fn, max_threads: int | None = None, min_blocks_per_sm: int | None = None) -> None:
    """Make an ``llvmlite.ir.Function`` a kernel entry: the ``ptx_kernel`` calling convention, and the
    launch bounds ``.maxntid`` / ``.minnctapersm`` as LLVM 22 reads them (string function attributes,
    added past ``llvmlite.ir``'s list of known attribute names)."""
    fn.calling_convention = "ptx_kernel"
    if max_threads is not None:
        set.add(fn.attributes, f'"nvvm.maxntid"="{int(max_threads)}"')
    if min_blocks_per_sm is not None:
        set.add(fn.attributes, f'"nvvm.minctasm"="{int(min_blocks_per_sm)}"')


# ----------------------------------------------------------------------------------- LLVM IR -> PTX
def _context(text: str, line: int, radius: int = 2) -> str:
    """Numbered source lines around ``line`` (1-based), the line itself marked with '>'."""
    lines = text.splitlines()
    lo, hi = max(1, line - radius), min(len(lines), line + radius)
    return "\n".join(f"{'>' if i == line else ' '}{i:5d} | {lines[i - 1]}" for i in range(lo, hi + 1))


def _parse_error(text: str, err: Exception) -> BackendError:
    msg = str(err).replace("LLVM IR parsing error\n", "").strip()
    m = re.search(r"<string>:(\d+):(\d+): error: (.*)", msg)
    if not m:
        return BackendError(f"ptx: the generated LLVM IR does not parse:\n{msg}")
    line = int(m.group(1))
    return BackendError(f"ptx: the generated LLVM IR does not parse: line {line}: {m.group(3)}\n"
                        f"{_context(text, line)}")


def _verify_error(texts: list[tuple[str, str]], err: Exception) -> BackendError:
    """The verifier's message, each instruction it quotes followed by where it is: in the first of
    ``texts`` (``(label, module text)`` pairs) that holds it verbatim."""
    msg = str(err).strip()
    out = []
    for m in msg.splitlines():
        out.append(m)
        quoted = m.strip()
        if not (m.startswith("  ") and quoted):
            continue
        for label, text in texts:
            hits = [i + 1 for i, s in enumerate(text.splitlines()) if s.strip() == quoted]
            for h in hits[:3]:
                out.append(f"    at line {h}{label}:\n" + _context(text, h, radius=1))
            if hits:
                break
    return BackendError("ptx: the generated LLVM IR is invalid (LLVM verifier):\n" + "\n".join(out))


def _parse(module, llvm):
    """A verified ``ModuleRef`` and the text it came from (``str``, ``llvmlite.ir.Module`` or a
    ``ModuleRef``, which is optimised in place)."""
    if isinstance(module, llvm.ModuleRef):
        ref, text = module, str(module)
    else:
        text = module if isinstance(module, str) else str(module)
        try:
            ref = llvm.parse_assembly(text)
        except RuntimeError as e:
            raise _parse_error(text, e) from None
    try:
        ref.verify()
    except RuntimeError as e:
        raise _verify_error([("", text), (" of the module as LLVM prints it", str(ref))], e) from None
    return ref, text


def optimize(ref, tm, opt: int = 3) -> None:
    """Run LLVM's per-module ``-O{opt}`` pipeline (new pass manager) on ``ref`` in place."""
    if opt <= 0:
        return
    llvm = _llvm()
    pto = llvm.create_pipeline_tuning_options(speed_level=min(int(opt), 3))
    pb = llvm.create_pass_builder(tm, pto)
    pb.getModulePassManager().run(ref, pb)


#: instructions that exist only on an architecture's ``a`` variant (sm_90a): a module using them is
#: emitted and assembled for that variant
ARCH_SPECIFIC = ("wgmma.", "setmaxnreg.")


def specific_arch(text: str, arch: str) -> str:
    """``arch`` + ``a`` when ``text`` (LLVM IR or PTX) uses an instruction of :data:`ARCH_SPECIFIC` and
    ``arch`` is sm_90 (a kernel with wgmma runs on an H100/H200 only), else ``arch``.

    >>> specific_arch('call void asm "wgmma.fence.sync.aligned;"', "sm_90"), specific_arch("add.s32", "sm_90")
    ('sm_90a', 'sm_90')
    """
    if arch == "sm_90" and any(x in text for x in ARCH_SPECIFIC):
        return arch + "a"
    return arch


def to_ptx(module, arch: str = DEFAULT_ARCH, opt: int = 3, ptx: int | None = None) -> str:
    """PTX assembly of an LLVM module: ``module`` is LLVM IR text, an ``llvmlite.ir.Module`` or an
    ``llvmlite.binding.ModuleRef``. The module gets the NVPTX triple and data layout, is verified,
    optimised at ``-O{opt}`` (0: not at all) and emitted for ``arch`` (for sm_90a instead when it uses
    sm_90a's instructions: :func:`specific_arch`). Invalid IR raises :class:`BackendError` quoting the
    offending lines."""
    llvm = _llvm()
    ref, text = _parse(module, llvm)
    tm = target_machine(specific_arch(text, arch), ptx)
    ref.triple = TRIPLE
    ref.data_layout = str(tm.target_data)
    link_libdevice(ref, llvm)
    optimize(ref, tm, opt)
    try:
        ref.verify()
    except RuntimeError as e:   # an optimisation that breaks the module is an LLVM bug, but say where
        raise _verify_error([(" of the optimised module", str(ref))], e) from None
    return tm.emit_assembly(ref)


# ----------------------------------------------------------------------------------- libdevice
def libdevice_path() -> str | None:
    """CUDA's libdevice bitcode (the ``__nv_*`` math functions): ``$VMLANG_LIBDEVICE``, then the CUDA
    toolkit next to ptxas / ``$CUDA_HOME``, then the copy that ships with Triton."""
    env = os.environ.get("VMLANG_LIBDEVICE")
    cands = [env] if env else []
    roots = [os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH"), "/usr/local/cuda"]
    pt = ptxas_path()
    if pt:
        roots.append(os.path.dirname(os.path.dirname(os.path.realpath(pt))))
    cands += [os.path.join(r, "nvvm", "libdevice", "libdevice.10.bc") for r in roots if r]
    try:
        import triton
        cands.append(os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "lib", "libdevice.10.bc"))
    except ImportError:
        pass
    for c in cands:
        if c and os.path.isfile(c):
            return c
    return None


def link_libdevice(ref, llvm) -> None:
    """Link libdevice into ``ref`` when it calls ``__nv_*`` functions (math functions: exp, log, fmod)."""
    wanted = [f.name for f in ref.functions if f.is_declaration and f.name.startswith("__nv_")]
    if not wanted:
        return
    path = libdevice_path()
    if path is None:
        raise BackendError(f"ptx: the kernel calls {', '.join(sorted(wanted))} from CUDA's libdevice, which was "
                           f"not found (install the CUDA toolkit, or set VMLANG_LIBDEVICE to libdevice.10.bc)")
    with open(path, "rb") as f:
        lib = llvm.parse_bitcode(f.read())
    lib.triple = ref.triple
    lib.data_layout = ref.data_layout
    ref.link_in(lib)
    for f in ref.functions:       # only what the kernel uses survives the optimiser
        if f.name.startswith("__nv_") and not f.is_declaration:
            f.linkage = llvm.Linkage.internal


# ----------------------------------------------------------------------------------- ptxas
def ptxas_path() -> str | None:
    """Where ``ptxas`` is: ``$PTXAS``, else on ``PATH``, else under ``$CUDA_HOME/bin``."""
    env = os.environ.get("PTXAS")
    if env and os.path.isfile(env):
        return env
    found = shutil.which("ptxas")
    if found:
        return found
    for home in (os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH"), "/usr/local/cuda"):
        if home and os.path.isfile(os.path.join(home, "bin", "ptxas")):
            return os.path.join(home, "bin", "ptxas")
    return None


def ptxas_available() -> bool:
    return ptxas_path() is not None


def _work_dir(ptx: str, arch: str) -> str:
    digest = hashlib.sha256(f"{arch}\n{ptx}".encode()).hexdigest()[:24]
    uid = os.getuid() if hasattr(os, "getuid") else 0
    d = os.path.join(tempfile.gettempdir(), f"vmlang-ptx-{uid}", digest)
    try:
        os.makedirs(d, exist_ok=True)
    except OSError as e:
        raise BackendError(f"ptx: cannot create the folder {d} for ptxas: {e}") from None
    return d


def _ptxas_error(ptx: str, stderr: str, arch: str) -> BackendError:
    """ptxas's message, with the PTX lines it names."""
    shown = []
    for m in re.finditer(r"line (\d+)", stderr):
        n = int(m.group(1))
        if n not in shown and len(shown) < 3:
            shown.append(n)
    ctx = "\n".join(f"  PTX line {n}:\n{_context(ptx, n, radius=1)}" for n in shown)
    msg = stderr.strip() or "(no message)"
    return BackendError(f"ptx: ptxas -arch={arch} rejected the generated PTX:\n{msg}" + (f"\n{ctx}" if ctx else ""))


def _run_ptxas(ptx: str, arch: str, extra: list[str], out: str) -> subprocess.CompletedProcess:
    _check_arch(arch)
    arch = specific_arch(ptx, arch)     # PTX emitted for sm_90a (wgmma) assembles for sm_90a
    exe = ptxas_path()
    if exe is None:
        raise BackendError("ptx: ptxas was not found (set $PTXAS, put it on PATH or set $CUDA_HOME); it "
                           "comes with the CUDA toolkit (nvcc)")
    d = _work_dir(ptx, arch)
    src = os.path.join(d, "kernel.ptx")
    tmp = f"{src}.{os.getpid()}.{threading.get_ident()}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(ptx)
    os.replace(tmp, src)
    try:
        r = subprocess.run([exe, f"-arch={arch}", *extra, "-o", out, src],
                           capture_output=True, text=True, timeout=600, check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise BackendError(f"ptx: running {exe} failed: {e}") from None
    if r.returncode != 0:
        raise _ptxas_error(ptx, r.stderr + r.stdout, arch)
    return r


def ptxas_check(ptx: str, arch: str = DEFAULT_ARCH) -> str:
    """Assemble ``ptx`` with ``ptxas -arch=<arch>``; the path of the cubin (content-addressed under the
    temporary folder, reused when the same PTX was assembled before). A rejection raises
    :class:`BackendError` with ptxas's message and the PTX lines it names."""
    d = _work_dir(ptx, _check_arch(arch))
    cubin = os.path.join(d, "kernel.cubin")
    if os.path.isfile(cubin) and os.path.getsize(cubin) > 0:
        return cubin
    tmp = f"{cubin}.{os.getpid()}.{threading.get_ident()}.tmp"
    _run_ptxas(ptx, arch, [], tmp)
    os.replace(tmp, cubin)
    return cubin


_FUNC_RE = re.compile(r"Compiling entry function '([^']+)' for '([^']+)'")
_USED_RE = re.compile(r"Used (\d+) registers")
_FRAME_RE = re.compile(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads")
_SMEM_RE = re.compile(r"(\d+) bytes smem")
_BARRIERS_RE = re.compile(r"used (\d+) barriers")


def parse_ptxas_verbose(text: str) -> dict[str, dict]:
    """``ptxas -v`` output -> ``{entry name: {registers, stack, spill_stores, spill_loads, shared,
    barriers}}`` (byte counts; ``shared`` is the static shared memory, dynamic shared is not known to
    ptxas)."""
    funcs: dict[str, dict] = {}
    cur = None
    for line in text.splitlines():
        m = _FUNC_RE.search(line)
        if m:
            cur = funcs.setdefault(m.group(1), {"name": m.group(1), "registers": 0, "stack": 0,
                                                "spill_stores": 0, "spill_loads": 0, "shared": 0,
                                                "barriers": 0})
            continue
        if cur is None:
            continue
        m = _FRAME_RE.search(line)
        if m:
            cur["stack"], cur["spill_stores"], cur["spill_loads"] = map(int, m.groups())
        m = _USED_RE.search(line)
        if m:
            cur["registers"] = int(m.group(1))
            s = _SMEM_RE.search(line)
            cur["shared"] = int(s.group(1)) if s else 0
            b = _BARRIERS_RE.search(line)
            if b:
                cur["barriers"] = int(b.group(1))
    return funcs


def ptxas_info(ptx: str, arch: str = DEFAULT_ARCH, kernel: str | None = None) -> dict:
    """Resource use of one entry function as ``ptxas -v`` reports it: ``{"name", "registers", "stack",
    "spill_stores", "spill_loads", "shared", "barriers"}``. ``kernel`` names the entry; by default the
    module's only one."""
    d = _work_dir(ptx, _check_arch(arch))
    out = os.path.join(d, f"verbose.{os.getpid()}.{threading.get_ident()}.cubin")
    try:
        r = _run_ptxas(ptx, arch, ["-v"], out)
    finally:
        if os.path.exists(out):
            os.remove(out)
    funcs = parse_ptxas_verbose(r.stderr + r.stdout)
    if kernel is not None:
        if kernel not in funcs:
            raise BackendError(f"ptx: ptxas reports no entry function {kernel!r} (entries: "
                               f"{', '.join(funcs) or 'none'})")
        return funcs[kernel]
    if len(funcs) != 1:
        raise BackendError(f"ptx: ptxas_info needs kernel=... when the PTX has {len(funcs)} entry "
                           f"functions ({', '.join(funcs) or 'none'})")
    return next(iter(funcs.values()))


# ----------------------------------------------------------------------------------- the device
def default_arch() -> str:
    """``sm_XY`` of the current CUDA device (through torch), or ``sm_90`` where there is none."""
    try:
        import torch
        if torch.cuda.is_available():
            major, minor = torch.cuda.get_device_capability()
            return f"sm_{major}{minor}"
    except Exception:  # noqa: BLE001, S110 - no torch or a broken driver: no device
        pass
    return DEFAULT_ARCH
