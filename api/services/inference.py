"""Predictions from a job's artifact, in NumPy: the API never imports torch.

This is the forward pass of worker/training/networks.py in eval mode (dropout off, batch norm with
its running statistics); a test holds the two equal on the same artifact."""

from __future__ import annotations

import json
import math
import threading
from collections import OrderedDict
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from safetensors import safe_open
from safetensors.numpy import load as load_safetensors
from scipy.special import erf, expit, softmax

from core.architecture import conv_plan
from core.features import FeatureColumn
from core.storage import Store

# torch.nn.BatchNorm's default epsilon.
BATCH_NORM_EPS = 1e-5


@dataclass(frozen=True)
class LoadedArtifact:
    tensors: dict[str, np.ndarray]
    spec: dict[str, Any]
    task: str
    feature_names: list[str]
    class_labels: list[Any] | None
    mean: np.ndarray
    scale: np.ndarray
    image_shape: tuple[int, int, int] | None
    # Tables: how named columns become features; None for arrays and built-ins.
    layout: tuple[FeatureColumn, ...] | None
    # The training split's means that fill missing features (training.missing = "mean"), else None.
    fill: np.ndarray | None

    @property
    def n_features(self) -> int:
        return len(self.mean)


def _parse(tensors: dict[str, np.ndarray], metadata: dict[str, str]) -> LoadedArtifact:
    standardization = json.loads(metadata["standardization"])
    image_shape = json.loads(metadata["image_shape"])
    layout = json.loads(metadata.get("columns") or "null")
    fill = json.loads(metadata.get("fill") or "null")
    return LoadedArtifact(
        tensors={name: tensor.astype(np.float64) for name, tensor in tensors.items()},
        spec=json.loads(metadata["spec"]),
        task=metadata["task"],
        feature_names=json.loads(metadata["feature_names"]),
        class_labels=json.loads(metadata["class_labels"]),
        mean=np.asarray(standardization["mean"], dtype=np.float64),
        scale=np.asarray(standardization["scale"], dtype=np.float64),
        image_shape=tuple(image_shape) if image_shape else None,
        layout=tuple(FeatureColumn.from_json(column) for column in layout) if layout else None,
        fill=np.asarray(fill, dtype=np.float64) if fill is not None else None,
    )


@lru_cache(maxsize=32)
def _load(path: str, modified_ns: int) -> LoadedArtifact:
    with safe_open(path, framework="np") as artifact:
        metadata = artifact.metadata()
        tensors = {name: artifact.get_tensor(name) for name in artifact.keys()}  # noqa: SIM118
    return _parse(tensors, metadata)


def load_artifact(path: Path) -> LoadedArtifact:
    """Loaded once per file version and kept: repeated predictions do not re-read the file."""
    return _load(str(path), path.stat().st_mtime_ns)


def parse_artifact(data: bytes) -> LoadedArtifact:
    """An artifact from its bytes: safetensors' 8-byte header length, its JSON header (whose
    __metadata__ holds the strings), then the tensors."""
    header_length = int.from_bytes(data[:8], "little")
    metadata = json.loads(data[8 : 8 + header_length]).get("__metadata__") or {}
    return _parse(load_safetensors(data), metadata)


# A job's artifact under a key never changes (a partial one has a key of its own per attempt), so it is
# read from the store once and kept: repeated predictions do not fetch it again.
STORED_ARTIFACTS_KEPT = 32
_stored: OrderedDict[tuple[str, str, str], LoadedArtifact] = OrderedDict()
_stored_lock = threading.Lock()


def load_stored_artifact(store: Store, job_id: str, key: str) -> LoadedArtifact:
    cache_key = (store.location, job_id, key)
    with _stored_lock:
        if cache_key in _stored:
            _stored.move_to_end(cache_key)
            return _stored[cache_key]
    loaded = parse_artifact(store.read_bytes(key))
    with _stored_lock:
        _stored[cache_key] = loaded
        while len(_stored) > STORED_ARTIFACTS_KEPT:
            _stored.popitem(last=False)
    return loaded


