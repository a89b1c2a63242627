"""NumPy implementations of the backend primitives, one module per op family (mirrors kernels/)."""
