"""What ``algo="auto"`` gives away, layer by layer, in a ``gpuconv-bench conv --format json`` report.

For each (layer, direction): the fastest algorithm measured (tuned excluded), auto's pick and how
much slower it is, the tuned pick, and the ratio of the best to PyTorch (cuDNN on a GPU). Rows where
auto is more than ``--slack`` (default 10%, issue 8's bound) slower than the best are marked: they
are what the heuristic in gpuconv/functional/conv_algo.py should change. Then the markdown report
itself, so one command turns the GPU run's JSON into the table to commit:

    python benchmarks/conv_auto_check.py conv-resnet18-b32.json [--slack 0.10] > table.md
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from typing import Any

from gpuconv.bench.report import to_markdown

DIRECTIONS = ("forward", "backward_data", "backward_weight")


def _algo(row: dict[str, Any]) -> str:
    """The algorithm a row ran: its own name for an algorithm's row, the pick for auto and tuned."""
    return row.get("algo") or row["impl"]


def auto_rows(rows: list[dict[str, Any]], slack: float) -> tuple[list[str], int, int]:
    """The markdown lines of the per-(layer, direction) table, the rows compared and those over ``slack``."""
    lines = ["| layer | direction | best algo | best ms | best / PyTorch | auto algo | auto / best | tuned algo |"
             " tuned / best | |", "|---" * 10 + "|"]
    compared = over = 0
    for case in dict.fromkeys(r["case"] for r in rows):
        for direction in DIRECTIONS:
            timed = [r for r in rows if r["case"] == case and r["direction"] == direction
                     and r.get("status") == "ok" and isinstance(r.get("median_ms"), (int, float))]
            algos = [r for r in timed if r["impl"] not in ("auto", "tuned", "pytorch")]
            if not algos:
                continue
            best = min(algos, key=lambda r: r["median_ms"])
            auto = next((r for r in timed if r["impl"] == "auto"), None)
            tuned = next((r for r in timed if r["impl"] == "tuned"), None)
            auto_ratio = auto["median_ms"] / best["median_ms"] if auto else math.nan
            tuned_ratio = tuned["median_ms"] / best["median_ms"] if tuned else math.nan
            flagged = auto is not None and auto_ratio > 1 + slack
            compared += auto is not None
            over += flagged
            torch_ratio = best.get("ratio_torch")
            lines.append(
                f"| {case} | {direction} | {_algo(best)} | {best['median_ms']:.4g} | "
                f"{'-' if torch_ratio is None else f'{torch_ratio:.2f}'} | {_algo(auto) if auto else '-'} | "
                f"{auto_ratio:.2f} | {_algo(tuned) if tuned else '-'} | {tuned_ratio:.2f} | "
                f"{'AUTO SLOW' if flagged else ''} |")
    return lines, compared, over


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("report", help="a JSON report of gpuconv-bench conv")
    parser.add_argument("--slack", type=float, default=0.10, help="auto may be this fraction slower (default 0.10)")
    args = parser.parse_args(argv)
    with open(args.report, encoding="utf-8") as f:
        report = json.load(f)
    lines, compared, over = auto_rows(report["rows"], args.slack)
    print(f"# auto against the fastest measured algorithm, per layer and direction ({args.report})\n")
    print("\n".join(lines))
    print(f"\nauto more than {args.slack:.0%} slower than the best algorithm in {over} of {compared} "
          "(layer, direction) pairs.\n")
    print(to_markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
