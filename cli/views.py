"""Jobs and studies as people read them: the tables of `regtrain jobs` and `regtrain studies`, and the
summaries of `regtrain show` and of a followed run's end."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from cli.progress import number

# The scalar metrics of a split, in the order they are shown; confusion matrices stay in `show --json`.
SPLIT_METRICS = ("data_loss", "accuracy", "balanced_accuracy", "f1_macro", "log_loss", "roc_auc", "r2", "rmse", "mae")
NAME_WIDTH = 30


def table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(cell) for cell in column) for column in zip(headers, *rows, strict=True)]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in [headers, *rows]
    )


def when(value: str | None) -> str:
    """An API timestamp in the reader's local time, to the minute."""
    if not value:
        return "-"
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone().strftime("%Y-%m-%d %H:%M")


def short(text: str | None, width: int = NAME_WIDTH) -> str:
    if not text or not text.strip():
        return "-"
    text = " ".join(text.split())  # a line break or a tab in a name would break the table
    return text if len(text) <= width else text[: width - 1] + "…"


def dataset_label(dataset: dict[str, Any]) -> str:
    return f"{dataset['name']} v{dataset['version']}"


def dataset_field(dataset: dict[str, Any]) -> str:
    label = dataset_label(dataset)
    # A built-in's id is its name; an uploaded dataset's id is worth showing.
    return label if dataset["id"] == dataset["name"] else f"{label} (id {dataset['id']})"


def validation_score(job: dict[str, Any]) -> str:
    validation = (job.get("result") or {}).get("validation") or {}
    for name in ("accuracy", "r2"):
        if validation.get(name) is not None:
            return f"{name} {validation[name]:.4f}"
    return "-"


def page_footer(page: dict[str, Any], noun: str, nouns: str) -> str:
    shown, total = len(page["items"]), page["total"]
    if shown == total:
        return f"{total} {noun if total == 1 else nouns}"
    return f"{shown} of {total} {nouns} (newest first; --limit shows more)"


def jobs_table(page: dict[str, Any]) -> str:
    rows = [
        [
            job["id"],
            short(job.get("name")),
            job["status"],
            dataset_label(job["dataset"]),
            f"{job['progress']['epoch']}/{job['progress']['epochs']}",
            when(job.get("created_at")),
            validation_score(job),
        ]
        for job in page["items"]
    ]
    headers = ["ID", "NAME", "STATUS", "DATASET", "EPOCHS", "CREATED", "VALIDATION"]
    return (table(headers, rows) + "\n" if rows else "") + page_footer(page, "job", "jobs")


def member_label(member: dict[str, Any] | None, metric: str) -> str:
    if not member:
        return "-"
    params = ", ".join(
        f"{name.rsplit('.', 1)[-1]}={value:.4g}" if isinstance(value, float) else f"{name.rsplit('.', 1)[-1]}={value}"
        for name, value in member.get("params", {}).items()
    )
    label = f"member {member['position']}"
    if member.get("variant"):
        label += f" ({member['variant']})"
    if params:
        label += f" {params}"
    if member.get("mean") is not None:
        label += f": {metric} {number(member['mean'])}"
        if member.get("standard_error") is not None:
            label += f" ± {number(member['standard_error'])}"
    return label


def studies_table(page: dict[str, Any]) -> str:
    rows = [
        [
            study["id"],
            short(study.get("name")),
            study["status"],
            dataset_label(study["dataset"]),
            f"{study['progress']['fits']}/{study['progress']['total']}",
            when(study.get("created_at")),
            f"{study['metric']} {number(study['best']['mean'])}"
            if (study.get("best") or {}).get("mean") is not None
            else "-",
        ]
        for study in page["items"]
    ]
    headers = ["ID", "NAME", "STATUS", "DATASET", "FITS", "CREATED", "BEST"]
    return (table(headers, rows) + "\n" if rows else "") + page_footer(page, "study", "studies")


def fields(pairs: list[tuple[str, str]]) -> list[str]:
    width = max(len(label) for label, _ in pairs)
    return [f"{label.ljust(width)}  {value}" for label, value in pairs]


def metrics_table(splits: dict[str, dict[str, Any] | None]) -> list[str]:
    present = {name: values for name, values in splits.items() if values}
    names = [metric for metric in SPLIT_METRICS if any(metric in values for values in present.values())]
    if not names:
        return []
    rows = [
        [split, *(number(values[metric]) if values.get(metric) is not None else "-" for metric in names)]
        for split, values in present.items()
    ]
    return table(["", *names], rows).splitlines()


