"""gpuconv.bench.torch_twin: the PyTorch twin of a gpuconv module tree computes the same function
(inference outputs and a training step's updated weights, float64) with the same state-dict names,
for zoo models and Sequentials of gpuconv layers; and ``gpuconv-bench model`` times it in-process."""

from __future__ import annotations

import json

import numpy as np
import pytest

import gpuconv
from gpuconv import models, nn, optim
from gpuconv.bench.capabilities import has_module

torch = pytest.importorskip("torch", reason="PyTorch not installed (pip install torch): no twin to build")

from gpuconv.bench import cli, torch_twin  # noqa: E402  (after the skip: the twin needs torch)
from gpuconv.bench import model as bench_model  # noqa: E402
from gpuconv.bench.schema import validate  # noqa: E402

F64 = np.float64


@pytest.fixture(autouse=True)
def _numpy_backend():
    with gpuconv.backend("numpy"):
        yield


def _randomize(model, rng):
    """Random weights and batch-norm statistics everywhere (the zoo's init has zero biases and
    unit BN weights, which would hide a swapped or dropped parameter)."""
    state = {}
    for name, value in model.state_dict().items():
        value = np.asarray(value)
        if not np.issubdtype(value.dtype, np.floating):
            state[name] = value
        elif name.endswith("running_var"):
            state[name] = rng.uniform(0.5, 2.0, value.shape).astype(value.dtype)
        else:
            state[name] = (rng.standard_normal(value.shape) * 0.3).astype(value.dtype)
    model.load_state_dict(state)


def _sequential():
    """One of every layer the twin maps, in a Sequential (with a nested one)."""
    return nn.Sequential(
        nn.Conv2d(3, 6, 3, stride=2, padding=1, bias=False, dtype=F64), nn.BatchNorm2d(6, dtype=F64),
        nn.LeakyReLU(0.1),
        nn.Conv2d(6, 6, 3, padding="same", groups=3, bias=False, dtype=F64), nn.GroupNorm(2, 6, dtype=F64),
        nn.Tanh(), nn.MaxPool2d(3, stride=2, padding=1, ceil_mode=True),
        nn.Sequential(nn.Conv2d(6, 8, 1, dtype=F64), nn.ReLU()),
        nn.AvgPool2d(2, count_include_pad=False, padding=1), nn.Sigmoid(), nn.LPPool2d(2, 2, stride=1),
        nn.Dropout2d(0.2),
        nn.AdaptiveAvgPool2d((2, 2)), nn.Flatten(1), nn.LayerNorm(32, dtype=F64), nn.Dropout(0.3),
        nn.Linear(32, 5, dtype=F64), nn.Identity())


CASES = {
    "lenet5": (lambda: models.lenet5(num_classes=10, dtype=F64), (3, 1, 32, 32)),
    "resnet18": (lambda: models.resnet18(num_classes=7, dtype=F64), (2, 3, 32, 32)),
    "resnet50 (cifar stem)": (lambda: models.resnet50(num_classes=7, cifar_stem=True, dtype=F64), (2, 3, 16, 16)),
    "sequential": (_sequential, (3, 3, 12, 12)),
}


def _pair(case, seed=0):
    make, shape = CASES[case]
    rng = np.random.default_rng(seed)
    ours = make()
    _randomize(ours, rng)
    theirs = torch_twin.build(torch, ours, F64)
    return ours, theirs, rng.standard_normal(shape)


@pytest.mark.parametrize("case", list(CASES))
def test_the_twin_has_gpuconvs_names_and_gives_its_inference_output(case):
    ours, theirs, x = _pair(case)
    assert list(theirs.state_dict()) == list(ours.state_dict())
    ours.eval()
    theirs.eval()
    with gpuconv.no_grad():
        want = np.asarray(ours(x))
    with torch.no_grad():
        got = theirs(torch.from_numpy(x)).numpy()
    # float64 through a few dozen layers: a few hundred roundings of products of O(1) values.
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10 * np.abs(want).max())


@pytest.mark.parametrize("case", ["lenet5", "resnet18", "sequential"])
def test_one_training_step_updates_the_weights_alike(case):
    ours, theirs, x = _pair(case, seed=1)
    if case == "sequential":  # dropout draws different masks in the two libraries
        for m in ours.modules():
            if isinstance(m, (nn.Dropout, nn.Dropout2d)):
                m.p = 0.0
        for m in theirs.modules():
            if isinstance(m, (torch.nn.Dropout, torch.nn.Dropout2d)):
                m.p = 0.0
    classes = 5 if case == "sequential" else 10 if case == "lenet5" else 7
    target = np.random.default_rng(2).integers(0, classes, x.shape[0])
    ours.train()
    theirs.train()
    before = {name: np.array(param.data) for name, param in ours.named_parameters()}
    sgd = optim.SGD(ours.parameters(), lr=0.1, momentum=0.9)
    bench_model.train_step(ours, nn.CrossEntropyLoss(), sgd, x, target)
    torch_sgd = torch.optim.SGD(theirs.parameters(), lr=0.1, momentum=0.9)
    torch_sgd.zero_grad()
    torch.nn.CrossEntropyLoss()(theirs(torch.from_numpy(x)), torch.from_numpy(target)).backward()
    torch_sgd.step()
    theirs_state = theirs.state_dict()
    for name, value in ours.state_dict().items():
        want = np.asarray(value)
        got = theirs_state[name].numpy()
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9 * max(1.0, np.abs(want).max()), err_msg=name)
    # The step moved every parameter, so the comparison above is of updated weights.
    assert [n for n, p in ours.named_parameters() if np.array_equal(np.asarray(p.data), before[n])] == []


