"""The tensors the API derives from a spec are exactly the ones the worker's PyTorch networks build."""

from __future__ import annotations

import itertools

import pytest

from core.architecture import is_excluded, parameter_shapes, unmatched_exclude_patterns
from worker.training.config import ModelConfig
from worker.training.networks import build_network
from worker.training.regularization import is_excluded as engine_is_excluded

CASES = [
    *(
        {"type": t, "hidden_layers": h, "batch_norm": bn}
        for t, h, bn in itertools.product(["linear", "mlp"], [[], [8], [16, 4, 3]], [False, True])
    ),
    *(
        {"type": "cnn", "channels": c, "kernel_size": k, "hidden_layers": h, "batch_norm": bn}
        for c, k, h, bn in itertools.product([[4], [4, 6], [2, 3, 5]], [1, 3, 5], [[], [7]], [False, True])
    ),
]


@pytest.mark.parametrize("model", CASES)
@pytest.mark.parametrize("n_outputs", [1, 3])
def test_parameter_shapes_match_the_networks(model: dict[str, object], n_outputs: int) -> None:
    full = {
        "type": "mlp",
        "hidden_layers": [64],
        "activation": "relu",
        "dropout": 0.0,
        "channels": [16, 32],
        "kernel_size": 3,
        "batch_norm": False,
        **model,
    }
    image_shape = (1, 8, 8) if full["type"] == "cnn" else None
    config = ModelConfig(
        **{
            **full,
            "hidden_layers": tuple(full["hidden_layers"]),  # type: ignore[arg-type]
            "channels": tuple(full["channels"]),
        }
    )  # type: ignore[arg-type]
    net = build_network(config, 64, n_outputs, image_shape)
    built = [(name, tuple(p.shape)) for name, p in net.named_parameters()]
    assert parameter_shapes(full, 64, n_outputs, image_shape) == built


@pytest.mark.parametrize(
    "name",
    ["hidden.0.linear.weight", "hidden.0.linear.bias", "conv.1.norm.weight", "head.output.weight", "linear.bias"],
)
@pytest.mark.parametrize("patterns", [("bias", "norm"), ("hidden.0.*",), ("*.weight",), ("output",), ()])
def test_exclusion_rule_is_the_engines(name: str, patterns: tuple[str, ...]) -> None:
    assert is_excluded(name, patterns) == engine_is_excluded(name, patterns)


def test_unmatched_patterns_are_reported_except_the_defaults() -> None:
    names = ["hidden.0.linear.weight", "hidden.0.linear.bias", "output.weight", "output.bias"]
    assert unmatched_exclude_patterns(["bias", "norm", "hidden.0.*"], names) == []
    assert unmatched_exclude_patterns(["conv.*", "norm", "embedding"], names) == ["conv.*", "embedding"]
