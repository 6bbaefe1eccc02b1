"""vmlang.stdlib.nn: QuantizedLinear and quantize_model on a small random transformer block (torch, CPU).

Two comparisons per format:

* **quantized model vs the float model run with the dequantized weights** (``deq``): the same weights, so
  the only differences are the float16 roundings of qmatmul -- each QuantizedLinear rounds its input and its
  output to float16 (unit roundoff ``u = 2^-11``, two roundings per layer) and accumulates in float32. One
  layer is checked element-wise against that rule; through the block (at most three quantized layers in
  series on a path; LayerNorm, softmax and GELU do not amplify relative errors much) we allow a relative RMS
  difference of ``6 u`` (two roundings x three layers) on the block's update (output - input).
* **quantized vs float model**: the weight error. For a format whose grid has ``top`` as its largest value
  and the largest gap ``gap`` (both from the dtype's table), an element's error is at most ``gap / 2`` steps,
  i.e. ``eps = gap / (2 top)`` of its group's absmax (uint: the range spans up to ``2 absmax`` over ``2^b - 1``
  steps; mxfp4: see :func:`weight_eps`). Rounding errors spread like uniform noise (RMS ``eps / sqrt(3)``
  of absmax) and a Gaussian group's absmax is about 2.5 RMS of its weights, so one layer's relative RMS
  output error is about ``2.5 eps / sqrt(3) ~ 1.45 eps``; independent errors of up to three layers in series
  add to about ``sqrt(3) x 1.45 eps ~ 2.5 eps``: we allow ``3 eps`` of relative RMS on the block's update.
"""
from __future__ import annotations

import copy
import io
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
nn = torch.nn
from vmlang.ir.dtypes import dtype
from vmlang.ir.errors import ArgumentError
from vmlang.stdlib import QuantizedLinear, quantize, quantize_model
from vmlang.stdlib.quant.weight import QuantizedWeight

U16 = 2.0 ** -11
D, HEADS, FF, SEQ = 64, 4, 100, 5


class Block(nn.Module):
    """A pre-norm transformer block: causal multi-head attention (q/k/v/o) and a GELU MLP (up/down)."""

    def __init__(self, d=D, heads=HEADS, ff=FF):
        super().__init__()
        self.heads = heads
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.attn = nn.ModuleDict({n: nn.Linear(d, d) for n in ("q", "k", "v", "o")})
        self.mlp = nn.ModuleDict({"up": nn.Linear(d, ff), "down": nn.Linear(ff, d)})

    def forward(self, x):
        B, T, d = x.shape
        h = self.ln1(x)
        q, k, v = (self.attn[n](h).view(B, T, self.heads, -1).transpose(1, 2) for n in "qkv")
        att = (q @ k.transpose(-1, -2)) / math.sqrt(d // self.heads)
        causal = torch.triu(torch.ones(T, T, dtype=torch.bool, device=x.device), 1)
        att = att.masked_fill(causal, float("-inf")).softmax(-1)
        x = x + self.attn["o"]((att @ v).transpose(1, 2).reshape(B, T, d))
        return x + self.mlp["down"](nn.functional.gelu(self.mlp["up"](self.ln2(x))))


def make_block(seed):
    torch.manual_seed(seed)
    return Block().eval()


def inputs(seed, batch=2):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, SEQ, D, generator=g)


def weight_eps(name) -> float:
    """Worst element error of the format as a fraction of its group's absmax (see the module docstring)."""
    if name == "mxfp4":
        # amax / 2^e = a in [4, 8): the gap 4..6 costs up to 1 <= a / 4; saturating a > 6 costs a - 6 < a / 4
        return 1 / 4
    dt = dtype(name)
    v = dt.values
    t = np.unique(v[np.isfinite(v)])
    if dt.is_int and not dt.is_signed:
        return 2 / (2 ** dt.nbits - 1) / 2
    t = t[t >= 0]
    return float(np.diff(t).max() / 2 / dt.max)


def dequantized_copy(model, qmodel):
    """The float model with every Linear's weight replaced by the matching QuantizedLinear's dequantized one."""
    deq = copy.deepcopy(model)
    qmods = dict(qmodel.named_modules())
    for name, mod in deq.named_modules():
        if isinstance(mod, nn.Linear) and isinstance(qmods.get(name), QuantizedLinear):
            mod.weight.data = torch.from_numpy(qmods[name].qweight.dequantize())
    return deq


