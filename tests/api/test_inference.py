"""Predictions computed by the API in NumPy from an artifact equal the trained PyTorch network's."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.datasets import load_breast_cancer, load_diabetes, load_digits, load_wine

from api.services.inference import forward, load_artifact, predict
from worker.artifacts import write_artifact
from worker.training import ArrayDataset, NullReporter, TrainConfig, train
from worker.training.config import ModelConfig, OptimizerConfig, TrainingConfig
from worker.training.networks import build_network

DATASETS = {
    "wine": (load_wine, None, "classification"),
    "breast_cancer": (load_breast_cancer, None, "classification"),
    "diabetes": (load_diabetes, None, "regression"),
    "digits": (load_digits, (1, 8, 8), "classification"),
}

CASES = [
    ("wine", ModelConfig(type="linear")),
    ("breast_cancer", ModelConfig(type="mlp", hidden_layers=(8, 4), activation="gelu", batch_norm=True, dropout=0.2)),
    ("diabetes", ModelConfig(type="mlp", hidden_layers=(6,), activation="tanh")),
    ("digits", ModelConfig(type="cnn", channels=(3, 4), kernel_size=3, hidden_layers=(8,), batch_norm=True)),
    ("digits", ModelConfig(type="cnn", channels=(2,), kernel_size=5, hidden_layers=(), activation="gelu")),
]


@pytest.mark.parametrize(("dataset", "model"), CASES, ids=lambda c: getattr(c, "type", c))
def test_numpy_forward_equals_the_torch_network(tmp_path: Path, dataset: str, model: ModelConfig) -> None:
    loader, image_shape, task = DATASETS[dataset]
    bunch = loader()
    data = ArrayDataset(bunch.data, bunch.target, tuple(map(str, bunch.feature_names)), image_shape=image_shape)
    config = TrainConfig(
        task=task,
        model=model,
        optimizer=OptimizerConfig(lr=0.01),  # type: ignore[arg-type]
        training=TrainingConfig(epochs=2, batch_size=32),
    )
    outcome = train(config, data, NullReporter())
    spec = {
        "model": {
            "type": model.type,
            "hidden_layers": list(model.hidden_layers),
            "activation": model.activation,
            "dropout": model.dropout,
            "channels": list(model.channels),
            "kernel_size": model.kernel_size,
            "batch_norm": model.batch_norm,
        }
    }
    path = write_artifact(tmp_path / "a.safetensors", outcome, spec, task)

    artifact = load_artifact(path)
    n_outputs = outcome.state[[k for k in outcome.state if k.endswith("output.weight") or k == "linear.weight"][-1]]
    net = build_network(model, data.X.shape[1], n_outputs.shape[0], image_shape).double()
    net.load_state_dict({k: v.double() if v.is_floating_point() else v for k, v in outcome.state.items()})
    net.eval()
    standardized = (bunch.data - artifact.mean) / artifact.scale
    if image_shape:
        standardized = standardized.reshape(-1, *image_shape)
    with torch.no_grad():
        expected = net(torch.as_tensor(standardized)).numpy()
    np.testing.assert_allclose(forward(artifact, standardized), expected, rtol=1e-9, atol=1e-9)

    result = predict(artifact, bunch.data[:50])
    if task == "classification":
        classes = expected[:50].argmax(axis=1) if expected.shape[1] > 1 else (expected[:50, 0] > 0).astype(int)
        assert result["predictions"] == [artifact.class_labels[i] for i in classes]  # type: ignore[index]
        np.testing.assert_allclose(np.sum(result["probabilities"], axis=1), 1.0)
    else:
        np.testing.assert_allclose(result["predictions"], expected[:50, 0], rtol=1e-9)
