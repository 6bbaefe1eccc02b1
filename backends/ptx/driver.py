"""Loading PTX and launching kernels through the CUDA driver API (``cuda.bindings.driver``, cuda-python).

cuda-python is imported only inside the functions that need it, so that the PTX can be generated (and
checked with ``ptxas``) on machines without it; where a kernel must run and it is missing,
:class:`BackendError` says so.

Kernels run in the **primary context** of their device, the context torch uses: ``cuDevicePrimaryCtxRetain``
once per device (retained for the life of the process) and ``cuCtxSetCurrent`` before each driver call
that needs a context, so device pointers from ``tensor.data_ptr()`` are valid in the kernel and launches
go on torch's streams (by default ``torch.cuda.current_stream(device)``).

Every driver call is checked: a failure raises :class:`BackendError` naming the call and the error
(``cuGetErrorName`` / ``cuGetErrorString``). Modules are cached per (device, SHA-256 of the PTX).
"""
from __future__ import annotations

import ctypes
import hashlib
import operator
import threading
from dataclasses import dataclass, field

from vmlang.ir.errors import BackendError

NEEDS_CUDA_PYTHON = "the ptx backend needs cuda-python (cuda.bindings) to run kernels: pip install cuda-python"
#: dynamic shared memory a kernel may use without opting in (cuFuncSetAttribute)
DEFAULT_SHARED_LIMIT = 48 * 1024
JIT_LOG_BYTES = 64 * 1024

_lock = threading.RLock()
_contexts: dict[int, object] = {}
_modules: dict[tuple[int, str], Module] = {}


# ----------------------------------------------------------------------------------- the driver API
def _driver():
    """The ``cuda.bindings.driver`` module (``cuda.cuda`` in cuda-python before 12.6)."""
    try:
        from cuda.bindings import driver
    except ImportError:
        try:
            from cuda import cuda as driver  # older cuda-python spelled the same API so
        except ImportError:
            raise BackendError(NEEDS_CUDA_PYTHON) from None
    return driver


def _error_text(drv, err) -> str:
    """``CUDA_ERROR_X: description`` for a CUresult."""
    name = getattr(err, "name", None) or str(err)
    desc = ""
    try:
        e, s = drv.cuGetErrorName(err)
        if e == drv.CUresult.CUDA_SUCCESS and s:
            name = s.decode() if isinstance(s, bytes) else str(s)
        e, s = drv.cuGetErrorString(err)
        if e == drv.CUresult.CUDA_SUCCESS and s:
            desc = s.decode() if isinstance(s, bytes) else str(s)
    except Exception:  # noqa: BLE001, S110 - the name from the enum is enough
        pass
    return f"{name}: {desc}" if desc else name


def _call(drv, name: str, *args, detail: str = ""):
    """``driver.<name>(*args)`` with its CUresult checked; returns the remaining results (None, one value
    or a tuple). A binding that refuses its arguments or lacks the entry point is reported the same way."""
    fn = getattr(drv, name, None)
    if fn is None:
        raise BackendError(f"ptx: this cuda-python has no driver function {name}")
    try:
        out = fn(*args)
    except BackendError:
        raise
    except Exception as e:  # noqa: BLE001 - TypeError/RuntimeError from the binding layer
        raise BackendError(f"ptx: {name} failed: {type(e).__name__}: {e}") from None
    err, rest = out[0], tuple(out[1:])
    if err != drv.CUresult.CUDA_SUCCESS:
        raise BackendError(f"ptx: {name} failed with {_error_text(drv, err)}" + (f"\n{detail}" if detail else ""))
    if not rest:
        return None
    return rest[0] if len(rest) == 1 else rest


def _device_index(device) -> int:
    """A CUDA ordinal from None (torch's current device), an int, ``"cuda:N"`` or a ``torch.device``."""
    try:
        import torch
    except ImportError:
        raise BackendError("ptx: running a kernel needs torch (CUDA tensors and streams)") from None
    if not torch.cuda.is_available():
        raise BackendError("ptx: running a kernel needs a CUDA GPU (torch sees none)")
    if device is None:
        return torch.cuda.current_device()
    if isinstance(device, int):
        return device
    d = torch.device(device)
    if d.type != "cuda":
        raise BackendError(f"ptx: kernels run on CUDA devices, not {device!r}")
    return torch.cuda.current_device() if d.index is None else d.index


def _make_current(device: int):
    """Make ``device``'s primary context (torch's) current on this thread; returns it."""
    drv = _driver()
    with _lock:
        ctx = _contexts.get(device)
        if ctx is None:
            import torch
            torch.cuda.init()
            _call(drv, "cuInit", 0)
            dev = _call(drv, "cuDeviceGet", device)
            ctx = _call(drv, "cuDevicePrimaryCtxRetain", dev)
            _contexts[device] = ctx
    _call(drv, "cuCtxSetCurrent", ctx)
    return ctx


