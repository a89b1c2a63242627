"""benchmarks/conv_auto_check.py: auto against the fastest algorithm in a bench conv report."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _script():
    spec = importlib.util.spec_from_file_location("conv_auto_check", ROOT / "benchmarks" / "conv_auto_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _row(case, direction, impl, ms, algo=None, torch_ms=None, status="ok"):
    row = {"case": case, "shape": case, "direction": direction, "impl": impl, "status": status, "median_ms": ms}
    if algo:
        row["algo"] = algo
    if torch_ms:
        row.update(torch_ms=torch_ms, ratio_torch=ms / torch_ms)
    return row


def test_marks_the_pairs_where_auto_is_slower_than_the_best_by_more_than_the_slack(tmp_path, capsys):
    rows = [
        _row("stem", "forward", "im2col", 2.0, torch_ms=1.0), _row("stem", "forward", "direct", 1.0, torch_ms=1.0),
        _row("stem", "forward", "auto", 1.05, algo="direct"), _row("stem", "forward", "tuned", 1.0, algo="direct"),
        _row("stem", "backward_data", "im2col", 3.0), _row("stem", "backward_data", "implicit_gemm", 1.5),
        _row("stem", "backward_data", "gemm", None, status="n/a"),
        _row("stem", "backward_data", "auto", 3.0, algo="im2col"),
    ]
    module = _script()
    lines, compared, over = module.auto_rows(rows, 0.10)
    assert (compared, over) == (2, 1)
    forward, backward = lines[2], lines[3]
    assert "| stem | forward | direct | 1 | 1.00 | direct | 1.05 | direct | 1.00 |  |" == forward
    assert backward.startswith("| stem | backward_data | implicit_gemm | 1.5 | - | im2col | 2.00 | - | nan |")
    assert backward.endswith("AUTO SLOW |")
    committed = json.loads((ROOT / "benchmarks" / "results" / "conv-resnet18-numpy-cpu-2core-2026-11-26.json").read_text())
    report = dict(committed, rows=rows, summary=[])
    path = tmp_path / "conv.json"
    path.write_text(json.dumps(report))
    assert module.main([str(path)]) == 0
    out = capsys.readouterr().out
    assert "in 1 of 2 (layer, direction) pairs" in out and "AUTO SLOW" in out
