"""gpuconv-bench, the benchmark command line: every subcommand on numpy and emulated (in a
subprocess, JSON validated against the schema), correctness gating, formats, and bad options."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import gpuconv
import gpuconv.functional as F
from gpuconv.backend import capabilities_of, unavailable_reason
from gpuconv.bench import cli
from gpuconv.bench.capabilities import has_module
from gpuconv.bench.runner import relative_error
from gpuconv.bench.schema import SCHEMA, validate

REPO = Path(__file__).resolve().parent.parent

# A tiny setting per subcommand: seconds on numpy, and on the emulator too.
TINY = {
    "conv": ["--shape", "2,3,9,8,4,3,3,2,1", "--shape", "2,8,5,5,6,1,1"],
    "pool": ["--batch", "2", "--shrink", "16"],
    "bn": ["--batch", "2", "--shrink", "16"],
    "im2col": ["--batch", "2", "--shrink", "16"],
    "elementwise": ["--batch", "2", "--shrink", "16"],
    "model": ["--model", "lenet5", "--image-size", "32", "--batch", "2", "--num-classes", "10"],
    "memory": ["--model", "lenet5", "--image-size", "32", "--batch", "2", "--num-classes", "10"],
    "list": [],
    "warmup": [],
}


def _backend_param(name):
    reason = unavailable_reason(name)
    return pytest.param(name, marks=pytest.mark.skipif(reason is not None, reason=f"{name} unavailable: {reason}"))


def run_cli(*args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "GPUCONV_BACKEND"}
    return subprocess.run([sys.executable, "-m", "gpuconv.bench", *args], capture_output=True, text=True,
                          cwd=REPO, env=env, check=False, timeout=300)


@pytest.mark.parametrize("backend", [_backend_param("numpy"), _backend_param("emulated")])
@pytest.mark.parametrize("command", list(TINY))
def test_every_subcommand_runs_and_its_json_matches_the_schema(command, backend):
    result = run_cli(command, *TINY[command], "--backend", backend, "--format", "json", "--no-torch",
                     "--repeats", "2", "--warmup", "1")
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    report = json.loads(result.stdout)
    assert validate(report) == []
    header = report["header"]
    assert (header["command"], header["backend"]) == (command, backend)
    assert header["versions"]["gpuconv"] and header["date"] and header["cpu"]
    rows = report["rows"]
    assert rows
    assert {r["status"] for r in rows} <= {"ok", "n/a", "unavailable"}
    if command == "warmup":
        assert [r["case"] for r in rows] == ["load kernel files", "first training and inference steps"]
        assert all(r["seconds"] >= 0 for r in rows)
        assert ("kernel files loaded" in report["summary"][0]) == (backend != "numpy")
        return
    if command == "list":
        return
    checked = [r for r in rows if r["status"] == "ok"]
    assert checked
    if command not in ("memory",):
        assert all(r["max_error"] < 1e-3 for r in checked)
    timed = [r for r in checked if "median_ms" in r]
    if backend == "emulated":
        assert timed == []
        assert any("emulated: correctness only" in note for note in header["notes"])
        if command in cli.PROFILED_COMMANDS:  # the kernels' access counters are printed
            profile = report["summary"][report["summary"].index("") + 1:]
            assert profile[0].startswith("Memory-access profile of the kernels")
            assert any(line.startswith("| kernel | file | launches |") for line in profile)
    elif command != "memory":
        assert timed == checked
        assert all(r["best_ms"] <= r["median_ms"] for r in timed)
    if command in ("model", "memory"):
        assert all(r["peak_measured_bytes"] > 0 for r in checked)


def test_conv_reports_every_applicable_algorithm_per_direction_and_auto_on_the_emulator():
    if unavailable_reason("emulated"):
        pytest.skip(f"emulated unavailable: {unavailable_reason('emulated')}")
    result = run_cli("conv", *TINY["conv"], "--backend", "emulated", "--format", "json")
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)["rows"]
    algos = [a for a in F.conv.ALGOS if a != "auto"]
    for direction in ("forward", "backward_data", "backward_weight"):
        of_direction = [r for r in rows if r["direction"] == direction]
        pointwise = {r["impl"]: r for r in of_direction if r["case"] == "2,8,5,5,6,1,1,1,0,1,1"}
        assert set(pointwise) == set(algos) | {"auto"}
        assert all(r["status"] == "ok" for r in pointwise.values())
        assert pointwise["auto"]["algo"] == F.choose_algo((2, 8, 5, 5), (6, 8, 1, 1), direction=direction)
        strided = {r["impl"]: r for r in of_direction if r["case"] == "2,3,9,8,4,3,3,2,1,1,1"}
        # gemm needs a 1x1 stride-1 kernel: its argument check makes it "n/a", with the reason.
        assert strided["gemm"]["status"] == "n/a" and "1x1" in strided["gemm"]["note"]


def test_conv_on_numpy_times_auto_and_says_so():
    result = run_cli("conv", "--shape", "2,4,6,6,4,3,3,1,1", "--backend", "numpy", "--format", "json", "--no-torch",
                     "--repeats", "1")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert {r["impl"] for r in report["rows"]} == {"auto"}
    assert any("only algo=auto" in note for note in report["header"]["notes"])


def test_a_result_that_disagrees_with_the_numpy_path_is_failed_and_not_timed(monkeypatch, tmp_path):
    real = F.conv2d

    def wrong_direct(*args, algo="auto", **kwargs):
        y = real(*args, algo=algo, **kwargs)
        return y * 1.01 if algo == "direct" else y

    monkeypatch.setattr(F, "conv2d", wrong_direct)
    out = tmp_path / "report.json"
    status = cli.main(["conv", "--shape", "2,4,6,6,4,3,3,1,1", "--backend", "numpy", "--algos", "im2col,direct",
                       "--format", "json", "--no-torch", "--repeats", "1", "--output", str(out)])
    assert status == 1
    rows = {(r["direction"], r["impl"]): r for r in json.loads(out.read_text())["rows"]}
    assert rows["forward", "direct"]["status"] == "FAILED"
    assert "median_ms" not in rows["forward", "direct"]
    assert rows["forward", "direct"]["max_error"] == pytest.approx(0.01, rel=1e-3)
    assert rows["forward", "im2col"]["status"] == "ok" and "median_ms" in rows["forward", "im2col"]
    assert rows["backward_data", "direct"]["status"] == "ok"


@pytest.mark.skipif(unavailable_reason("cupy") is None, reason="a GPU is usable here: cupy is available")
def test_an_unavailable_backend_is_one_line_and_a_nonzero_exit():
    result = run_cli("conv", "--suite", "resnet18", "--backend", "cupy")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gpuconv-bench: backend 'cupy' is unavailable: ")
    assert result.stdout == ""


def test_a_model_that_does_not_take_the_image_size_is_one_line():
    result = run_cli("model", "--model", "lenet5", "--image-size", "64", "--batch", "1", "--backend", "numpy",
                     "--no-torch")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("gpuconv-bench: model lenet5 does not run at --image-size 64")


@pytest.mark.parametrize("argv, message", [
    ([], "required: SUBCOMMAND"),
    (["conv", "--shape", "1,2,3"], "--shape takes 7 to 11"),
    (["conv", "--shape", "1,2,3,3,4,5,5"], "output would be empty"),
    (["conv", "--shape", "1,3,8,8,4,3,3,1,1,1,2"], "groups=2 must divide"),
    (["conv", "--shape", "1,a,3,3,4,1,1"], "comma-separated ints"),
    (["conv", "--algos", "fft"], "--algos: expected a comma-separated subset of"),
    (["conv", "--suite", "resnet18", "--shape", "1,1,3,3,1,1,1"], "not both"),
    (["conv", "--suite", "alexnet"], "invalid choice: 'alexnet'"),
    (["pool", "--repeats", "0"], "expected a positive int"),
    (["bn", "--backend", "opencl"], "invalid choice: 'opencl'"),
    (["im2col", "--format", "xml"], "invalid choice: 'xml'"),
    (["model", "--device", "0", "--backend", "numpy"], "--device applies to --backend cupy only"),
    (["list", "--plot", "x.png"], "list has nothing to plot"),
    (["memory", "--warmup", "-1"], "expected an int >= 0"),
])
def test_bad_options_are_argparse_errors(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_markdown_and_csv_show_the_same_rows(capsys):
    argv = ["bn", "--batch", "2", "--shrink", "32", "--backend", "numpy", "--no-torch", "--repeats", "1"]
    assert cli.main(argv + ["--format", "md"]) == 0
    markdown = capsys.readouterr().out
    assert markdown.startswith("# gpuconv-bench bn\n")
    assert "- backend: numpy" in markdown and "| case | op | status |" in markdown
    assert cli.main(argv + ["--format", "csv"]) == 0
    text = capsys.readouterr().out
    comments = [line for line in text.splitlines() if line.startswith("#")]
    assert "# command: bn" in comments and any(c.startswith("# versions: gpuconv") for c in comments)
    rows = list(csv.DictReader(io.StringIO("\n".join(l for l in text.splitlines() if not l.startswith("#")))))
    assert len(rows) == 5 * 3
    assert {r["op"] for r in rows} == {"training forward", "eval forward", "backward (dx, dweight, dbias)"}
    assert all(float(r["median_ms"]) > 0 and r["status"] == "ok" for r in rows)
    assert sum(line.startswith("| batch_norm") for line in markdown.splitlines()) == len(rows)


def test_the_validator_reports_what_is_wrong():
    good = {"schema_version": 1, "summary": [], "rows": [{"case": "a", "status": "ok", "median_ms": 1.5}],
            "header": {"command": "conv", "machine": "m", "cpu": "c", "gpu": None, "backend": "numpy",
                       "versions": {"gpuconv": "0"}, "date": "d", "settings": {}, "notes": []}}
    assert validate(good) == []
    bad = json.loads(json.dumps(good))
    bad["rows"][0].update(status="fast", median_ms="1", colour="red")
    del bad["header"]["cpu"]
    bad["header"]["versions"]["numpy"] = 2
    bad["rows"].append({"case": "b", "status": "ok", "median_ms": -1.0})
    errors = validate(bad)
    assert any("$.rows[0].status: expected one of" in e for e in errors)
    assert any("$.rows[0].median_ms: expected number" in e for e in errors)
    assert any("unexpected key 'colour'" in e for e in errors)
    assert any("missing required key 'cpu'" in e for e in errors)
    assert any("$.header.versions.numpy: expected string" in e for e in errors)
    assert any("$.rows[1].median_ms: expected >= 0" in e for e in errors)
    assert validate(True, {"type": "integer"}) and validate(1.0, {"type": "integer"})
    assert SCHEMA["properties"]["rows"]["items"]["required"] == ["case", "status"]


def test_relative_error_catches_wrong_shapes_values_and_integers():
    y = np.arange(6.0).reshape(2, 3)
    assert relative_error(y, y) == 0.0
    assert relative_error(y + 0.05, y) == pytest.approx(0.01)
    assert relative_error(y[:1], y) == float("inf")
    assert relative_error(np.full_like(y, np.nan), y) == float("inf")
    assert relative_error((y, np.array([1, 2])), (y, np.array([1, 3]))) == float("inf")
    assert relative_error((y, None), (y,)) == 0.0
    assert relative_error((y,), (y, y)) == float("inf")


@pytest.mark.skipif(not has_module("torch"), reason="PyTorch not installed (pip install torch): no comparison to test")
def test_pytorch_is_timed_in_a_child_process_and_gives_a_ratio():
    result = run_cli("conv", "--shape", "2,4,8,8,4,3,3,1,1", "--backend", "numpy", "--format", "json",
                     "--repeats", "2", "--pause", "0")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert validate(report) == []
    rows = report["rows"]
    assert len(rows) == 3 and all(r["torch_ms"] > 0 for r in rows)
    assert all(r["ratio_torch"] == pytest.approx(r["median_ms"] / r["torch_ms"]) for r in rows)
    assert any(note.startswith("PyTorch ") and "child process" in note for note in report["header"]["notes"])
    assert any(line.startswith("geometric mean of time / PyTorch, auto:") for line in report["summary"])


def _assert_every_panel_draws(fig) -> None:
    """Each panel of a bench figure shows something: bars, points, lines, or a sentence."""
    assert fig.axes
    for ax in fig.axes:
        drawn = [a for a in (*ax.patches, *ax.lines, *ax.collections, *ax.texts) if a.get_visible()]
        bars = [p for p in ax.patches if np.isfinite(p.get_height()) and p.get_height() > 0]
        assert drawn and (bars or ax.lines or ax.collections or ax.texts), f"panel {ax.get_title()!r} is empty"


def _report(argv: list[str], tmp_path) -> dict:
    out = tmp_path / "r.json"
    assert cli.main([*argv, "--format", "json", "--output", str(out), "--quiet"]) == 0
    return json.loads(out.read_text())


@pytest.mark.skipif(not has_module("matplotlib"), reason="matplotlib not installed (pip install 'gpuconv[plot]')")
def test_plot_draws_the_conv_bars(tmp_path, recwarn):
    from gpuconv.bench.plot import figure

    png = tmp_path / "conv.png"
    assert cli.main(["conv", "--shape", "2,4,6,6,4,3,3,1,1", "--backend", "numpy", "--algos", "im2col,auto",
                     "--no-torch", "--repeats", "1", "--plot", str(png), "--output", str(tmp_path / "r.md")]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = _report(["conv", "--shape", "2,4,6,6,4,3,3,1,1", "--backend", "numpy", "--algos", "im2col,auto",
                      "--no-torch", "--repeats", "1"], tmp_path)
    fig = figure(report)
    _assert_every_panel_draws(fig)
    for ax in fig.axes:  # times: linear bars from zero
        assert ax.get_yscale() == "linear" and ax.get_ylim()[0] == 0
    assert not [w for w in recwarn if "No artists with labels" in str(w.message)]


@pytest.mark.skipif(not has_module("matplotlib"), reason="matplotlib not installed (pip install 'gpuconv[plot]')")
def test_plot_against_pytorch_draws_ratios_with_one_marked(tmp_path):
    from gpuconv.bench.plot import figure

    rows = [{"case": c, "shape": "2,4,6,6,4,3,3,1,1,1,1", "direction": d, "impl": "auto", "status": "ok",
             "median_ms": 2.0, "torch_ms": 1.0, "ratio_torch": 2.0} for d in ("forward", "backward_data")
            for c in ("a", "b")]
    report = {"header": {"command": "conv", "gpu": None, "backend": "numpy", "settings": {"dtype": "float32"}},
              "rows": rows, "summary": []}
    fig = figure(report)
    _assert_every_panel_draws(fig)
    assert len(fig.axes) == 2  # no empty panel for the direction without rows
    for ax in fig.axes:
        assert ax.get_ylim()[0] == 0 and ax.get_yscale() == "linear"
        assert any(list(line.get_ydata()) == [1.0, 1.0] for line in ax.lines), "1.0 (PyTorch) is not marked"
        assert max(p.get_height() for p in ax.patches) == 2.0


@pytest.mark.skipif(not has_module("matplotlib"), reason="matplotlib not installed (pip install 'gpuconv[plot]')")
@pytest.mark.skipif(unavailable_reason("emulated") is not None, reason="emulated backend unavailable")
def test_plot_on_the_emulated_backend_draws_the_checked_errors(tmp_path, recwarn):
    from gpuconv.bench.plot import figure

    for argv in (["conv", "--shape", "1,2,5,5,2,3,3,1,1", "--algos", "im2col"], ["pool", *TINY["pool"]]):
        report = _report([*argv, "--backend", "emulated"], tmp_path)
        fig = figure(report)
        _assert_every_panel_draws(fig)
        (ax,) = fig.axes
        assert "correctness only" in ax.get_title()
        points = sum(len(c.get_offsets()) for c in ax.collections)
        assert points == sum(r.get("max_error") is not None for r in report["rows"]) > 0
    assert not [w for w in recwarn if "No artists with labels" in str(w.message)]


def test_list_details_every_algorithm(capsys):
    assert cli.main(["list", "--backend", "numpy", "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)["rows"]
    algorithms = {r["case"]: r["detail"] for r in rows if r["kind"] == "algorithm"}
    assert set(algorithms) >= {"im2col", "direct", "gemm", "implicit_gemm", "auto"}
    assert all(algorithms.values()), algorithms


@pytest.mark.skipif(not has_module("matplotlib"), reason="matplotlib not installed (pip install 'gpuconv[plot]')")
def test_plot_draws_a_roofline_for_a_gpu_report(tmp_path):
    from gpuconv.bench.plot import gpu_peaks, plot

    rows = [{"case": "l", "shape": "8,64,56,56,64,3,3,1,1,1,1", "direction": d, "impl": i, "status": "ok",
             "median_ms": 1.0, "gflops": 900.0} for d in ("forward", "backward_data", "backward_weight")
            for i in ("im2col", "direct")]
    report = {"header": {"command": "conv", "gpu": "NVIDIA H100 80GB HBM3", "backend": "cupy", "copy_gbps": 2900.0,
                         "settings": {"dtype": "float32", "tf32": False}}, "rows": rows, "summary": []}
    plot(report, tmp_path / "roof.png")
    assert (tmp_path / "roof.png").stat().st_size > 1000
    assert gpu_peaks("NVIDIA H100 80GB HBM3", False, None) == (66.9e12, 3.35e12)
    assert gpu_peaks("NVIDIA H200", True, None)[0] == 495e12
    assert gpu_peaks("Some Future GPU", False, 2.0e12) == (None, 2.0e12)


@pytest.mark.skipif(has_module("matplotlib"), reason="matplotlib is installed: the missing-extra path cannot run")
def test_plot_without_matplotlib_is_one_line(capsys):
    assert cli.main(["pool", "--plot", "x.png", "--backend", "numpy"]) == 1
    assert capsys.readouterr().err.strip() == "gpuconv-bench: --plot needs matplotlib: pip install 'gpuconv[plot]'"


def test_tf32_and_tuned_rows_use_gpuconv_flags(monkeypatch, tmp_path):
    """--tf32 and the tuned rows go through gpuconv.flags (a recording stand-in here: the tuner only
    times on the cupy backend, where the tuned rows are end-to-end)."""
    import contextlib

    import gpuconv
    from gpuconv.bench import conv as conv_bench
    from gpuconv.bench.suites import parse_shape

    entered, asked = [], []

    @contextlib.contextmanager
    def flags(**settings):
        entered.append(settings)
        yield

    real_choose = F.choose_algo

    def choose_algo(*args, direction, dtype=None):
        asked.append((direction, np.dtype(dtype).name))
        return real_choose(*args)

    monkeypatch.setattr(gpuconv, "flags", flags, raising=False)
    monkeypatch.setattr(F, "choose_algo", choose_algo)
    out = tmp_path / "r.json"
    assert cli.main(["conv", "--shape", "2,4,6,6,4,3,3,1,1", "--backend", "numpy", "--tf32", "--no-torch",
                     "--repeats", "1", "--format", "json", "--output", str(out)]) == 0
    assert {"allow_tf32": True} in entered
    assert sorted(asked) == [("backward_data", "float32"), ("backward_weight", "float32"), ("forward", "float32")]
    assert json.loads(out.read_text())["header"]["settings"]["tf32"] is True

    shape = parse_shape("2,4,6,6,4,3,3,1,1")
    case = conv_bench.conv_case(shape, ["auto"], np.dtype(np.float32), with_tuned=True)
    tuned = [op for group in case.groups for op in group.ops if op.fields["impl"] == "tuned"]
    assert [op.fields["direction"] for op in tuned] == ["forward", "backward_data", "backward_weight"]
    entered.clear()
    y = tuned[0].run(case.inputs)
    assert entered == [{"conv_benchmark": True}]
    assert np.allclose(y, F.conv2d(case.inputs["x"], case.inputs["w"], case.inputs["b"], 1, 1))
    rows = [{"case": shape.name, "direction": "forward", "impl": "tuned", "status": "ok"}]
    conv_bench.fill_tuned_algos(rows, {shape.name: shape}, np.dtype(np.float32))
    assert rows[0]["algo"] == real_choose((2, 4, 6, 6), (4, 4, 3, 3), 1, 1)


@pytest.mark.parametrize("script, command", [("bench_conv.py", "conv"), ("bench_pool.py", "pool"),
                                             ("bench_batchnorm.py", "bn"), ("bench_im2col.py", "im2col"),
                                             ("bench_elementwise.py", "elementwise")])
def test_the_benchmark_scripts_are_wrappers_of_the_command(script, command):
    env = {k: v for k, v in os.environ.items() if k != "GPUCONV_BACKEND"}
    args = TINY[command] + ["--backend", "numpy", "--no-torch", "--repeats", "1", "--format", "json"]
    result = subprocess.run([sys.executable, str(REPO / "benchmarks" / script), *args], capture_output=True,
                            text=True, cwd=REPO, env=env, check=False, timeout=300)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert validate(report) == [] and report["header"]["command"] == command


@pytest.mark.skipif(not has_module("matplotlib"), reason="matplotlib not installed (pip install 'gpuconv[plot]')")
@pytest.mark.parametrize("command", ["pool", "model", "memory"])
def test_plot_draws_every_timed_subcommand(command, tmp_path):
    png = tmp_path / f"{command}.png"
    assert cli.main([command, *TINY[command], "--backend", "numpy", "--no-torch", "--repeats", "1", "--plot", str(png),
                     "--output", str(tmp_path / "r.md")]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    from gpuconv.bench.plot import figure

    _assert_every_panel_draws(figure(_report([command, *TINY[command], "--backend", "numpy", "--no-torch",
                                              "--repeats", "1"], tmp_path)))


def test_shrink_divides_the_suite_planes_and_refuses_shapes(capsys):
    from gpuconv.bench.suites import SUITES, suite_layers

    layers = suite_layers("resnet18", 2, shrink=8)
    assert [(s.n, s.c, s.h, s.k) for s in layers][:2] == [(2, 3, 28, 64), (2, 64, 7, 64)]
    assert all(min(s.out_size) >= 1 for s in suite_layers("all", 1, shrink=1000))
    assert len(suite_layers("all", 1)) == sum(len(v) for v in SUITES.values())
    with pytest.raises(SystemExit):
        cli.main(["conv", "--shape", "1,2,5,5,2,3,3", "--shrink", "2"])
    assert "--shrink applies to --suite layers" in capsys.readouterr().err


def test_an_op_that_fails_at_full_size_is_an_error_row_not_a_traceback(monkeypatch, tmp_path, capsys):
    real = F.conv2d

    def fails_on_the_whole_batch(x, *args, **kwargs):
        if x.shape[0] > 2:
            raise MemoryError("out of memory allocating 1 TiB")
        return real(x, *args, **kwargs)

    monkeypatch.setattr(F, "conv2d", fails_on_the_whole_batch)
    out = tmp_path / "r.json"
    assert cli.main(["conv", "--shape", "4,2,6,6,2,3,3,1,1", "--backend", "numpy", "--no-torch", "--repeats", "1",
                     "--format", "json", "--output", str(out)]) == 1
    report = json.loads(out.read_text())
    assert validate(report) == []
    forward = next(r for r in report["rows"] if r["direction"] == "forward")
    assert forward["status"] == "error" and "MemoryError: out of memory" in forward["note"]
    assert all(r["status"] == "ok" for r in report["rows"] if r["direction"] != "forward")
    assert "Traceback" not in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["--help"]] + [[command, "--help"] for command in TINY])
def test_help_is_printed_for_the_command_and_every_subcommand(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: gpuconv-bench")
    assert "--backend" in out or argv == ["--help"]


def test_the_conv_summary_gives_geometric_means_per_direction_and_for_a_training_step():
    from gpuconv.bench.conv import summary

    # Two layers; PyTorch takes 1 ms per direction. im2col: 2 ms everywhere; direct: 0.5 ms forward, 4 ms else.
    rows = [{"case": case, "direction": d, "impl": impl, "status": "ok", "torch_ms": 1.0,
             "median_ms": ms, "ratio_torch": ms}
            for case in ("a", "b") for d in ("forward", "backward_data", "backward_weight")
            for impl, ms in (("im2col", 2.0), ("direct", 0.5 if d == "forward" else 4.0))]
    lines = summary(rows)
    assert "geometric mean of time / PyTorch, im2col: forward 2.00, backward_data 2.00, backward_weight 2.00" in lines
    assert "geometric mean of time / PyTorch, direct: forward 0.50, backward_data 4.00, backward_weight 4.00" in lines
    assert ("geometric mean of time / PyTorch, best gpuconv algorithm per layer and direction: forward 0.50, "
            "backward_data 2.00, backward_weight 2.00") in lines
    # forward+backward: im2col 6/3, direct 8.5/3, best per direction (0.5 + 2 + 2)/3.
    assert lines[-1].endswith("direct 2.83, im2col 2.00, best per direction 1.50")


def test_the_measured_peak_counts_what_the_call_allocates():
    from gpuconv.bench.peak import measure_peak

    def allocate():
        a = gpuconv.asarray(np.ones(2**20))  # 8 MiB alive at the peak together with b
        b = gpuconv.asarray(np.ones(2**19))
        del a, b
        return np.ones(10)

    with gpuconv.backend("numpy") as be:
        assert 12 * 2**20 <= measure_peak(allocate, be) < 13 * 2**20


# ---- the PyTorch comparison of the memory-bound subcommands, without PyTorch --------------------
class _FakeTorchChild:
    """Stands in for TorchChild: every twin takes ``seconds``; records the specs it was asked to build."""

    available = True

    def __init__(self, seconds: float):
        self.seconds, self.specs = seconds, []

    def build(self, spec: dict) -> list[str]:
        self.specs.append(spec)
        return sorted(_twin_names(spec["family"]))

    def timed(self, name: str):
        return lambda: self.seconds


def _memory_bound_cases(family: str):
    from gpuconv.bench import memory_bound

    build = {"pool": memory_bound.pool_cases, "bn": memory_bound.bn_cases, "elementwise": memory_bound.elementwise_cases}
    return build[family](2, np.dtype(np.float32), 16)


def _twin_names(family: str) -> set[str]:
    return {g.torch for case in _memory_bound_cases(family) for g in case.groups if g.torch}


@pytest.mark.parametrize("family", ["pool", "bn", "elementwise"])
def test_the_ratio_to_pytorch_is_gpuconv_time_over_the_twin_time(family):
    """Every op with a PyTorch twin gets torch_ms from the child's timer and ratio_torch = median / torch."""
    from gpuconv.bench.runner import Settings, run_cases

    child = _FakeTorchChild(seconds=0.25)
    with gpuconv.backend("numpy") as be:
        cases = _memory_bound_cases(family)
        rows = run_cases(cases, be, Settings(0, 2, 0.0, 2, 1e-4, timing=True), child, [])
    assert child.specs == [case.torch_spec for case in cases] and all(s["family"] == family for s in child.specs)
    twinned = {(case.name, op.fields["op"]) for case in cases for g in case.groups if g.torch for op in g.ops}
    assert twinned
    for row in rows:
        assert row["status"] == "ok"
        if (row["case"], row["op"]) in twinned:
            assert row["torch_ms"] == 250.0 and row["ratio_torch"] == pytest.approx(row["median_ms"] / 250.0)
        else:
            assert "torch_ms" not in row and "ratio_torch" not in row