# ----------------------------------------------------------------------------------- modules
@dataclass(eq=False)
class Function:
    """A kernel entry of a loaded :class:`Module`."""
    handle: object            # CUfunction
    name: str
    module: Module
    #: the dynamic shared memory this function is allowed (raised by :func:`launch` when needed)
    shared_limit: int = DEFAULT_SHARED_LIMIT

    def attribute(self, attr: str) -> int:
        """A ``CU_FUNC_ATTRIBUTE_*`` value by its short name: ``"NUM_REGS"``, ``"SHARED_SIZE_BYTES"``,
        ``"MAX_THREADS_PER_BLOCK"``, ``"LOCAL_SIZE_BYTES"`` ..."""
        drv = _driver()
        key = getattr(drv.CUfunction_attribute, f"CU_FUNC_ATTRIBUTE_{attr.upper()}", None)
        if key is None:
            raise BackendError(f"ptx: no function attribute CU_FUNC_ATTRIBUTE_{attr.upper()}")
        _make_current(self.module.device)
        return int(_call(drv, "cuFuncGetAttribute", key, self.handle))


@dataclass(eq=False)
class Module:
    """A PTX module loaded (JIT-compiled by the driver) on one device."""
    handle: object            # CUmodule
    device: int
    digest: str
    info_log: str = ""
    _functions: dict = field(default_factory=dict, repr=False)

    def function(self, name: str) -> Function:
        """The entry function ``name`` (``.entry name`` in the PTX)."""
        with _lock:
            fn = self._functions.get(name)
            if fn is None:
                drv = _driver()
                _make_current(self.device)
                h = _call(drv, "cuModuleGetFunction", self.handle, name.encode(),
                          detail=f"(no kernel {name!r} in the PTX module?)")
                fn = self._functions[name] = Function(h, name, self)
        return fn


def _c_string(buf: bytearray) -> str:
    return bytes(buf).split(b"\0", 1)[0].decode("utf-8", errors="replace").strip()


def load_module(ptx: str, device=None) -> Module:
    """Load PTX text on ``device`` (default: torch's current CUDA device) with ``cuModuleLoadDataEx``;
    cached per device and PTX. A JIT failure raises :class:`BackendError` with the driver's error log."""
    dev = _device_index(device)
    digest = hashlib.sha256(ptx.encode()).hexdigest()
    key = (dev, digest)
    with _lock:
        mod = _modules.get(key)
        if mod is not None:
            return mod
        drv = _driver()
        _make_current(dev)
        image = ptx.encode() + b"\0"
        # JIT log buffers: the binding passes a bytearray as the char* the driver writes its log into
        # (Cython's bytearray -> char* coercion), sizes as plain ints; both buffers stay alive here
        err_log, info_log = bytearray(JIT_LOG_BYTES), bytearray(JIT_LOG_BYTES)
        opt = drv.CUjit_option
        keys = [opt.CU_JIT_ERROR_LOG_BUFFER, opt.CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES,
                opt.CU_JIT_INFO_LOG_BUFFER, opt.CU_JIT_INFO_LOG_BUFFER_SIZE_BYTES]
        vals = [err_log, JIT_LOG_BYTES, info_log, JIT_LOG_BYTES]
        call = "cuModuleLoadDataEx"
        try:
            try:
                out = drv.cuModuleLoadDataEx(image, len(keys), keys, vals)
            except TypeError:   # a binding that does not take these option values: load without the log
                call = "cuModuleLoadData"
                out = drv.cuModuleLoadData(image)
        except Exception as e:  # noqa: BLE001 - errors of the binding layer
            raise BackendError(f"ptx: {call} failed: {type(e).__name__}: {e}") from None
        err = out[0]
        if err != drv.CUresult.CUDA_SUCCESS:
            log = _c_string(err_log)
            raise BackendError(f"ptx: {call} failed with {_error_text(drv, err)}"
                               + (f"\nJIT error log:\n{log}" if log else ""))
        mod = _modules[key] = Module(out[1], dev, digest, _c_string(info_log))
    return mod


# ----------------------------------------------------------------------------------- launching
def _dim3(what: str, given) -> tuple[int, int, int]:
    try:
        dims = (operator.index(given),) if not hasattr(given, "__len__") else tuple(map(operator.index, given))
    except TypeError:
        dims = None
    if dims is None or not 1 <= len(dims) <= 3 or min(dims) < 0:
        raise BackendError(f"ptx: the {what} must be 1 to 3 non-negative ints, not {given!r}")
    return dims + (1,) * (3 - len(dims))


#: parameter kinds by name, for callers that do not spell ctypes types
CTYPES = {"ptr": ctypes.c_uint64, "u64": ctypes.c_uint64, "i64": ctypes.c_int64,
          "i32": ctypes.c_int32, "u32": ctypes.c_uint32, "i16": ctypes.c_int16, "u16": ctypes.c_uint16,
          "i8": ctypes.c_int8, "u8": ctypes.c_uint8, "f32": ctypes.c_float, "f64": ctypes.c_double}


