"""gpuconv-bench on sizes and settings it cannot run: each is a one-line argument error with exit
status 2, or one line and exit status 1 where only the run can tell, never a Python traceback."""

from __future__ import annotations

import re

import pytest

from gpuconv.bench import cli, limits

FAST = ["--backend", "numpy", "--no-torch", "--repeats", "1", "--warmup", "0"]


def _argument_error(capsys, argv: list[str]) -> str:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err.strip().splitlines()[-1]


@pytest.mark.parametrize("shape, expected", [
    ("100000,1000,1000,1000,64,3,3", r"--shape 100000,1000,1000,1000,64,3,3: its arrays need about [\d.]+ GiB, more "
                                     r"than this machine's [\d.]+ GiB of memory"),
    (f"{2**63},1,8,8,1,3,3", rf"--shape: N must be at most 2147483647, got {2**63}"),
    (f"1,1,8,8,1,3,3,{2**40}", rf"--shape: stride must be at most 2147483647, got {2**40}"),
])
def test_conv_shapes_it_cannot_run_are_argument_errors(capsys, shape, expected):
    line = _argument_error(capsys, ["conv", "--shape", shape, *FAST])
    assert re.search(expected, line), line


@pytest.mark.parametrize("command", ["model", "memory"])
def test_an_image_size_whose_batch_cannot_exist_is_an_argument_error(capsys, command):
    line = _argument_error(capsys, [command, "--image-size", str(10**6), *FAST])
    assert "--image-size 1000000: the input batch alone needs" in line and "GiB of memory" in line


@pytest.mark.parametrize("command", ["model", "memory"])
def test_a_model_that_cannot_train_at_a_size_is_one_line(capsys, command):
    assert cli.main([command, "--model", "resnet18", "--image-size", "1", "--batch", "1", "--num-classes", "10",
                     *FAST]) == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err
    assert err.startswith("gpuconv-bench: model resnet18 does not run in train mode at --image-size 1 with --batch 1")
    assert "more than 1 value per channel" in err


@pytest.mark.parametrize("pause", ["nan", "inf", "-1", "1e9"])
def test_a_pause_that_is_not_a_sensible_number_of_seconds_is_an_argument_error(capsys, pause):
    line = _argument_error(capsys, ["pool", "--pause", pause, *FAST])
    assert line.endswith(f"argument --pause: expected seconds from 0 to 60, got '{pause}'")


def test_pool_shrunk_below_its_layers_runs_its_smallest_cases(capsys):
    assert cli.main(["pool", "--shrink", "1000000", "--batch", "2", *FAST]) == 0
    out = capsys.readouterr().out
    assert "max_pool2d 3/2/1 2x1x1x1" in out and "avg_pool2d 2/2 2x1x2x2" in out and "| error |" not in out


@pytest.mark.parametrize("option", ["--plot", "--output"])
def test_an_output_into_a_read_only_folder_is_an_argument_error(capsys, tmp_path, monkeypatch, option):
    folder = tmp_path / "read-only"
    folder.mkdir()
    real_access = limits.os.access
    # Root may write anywhere a mode forbids: play a read-only file system through access().
    monkeypatch.setattr(limits.os, "access", lambda path, mode: False if str(path) == str(folder)
                        else real_access(path, mode))
    line = _argument_error(capsys, ["pool", option, str(folder / "out.png"), "--shrink", "16", *FAST])
    assert line.endswith(f"{option}: cannot write {folder / 'out.png'} (no write permission or a read-only file "
                         "system)")
    line = _argument_error(capsys, ["pool", option, str(tmp_path / "missing" / "out.png"), *FAST])
    assert line.endswith(f"{option}: folder {tmp_path / 'missing'} does not exist")


def test_running_out_of_memory_mid_run_is_one_line(capsys, monkeypatch):
    def exhausted(*args):
        raise MemoryError("Unable to allocate 6.10 PiB for an array")

    monkeypatch.setitem(cli.COMMANDS, "pool", exhausted)
    assert cli.main(["pool", *FAST]) == 1
    err = capsys.readouterr().err.strip()
    assert err == ("gpuconv-bench: pool: does not fit in memory with these settings (use a smaller --batch, "
                   "--image-size or --shape): Unable to allocate 6.10 PiB for an array")
