"""The parameter tensors (names and shapes) of the network a spec describes, without torch.

The API uses this to validate a job at submit time (`exclude` patterns that match nothing, the
parameter count) and to run predictions from an artifact. worker/training/networks.py builds the same
tensors in PyTorch; a test holds the two equal."""

from __future__ import annotations

from fnmatch import fnmatchcase
from typing import Any

Shape = tuple[int, ...]

# Patterns excluded by default; they need not match (a network without batch norm has no `norm`).
DEFAULT_EXCLUDE = ("bias", "norm")


def is_excluded(name: str, patterns: list[str] | tuple[str, ...]) -> bool:
    """A pattern excludes a tensor when it occurs in the tensor's name (`bias`) or matches the whole
    name as a glob (`hidden.0.*`)."""
    return any(pattern in name or fnmatchcase(name, pattern) for pattern in patterns)


def output_units(task: str, n_classes: int | None) -> int:
    """Two classes use one logit (logistic regression, as scikit-learn does); more use one per class."""
    if task == "regression" or n_classes is None:
        return 1
    return 1 if n_classes == 2 else n_classes


def _dense_stack(prefix: str, n_in: int, model: dict[str, Any], n_out: int) -> list[tuple[str, Shape]]:
    tensors: list[tuple[str, Shape]] = []
    for i, width in enumerate(model["hidden_layers"]):
        tensors += [(f"{prefix}hidden.{i}.linear.weight", (width, n_in)), (f"{prefix}hidden.{i}.linear.bias", (width,))]
        if model["batch_norm"]:
            tensors += [(f"{prefix}hidden.{i}.norm.weight", (width,)), (f"{prefix}hidden.{i}.norm.bias", (width,))]
        n_in = width
    return [*tensors, (f"{prefix}output.weight", (n_out, n_in)), (f"{prefix}output.bias", (n_out,))]


def conv_plan(image_shape: tuple[int, int, int], channels: list[int]) -> tuple[list[bool], tuple[int, int, int]]:
    """Which convolution blocks pool (each halves the image while it is at least 2x2), and the shape
    of what reaches the dense head."""
    c, h, w = image_shape
    pools = []
    for out_channels in channels:
        pool = h >= 2 and w >= 2
        pools.append(pool)
        c = out_channels
        if pool:
            h, w = h // 2, w // 2
    return pools, (c, h, w)


def parameter_shapes(
    model: dict[str, Any], n_features: int, n_outputs: int, image_shape: tuple[int, int, int] | None
) -> list[tuple[str, Shape]]:
    """Trainable tensors in the order the network registers them (the artifact's and /weights' order)."""
    if model["type"] == "linear":
        return [("linear.weight", (n_outputs, n_features)), ("linear.bias", (n_outputs,))]
    if model["type"] == "mlp":
        return _dense_stack("", n_features, model, n_outputs)
    if image_shape is None:
        raise ValueError("a cnn needs image-shaped data")
    k = model["kernel_size"]
    tensors: list[tuple[str, Shape]] = []
    in_channels = image_shape[0]
    for i, out_channels in enumerate(model["channels"]):
        tensors += [
            (f"conv.{i}.conv.weight", (out_channels, in_channels, k, k)),
            (f"conv.{i}.conv.bias", (out_channels,)),
        ]
        if model["batch_norm"]:
            tensors += [(f"conv.{i}.norm.weight", (out_channels,)), (f"conv.{i}.norm.bias", (out_channels,))]
        in_channels = out_channels
    _, (c, h, w) = conv_plan(image_shape, model["channels"])
    return tensors + _dense_stack("head.", c * h * w, model, n_outputs)


def unmatched_exclude_patterns(patterns: list[str], names: list[str]) -> list[str]:
    return [p for p in patterns if p not in DEFAULT_EXCLUDE and not any(is_excluded(n, [p]) for n in names)]
