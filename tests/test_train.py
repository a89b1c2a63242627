"""gpuconv.train: fit / evaluate really learn (100% training accuracy on small separable data),
report history and progress, step schedulers, restore modes; the examples run."""

from __future__ import annotations

import os
import re
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest

import gpuconv
from gpuconv import nn, optim
from gpuconv.data import DataLoader
from gpuconv.train import evaluate, fit

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def numpy_backend():
    with gpuconv.backend("numpy"):
        gpuconv.manual_seed(0)
        yield


def blobs(rng, n_per_class=30):
    """Three well separated clusters (centres 8 apart, spread 0.5): linearly separable."""
    centers = np.array([[-4.0, 0.0], [4.0, 0.0], [0.0, 6.0]])
    x = np.concatenate([c + rng.standard_normal((n_per_class, 2)) * 0.5 for c in centers]).astype(np.float32)
    y = np.repeat(np.arange(3), n_per_class).astype(np.int64)
    return x, y


def test_mlp_reaches_full_training_accuracy(rng):
    x, y = blobs(rng)
    model = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 3))
    loader = DataLoader(x, y, batch_size=16, shuffle=True, seed=0)
    history = fit(model, nn.CrossEntropyLoss(), optim.SGD(model.parameters(), lr=0.1, momentum=0.9), loader,
                  epochs=15, progress=False)
    assert len(history) == 15 and [h["epoch"] for h in history] == list(range(1, 16))
    assert history[-1]["loss"] < history[0]["loss"]
    assert history[-1]["accuracy"] == 1.0
    assert set(history[0]) >= {"epoch", "loss", "accuracy", "images_per_s", "seconds", "lr"}
    result = evaluate(model, nn.CrossEntropyLoss(), DataLoader(x, y, batch_size=32), progress=False)
    assert result["accuracy"] == 1.0 and result["loss"] < 0.1


def test_cnn_learns_where_the_bright_patch_is(rng):
    """A small CNN tells which quadrant of an 8x8 image holds a bright 2x2 patch (4 classes)."""
    n = 64
    x = rng.standard_normal((n, 1, 8, 8)).astype(np.float32) * 0.3
    y = rng.integers(0, 4, n)
    for i, label in enumerate(y):
        r, c = divmod(int(label), 2)
        x[i, 0, r * 4 + 1:r * 4 + 3, c * 4 + 1:c * 4 + 3] += 2.0
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Flatten(), nn.Linear(4 * 16, 4))
    crit = nn.CrossEntropyLoss()
    opt = optim.Adam(model.parameters(), lr=0.02)
    scheduler = optim.lr_scheduler.StepLR(opt, step_size=5, gamma=0.5)
    history = fit(model, crit, opt, DataLoader(x, y, batch_size=16, shuffle=True, seed=1), epochs=12,
                  val_loader=DataLoader(x, y, batch_size=64), progress=False, scheduler=scheduler)
    assert history[-1]["accuracy"] == 1.0 and history[-1]["val_accuracy"] == 1.0
    assert history[0]["lr"] == 0.02 and history[5]["lr"] == 0.01 and history[-1]["lr"] == 0.005
    assert model.training, "fit leaves the model in training mode"
    outputs = []
    forward = model.forward
    model.forward = lambda inputs: outputs.append(forward(inputs)) or outputs[-1]
    evaluate(model, crit, DataLoader(x, y, batch_size=64), progress=False)
    assert outputs and all(o.grad_fn is None for o in outputs), "evaluate records no graph"


def test_regression_with_mse_has_no_accuracy(rng):
    x = rng.standard_normal((40, 3)).astype(np.float32)
    y = (x @ np.array([[1.0], [-2.0], [0.5]], np.float32)).astype(np.float32)
    model = nn.Linear(3, 1)
    history = fit(model, nn.MSELoss(), optim.SGD(model.parameters(), lr=0.1), DataLoader(x, y, batch_size=8),
                  epochs=30, progress=False)
    assert history[-1]["accuracy"] is None and history[-1]["loss"] < 1e-3 < history[0]["loss"]
    np.testing.assert_allclose(model.weight.data, [[1.0, -2.0, 0.5]], atol=0.02)


