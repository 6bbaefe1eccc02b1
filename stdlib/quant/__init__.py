"""Quantization: the QuantizedWeight container and the schemes that produce it."""
