"""Arrays in, device tensors out: deterministic (stratified) splits and standardization statistics
taken from the training split only."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from worker.training.config import Task, TrainingConfig
from worker.training.errors import InvalidData


@dataclass(frozen=True)
class ArrayDataset:
    """Features X of shape (N, F), or (N, C, H, W) for images; targets y of shape (N,)."""

    X: np.ndarray
    y: np.ndarray
    feature_names: tuple[str, ...]
    image_shape: tuple[int, int, int] | None = None

    def __post_init__(self) -> None:
        if len(self.X) != len(self.y):
            raise InvalidData(f"X has {len(self.X)} rows but y has {len(self.y)}; give y one value per row of X.")


@dataclass(frozen=True)
class Split:
    X: torch.Tensor
    y: torch.Tensor

    def __len__(self) -> int:
        return int(self.X.shape[0])


@dataclass(frozen=True)
class PreparedData:
    train: Split
    validation: Split | None
    test: Split | None
    n_outputs: int
    class_labels: tuple[Any, ...] | None
    # Per-feature statistics of the training split (ddof=0); identity when standardize is off.
    mean: np.ndarray
    scale: np.ndarray
    # With training.missing = "mean": the training split's column means that filled non-finite values.
    fill: np.ndarray | None
    feature_names: tuple[str, ...]
    image_shape: tuple[int, int, int] | None


def split_indices(
    y: np.ndarray, task: Task, validation_fraction: float, test_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Train/validation/test row indices, the same for the same seed; stratified by class for
    classification so that every split keeps the class balance."""
    rng = np.random.default_rng(seed)
    groups = [np.flatnonzero(y == label) for label in np.unique(y)] if task == "classification" else [np.arange(len(y))]
    train, validation, test = [], [], []
    for group in groups:
        order = rng.permutation(group)
        n_test = round(test_fraction * len(order))
        n_val = round(validation_fraction * len(order))
        test.append(order[:n_test])
        validation.append(order[n_test : n_test + n_val])
        train.append(order[n_test + n_val :])
    return tuple(np.sort(np.concatenate(part)).astype(np.int64) for part in (train, validation, test))  # type: ignore[return-value]


def encode_labels(y: np.ndarray) -> tuple[np.ndarray, tuple[Any, ...]]:
    """Class indices 0..K-1 in sorted label order, and the labels themselves as JSON-ready scalars
    (ints stay ints, strings stay strings), so that predictions return what the user trained on."""
    labels, codes = np.unique(y, return_inverse=True)
    return codes.astype(np.int64), tuple(labels.tolist())


# Rows standardized at a time: float64 temporaries stay a few MiB whatever the dataset's size.
CHUNK_ROWS = 16_384


def _chunk(flat: np.ndarray, rows: np.ndarray, fill: np.ndarray | None) -> np.ndarray:
    """Some rows as float64, non-finite values replaced by `fill` (the imputation) when given."""
    values = flat[rows].astype(np.float64)
    if fill is not None:
        bad = ~np.isfinite(values)
        values[bad] = np.broadcast_to(fill, values.shape)[bad]
    return values


