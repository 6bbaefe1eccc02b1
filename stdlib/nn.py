"""torch layers over quantized weights: ``QuantizedLinear`` and ``quantize_model``.

``QuantizedLinear`` is a drop-in ``torch.nn.Linear`` for inference: it holds a
:class:`~vmlang.stdlib.quant.weight.QuantizedWeight` as torch buffers (``codes``: the packed uint8 rows;
``scales``: float16/bfloat16/float32, or uint8 float8_e8m0 codes for mxfp4; ``zeros``: uint8 zero points,
uint scheme only) plus the float ``bias``, so ``.to(device)``, ``state_dict()`` and ``load_state_dict()``
work as for any module. ``forward(x)`` is ``qmatmul(x, W) + bias`` = ``x @ W.dequantize().T + bias``:

* ``x`` ``[..., K]`` float16/bfloat16 runs as it is; any other float dtype is cast to ``act_dtype``
  (default float16) for the kernel and the result cast back to x's dtype;
* the layer's format (dtype, group size, shape) travels in the state dict (``_extra_state``), and loading
  a state dict of another format, shape or buffer dtype raises :class:`ArgumentError` naming the
  difference instead of casting silently.

``module.half()`` / ``module.to(torch.float16)`` convert the float scales and the bias like any float
buffer; move layers with ``.to(device)``.

>>> import torch
>>> lin = torch.nn.Linear(40, 3)
>>> q = QuantizedLinear.from_linear(lin, dtype="int8", backend="numpy")
>>> q
QuantizedLinear(in_features=40, out_features=3, dtype=int8, group_size=40, bias=True)
>>> x = torch.randn(2, 5, 40, dtype=torch.float16)
>>> q(x).shape
torch.Size([2, 5, 3])
"""
from __future__ import annotations

import fnmatch

import numpy as np
import torch
from vmlang.ir.errors import ArgumentError

from vmlang.runtime.tensor import Tensor

from .matmul import qmatmul
from .quant.schemes import (
    DEFAULT_GROUP_SIZE,
    _element_dtype,
    _group_size,
    _scale_dtype,
    quantize,
)
from .quant.weight import QuantizedWeight

__all__ = ["QuantizedLinear", "quantize_model"]

_TORCH_SCALES = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32,
                 "float8_e8m0": torch.uint8}
_ACT = (torch.float16, torch.bfloat16)


def _buffer(a) -> torch.Tensor:
    """A torch tensor of a NumPy array, a torch tensor, or a vm.Tensor's data (codes / packed bytes)."""
    if isinstance(a, Tensor):
        a = a.data
    if isinstance(a, torch.Tensor):
        return a.detach().clone().contiguous()
    return torch.from_numpy(np.ascontiguousarray(a)).clone()


