"""fit(..., dtype=) and evaluate(..., dtype=) cast float64 batches (scikit-learn's default) for a
float32 model: inputs always, targets when floating."""

from __future__ import annotations

import numpy as np
import pytest

import gpuconv
from gpuconv import nn, optim
from gpuconv.train import evaluate, fit


@pytest.fixture(autouse=True)
def numpy_backend():
    with gpuconv.backend("numpy"):
        gpuconv.manual_seed(0)
        yield


def test_fit_casts_float64_batches_for_a_float32_model(rng):
    x = rng.standard_normal((40, 3))                       # float64, as scikit-learn returns
    y_reg = x @ np.array([[1.0], [-2.0], [0.5]])
    model = nn.Linear(3, 1)
    batches = [(x[i:i + 8], y_reg[i:i + 8]) for i in range(0, 40, 8)]
    with pytest.raises(TypeError):
        fit(model, nn.MSELoss(), optim.SGD(model.parameters(), lr=0.1), batches, epochs=1, progress=False)
    model.zero_grad()
    history = fit(model, nn.MSELoss(), optim.SGD(model.parameters(), lr=0.1), batches, epochs=30, progress=False,
                  dtype=np.float32, val_loader=batches)
    assert model.weight.data.dtype == np.float32
    assert history[-1]["loss"] < 1e-3 < history[0]["loss"] and history[-1]["val_loss"] < 1e-3
    np.testing.assert_allclose(model.weight.data, [[1.0, -2.0, 0.5]], atol=0.02)

    labels = (x[:, 0] > 0).astype(np.int64)
    clf = nn.Linear(3, 2)
    fit(clf, nn.CrossEntropyLoss(), optim.SGD(clf.parameters(), lr=0.5), [(x, labels)], epochs=20,
        progress=False, dtype=np.float32)
    result = evaluate(clf, nn.CrossEntropyLoss(), [(x, labels)], progress=False, dtype=np.float32)
    assert result["accuracy"] > 0.9