def rel_rms(a, b, base):
    return float((a - b).double().pow(2).mean().sqrt() / base.double().pow(2).mean().sqrt())


FORMATS = [("int8", 32), ("int4", 32), ("int3", None), ("uint4", 32), ("uint8", 16), ("nf4", None),
           ("float8_e4m3", None), ("float8_e5m2", 32), ("float6_e3m2", 32), ("float4_e2m1", 32), ("mxfp4", None)]


@pytest.mark.parametrize("name, gs", FORMATS, ids=[f"{n}-{g}" for n, g in FORMATS])
def test_quantized_block_is_close_to_float_and_tight_to_dequantized(name, gs):
    model, x = make_block(1), inputs(2)
    kw = {} if gs is None else {"group_size": gs}
    qmodel = quantize_model(copy.deepcopy(model), name, backend="numpy", **kw)
    assert sum(isinstance(m, QuantizedLinear) for m in qmodel.modules()) == 6
    assert not any(type(m) is nn.Linear for m in qmodel.modules())
    with torch.no_grad():
        yf, yq, yd = model(x), qmodel(x), dequantized_copy(model, qmodel)(x)
    assert yq.dtype == torch.float32 and yq.shape == x.shape
    update = yf - x  # the block's own contribution (the residual x would hide errors)
    tight, loose = rel_rms(yq, yd, update), rel_rms(yq, yf, update)
    assert tight <= 6 * U16, f"quantized vs dequantized-float: relative RMS {tight:.2e} > 6 u"
    assert loose <= 3 * weight_eps(name), f"quantized vs float: relative RMS {loose:.3g} > 3 eps"
    assert tight < loose  # the weight error dominates the f16 roundings


@pytest.mark.parametrize("name", ["int4", "uint3", "nf4", "float8_e4m3", "mxfp4"])
def test_one_layer_matches_the_f16_rounding_rule(name, backend):
    torch.manual_seed(3)
    lin = nn.Linear(70, 17)
    q = QuantizedLinear.from_linear(lin, name, backend=backend)
    x = torch.randn(3, 70, dtype=torch.float16)
    w = torch.from_numpy(q.qweight.dequantize()).double()
    exact = x.double() @ w.T
    want = exact + lin.bias.detach().double()
    y = q(x)
    assert y.dtype == torch.float16
    # qmatmul: f32 sum of exact products, rounded to f16 (u |exact| + K 2^-24 sum|x w|), then + bias rounded
    mag = x.double().abs() @ w.abs().T
    tol = 2 * U16 * (exact.abs() + want.abs()) + 70 * 2.0 ** -24 * mag + 2 * U16 * lin.bias.detach().abs().double()
    assert torch.all((y.double() - want).abs() <= tol + 1e-7)


def test_float32_inputs_run_in_float16_and_come_back_float32():
    torch.manual_seed(4)
    lin = nn.Linear(33, 9, bias=False)
    q = QuantizedLinear.from_linear(lin, "int8", backend="numpy")
    x = torch.randn(2, 3, 33)
    y = q(x)
    assert y.dtype == torch.float32 and y.shape == (2, 3, 9)
    assert torch.equal(y, q(x.half()).float())


def test_from_quantized_keeps_the_weight_and_bias():
    rng = np.random.default_rng(5)
    qw = quantize(rng.standard_normal((11, 40)).astype(np.float32), "uint4", 8)
    bias = rng.standard_normal(11).astype(np.float32)
    layer = QuantizedLinear.from_quantized(qw, bias, backend="numpy")
    assert np.array_equal(layer.qweight.dequantize(), qw.dequantize())
    assert np.array_equal(layer.bias.detach().numpy(), bias)
    assert set(dict(layer.named_buffers())) == {"codes", "scales", "zeros"}
    x = torch.from_numpy(rng.standard_normal((4, 40))).half()
    ref = x.double() @ torch.from_numpy(qw.dequantize()).double().T + torch.from_numpy(bias).double()
    assert (layer(x).double() - ref).abs().max() <= 4 * U16 * ref.abs().max()


