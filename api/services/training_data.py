"""What a job will train on, judged at submit time from the dataset's profile: the target, the task
(given, or inferred by a stated rule), the feature columns (the job's `features`, or every column whose
role is `feature` less its `exclude_columns`), the number of input features after one-hot encoding, the
classes, and which of the columns used have missing values."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from api.ingest.messages import listing
from api.services.column_roles import LEFT_OUT, role_reason
from api.services.datasets import ResolvedDataset
from core.errors import InvalidInput
from core.features import MAX_CATEGORIES

# An integer target with at most this many distinct values is taken as class labels.
MAX_INTEGER_CLASSES = 20

TASK_RULE = (
    "text or true/false targets are classification; integer targets with at most 20 distinct values are "
    "classification; other numbers are regression"
)


@dataclass(frozen=True)
class TrainingView:
    target: str
    task: str
    task_reason: str
    n_features: int
    n_classes: int | None
    image_shape: tuple[int, int, int] | None
    class_counts: list[tuple[Any, int]] | None
    incomplete: dict[str, int]
    # Tables: the columns the job trains on, in order; None for arrays and built-ins.
    features: list[str] | None = None
    # Sentences on what was decided for the user: the columns left out, and why.
    warnings: tuple[str, ...] = ()


def _infer_task(target: dict[str, Any]) -> tuple[str, str]:
    dtype, distinct = target["dtype"], target["distinct"]
    name = target["name"]
    if dtype in ("string", "bool") or dtype.startswith(("<U", "str")):
        return "classification", f"inferred: target {name!r} holds labels ({TASK_RULE})"
    if dtype.startswith(("int", "uint")) and distinct is not None and distinct <= MAX_INTEGER_CLASSES:
        return "classification", f"inferred: target {name!r} holds {distinct} distinct integers ({TASK_RULE})"
    return "regression", f"inferred: target {name!r} holds numbers ({TASK_RULE})"


def _builtin_view(dataset: ResolvedDataset, target: str | None, task: str | None) -> TrainingView:
    builtin = dataset.builtin
    assert builtin is not None
    if target not in (None, "target"):
        raise InvalidInput(f"Dataset {dataset.id!r} has no column {target!r}; its target is 'target'.")
    if task == "classification" and builtin.task == "regression":
        raise InvalidInput(
            f"Dataset {dataset.id!r} has a continuous target, so it cannot be used for classification; use task "
            "'regression'."
        )
    reason = "given" if task else f"the built-in dataset's task ({builtin.task})"
    return TrainingView(
        target="target",
        task=task or builtin.task,
        task_reason=reason,
        n_features=builtin.features,
        n_classes=builtin.classes,
        image_shape=builtin.image_shape,
        class_counts=None,
        incomplete={},
    )


def training_view(
    dataset: ResolvedDataset,
    target: str | None,
    task: str | None,
    features: list[str] | None = None,
    exclude_columns: list[str] | None = None,
    max_categories: int = MAX_CATEGORIES,
) -> TrainingView:
    if (features is not None or exclude_columns is not None) and (
        dataset.builtin is not None or dataset.kind == "arrays"
    ):
        raise InvalidInput(
            f"Dataset {dataset.name if dataset.builtin is None else dataset.id!r} holds arrays, not named columns; "
            "`features` and `exclude_columns` choose among a table's columns."
        )
    if dataset.builtin is not None:
        return _builtin_view(dataset, target, task)
    columns = {column["name"]: column for column in dataset.columns}
    if dataset.kind == "arrays":
        if target not in (None, "y"):
            raise InvalidInput(f"Dataset {dataset.name}@{dataset.version} keeps its target in y, not {target!r}.")
        target = "y"
    target = target or dataset.target
    if target is None:
        names = ", ".join(list(columns)[:20])
        raise InvalidInput(
            f"Dataset {dataset.name}@{dataset.version} has no default target; set `target` to one of its columns "
            f"({names})."
        )
    if target not in columns:
        raise InvalidInput(f"Dataset {dataset.name}@{dataset.version} has no column {target!r}.")
    target_profile = columns[target]
    inferred, reason = _infer_task(target_profile)
    is_text = target_profile["dtype"] in ("string", "bool") or target_profile["dtype"].startswith(("<U", "str"))
    if task == "regression" and is_text:
        raise InvalidInput(f"Target {target!r} holds text labels; regression needs numbers. Use task 'classification'.")
    if task == "classification" and not is_text and (target_profile["distinct"] or math.inf) > max_categories:
        raise InvalidInput(
            f"Target {target!r} has more than {max_categories} distinct values: it is continuous, so use task "
            "'regression'."
        )
    reason = "given" if task else reason
    task = task or inferred
    n_classes = target_profile["distinct"] if task == "classification" else None
    if task == "classification" and n_classes is not None and n_classes < 2:
        raise InvalidInput(f"Target {target!r} has a single class; classification needs at least two.")

    chosen: list[str] | None = None
    warnings: list[str] = []
    if dataset.kind == "arrays":
        shape = columns["X"]["shape"]
        n_features = math.prod(shape)
        image_shape = tuple(shape) if len(shape) == 3 else None
        used = list(columns)
    else:
        label = f"{dataset.name}@{dataset.version}"
        chosen, warnings = choose_features(label, columns, target, features, exclude_columns)
        n_features, image_shape = 0, None
        for name in chosen:
            column = columns[name]
            if column["dtype"] != "string":
                n_features += 1
            elif column["distinct"] is None or column["distinct"] > max_categories:
                raise InvalidInput(
                    f"Column {name!r} has more than {max_categories} distinct text values, too many to one-hot encode;"
                    " leave it out of `features`, or make it numeric."
                )
            else:
                n_features += column["distinct"]
        if n_features == 0:
            raise InvalidInput(
                f"The feature columns of dataset {label} ({listing(chosen)}) have no values to encode: every cell "
                "is missing."
            )
        used = [*chosen, target]
    incomplete = {
        name: columns[name]["missing"] + columns[name]["non_finite"]
        for name in used
        if columns[name]["missing"] + columns[name]["non_finite"]
    }
    counts = target_profile.get("top_values") if task == "classification" else None
    return TrainingView(
        target=target,
        task=task,
        task_reason=reason,
        n_features=n_features,
        n_classes=n_classes,
        image_shape=image_shape,
        class_counts=[tuple(pair) for pair in counts] if counts else None,
        incomplete=incomplete,
        features=chosen,
        warnings=tuple(warnings),
    )


def choose_features(
    label: str,
    columns: dict[str, dict[str, Any]],
    target: str,
    features: list[str] | None,
    exclude_columns: list[str] | None,
) -> tuple[list[str], list[str]]:
    """The feature columns of a job on table `label` (in order), and sentences on those left out by role.

    `features` is taken as given (in its order); otherwise every column but the target whose role is
    `feature` (api/services/column_roles.py), less `exclude_columns`. Raises InvalidInput naming the
    columns for an unknown column, the target among them, or nothing left to train on."""
    field = "features" if features is not None else "exclude_columns"
    given = features if features is not None else exclude_columns or []
    unknown = [name for name in given if name not in columns]
    if unknown:
        raise InvalidInput(
            f"`{field}` names {listing(unknown)}, not a column of dataset {label}; its columns are "
            f"{listing(list(columns), most=50)}."
        )
    repeated = sorted({name for name in given if given.count(name) > 1})
    if repeated:
        raise InvalidInput(f"`{field}` lists {listing(repeated)} more than once; name each column once.")
    if target in given:
        raise InvalidInput(
            f"The target {target!r} cannot be in `{field}`: it is what the job predicts, never an input."
            if features is not None
            else f"The target {target!r} cannot be in `exclude_columns`: the job needs it to learn from. Choose "
            "another `target` to leave this column out."
        )
    if features is not None:
        for name in features:
            if columns[name].get("role") == "datetime":
                raise InvalidInput(
                    f"Column {name!r} in `features` holds dates or times, which this service does not encode as "
                    "features; derive numbers from it (such as days since a date) and upload the table again, or "
                    "leave it out."
                )
        if not features:
            raise InvalidInput("`features` is empty; list at least one column to train on.")
        return list(features), []
    excluded = set(exclude_columns or [])
    chosen, warnings = [], []
    for name, column in columns.items():
        if name == target or name in excluded:
            continue
        if column.get("role") in LEFT_OUT:
            warnings.append(
                f"Column {name!r} {role_reason(column)}, so this job leaves it out"
                + ("; list it in `features` to use it." if column["role"] in ("id", "constant") else ".")
            )
            continue
        chosen.append(name)
    if not chosen:
        reasons = " ".join(warnings)
        given_out = f" `exclude_columns` leaves out {listing(sorted(excluded))}." if excluded else ""
        raise InvalidInput(
            f"No feature columns are left in dataset {label} besides the target {target!r}.{given_out}"
            f"{' ' + reasons if reasons else ''} List the columns to train on in `features`."
        )
    return chosen, warnings


def check_splits(view: TrainingView, rows: int, validation_fraction: float, test_fraction: float) -> None:
    """The same rounding as the worker's split: every split asked for gets rows, and with
    classification every class keeps at least one training row."""
    groups = view.class_counts if view.class_counts and len(view.class_counts) == view.n_classes else [("all", rows)]
    n_val = sum(round(validation_fraction * count) for _, count in groups)
    n_test = sum(round(test_fraction * count) for _, count in groups)
    n_train = rows - n_val - n_test
    if n_train < 2 or (validation_fraction > 0 and n_val == 0) or (test_fraction > 0 and n_test == 0):
        raise InvalidInput(
            f"{rows} rows are too few for these splits: validation_fraction {validation_fraction} gives {n_val} "
            f"rows, test_fraction {test_fraction} gives {n_test}, leaving {n_train} for training (need at least 2, "
            "and at least 1 in each split asked for)."
        )
    for label, count in groups if view.class_counts else []:
        left = count - round(validation_fraction * count) - round(test_fraction * count)
        if left < 1:
            raise InvalidInput(
                f"Class {label!r} has {count} row(s), none left for training after the validation and test splits; "
                "lower validation_fraction or test_fraction, or add rows of that class."
            )
