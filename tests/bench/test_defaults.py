"""A job given only a dataset trains a good model: on iris, the API's defaults (linear and mlp) reach
scikit-learn's default validation accuracy within bench/defaults.py's tolerance, on the same split.
The full table (every built-in and bench/data/) is `python -m bench.defaults`."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

from bench.defaults import TOLERANCE, compare


@pytest.fixture(autouse=True)
def one_torch_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("model_type", ["linear", "mlp"])
def test_iris_defaults_reach_scikit_learns_defaults(model_type: str) -> None:
    row = compare("iris", model_type)
    assert row["regtrain"] >= row["sklearn"] - TOLERANCE, row
    # Far above the majority class (a third): the defaults train, not merely predict the prior.
    assert row["regtrain"] >= 0.85, row
