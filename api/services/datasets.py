"""Resolving the `dataset` of a job spec to the exact dataset it will train on."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from core.builtins import BUILTIN_PREFIX, BUILTINS
from core.errors import InvalidInput


@dataclass(frozen=True)
class ResolvedDataset:
    id: str
    name: str
    version: int
    sha256: str
    task: str
    target: str
    n_features: int
    n_classes: int | None
    image_shape: tuple[int, int, int] | None


def resolve_dataset(session: Session, ref: str) -> ResolvedDataset:
    if ref.startswith(BUILTIN_PREFIX):
        name = ref.removeprefix(BUILTIN_PREFIX)
        builtin = BUILTINS.get(name)
        if builtin is None:
            known = ", ".join(BUILTIN_PREFIX + n for n in BUILTINS)
            raise InvalidInput(f"There is no built-in dataset {ref!r}; the built-ins are {known}.")
        return ResolvedDataset(
            id=builtin.ref,
            name=builtin.ref,
            version=1,
            sha256=builtin.sha256,
            task=builtin.task,
            target="target",
            n_features=builtin.features,
            n_classes=builtin.classes,
            image_shape=builtin.image_shape,
        )
    raise InvalidInput(
        f"There is no dataset {ref!r}. Use a built-in such as 'builtin:wine' "
        f"({', '.join(BUILTIN_PREFIX + n for n in BUILTINS)})."
    )