def test_evaluate_restores_mode_and_progress_bar_shows_metrics(rng, capsys):
    x, y = blobs(rng, n_per_class=10)
    model = nn.Sequential(nn.Linear(2, 3), nn.Dropout(0.5))
    model.train()
    batches = [(x[i:i + 10], y[i:i + 10]) for i in range(0, 30, 10)]  # any iterable of batches works
    result = evaluate(model, nn.CrossEntropyLoss(), batches, progress=False)
    assert model.training and 0.0 <= result["accuracy"] <= 1.0 and result["images_per_s"] > 0
    model.eval()
    evaluate(model, nn.CrossEntropyLoss(), batches, progress=False)
    assert not model.training
    model.train()
    fit(model, nn.CrossEntropyLoss(), optim.SGD(model.parameters(), lr=0.01), batches, epochs=1,
        val_loader=batches, progress=True)
    err = capsys.readouterr().err
    assert "epoch 1/1" in err and "img/s" in err and "loss" in err and "acc" in err
    fit(model, nn.CrossEntropyLoss(), optim.SGD(model.parameters(), lr=0.01), batches, epochs=1, progress=False)
    assert capsys.readouterr().err == ""
    with pytest.raises(ValueError, match="epochs"):
        fit(model, nn.CrossEntropyLoss(), optim.SGD(model.parameters(), lr=0.01), batches, epochs=-1)


def _read_png(path: Path) -> tuple[int, int, int, bytes]:
    """(width, height, colour type, raw filtered scanlines) of a PNG; checks signature and CRCs."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, header = 8, b"", None
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])
        assert crc == zlib.crc32(kind + body) & 0xFFFFFFFF
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    width, height, depth, colour = header[:4]
    assert depth == 8
    return width, height, colour, zlib.decompress(idat)


def _example_env() -> dict:
    return dict(os.environ, GPUCONV_BACKEND="numpy", PYTHONPATH=str(ROOT))


def test_train_digits_example_runs():
    pytest.importorskip("sklearn")
    out = subprocess.run([sys.executable, str(ROOT / "examples" / "train_digits.py"), "--epochs", "2",
                          "--no-progress"], capture_output=True, text=True, env=_example_env(), timeout=300)
    assert out.returncode == 0, out.stderr
    last = out.stdout.strip().splitlines()[-1]
    assert re.fullmatch(r"test accuracy: [01]\.\d{4}", last), last
    assert float(last.split(": ")[1]) > 0.5  # two epochs already learn something; 15 reach >= 0.97


def test_filters_demo_writes_pngs(tmp_path):
    pytest.importorskip("sklearn")
    pytest.importorskip("PIL", reason="scikit-learn needs Pillow to decode its sample photos")
    env = _example_env()
    out = subprocess.run([sys.executable, str(ROOT / "examples" / "filters_demo.py"), str(tmp_path), "--scale", "4"],
                         capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    names = sorted(p.name for p in tmp_path.glob("*.png"))
    assert names == sorted(["original.png", "sobel_x.png", "sobel_y.png", "laplacian.png", "box_blur.png",
                            "gaussian_blur.png", "sharpen.png", "edges.png"])
    width, height, colour, raw = _read_png(tmp_path / "original.png")
    channels = 3 if colour == 2 else 1
    assert len(raw) == height * (1 + width * channels)
    width2, height2, _, _ = _read_png(tmp_path / "sobel_x.png")
    assert (width2, height2) == (width, height)


def test_checkpoint_round_trip_resumes_training_exactly(tmp_path, rng):
    """gpuconv.save / load with a real model and optimizer: resuming gives bit-identical training."""
    from gpuconv.models.resnet import ResNet
    x = rng.standard_normal((8, 3, 8, 8)).astype(np.float32)
    y = rng.integers(0, 3, 8)
    batches = [(x[:4], y[:4]), (x[4:], y[4:])]

    def make():
        model = ResNet(nn.BasicBlock, [1, 1, 1, 1], num_classes=3, cifar_stem=True)
        return model, optim.Adam(model.parameters(), lr=1e-3)

    model, opt = make()
    fit(model, nn.CrossEntropyLoss(), opt, batches, epochs=1, progress=False)
    gpuconv.save(tmp_path / "ckpt.npz", model, opt, epoch=1)
    gpuconv.manual_seed(99)
    resumed, resumed_opt = make()
    assert gpuconv.load(tmp_path / "ckpt.npz", resumed, resumed_opt)["epoch"] == 1
    for (name, a), b in zip(model.state_dict().items(), resumed.state_dict().values(), strict=True):
        np.testing.assert_array_equal(a, b, err_msg=name)
    fit(model, nn.CrossEntropyLoss(), opt, batches, epochs=1, progress=False)
    fit(resumed, nn.CrossEntropyLoss(), resumed_opt, batches, epochs=1, progress=False)
    for (name, a), b in zip(model.state_dict().items(), resumed.state_dict().values(), strict=True):
        np.testing.assert_array_equal(a, b, err_msg=name)