def test_weights_are_copied_not_left_at_pytorchs_init():
    ours, theirs, _ = _pair("lenet5")
    fresh = torch_twin.twin(torch, ours).to(torch.float64)
    assert not np.allclose(fresh.state_dict()["features.0.weight"].numpy(), np.asarray(ours.features[0].weight.data))
    np.testing.assert_array_equal(theirs.state_dict()["features.0.weight"].numpy(), np.asarray(ours.features[0].weight.data))


def test_a_layer_without_a_twin_is_named_with_its_path():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Sequential(nn.ReLU(), nn.GeM()))
    with pytest.raises(torch_twin.UnsupportedLayer, match=r"Sequential\.1\.1 \(gpuconv\.nn\.pooling\.GeM\)"):
        torch_twin.twin(torch, model)


def _bench(*argv):
    report = cli.run(cli.build_parser().parse_args(["model", *argv, "--backend", "numpy", "--format", "json",
                                                    "--repeats", "2", "--warmup", "0", "--pause", "0"]))
    assert validate(report) == []
    return report


def test_the_model_benchmark_times_the_twin_in_process_with_ratio_columns():
    report = _bench("--model", "lenet5", "--image-size", "32", "--batch", "4", "--num-classes", "10")
    rows = [r for r in report["rows"] if r["impl"] == "gpuconv"]
    assert {r["mode"] for r in rows} == {"train", "inference"}
    for row in rows:
        assert row["ratio_torch"] == pytest.approx(row["median_ms"] / row["torch_ms"])
        assert row["ratio_torch_best"] == pytest.approx(row["best_ms"] / row["torch_best_ms"])
    assert len([r for r in report["rows"] if r["impl"] == "torch"]) == 2
    notes = report["header"]["notes"]
    assert any("in this process" in n and f"({torch.get_num_threads()} CPU threads" in n for n in notes)


def test_a_twin_that_disagrees_is_not_timed(monkeypatch):
    monkeypatch.setattr(torch_twin, "copy_weights", lambda *args: None)  # the twin keeps PyTorch's init
    report = _bench("--model", "lenet5", "--image-size", "32", "--batch", "2", "--num-classes", "10")
    assert all(r["impl"] == "gpuconv" and "torch_ms" not in r for r in report["rows"])
    assert any("differs from gpuconv's" in n for n in report["header"]["notes"])


@pytest.mark.skipif(not has_module("matplotlib"), reason="matplotlib not installed (pip install 'gpuconv[plot]')")
def test_plot_draws_the_model_ratios(tmp_path, monkeypatch):
    from gpuconv.bench import plot as plot_module

    report = _bench("--model", "lenet5", "--image-size", "32", "--batch", "2", "--num-classes", "10")
    drawn = []
    real_bars = plot_module._bars
    monkeypatch.setattr(plot_module, "_bars", lambda ax, labels, series, ylabel:
                        (drawn.append((labels, ylabel)), real_bars(ax, labels, series, ylabel)))
    png = tmp_path / "model.png"
    plot_module.plot(json.loads(json.dumps(report)), png)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (["lenet5 train", "lenet5 inference"], "gpuconv time / PyTorch time") in drawn


def test_cpu_clock_times_the_process_cpu_seconds(monkeypatch):
    """--clock cpu reads time.process_time for both gpuconv and the twin (patched to count calls)."""
    from gpuconv.bench import timing

    ticks = []

    def fake_clock():
        ticks.append(None)
        return float(len(ticks))

    monkeypatch.setitem(timing.CLOCKS, "cpu", fake_clock)
    report = _bench("--model", "lenet5", "--image-size", "32", "--batch", "2", "--num-classes", "10", "--clock", "cpu")
    # Every timed call (2 warm-up-free repeats x 2 modes x 2 libraries) reads the clock twice, one tick apart.
    assert len(ticks) == 16
    assert all(r["median_ms"] == pytest.approx(1e3) for r in report["rows"])
    assert any("--clock cpu" in n for n in report["header"]["notes"])


def test_cpu_clock_is_refused_on_the_gpu():
    with pytest.raises(SystemExit):
        cli.main(["model", "--backend", "cupy", "--clock", "cpu"])
