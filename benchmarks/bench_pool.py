"""Thin wrapper: `python benchmarks/bench_pool.py [options]` runs `gpuconv-bench pool [options]`.

See benchmarks/README.md.
"""

import sys

from gpuconv.bench.cli import main

if __name__ == "__main__":
    sys.exit(main(["pool", *sys.argv[1:]]))
