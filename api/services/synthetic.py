"""Generated datasets that show where the lasso and the elastic net part ways: groups of strongly
correlated features that share one signal, besides independent informative and pure-noise ones."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from api.schemas.dataset import SyntheticCreate


def generate(spec: SyntheticCreate) -> tuple[pa.Table, dict[str, Any]]:
    """The table, and the generator's record (parameters and the true coefficient of every feature)."""
    rng = np.random.default_rng(spec.seed)
    n = spec.n_samples
    columns: dict[str, np.ndarray] = {}
    coefficients: dict[str, float] = {}

    def signed_coefficient() -> float:
        return float(rng.uniform(1.0, 3.0) * rng.choice([-1.0, 1.0]))

    for i in range(spec.n_informative):
        name = f"informative_{i}"
        columns[name] = rng.standard_normal(n)
        coefficients[name] = signed_coefficient()
    for g, group in enumerate(spec.groups):
        # x_j = sqrt(rho) z + sqrt(1 - rho) e_j: unit variance, pairwise correlation rho.
        shared = rng.standard_normal(n)
        share = signed_coefficient() / group.size if group.informative else 0.0
        for j in range(group.size):
            name = f"group{g}_{j}"
            own = rng.standard_normal(n)
            columns[name] = np.sqrt(group.correlation) * shared + np.sqrt(1 - group.correlation) * own
            coefficients[name] = share
    for k in range(spec.n_features - len(columns)):
        name = f"noise_{k}"
        columns[name] = rng.standard_normal(n)
        coefficients[name] = 0.0

    signal = sum((coefficients[name] * values for name, values in columns.items()), start=np.zeros(n))
    scores = signal + spec.noise * rng.standard_normal(n)
    if spec.task == "regression":
        target: np.ndarray = scores
    else:
        # Equal-frequency bins of the noisy score: balanced classes, ordered by the signal.
        edges = np.quantile(scores, np.linspace(0, 1, spec.n_classes + 1)[1:-1])
        target = np.searchsorted(edges, scores).astype(np.int64)
    columns[spec.target] = target
    record = {**spec.model_dump(mode="json", exclude={"name"}), "coefficients": coefficients}
    return pa.table(columns), record
