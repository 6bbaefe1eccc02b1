"""The runtime every backend shares: typed host tensors and argument binding."""
from .tensor import Tensor
from .args import HostArg, Binding, bind_args

__all__ = ["Tensor", "HostArg", "Binding", "bind_args"]