def pack_params(args) -> tuple[list, object]:
    """Kernel parameters as ``cuLaunchKernel`` reads them. Each ``(ctype, value)`` becomes a ctypes object
    holding the value: ``ctype`` is a ctypes scalar type (``ctypes.c_uint64`` for pointers,
    ``ctypes.c_int32`` ...) or one of the names in :data:`CTYPES` (``"ptr"``, ``"i32"``, ``"f32"`` ...);
    a value with ``data_ptr()`` (a torch tensor) gives its device address; ints wrap to the width (the
    bits of a uint32 pass as ``"i32"``). Returns ``(holders, array)``, ``array`` a ``void*[n]`` of the
    holders' addresses: both must stay alive until the launch call returns (the driver copies the values
    at launch)."""
    holders = []
    for i, item in enumerate(args):
        try:
            ctype, value = item
        except (TypeError, ValueError):
            raise BackendError(f"ptx: kernel argument {i} must be a (ctype, value) pair, not {item!r}") from None
        if isinstance(ctype, str):
            if ctype not in CTYPES:
                raise BackendError(f"ptx: kernel argument {i}: unknown parameter kind {ctype!r} "
                                   f"(one of {', '.join(CTYPES)})")
            ctype = CTYPES[ctype]
        if not (isinstance(ctype, type) and issubclass(ctype, ctypes._SimpleCData)):
            raise BackendError(f"ptx: kernel argument {i}: {ctype!r} is not a ctypes scalar type "
                               "(ctypes.c_uint64 for pointers, ctypes.c_int32 ...) or a kind name")
        if hasattr(value, "data_ptr"):
            value = value.data_ptr()
        try:
            holders.append(ctype(value))
        except TypeError as e:
            raise BackendError(f"ptx: kernel argument {i}: {value!r} does not fit {ctype.__name__}: {e}") from None
    array = (ctypes.c_void_p * max(len(holders), 1))(*[ctypes.addressof(h) for h in holders])
    return holders, array


def _stream_handle(stream, device: int) -> int:
    """The raw CUstream of a torch stream, an int handle or a cuda-python CUstream (None: torch's current
    stream on ``device``)."""
    if stream is None:
        import torch
        stream = torch.cuda.current_stream(device)
    if hasattr(stream, "cuda_stream"):
        return int(stream.cuda_stream)
    try:
        return int(stream)
    except (TypeError, ValueError):
        raise BackendError(f"ptx: {stream!r} is not a CUDA stream") from None


def launch(fn: Function, grid, block, shared_bytes: int = 0, args=(), stream=None) -> None:
    """Launch ``fn`` on a ``grid`` of blocks of ``block`` threads (ints or tuples of up to 3) with
    ``shared_bytes`` of dynamic shared memory and ``args`` as ``[(ctype or kind name, value), ...]`` (see
    :func:`pack_params`), on ``stream`` (default: torch's current stream on the function's device).
    Asynchronous, like any kernel launch; an empty grid launches nothing."""
    g, b = _dim3("grid", grid), _dim3("block", block)
    if 0 in g:
        return
    if 0 in b:
        raise BackendError(f"ptx: a block of {b} threads is empty")
    shared_bytes = int(shared_bytes)
    if shared_bytes < 0:
        raise BackendError(f"ptx: negative shared memory size {shared_bytes}")
    drv = _driver()
    dev = fn.module.device
    _make_current(dev)
    if shared_bytes > fn.shared_limit:
        # above 48 KiB a kernel must opt in to more dynamic shared memory (up to the device's opt-in limit)
        attr = drv.CUfunction_attribute.CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES
        _call(drv, "cuFuncSetAttribute", fn.handle, attr, shared_bytes,
              detail=f"({fn.name} asks for {shared_bytes} bytes of dynamic shared memory; "
                     "more than the device allows per block?)")
        fn.shared_limit = shared_bytes
    holders, array = pack_params(args)
    # kernelParams: cuda.bindings accepts None, a ((values), (ctypes types)) pair, an object with the
    # buffer protocol, or an int taken as the address of a ready void** array. We pass the int address of
    # our own ctypes void*[n] (one pointer per parameter, each to a ctypes value), which reads the same in
    # cuda-python 12 and 13 and leaves the packing under our control; `holders` and `array` stay alive
    # until cuLaunchKernel returns, and the driver has copied the values by then.
    params = ctypes.addressof(array) if holders else None
    hstream = drv.CUstream(_stream_handle(stream, dev))
    _call(drv, "cuLaunchKernel", fn.handle, *g, *b, shared_bytes, hstream, params, 0,
          detail=f"(kernel {fn.name}, grid {g}, block {b}, {shared_bytes} bytes of dynamic shared memory, "
                 f"{len(holders)} parameters)")
