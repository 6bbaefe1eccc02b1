"""Exact converters between vmlang's logical QuantizedWeight layout and published packed formats."""
