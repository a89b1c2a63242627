"""gpuconv's benchmark command line, ``gpuconv-bench`` (also ``python -m gpuconv.bench``).

Top layer of gpuconv (DESIGN.md section 1): it uses the public API only. ``gpuconv-bench -h``
lists the subcommands; :mod:`gpuconv.bench.schema` documents the JSON output.
"""

from .cli import main

__all__ = ["main"]