@pytest.mark.parametrize("name", ["int4", "uint4", "nf4", "float8_e4m3", "mxfp4", "int8"])
def test_state_dict_round_trip_into_a_fresh_model(name):
    x = inputs(6)
    qmodel = quantize_model(make_block(7), name, backend="numpy")
    fresh = quantize_model(make_block(8), name, backend="numpy")  # other weights, same format
    buf = io.BytesIO()
    torch.save(qmodel.state_dict(), buf)
    buf.seek(0)
    fresh.load_state_dict(torch.load(buf, weights_only=True))  # the format travels as plain ints and strings
    with torch.no_grad():
        assert torch.equal(fresh(x), qmodel(x))
    # an empty layer of the same format is a load target too
    src = qmodel.attn["q"]
    empty = QuantizedLinear(D, D, True, name, backend="numpy")
    empty.load_state_dict(src.state_dict())
    h = torch.randn(3, D, dtype=torch.float16)
    assert torch.equal(empty(h), src(h))


@pytest.mark.parametrize("other, kw, msg", [
    ("int8", {}, "dtype='int4'.*this layer: 'int8'"),
    ("int4", {"group_size": 32}, "group_size=64.*this layer: 32"),
    ("int4", {"scale_dtype": "float32"}, "scales is torch.float16.*torch.float32"),
    ("uint4", {}, "dtype='int4'.*this layer: 'uint4'"),
])
def test_mismatched_state_dicts_are_refused(other, kw, msg):
    src = QuantizedLinear.from_linear(nn.Linear(64, 12), "int4", 64)
    dst = QuantizedLinear(64, 12, True, other, kw.pop("group_size", 64), **kw)
    with pytest.raises(ArgumentError, match=msg):
        dst.load_state_dict(src.state_dict())


def test_mismatched_shapes_are_refused():
    src = quantize_model(make_block(9), "int4")
    other = quantize_model(Block(ff=96), "int4")
    with pytest.raises(ArgumentError, match=r"mlp\.up holds another format: out_features=100 \(this layer: 96\)"):
        other.load_state_dict(src.state_dict())


def test_skip_and_root_linear():
    model = quantize_model(make_block(10), "int4", skip=["mlp.*", "attn.o"])
    kinds = {n: type(m).__name__ for n, m in model.named_modules() if isinstance(m, (nn.Linear, QuantizedLinear))}
    assert kinds == {"attn.q": "QuantizedLinear", "attn.k": "QuantizedLinear", "attn.v": "QuantizedLinear",
                     "attn.o": "Linear", "mlp.up": "Linear", "mlp.down": "Linear"}
    by_callable = quantize_model(make_block(10), "int4", skip=lambda name, m: m.out_features == FF)
    assert type(by_callable.mlp["up"]) is nn.Linear and type(by_callable.mlp["down"]) is QuantizedLinear
    lin = nn.Linear(20, 5)
    assert isinstance(quantize_model(lin, "int4"), QuantizedLinear)


def test_to_moves_the_buffers():
    layer = QuantizedLinear.from_linear(nn.Linear(40, 6), "mxfp4", backend="numpy")
    moved = layer.to("cpu")
    assert moved is layer and all(b.device.type == "cpu" for b in layer.buffers())
    assert layer.scales.dtype == torch.uint8 and isinstance(layer.qweight, QuantizedWeight)
    assert layer.qweight.scale_values().shape == (6, 2)


@pytest.mark.parametrize("call, msg", [
    (lambda: quantize_model(make_block(1), "float16"), "supported dtypes"),
    (lambda: quantize_model("model", "int4"), "torch.nn.Module"),
    (lambda: quantize_model(make_block(1), "int4", skip=[3]), "skip must be"),
    (lambda: QuantizedLinear.from_linear(nn.Conv1d(3, 3, 1), "int4"), "torch.nn.Linear"),
    (lambda: QuantizedLinear(0, 4), "in_features must be a positive int"),
    (lambda: QuantizedLinear(8, 4, act_dtype=torch.float32), "act_dtype"),
    (lambda: QuantizedLinear.from_quantized("qw"), "QuantizedWeight"),
    (lambda: QuantizedLinear.from_quantized(quantize(np.ones((3, 8), np.float32), "int4"), np.ones(4)),
     r"bias must have shape \[3\]"),
    (lambda: QuantizedLinear(8, 4, backend="numpy")(torch.ones(2, 7)), r"x must be \[\.\.\., 8\]"),
    (lambda: QuantizedLinear(8, 4, backend="numpy")(torch.ones(2, 8, dtype=torch.int32)), "float torch tensor"),
])
def test_errors(call, msg):
    with pytest.raises(ArgumentError, match=msg):
        call()


