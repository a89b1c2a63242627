"""Thin wrapper: `python benchmarks/bench_conv.py [options]` runs `gpuconv-bench conv [options]`.

See benchmarks/README.md.
"""

import sys

from gpuconv.bench.cli import main

if __name__ == "__main__":
    sys.exit(main(["conv", *sys.argv[1:]]))