@pytest.mark.parametrize("backend, device, expected", [("cupy", None, "cuda:0"), ("cupy", 2, "cuda:2"),
                                                       ("numpy", None, "cpu")])
def test_pytorch_runs_on_the_backends_device(monkeypatch, backend, device, expected):
    """cupy: PyTorch's CUDA kernels on the same GPU; numpy: its CPU kernels; emulated: no comparison."""
    made = []

    class Recorder:
        def __init__(self, device, threads, tf32):
            made.append(device)
            self.available, self.version, self.threads = True, "x", 1

    monkeypatch.setattr(cli, "TorchChild", Recorder)
    args = cli.build_parser().parse_args(["elementwise", "--backend", backend]
                                         + (["--device", str(device)] if device is not None else []))

    class Backend:
        name = backend
        capabilities = capabilities_of(backend)

    notes = []
    assert cli._torch_child(args, Backend(), notes) is not None
    assert made == [expected] and notes == [f"PyTorch x on {expected} (1 CPU threads), timed in a child process"]

    class Emulated:
        name = "emulated"
        capabilities = capabilities_of("emulated")

    assert cli._torch_child(cli.build_parser().parse_args(["pool", "--backend", "emulated"]), Emulated(), []) is None


@pytest.mark.skipif(not has_module("torch"), reason="PyTorch not installed (pip install torch): no twins to build")
@pytest.mark.parametrize("family", ["pool", "bn", "elementwise"])
def test_every_twin_a_case_names_is_built_and_runs(family):
    import torch

    from gpuconv.bench import torch_ops

    for case in _memory_bound_cases(family):
        built = torch_ops.build(torch, case.torch_spec, "cpu")
        wanted = {g.torch for g in case.groups if g.torch}
        assert wanted <= set(built)
        for name in wanted:
            built[name]()


