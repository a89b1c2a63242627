"""One Markdown table of gpuconv's time over PyTorch's, per zoo model, mode and batch, before and
after a change, from the JSON reports of ``gpuconv-bench model`` (each run measures gpuconv and its
PyTorch twin interleaved in one process, so each ratio is of one run).

    python benchmarks/model_ratio_table.py BEFORE_DIR AFTER_DIR > table.md

Each directory holds one report per case (``gpuconv-bench model ... --format json --output``); a
case is matched by model, image size and batch. Ratios are of the best times (the least disturbed
runs on a shared machine) and, in parentheses, of the medians.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def _cases(folder: Path) -> dict[tuple, dict]:
    """{(model, image size, batch, mode): gpuconv row} of every report in ``folder``."""
    found = {}
    for path in sorted(folder.glob("*.json")):
        report = json.loads(path.read_text())
        settings = report["header"]["settings"]
        for row in report["rows"]:
            if row.get("impl") == "gpuconv":
                found[(row["case"], settings["image_size"], settings["batch"], row["mode"])] = row
    return found


def _cell(row: dict | None) -> str:
    if row is None or "ratio_torch_best" not in row:
        return "-"
    return (f"{row['best_ms']:.1f} / {row['torch_best_ms']:.1f} ms = **{row['ratio_torch_best']:.2f}x** "
            f"({row['ratio_torch']:.2f}x)")


def table(before: dict, after: dict) -> str:
    lines = ["| model | input (N, C, H, W) | mode | before: gpuconv / PyTorch best | after: gpuconv / PyTorch best |",
             "|---|---|---|---|---|"]
    for key in sorted(after, key=lambda k: (k[0], k[1], k[2], k[3] != "train")):
        model, size, batch, mode = key
        channels = 1 if model == "lenet5" else 3
        lines.append(f"| {model} | ({batch}, {channels}, {size}, {size}) | {mode} | {_cell(before.get(key))} | "
                     f"{_cell(after[key])} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    args = parser.parse_args()
    print(table(_cases(args.before), _cases(args.after)), end="")


if __name__ == "__main__":
    main()