def column_statistics(
    flat: np.ndarray, rows: np.ndarray, fill: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Mean and population standard deviation (ddof=0, as StandardScaler) of the given rows, in
    float64, two passes over chunks: no float64 copy of the whole dataset is ever made."""
    total = np.zeros(flat.shape[1])
    for start in range(0, len(rows), CHUNK_ROWS):
        total += _chunk(flat, rows[start : start + CHUNK_ROWS], fill).sum(axis=0)
    mean = total / len(rows)
    squares = np.zeros(flat.shape[1])
    for start in range(0, len(rows), CHUNK_ROWS):
        centred = _chunk(flat, rows[start : start + CHUNK_ROWS], fill) - mean
        squares += np.einsum("ij,ij->j", centred, centred)
    return mean, np.sqrt(squares / len(rows))


def finite_means(flat: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Per-column mean of the finite values of the given rows (0 for a column with none)."""
    total, count = np.zeros(flat.shape[1]), np.zeros(flat.shape[1])
    for start in range(0, len(rows), CHUNK_ROWS):
        values = flat[rows[start : start + CHUNK_ROWS]].astype(np.float64)
        finite = np.isfinite(values)
        total += np.where(finite, values, 0.0).sum(axis=0)
        count += finite.sum(axis=0)
    return np.divide(total, count, out=np.zeros_like(total), where=count > 0)


def missing_target(y: np.ndarray) -> np.ndarray:
    if y.dtype == object:
        return np.array([v is None or (isinstance(v, float) and not np.isfinite(v)) for v in y], dtype=bool)
    if np.issubdtype(y.dtype, np.floating):
        return ~np.isfinite(y)
    return np.zeros(len(y), dtype=bool)


def handle_missing(data: ArrayDataset, policy: str) -> ArrayDataset:
    """Applies `training.missing` to rows with a missing target or non-finite features: refuse (an
    error naming the count), or drop those rows. With `mean`, rows with a missing target are dropped
    and features are filled later from the training split."""
    flat = data.X.reshape(len(data.X), -1)
    no_target = missing_target(data.y)
    bad_features = np.zeros(len(flat), dtype=bool)
    for start in range(0, len(flat), CHUNK_ROWS):
        bad_features[start : start + CHUNK_ROWS] = ~np.isfinite(flat[start : start + CHUNK_ROWS]).all(axis=1)
    incomplete = no_target | bad_features
    if not incomplete.any():
        return data
    if policy == "refuse":
        raise InvalidData(
            f"{int(incomplete.sum())} rows have missing or non-finite values; set training.missing to 'drop' or 'mean'"
        )
    keep = ~(no_target if policy == "mean" else incomplete)
    if keep.all():
        return data
    return ArrayDataset(X=data.X[keep], y=data.y[keep], feature_names=data.feature_names, image_shape=data.image_shape)


# Explicit (train, validation, test) row indices, after missing-value handling: a study's folds.
SplitRows = tuple[np.ndarray, np.ndarray, np.ndarray]


def prepare(
    data: ArrayDataset,
    task: Task,
    training: TrainingConfig,
    device: torch.device,
    dtype: torch.dtype,
    rows: SplitRows | None = None,
) -> PreparedData:
    """The splits as tensors, standardized with the training rows' statistics. `rows` overrides the
    spec's split (validation_fraction, test_fraction, seed) with given row indices."""
    data = handle_missing(data, training.missing)
    if task == "classification":
        y, class_labels = encode_labels(data.y)
        n_classes = len(class_labels)
        # Two classes use one logit (logistic regression, as scikit-learn does); more use softmax.
        n_outputs = 1 if n_classes == 2 else n_classes
    else:
        y, class_labels, n_outputs = data.y.astype(np.float64), None, 1

    if rows is None:
        train_idx, val_idx, test_idx = split_indices(
            y, task, training.validation_fraction, training.test_fraction, training.seed
        )
    else:
        train_idx, val_idx, test_idx = (np.asarray(part, dtype=np.int64) for part in rows)
    if len(train_idx) == 0:
        raise InvalidData("The training split is empty: lower validation_fraction or test_fraction, or add rows.")
    flat = data.X.reshape(len(data.X), -1)
    fill = finite_means(flat, train_idx) if training.missing == "mean" else None
    if training.standardize:
        mean, scale = column_statistics(flat, train_idx, fill)
        # A constant feature carries no information; leave it centred rather than divide by zero.
        scale[scale == 0] = 1.0
    else:
        mean, scale = np.zeros(flat.shape[1]), np.ones(flat.shape[1])
    shape = data.image_shape or (flat.shape[1],)

    def to_split(idx: np.ndarray) -> Split | None:
        """The rows standardized into one tensor, a chunk at a time (the only full-size copy)."""
        if len(idx) == 0:
            return None
        features = torch.empty((len(idx), flat.shape[1]), dtype=dtype)
        for start in range(0, len(idx), CHUNK_ROWS):
            chunk = idx[start : start + CHUNK_ROWS]
            features[start : start + len(chunk)] = torch.from_numpy((_chunk(flat, chunk, fill) - mean) / scale)
        target_dtype = torch.int64 if task == "classification" else dtype
        return Split(
            X=features.reshape(len(idx), *shape).to(device),
            y=torch.as_tensor(y[idx], dtype=target_dtype, device=device),
        )

    train = to_split(train_idx)
    assert train is not None
    return PreparedData(
        train=train,
        validation=to_split(val_idx),
        test=to_split(test_idx),
        n_outputs=n_outputs,
        class_labels=class_labels,
        mean=mean,
        scale=scale,
        fill=fill,
        feature_names=data.feature_names,
        image_shape=data.image_shape,
    )
