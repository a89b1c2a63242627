"""Thin wrapper: `python benchmarks/bench_im2col.py [options]` runs `gpuconv-bench im2col [options]`.

See benchmarks/README.md.
"""

import sys

from gpuconv.bench.cli import main

if __name__ == "__main__":
    sys.exit(main(["im2col", *sys.argv[1:]]))
