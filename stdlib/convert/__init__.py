"""Exact converters between vmlang's logical QuantizedWeight layout and published packed formats.

Each pair reads a checkpoint's tensors into a :class:`vmlang.stdlib.quant.weight.QuantizedWeight` and writes
them back, bit for bit both ways (``to_X`` returns a dict keyed by ``from_X``'s parameters, NumPy arrays):

* :mod:`.gptq` -- ``from_gptq`` / ``to_gptq``: GPTQ (AutoGPTQ v1, GPTQModel v2), 2/3/4/8-bit codes packed
  along K in int32 words, act-order ``g_idx`` as a permutation of K.
* :mod:`.awq` -- ``from_awq`` / ``to_awq``: AWQ GEMM, 4-bit codes packed along N in the 0,2,4,6,1,3,5,7
  nibble order.
* :mod:`.bnb` -- ``from_bnb_nf4`` / ``to_bnb_nf4``: bitsandbytes NF4, high nibble first over the flattened
  weight, one absmax per block.
* :mod:`.mxfp4` -- ``from_mxfp4`` / ``to_mxfp4``: OCP MXFP4 (gpt-oss), 32 e2m1 codes and one E8M0 exponent
  per block.

They are exported lazily as ``vmlang.stdlib.from_gptq`` etc.; docs/stdlib.md ("Converters") has the byte
layouts with worked examples.
"""