class QuantizedLinear(torch.nn.Module):
    """``y = x @ W.T + b`` with ``W`` quantized (see the module docstring).

    ``QuantizedLinear(in_features, out_features, bias=True, dtype="int4", group_size=..., scale_dtype=None)``
    builds an empty layer of that format (zeros), the target of ``load_state_dict``; the defaults resolve
    as in :func:`vmlang.stdlib.quantize`. Usually built with :meth:`from_linear` or :meth:`from_quantized`.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, dtype="int4",
                 group_size=DEFAULT_GROUP_SIZE, *, scale_dtype=None, backend: str | None = None,
                 act_dtype: torch.dtype = torch.float16, device=None, bias_dtype: torch.dtype = torch.float32):
        super().__init__()
        for what, v in (("in_features", in_features), ("out_features", out_features)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ArgumentError(f"QuantizedLinear: {what} must be a positive int, got {v!r}")
        if act_dtype not in _ACT:
            raise ArgumentError(f"QuantizedLinear: act_dtype must be torch.float16 or torch.bfloat16, got {act_dtype}")
        dt, scheme = _element_dtype(dtype)
        N, K = int(out_features), int(in_features)
        gs = _group_size(group_size, K, scheme)
        sdt = _scale_dtype(scale_dtype, scheme, dt)
        G = -(-K // gs)
        self.in_features, self.out_features = K, N
        self.dtype_name = "mxfp4" if scheme == "mxfp4" else dt.name
        self.scheme, self.group_size = scheme, gs
        self.backend, self.act_dtype = backend, act_dtype
        codes = Tensor.from_codes(np.zeros((N, K), np.uint8), dt).data
        self.register_buffer("codes", torch.from_numpy(codes).to(device))
        self.register_buffer("scales", torch.ones((N, G), dtype=_TORCH_SCALES[sdt.name], device=device))
        self.register_buffer("zeros", torch.zeros((N, G), dtype=torch.uint8, device=device)
                             if scheme == "uint" else None)
        self.bias = torch.nn.Parameter(torch.zeros(N, dtype=bias_dtype, device=device), requires_grad=False) \
            if bias else None
        # act-order checkpoints (GPTQ with g_idx): the codes hold the input channels in the order perm,
        # and forward reads x[..., perm] (see from_gptq); None for the identity
        self.register_buffer("perm", None)

    # -------------------------------------------------------------------------------- construction
    @classmethod
    def from_quantized(cls, qw: QuantizedWeight, bias=None, *, perm=None, backend: str | None = None,
                       act_dtype: torch.dtype = torch.float16) -> QuantizedLinear:
        """The layer computing ``x @ qw.dequantize().T + bias`` (``bias``: None or ``[N]``, numpy or torch),
        or ``x[..., perm] @ qw.dequantize().T + bias`` with a permutation ``perm`` of the K input channels."""
        if not isinstance(qw, QuantizedWeight):
            raise ArgumentError(f"QuantizedLinear.from_quantized: qw must be a QuantizedWeight, "
                                f"got {type(qw).__name__}")
        N, K = qw.shape
        scales = qw.scales
        sname = scales.dtype.name if isinstance(scales, Tensor) else str(scales.dtype).removeprefix("torch.")
        if sname not in _TORCH_SCALES:
            raise ArgumentError(f"QuantizedLinear: scales of dtype {sname} are not supported "
                                f"(float16, bfloat16, float32 or float8_e8m0)")
        b = None if bias is None else (bias.detach() if isinstance(bias, torch.Tensor) else torch.from_numpy(
            np.asarray(bias)))
        if b is not None and tuple(b.shape) != (N,):
            raise ArgumentError(f"QuantizedLinear: bias must have shape [{N}], got {list(b.shape)}")
        dev = qw.codes.data.device if qw.codes.is_torch else None
        layer = cls(K, N, b is not None, "mxfp4" if qw.scheme == "mxfp4" else qw.dtype, qw.group_size,
                    scale_dtype=sname, backend=backend, act_dtype=act_dtype, device=dev,
                    bias_dtype=b.dtype if b is not None else torch.float32)
        layer.codes.copy_(_buffer(qw.codes))
        layer.scales.copy_(_buffer(scales))
        if qw.zeros is not None:
            layer.zeros.copy_(_buffer(qw.zeros))
        if b is not None:
            layer.bias.data.copy_(b)
        if perm is not None:
            p = torch.as_tensor(np.asarray(perm) if not isinstance(perm, torch.Tensor) else perm).to(torch.int64)
            if tuple(p.shape) != (K,) or not torch.equal(torch.sort(p).values, torch.arange(K)):
                raise ArgumentError(f"QuantizedLinear: perm must be a permutation of range({K}), got shape "
                                    f"{list(p.shape)}")
            layer.perm = p.to(layer.codes.device)
        return layer

    @classmethod
    def from_gptq(cls, qweight, qzeros, scales, g_idx=None, bits: int = 4, version: int = 1, bias=None, *,
                  group_size=None, backend: str | None = None, act_dtype=torch.float16) -> QuantizedLinear:
        """A GPTQ checkpoint's layer (:func:`vmlang.stdlib.from_gptq`); act-order ``g_idx`` becomes ``perm``."""
        from .convert.gptq import from_gptq
        qw, perm = from_gptq(qweight, qzeros, scales, g_idx, bits=bits, version=version, group_size=group_size)
        return cls.from_quantized(qw, bias, perm=perm, backend=backend, act_dtype=act_dtype)

    @classmethod
    def from_awq(cls, qweight, qzeros, scales, bits: int = 4, bias=None, *, group_size=None,
                 backend: str | None = None, act_dtype=torch.float16) -> QuantizedLinear:
        """An AWQ (GEMM) checkpoint's layer (:func:`vmlang.stdlib.from_awq`)."""
        from .convert.awq import from_awq
        qw = from_awq(qweight, qzeros, scales, bits=bits, group_size=group_size)
        return cls.from_quantized(qw, bias, backend=backend, act_dtype=act_dtype)

    @classmethod
    def from_bnb_nf4(cls, packed, absmax, shape, blocksize: int = 64, bias=None, *, backend: str | None = None,
                     act_dtype=torch.float16) -> QuantizedLinear:
        """A bitsandbytes NF4 layer (:func:`vmlang.stdlib.from_bnb_nf4`)."""
        from .convert.bnb import from_bnb_nf4
        qw = from_bnb_nf4(packed, absmax, shape, blocksize=blocksize)
        return cls.from_quantized(qw, bias, backend=backend, act_dtype=act_dtype)

    @classmethod
    def from_mxfp4(cls, blocks, scales, shape, bias=None, *, backend: str | None = None,
                   act_dtype=torch.float16) -> QuantizedLinear:
        """An OCP MXFP4 layer (:func:`vmlang.stdlib.from_mxfp4`)."""
        from .convert.mxfp4 import from_mxfp4
        qw = from_mxfp4(blocks, scales, shape)
        return cls.from_quantized(qw, bias, backend=backend, act_dtype=act_dtype)

    @classmethod
    def from_linear(cls, linear: torch.nn.Linear, dtype="int4", group_size=DEFAULT_GROUP_SIZE, *,
                    scale_dtype=None, backend: str | None = None,
                    act_dtype: torch.dtype = torch.float16) -> QuantizedLinear:
        """Quantize ``linear.weight`` with :func:`vmlang.stdlib.quantize`; the layer lands on its device."""
        if not isinstance(linear, torch.nn.Linear):
            raise ArgumentError(f"QuantizedLinear.from_linear expects a torch.nn.Linear, got {type(linear).__name__}")
        qw = quantize(linear.weight.detach(), dtype, group_size, scale_dtype=scale_dtype)
        layer = cls.from_quantized(qw, linear.bias, backend=backend, act_dtype=act_dtype)
        return layer.to(linear.weight.device)

    # -------------------------------------------------------------------------------- use
    @property
    def qweight(self) -> QuantizedWeight:
        """The weight as a QuantizedWeight over this layer's buffers (no copy)."""
        dt = _element_dtype(self.dtype_name)[0]
        codes = self.codes
        scales = Tensor(self.scales, "float8_e8m0") if self.scheme == "mxfp4" else self.scales
        return QuantizedWeight(Tensor(codes, dt, (self.out_features, self.in_features)), scales,
                               self.zeros, self.scheme, self.group_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor) or not x.is_floating_point():
            raise ArgumentError(f"QuantizedLinear: x must be a float torch tensor, got "
                                f"{getattr(x, 'dtype', type(x).__name__)}")
        if x.ndim < 1 or x.shape[-1] != self.in_features:
            raise ArgumentError(f"QuantizedLinear: x must be [..., {self.in_features}], got {list(x.shape)}")
        lead = x.shape[:-1]
        x2 = x.reshape(-1, self.in_features)
        if self.perm is not None:
            x2 = x2[:, self.perm]
        xk = x2 if x2.dtype in _ACT else x2.to(self.act_dtype)
        y = qmatmul(xk, self.qweight, backend=self.backend)
        if self.bias is not None:
            y = y + self.bias.to(y.dtype)
        return y.to(x.dtype).reshape(*lead, self.out_features)

    # -------------------------------------------------------------------------------- state
    def _format(self) -> dict:
        return {"dtype": self.dtype_name, "group_size": self.group_size,
                "in_features": self.in_features, "out_features": self.out_features}

    def get_extra_state(self):
        return self._format()

    def set_extra_state(self, state):
        pass  # checked (before anything is copied) in _load_from_state_dict

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs):
        fmt = state_dict.get(prefix + "_extra_state")
        if fmt is not None and fmt != self._format():
            diff = ", ".join(f"{k}={fmt.get(k)!r} (this layer: {v!r})" for k, v in self._format().items()
                             if fmt.get(k) != v)
            raise ArgumentError(f"QuantizedLinear.load_state_dict: {prefix.rstrip('.') or 'the state dict'} holds another "
                                f"format: {diff}")
        theirs = state_dict.get(prefix + "perm")   # act-order permutation: taken over from the state dict
        if theirs is not None and tuple(theirs.shape) != (self.in_features,):
            raise ArgumentError(f"QuantizedLinear.load_state_dict: {prefix}perm has shape {list(theirs.shape)}, "
                                f"this layer needs [{self.in_features}]")
        self.perm = None if theirs is None else torch.empty(self.in_features, dtype=torch.int64,
                                                             device=self.codes.device)
        for name in ("codes", "scales", "zeros", "bias"):
            mine, theirs = getattr(self, name), state_dict.get(prefix + name)
            if theirs is None or mine is None:
                if (theirs is None) != (mine is None) and prefix + name in state_dict:
                    raise ArgumentError(f"QuantizedLinear.load_state_dict: {prefix + name} is present but this "
                                        f"layer has no {name}")
                continue
            if tuple(theirs.shape) != tuple(mine.shape) or theirs.dtype != mine.dtype:
                raise ArgumentError(f"QuantizedLinear.load_state_dict: {prefix + name} is {theirs.dtype} "
                                    f"{list(theirs.shape)}, this layer needs {mine.dtype} {list(mine.shape)}")
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys,
                                      unexpected_keys, error_msgs)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, dtype={self.dtype_name}, "
                f"group_size={self.group_size}, bias={self.bias is not None}")


