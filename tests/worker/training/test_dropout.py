"""The engine's dropout means what dropout means: each unit kept with probability 1 - p, survivors
scaled by 1 / (1 - p), identity in eval mode, gradients through the same mask, reproducible by seed."""

from __future__ import annotations

import math

import pytest
import torch

from worker.training.networks import Dropout


@pytest.mark.parametrize("p", [0.05, 0.2, 0.5, 0.9])
def test_keep_rate_and_scale(p: float) -> None:
    torch.manual_seed(0)
    x = torch.ones(401, 999)  # an odd count exercises the last, half-used 64-bit draw
    out = Dropout(p).train()(x)
    kept = out != 0
    n = x.numel()
    # Within 5 standard deviations of a Binomial(n, 1 - p) count.
    assert abs(kept.sum().item() - n * (1 - p)) < 5 * math.sqrt(n * p * (1 - p))
    assert torch.allclose(out[kept], torch.full_like(out[kept], 1 / (1 - p)))
    assert out.mean().item() == pytest.approx(1.0, abs=5 * math.sqrt(p / ((1 - p) * n)))


def test_eval_mode_and_p_zero_are_the_identity() -> None:
    x = torch.randn(32, 16)
    assert Dropout(0.3).eval()(x) is x
    assert Dropout(0.0).train()(x) is x


def test_gradient_flows_through_the_same_mask() -> None:
    torch.manual_seed(1)
    x = torch.randn(64, 32, requires_grad=True)
    out = Dropout(0.25).train()(x)
    out.sum().backward()
    assert x.grad is not None
    expected = (out.detach() != 0).to(x.dtype) / 0.75
    assert torch.equal(x.grad, expected)


def test_masks_are_reproducible_from_the_seed_and_differ_between_draws() -> None:
    layer = Dropout(0.5).train()
    x = torch.ones(50, 50)
    torch.manual_seed(7)
    first, second = layer(x), layer(x)
    torch.manual_seed(7)
    assert torch.equal(layer(x), first)
    assert not torch.equal(first, second)


@pytest.mark.parametrize("p", [-0.1, 1.0])
def test_probability_outside_the_unit_interval_is_refused(p: float) -> None:
    with pytest.raises(ValueError, match="dropout probability"):
        Dropout(p)
