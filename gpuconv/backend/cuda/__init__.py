"""Kernel launchers shared by the cupy and emulated backends, one module per kernels/*.cu file."""
