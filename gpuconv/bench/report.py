"""Rendering a report (header, rows, summary) as Markdown, CSV or JSON."""

from __future__ import annotations

import csv
import io
import json
import math
from typing import Any

from .schema import ROW

# Column order of the tables: the order of the row schema's properties.
COLUMNS = list(ROW["properties"])
_HEADINGS = {"median_ms": "median ms", "best_ms": "best ms", "gflops": "GFLOP/s", "gbps": "GB/s",
             "pct_copy": "% copy", "torch_ms": "PyTorch ms", "ratio_torch": "ratio to PyTorch",
             "torch_best_ms": "PyTorch best ms", "ratio_torch_best": "best ratio",
             "images_per_s": "images/s", "peak_measured_bytes": "peak measured MiB",
             "peak_estimated_bytes": "peak estimated MiB", "estimate_ratio": "estimated / measured",
             "max_error": "max rel. error"}


_NOTE_WIDTH = 60


def make_report(header: dict[str, Any], rows: list[dict[str, Any]], summary: list[str]) -> dict[str, Any]:
    """The report object that schema.py describes."""
    return {"schema_version": 1, "header": header, "rows": rows, "summary": summary}


def _columns(rows: list[dict[str, Any]], drop_redundant: bool = False) -> list[str]:
    present = {key for row in rows for key in row}
    if drop_redundant and all(row.get("shape") == row["case"] for row in rows):
        present.discard("shape")  # --shape cases are named by their shape
    return [c for c in COLUMNS if c in present]


def _cell(key: str, value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        if key == "max_error":
            return f"{value:.1e}"
        if key in ("ratio_torch", "ratio_torch_best", "estimate_ratio"):
            return f"{value:.2f}"
        if key in ("pct_copy", "images_per_s", "gflops"):
            return f"{value:.1f}" if value < 100 else f"{value:.0f}"
        return f"{value:.4g}" if abs(value) < 1e4 else f"{value:.0f}"
    if key.endswith("_bytes"):
        return f"{value / 2**20:.1f}"
    text = str(value)
    if key == "note" and len(text) > _NOTE_WIDTH:
        return text[:_NOTE_WIDTH - 3] + "..."  # the whole note is in the JSON and CSV output
    return text


def to_markdown(report: dict[str, Any]) -> str:
    """The header as a list, the rows as a table (columns that no row fills are left out), the summary."""
    header = report["header"]
    lines = [f"# gpuconv-bench {header['command']}", ""]
    lines.append(f"- machine: {header['machine']}; CPU: {header['cpu']}; GPU: {header['gpu'] or 'none'}")
    lines.append(f"- backend: {header['backend']}; date: {header['date']}")
    lines.append("- versions: " + ", ".join(f"{k} {v}" for k, v in header["versions"].items()))
    lines.append("- settings: " + ", ".join(f"{k}={v}" for k, v in header["settings"].items()))
    lines += [f"- {note}" for note in header["notes"]]
    rows = report["rows"]
    if rows:
        columns = _columns(rows, drop_redundant=True)
        lines += ["", "| " + " | ".join(_HEADINGS.get(c, c) for c in columns) + " |",
                  "|" + "---|" * len(columns)]
        lines += ["| " + " | ".join(_cell(c, row.get(c)) for c in columns) + " |" for row in rows]
    if report["summary"]:
        lines.append("")
        lines += [f"{line}" for line in report["summary"]]
    return "\n".join(lines) + "\n"


def to_csv(report: dict[str, Any]) -> str:
    """The rows as CSV (raw numbers, bytes in bytes), after ``# key: value`` lines with the header."""
    out = io.StringIO()
    header = report["header"]
    for key in ("command", "machine", "cpu", "gpu", "backend", "date"):
        out.write(f"# {key}: {header[key]}\n")
    out.write("# versions: " + ", ".join(f"{k} {v}" for k, v in header["versions"].items()) + "\n")
    out.write("# settings: " + ", ".join(f"{k}={v}" for k, v in header["settings"].items()) + "\n")
    for note in header["notes"] + report["summary"]:
        out.write(f"# {note}\n")
    columns = _columns(report["rows"])
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(report["rows"])
    return out.getvalue()


def to_json(report: dict[str, Any]) -> str:
    """The report as JSON (non-finite numbers as null)."""
    def clean(value: Any) -> Any:
        # JSON has no inf/nan: a non-finite error (e.g. a shape mismatch) is written as null.
        if isinstance(value, float) and not math.isfinite(value):
            return None
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items()}
        if isinstance(value, list):
            return [clean(v) for v in value]
        return value
    return json.dumps(clean(report), indent=2) + "\n"


RENDERERS = {"md": to_markdown, "csv": to_csv, "json": to_json}
