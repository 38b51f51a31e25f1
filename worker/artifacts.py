"""The trained weights as a safetensors file, with everything needed to use them in its metadata.
No pickle: safetensors holds raw tensors and string metadata only.

A job that stops before it succeeds (canceled, timed out, failed) keeps the weights of its last
checkpoint as a partial artifact: the same format, its metadata saying `partial: "true"` and the
`epoch` whose end the weights are from."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from core.features import FeatureColumn
from worker.training import ArrayDataset, TrainConfig, TrainOutcome
from worker.training.checkpoint import load_checkpoint_weights
from worker.training.data import PreparedData, prepare


def write_artifact(
    path: Path,
    outcome: TrainOutcome,
    spec: dict[str, Any],
    task: str,
    layout: tuple[FeatureColumn, ...] | None = None,
) -> Path:
    return _save(path, outcome.state, outcome.prepared, spec, task, layout, outcome.result.weights_epoch, False)


def write_partial_artifact(
    path: Path,
    checkpoint_path: Path,
    data: ArrayDataset,
    config: TrainConfig,
    spec: dict[str, Any],
    task: str,
    layout: tuple[FeatureColumn, ...] | None = None,
) -> int | None:
    """Writes the weights of the job's last checkpoint as a partial artifact and returns their epoch;
    None (and nothing written) when there is no checkpoint or its weights are not all finite.

    The checkpoint holds weights at the end of an epoch, whose statistics are recorded, so the served
    weights match /metrics at that epoch (the weights in memory when a run stops are mid-epoch). The
    standardization statistics and labels are recomputed from the data, as training computed them:
    the splits and statistics depend only on the data and the spec."""
    if not checkpoint_path.is_file():
        return None
    epoch, state = load_checkpoint_weights(checkpoint_path)
    if not all(bool(torch.isfinite(tensor).all()) for tensor in state.values()):
        return None
    prepared = prepare(data, config.task, config.training, torch.device("cpu"), torch.float32)
    _save(path, state, prepared, spec, task, layout, epoch, True)
    return epoch


def _save(
    path: Path,
    state: dict[str, torch.Tensor],
    prepared: PreparedData,
    spec: dict[str, Any],
    task: str,
    layout: tuple[FeatureColumn, ...] | None,
    epoch: int,
    partial: bool,
) -> Path:
    metadata = {
        "format": "pt",
        "spec": json.dumps(spec),
        "task": task,
        "feature_names": json.dumps(list(prepared.feature_names)),
        "class_labels": json.dumps(list(prepared.class_labels) if prepared.class_labels else None),
        "standardization": json.dumps({"mean": prepared.mean.tolist(), "scale": prepared.scale.tolist()}),
        "image_shape": json.dumps(list(prepared.image_shape) if prepared.image_shape else None),
        # How a record's named columns become the features above (tables only).
        "columns": json.dumps([column.to_json() for column in layout] if layout else None),
        # The values that filled missing features in training (training.missing = "mean").
        "fill": json.dumps(prepared.fill.tolist() if prepared.fill is not None else None),
        # The epoch whose weights these are; partial: the job stopped before training finished.
        "epoch": str(epoch),
        "partial": json.dumps(partial),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    unfinished = path.with_name(path.name + ".partial")
    save_file(state, str(unfinished), metadata=metadata)
    os.replace(unfinished, path)
    return path
