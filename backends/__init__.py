"""vmlang.backends: numpy (reference VM), triton and ptx code generators. Backends never import each other."""
