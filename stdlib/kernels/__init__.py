"""The stdlib's kernels, written in vmlang (``.vm`` files loaded with ``vm.load``)."""
