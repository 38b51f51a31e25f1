"""End-of-epoch checkpoints: everything needed to continue a run exactly, in safetensors (tensors) plus
JSON metadata (numbers), never pickle. Written to a temporary file, then renamed over the old one, so a
crash mid-write leaves the previous checkpoint intact."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file

FORMAT_VERSION = "1"


@dataclass
class Checkpoint:
    epoch: int
    net: dict[str, torch.Tensor]
    optimizer: dict[str, Any]
    rng: torch.Tensor
    best_state: dict[str, torch.Tensor] | None
    progress: dict[str, Any]
    histogram_edges: dict[str, list[float]]

    def copy(self) -> Checkpoint:
        """A copy that the next training steps cannot change (they update the weights and the optimizer's
        state in place), to be written later. On the training device: nothing is moved to the host."""
        optimizer = {
            "state": {
                index: {k: v.detach().clone() if isinstance(v, torch.Tensor) else v for k, v in entries.items()}
                for index, entries in self.optimizer["state"].items()
            },
            "param_groups": self.optimizer["param_groups"],
        }
        return Checkpoint(
            epoch=self.epoch,
            net={k: v.detach().clone() for k, v in self.net.items()},
            optimizer=optimizer,
            rng=self.rng.clone(),
            best_state=self.best_state,  # replaced when it improves, never changed in place
            progress={**self.progress, "seconds": dict(self.progress.get("seconds", {}))},
            histogram_edges=dict(self.histogram_edges),
        )


def _flatten_optimizer(state: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for index, entries in state["state"].items():
        for key, value in entries.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optimizer/{index}/{key}"] = value.detach().to("cpu").contiguous()
            else:
                scalars.setdefault(str(index), {})[key] = value
    return tensors, {"scalars": scalars, "param_groups": state["param_groups"]}


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {int(i): dict(values) for i, values in meta["scalars"].items()}
    for name, tensor in tensors.items():
        _, index, key = name.split("/", 2)
        state.setdefault(int(index), {})[key] = tensor
    return {"state": state, "param_groups": meta["param_groups"]}


def save_checkpoint(path: Path, checkpoint: Checkpoint) -> None:
    tensors = {f"net/{k}": v.detach().to("cpu").contiguous().clone() for k, v in checkpoint.net.items()}
    optimizer_tensors, optimizer_meta = _flatten_optimizer(checkpoint.optimizer)
    tensors.update(optimizer_tensors)
    tensors["rng/torch"] = checkpoint.rng.contiguous()
    if checkpoint.best_state is not None:
        tensors.update(
            {f"best/{k}": v.detach().to("cpu").contiguous().clone() for k, v in checkpoint.best_state.items()}
        )
    metadata = {
        "format_version": FORMAT_VERSION,
        "epoch": str(checkpoint.epoch),
        "optimizer": json.dumps(optimizer_meta),
        "progress": json.dumps(checkpoint.progress),
        "histogram_edges": json.dumps(checkpoint.histogram_edges),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    save_file(tensors, str(partial), metadata=metadata)
    os.replace(partial, path)


def load_checkpoint(path: Path) -> Checkpoint:
    with safe_open(str(path), framework="pt") as stored:
        metadata = stored.metadata()
        tensors = {name: stored.get_tensor(name) for name in stored.keys()}  # noqa: SIM118

    def group(prefix: str) -> dict[str, torch.Tensor]:
        return {name[len(prefix) :]: t for name, t in tensors.items() if name.startswith(prefix)}

    best = group("best/")
    return Checkpoint(
        epoch=int(metadata["epoch"]),
        net=group("net/"),
        optimizer=_unflatten_optimizer(
            {k: v for k, v in tensors.items() if k.startswith("optimizer/")}, json.loads(metadata["optimizer"])
        ),
        rng=tensors["rng/torch"],
        best_state=best or None,
        progress=json.loads(metadata["progress"]),
        histogram_edges=json.loads(metadata["histogram_edges"]),
    )


def load_checkpoint_weights(path: Path) -> tuple[int, dict[str, torch.Tensor]]:
    """The epoch and the network's weights of a checkpoint (what a stopped job's partial artifact
    holds), without reading the optimizer's state."""
    with safe_open(str(path), framework="pt") as stored:
        epoch = int(stored.metadata()["epoch"])
        net = {name.removeprefix("net/"): stored.get_tensor(name) for name in stored.keys() if name.startswith("net/")}  # noqa: SIM118
    return epoch, net


def checkpoint_epoch(path: Path) -> int:
    """The epoch a checkpoint was written after, from its header alone."""
    with safe_open(str(path), framework="pt") as stored:
        return int(stored.metadata()["epoch"])