def test_docstring_examples():
    import doctest

    import vmlang.stdlib.nn as m
    assert doctest.testmod(m).failed == 0


# ------------------------------------------------------------------------------------ checkpoint formats
def _x(k, rows=3, seed=5):
    return torch.from_numpy(np.random.default_rng(seed).standard_normal((rows, k))).to(torch.float16)


def _ref(x, w, perm=None):
    xs = x.double().numpy() if perm is None else x.double().numpy()[:, perm]
    return xs @ w.astype(np.float64).T


def _close(y, ref):
    y = y.double().numpy()
    tol = 4 * 2.0 ** -11 * (np.abs(ref) + np.abs(ref).max() * 0.01)
    assert np.all(np.abs(y - ref) <= tol), np.abs(y - ref).max()


@pytest.mark.parametrize("act_order", [False, True])
def test_from_gptq_layer(act_order):
    from vmlang.stdlib import to_gptq
    rng = np.random.default_rng(1)
    N, K = 24, 96          # GPTQ packs N and K into 32-bit words (N * bits, K * bits multiples of 32)
    qw = quantize(rng.standard_normal((N, K)).astype(np.float32) * 0.1, "uint4", 32)
    perm = rng.permutation(K) if act_order else None
    raw = to_gptq(qw, perm=perm)
    layer = QuantizedLinear.from_gptq(**raw, bias=np.arange(N, dtype=np.float32), backend="numpy")
    assert (layer.perm is not None) == act_order
    x = _x(K)
    _close(layer(x), _ref(x, qw.dequantize(), perm) + np.arange(N))
    # the permutation travels with the state dict into an empty layer
    fresh = QuantizedLinear(K, N, True, "uint4", 32, backend="numpy")
    fresh.load_state_dict(layer.state_dict())
    assert torch.equal(fresh(x), layer(x))


def test_from_awq_bnb_and_mxfp4_layers():
    from vmlang.stdlib import to_awq, to_bnb_nf4, to_mxfp4
    rng = np.random.default_rng(2)
    w = rng.standard_normal((8, 64)).astype(np.float32) * 0.05    # AWQ packs N into 32-bit words
    x = _x(64)
    for fmt, group, to, make in [("uint4", 32, to_awq, QuantizedLinear.from_awq),
                                   ("nf4", 64, to_bnb_nf4, QuantizedLinear.from_bnb_nf4),
                                   ("mxfp4", 32, to_mxfp4, QuantizedLinear.from_mxfp4)]:
        qw = quantize(w, fmt, group)
        layer = make(**to(qw), backend="numpy")
        assert layer.bias is None and layer.perm is None
        _close(layer(x), _ref(x, qw.dequantize()))


def test_a_perm_that_is_not_a_permutation_is_refused():
    qw = quantize(np.random.default_rng(3).standard_normal((4, 8)).astype(np.float32), "int4", 8)
    with pytest.raises(ArgumentError, match="permutation of range\\(8\\)"):
        QuantizedLinear.from_quantized(qw, perm=[0, 1, 2, 3, 4, 5, 6, 6])


@pytest.mark.gpu
@pytest.mark.parametrize("name", ["int8", "int4", "nf4", "mxfp4"])
def test_quantized_block_on_the_gpu(name):
    """The block on CUDA with the default backend (triton there): the same bounds as on the CPU."""
    model, x = make_block(1).cuda(), inputs(2).cuda()
    qmodel = quantize_model(copy.deepcopy(model), name)
    assert all(m.codes.is_cuda for m in qmodel.modules() if isinstance(m, QuantizedLinear))
    with torch.no_grad():
        yf, yq, yd = model(x), qmodel(x), dequantized_copy(model.cpu(), qmodel.cpu())(x.cpu())
    update = yf.cpu() - x.cpu()
    assert yq.is_cuda
    assert rel_rms(yq.cpu(), yd, update) <= 6 * U16
    assert rel_rms(yq.cpu(), yf.cpu(), update) <= 3 * weight_eps(name)
