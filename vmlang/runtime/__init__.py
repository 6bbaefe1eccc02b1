"""The runtime every backend shares: typed host tensors and argument binding."""
from .tensor import Tensor
from .args import Binding, TensorArg, bind_args

__all__ = ["Tensor", "TensorArg", "Binding", "bind_args"]