def _activation(name: str, x: np.ndarray) -> np.ndarray:
    if name == "relu":
        return np.maximum(x, 0.0)
    if name == "tanh":
        return np.tanh(x)
    return 0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))  # exact GELU, torch's default


def _batch_norm(t: dict[str, np.ndarray], prefix: str, x: np.ndarray, channel_axis: int) -> np.ndarray:
    shape = [1] * x.ndim
    shape[channel_axis] = -1

    def per_channel(key: str) -> np.ndarray:
        return t[f"{prefix}.{key}"].reshape(shape)

    return (x - per_channel("running_mean")) / np.sqrt(per_channel("running_var") + BATCH_NORM_EPS) * per_channel(
        "weight"
    ) + per_channel("bias")


def _dense(t: dict[str, np.ndarray], prefix: str, x: np.ndarray, model: dict[str, Any]) -> np.ndarray:
    x = x.reshape(len(x), -1)
    for i in range(len(model["hidden_layers"])):
        block = f"{prefix}hidden.{i}"
        x = x @ t[f"{block}.linear.weight"].T + t[f"{block}.linear.bias"]
        if model["batch_norm"]:
            x = _batch_norm(t, f"{block}.norm", x, channel_axis=1)
        x = _activation(model["activation"], x)
    return x @ t[f"{prefix}output.weight"].T + t[f"{prefix}output.bias"]


def _conv2d_same(x: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """Cross-correlation with 'same' padding, as torch pads it: (k - 1) // 2 before, the rest after."""
    k = weight.shape[-1]
    before, after = (k - 1) // 2, k - 1 - (k - 1) // 2
    padded = np.pad(x, ((0, 0), (0, 0), (before, after), (before, after)))
    windows = np.lib.stride_tricks.sliding_window_view(padded, (k, k), axis=(2, 3))  # N, C, H, W, k, k
    return np.einsum("nchwij,ocij->nohw", windows, weight, optimize=True) + bias.reshape(1, -1, 1, 1)


def _max_pool2(x: np.ndarray) -> np.ndarray:
    n, c, h, w = x.shape
    x = x[:, :, : h // 2 * 2, : w // 2 * 2]
    return x.reshape(n, c, h // 2, 2, w // 2, 2).max(axis=(3, 5))


def forward(artifact: LoadedArtifact, X: np.ndarray) -> np.ndarray:
    """Network outputs (logits, or the regression value) for standardized inputs."""
    t, model = artifact.tensors, artifact.spec["model"]
    if model["type"] == "linear":
        return X.reshape(len(X), -1) @ t["linear.weight"].T + t["linear.bias"]
    if model["type"] == "mlp":
        return _dense(t, "", X, model)
    assert artifact.image_shape is not None
    x = X.reshape(len(X), *artifact.image_shape)
    pools, _ = conv_plan(artifact.image_shape, model["channels"])
    for i, pool in enumerate(pools):
        x = _conv2d_same(x, t[f"conv.{i}.conv.weight"], t[f"conv.{i}.conv.bias"])
        if model["batch_norm"]:
            x = _batch_norm(t, f"conv.{i}.norm", x, channel_axis=1)
        x = _activation(model["activation"], x)
        if pool:
            x = _max_pool2(x)
    return _dense(t, "head.", x, model)


def predict(artifact: LoadedArtifact, features: np.ndarray) -> dict[str, Any]:
    """Predictions for raw feature rows: standardized with the training split's statistics first."""
    standardized = (features.reshape(len(features), -1) - artifact.mean) / artifact.scale
    outputs = forward(artifact, standardized)
    if artifact.task == "regression":
        return {"predictions": outputs[:, 0].tolist()}
    assert artifact.class_labels is not None
    if outputs.shape[1] == 1:
        positive = expit(outputs[:, 0])
        probabilities = np.stack([1.0 - positive, positive], axis=1)
    else:
        probabilities = softmax(outputs, axis=1)
    labels = artifact.class_labels
    return {
        "predictions": [labels[i] for i in probabilities.argmax(axis=1)],
        "probabilities": probabilities.tolist(),
        "classes": labels,
    }
