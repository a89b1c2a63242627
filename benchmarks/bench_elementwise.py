"""Thin wrapper: `python benchmarks/bench_elementwise.py [options]` runs `gpuconv-bench elementwise [options]`.

ReLU forward/backward, a convolution's bias add and optimizer steps (SGD momentum, Adam) over
ResNet-18's parameters: GB/s, % of a copy, and the ratio to PyTorch's kernels (CUDA on the cupy
backend, CPU otherwise) when PyTorch is installed. See benchmarks/README.md.
"""

import sys

from gpuconv.bench.cli import main

if __name__ == "__main__":
    sys.exit(main(["elementwise", *sys.argv[1:]]))