def _skipper(skip):
    if skip is None:
        return lambda name, mod: False
    if callable(skip):
        return skip
    if isinstance(skip, str):
        skip = [skip]
    pats = list(skip)
    if not all(isinstance(p, str) for p in pats):
        raise ArgumentError(f"quantize_model: skip must be None, a callable(name, module) or module-name "
                            f"patterns (fnmatch), got {skip!r}")
    return lambda name, mod: any(fnmatch.fnmatchcase(name, p) for p in pats)


def quantize_model(model: torch.nn.Module, dtype="int4", group_size=DEFAULT_GROUP_SIZE, skip=None, *,
                   scale_dtype=None, backend: str | None = None,
                   act_dtype: torch.dtype = torch.float16) -> torch.nn.Module:
    """Replace every ``torch.nn.Linear`` of ``model`` by a :class:`QuantizedLinear`, in place; returns ``model``.

    ``skip``: module names to keep in float (fnmatch patterns on the qualified name, e.g. ``"lm_head"`` or
    ``"*.gate"``), or a callable ``(name, module) -> bool``. A model that *is* an ``nn.Linear`` cannot be
    changed in place: the new layer is returned.
    """
    if not isinstance(model, torch.nn.Module):
        raise ArgumentError(f"quantize_model expects a torch.nn.Module, got {type(model).__name__}")
    _element_dtype(dtype)  # a bad dtype fails before any layer is touched
    skipped = _skipper(skip)

    def make(lin):
        return QuantizedLinear.from_linear(lin, dtype, group_size, scale_dtype=scale_dtype, backend=backend,
                                           act_dtype=act_dtype)

    if isinstance(model, torch.nn.Linear):
        return model if skipped("", model) else make(model)
    todo = [(name, mod) for name, mod in model.named_modules()
            if isinstance(mod, torch.nn.Linear) and not skipped(name, mod)]
    for name, lin in todo:
        parent_name, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent_name), child, make(lin))
    return model

