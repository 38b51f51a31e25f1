"""What each column of a table is for, inferred from its profile at upload: a `feature`, or a column a
job leaves out unless it lists it in `features` (an `id`, a `constant`, `high_cardinality` text or a
`datetime`). The dataset's target shows as `target`; the stored role is the one inferred without it, so a
job that predicts another column treats the dataset's target by what it holds."""

from __future__ import annotations

import re
from typing import Any

from api.ingest import DISTINCT_CAP

ROLES = ("feature", "id", "constant", "high_cardinality", "datetime", "target")
LEFT_OUT = ("id", "constant", "high_cardinality", "datetime")
# An integer column unique per row is an id when its name says so (customer_id, CustomerID, userId, key,
# uuid) or when it numbers the rows (consecutive values): unique measurements such as incomes in cents
# stay features.
# In a short table a column of small distinct integers (1, 2, 3) is as likely a measurement as a row number.
MIN_ROWS_NUMBERED = 20
_ID_NAME = re.compile(r"(^|[^A-Za-z])(id|ID|Id|key|KEY|uuid|UUID|guid|GUID)$|[a-z](Id|ID|Key|UUID)$|^(index|Index)$")


def infer_role(column: dict[str, Any], rows: int, max_categories: int) -> str:
    """The role of one table column from its profile (api/ingest ColumnProfile as stored)."""
    dtype, distinct = column["dtype"], column["distinct"]
    if distinct is not None and distinct <= 1 and not column.get("unique"):
        return "constant"
    if column.get("iso_datetime"):
        return "datetime"
    if column.get("unique") and _looks_like_id(column, rows):
        return "id"
    if dtype == "string" and (distinct is None or distinct > max_categories):
        return "high_cardinality"
    return "feature"


def _looks_like_id(column: dict[str, Any], rows: int) -> bool:
    if column["dtype"] == "string":
        return rows > 1
    if column["dtype"] != "int64":
        return False
    numbers_rows = (
        rows >= MIN_ROWS_NUMBERED
        and column["min"] is not None
        and column["max"] is not None
        and column["max"] - column["min"] + 1 == rows
    )
    return bool(_ID_NAME.search(column["name"])) or numbers_rows


def role_reason(column: dict[str, Any]) -> str:
    """Why a column with a role in LEFT_OUT is left out, as a clause: "it is unique per row (an id)"."""
    role = column.get("role")
    if role == "id":
        return "is unique per row (an id)"
    if role == "constant":
        if column["distinct"] == 0:
            return "has no values (every cell is missing)"
        return "has the same value in every row (a constant)"
    if role == "high_cardinality":
        # The profile counts distinct values up to DISTINCT_CAP (api/ingest/types.py).
        many = f"{column['distinct']:,}" if column["distinct"] is not None else f"more than {DISTINCT_CAP:,}"
        return f"is text with {many} distinct values, too many to one-hot encode"
    if role == "datetime":
        return "holds dates or times, which are not encoded as features"
    return "is a feature"


def dataset_warnings(columns: list[dict[str, Any]], target: str | None) -> list[str]:
    """Sentences on the columns jobs leave out by default, for GET /v1/datasets/{id} and the upload."""
    warnings = []
    for column in columns:
        if column["name"] == target or column.get("role") not in LEFT_OUT:
            continue
        name, role = column["name"], column["role"]
        if role == "high_cardinality":
            tail = "jobs leave it out, and cannot use it: make it numeric or group its values."
        elif role == "datetime":
            tail = "jobs leave it out, and cannot use it: derive numbers from it (such as days since a date) to use it."
        else:
            tail = "jobs leave it out unless they list it in `features`."
        warnings.append(f"Column {name!r} {role_reason(column)}; {tail}")
    return warnings
