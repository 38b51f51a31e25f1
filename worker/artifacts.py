"""The trained weights as a safetensors file, with everything needed to use them in its metadata.
No pickle: safetensors holds raw tensors and string metadata only."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from safetensors.torch import save_file

from core.features import FeatureColumn
from worker.training import TrainOutcome


def write_artifact(
    path: Path,
    outcome: TrainOutcome,
    spec: dict[str, Any],
    task: str,
    layout: tuple[FeatureColumn, ...] | None = None,
) -> Path:
    prepared = outcome.prepared
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
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    save_file(outcome.state, str(partial), metadata=metadata)
    os.replace(partial, path)
    return path
