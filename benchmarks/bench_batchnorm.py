"""Thin wrapper: `python benchmarks/bench_batchnorm.py [options]` runs `gpuconv-bench bn [options]`.

See benchmarks/README.md.
"""

import sys

from gpuconv.bench.cli import main

if __name__ == "__main__":
    sys.exit(main(["bn", *sys.argv[1:]]))
