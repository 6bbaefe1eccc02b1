"""vmlang.stdlib: kernels written in vmlang, format converters and torch layers."""