def result_pairs(job: dict[str, Any]) -> list[tuple[str, str]]:
    """A finished job's epochs, the sparsity of its weights, and its time."""
    result = job.get("result")
    if not result:
        return []
    weights = result.get("weights") or {}
    return [
        ("epochs", f"{result['epochs_run']} run, weights of epoch {result['weights_epoch']}"),
        (
            "weights",
            f"zero_fraction {weights.get('zero_fraction', 0):.4f}, "
            f"near_zero_fraction {weights.get('near_zero_fraction', 0):.4f}",
        ),
        ("time", f"{result['seconds']:.1f} s on {result['device']}"),
    ]


def result_table(job: dict[str, Any]) -> list[str]:
    """A finished job's metrics: a row per split, a column per metric."""
    result = job.get("result") or {}
    return metrics_table({split: result.get(split) for split in ("train", "validation", "test")})


def job_outcome(job: dict[str, Any]) -> str:
    """How a followed job ended: its status, then its result or its error."""
    lines = [f"job {job['id']} {job['status']}"]
    pairs = result_pairs(job)
    if job.get("error"):
        pairs.append(("error", error_line(job["error"])))
    return "\n".join(lines + (fields(pairs) if pairs else []) + result_table(job))


def error_line(error: dict[str, Any] | None) -> str:
    if not error:
        return "-"
    return f"{error['type']}: {error['message']}"


def job_summary(job: dict[str, Any]) -> str:
    spec = job.get("spec") or {}
    model = spec.get("model") or {}
    optimizer = spec.get("optimizer") or {}
    architecture = model.get("type", "?")
    if architecture != "linear" and model.get("hidden_layers") is not None:
        architecture += f" {model['hidden_layers']}"
    pairs = [
        ("job", job["id"] + (f" ({job['name']})" if job.get("name") else "")),
        ("status", job["status"] + (f" (attempts {job['attempts']})" if job.get("attempts", 0) > 1 else "")),
        ("dataset", dataset_field(job["dataset"])),
        ("task", f"{job['task']} ({job['task_reason']})"),
        ("model", f"{architecture}, {optimizer.get('type', '?')} lr {optimizer.get('lr', '?')}"),
        ("progress", f"epoch {job['progress']['epoch']}/{job['progress']['epochs']}"),
        ("created", when(job.get("created_at"))),
        ("started", when(job.get("started_at"))),
        ("finished", when(job.get("finished_at"))),
    ]
    if job.get("error"):
        pairs.append(("error", error_line(job["error"])))
    for warning in job.get("warnings") or []:
        pairs.append(("warning", warning))
    return "\n".join(fields(pairs + result_pairs(job)) + result_table(job))


def study_summary(study: dict[str, Any]) -> str:
    cv = (study.get("spec") or {}).get("cv")
    metric = study["metric"]
    pairs = [
        ("study", study["id"] + (f" ({study['name']})" if study.get("name") else "")),
        ("status", study["status"]),
        ("dataset", dataset_field(study["dataset"])),
        (
            "members",
            f"{study['members']}, scored by {metric}, rule {study['rule']}"
            + (f", {cv['folds']}-fold cross-validation" if cv else ", on the validation split"),
        ),
        ("progress", f"fits {study['progress']['fits']}/{study['progress']['total']}"),
        ("created", when(study.get("created_at"))),
        ("started", when(study.get("started_at"))),
        ("finished", when(study.get("finished_at"))),
        ("best", member_label(study.get("best"), metric)),
        ("1-SE", member_label(study.get("one_se"), metric)),
        ("selected", member_label(study.get("selected"), metric)),
    ]
    test = study.get("test") or {}
    scalars = [f"{name} {number(value)}" for name, value in test.items() if isinstance(value, int | float)]
    if scalars:
        pairs.append(("test", ", ".join(scalars)))
    if study.get("refit_job_id"):
        pairs.append(("refit job", study["refit_job_id"]))
    if study.get("refit_error"):
        pairs.append(("refit", study["refit_error"]))
    if study.get("error"):
        pairs.append(("error", error_line(study["error"])))
    return "\n".join(fields(pairs))