def test_optimizer_and_in_place_ops_get_fresh_state_per_inputs():
    """The check runs an in-place op on its own arrays (the numpy reference afterwards sees unchanged
    inputs); the timed calls on one inputs dict reuse one optimizer, whose steps accumulate."""
    from gpuconv.bench.runner import check

    with gpuconv.backend("numpy"):
        cases = _memory_bound_cases("elementwise")
        for case in cases:
            before = {k: v.copy() for k, v in case.inputs.items()}
            for group in case.groups:
                for op in group.ops:
                    assert check(case, op, 2) < 1e-6
            assert all(np.array_equal(before[k], v) for k, v in case.inputs.items())
        optimizer_case = cases[-1]
        sgd = optimizer_case.groups[0].ops[0]
        inputs = {k: v.copy() for k, v in optimizer_case.inputs.items()}
        first = [p.copy() for p in sgd.run(inputs)]
        second = sgd.run(inputs)
        lr_times_grad = 0.01 * inputs["g0"]
        np.testing.assert_allclose(first[0], inputs["p0"] - lr_times_grad, rtol=1e-6)
        # Second step with momentum 0.9: the buffer is 1.9 * grad.
        np.testing.assert_allclose(second[0], first[0] - 1.9 * lr_times_grad, rtol=1e-5, atol=1e-7)


class _Terminal(io.StringIO):
    """A stderr that says it is a terminal, as an interactive shell's is."""

    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("command, shown", [("conv", "checking and timing"), ("memory", "lenet5 train: measuring"),
                                            ("model", "lenet5")])
def test_long_commands_show_progress_on_a_terminal_only(command, shown, monkeypatch, capsys):
    args = [command, *TINY[command], "--backend", "numpy", "--no-torch", "--repeats", "1", "--warmup", "0"]
    for stream, extra, expect_bar in ((_Terminal(), [], True), (_Terminal(), ["--quiet"], False),
                                      (io.StringIO(), [], False)):
        monkeypatch.setattr(sys, "stderr", stream)
        assert cli.main(args + extra) == 0
        text = stream.getvalue()
        assert (shown in text and "\r" in text) == expect_bar, (extra, stream.isatty(), text)
    assert "| case |" in capsys.readouterr().out  # the report itself is on stdout either way
