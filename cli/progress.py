"""What `regtrain submit --follow`, `regtrain study --follow` and `regtrain follow` print while a job or a
study runs: a progress line redrawn in place on a terminal, or one plain line per epoch (no control
characters) when the output goes to a file or a pipe; and a line for each change of status."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from typing import Any, TextIO

BAR_WIDTH = 20


def duration(seconds: float) -> str:
    """0:07, 12:30, 1:02:03."""
    whole = max(0, round(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def bar(done: int, total: int, width: int = BAR_WIDTH) -> str:
    filled = min(width, width * done // total) if total > 0 else 0
    return "[" + "#" * filled + "." * (width - filled) + "]"


def number(value: float) -> str:
    return f"{value:.4g}"


class Display:
    """Permanent lines, and one progress line that a terminal redraws in place with a carriage return."""

    def __init__(self, out: TextIO, tty: bool, columns: Callable[[], int] | None = None) -> None:
        self.out = out
        self.tty = tty
        # Asked at each redraw, so that a resized window is followed.
        self.columns = columns or (lambda: shutil.get_terminal_size(fallback=(120, 24)).columns)
        self.drawn = 0  # width of the progress line now on the terminal; 0 when none is

    def line(self, text: str) -> None:
        self._clear()
        self.out.write(text + "\n")
        self.out.flush()

    def progress(self, text: str, *shorter: str) -> None:
        """Shows `text`; on a terminal too narrow for it, the first of the `shorter` forms that fits (a line
        that wraps can no longer be redrawn with a carriage return), else the shortest, cut."""
        if not self.tty:
            self.line(text)
            return
        width = max(1, self.columns() - 1)
        text = next((form for form in (text, *shorter) if len(form) <= width), (text, *shorter)[-1][:width])
        # Padding overwrites what a longer previous line left behind.
        self.out.write("\r" + text.ljust(self.drawn))
        self.out.flush()
        self.drawn = len(text)

    def finish(self) -> None:
        """Ends the progress line, so that what follows starts on a line of its own."""
        if self.drawn:
            self.out.write("\n")
            self.out.flush()
            self.drawn = 0

    def _clear(self) -> None:
        if self.drawn:
            self.out.write("\r" + " " * self.drawn + "\r")
            self.drawn = 0


def status_line(kind: str, identifier: str, data: dict[str, Any]) -> str:
    status, attempt = data.get("status"), data.get("attempt") or 0
    if status == "running" and attempt > 1:
        return f"{kind} {identifier} running (attempt {attempt})"
    if status == "queued" and attempt >= 1:
        return f"{kind} {identifier} queued again after attempt {attempt}"
    return f"{kind} {identifier} {status}"


def validation_metric(data: dict[str, Any]) -> tuple[str, float] | None:
    """The epoch's validation score: accuracy for classification, r2 for regression."""
    for name in ("accuracy", "r2"):
        value = data.get(f"val_{name}")
        if value is not None:
            return name, float(value)
    return None


def epoch_line(data: dict[str, Any], elapsed: float, eta: float) -> str:
    epoch, total = int(data["epoch"]), int(data["total_epochs"])
    parts = [
        f"epoch {epoch:>{len(str(total))}}/{total} {bar(epoch, total)}",
        f"train loss {number(data['train_data_loss'])}",
    ]
    if data.get("val_data_loss") is not None:
        parts.append(f"val loss {number(data['val_data_loss'])}")
    if (metric := validation_metric(data)) is not None:
        parts.append(f"val {metric[0]} {metric[1]:.4f}")
    parts.append(f"elapsed {duration(elapsed)}")
    parts.append(f"eta {duration(eta)}")
    return "  ".join(parts)


def short_epoch_line(data: dict[str, Any], elapsed: float, eta: float, bar_width: int = 0) -> str:
    """The same for a narrow terminal: "epoch 3/20 [##........]  loss 0.41/0.45  acc 0.9000  0:02 eta 0:12"."""
    epoch, total = int(data["epoch"]), int(data["total_epochs"])
    text = f"epoch {epoch}/{total}" + (f" {bar(epoch, total, bar_width)}" if bar_width else "")
    text += f"  loss {number(data['train_data_loss'])}"
    if data.get("val_data_loss") is not None:
        text += f"/{number(data['val_data_loss'])}"
    if (metric := validation_metric(data)) is not None:
        text += f"  {'acc' if metric[0] == 'accuracy' else metric[0]} {metric[1]:.4f}"
    return text + f"  {duration(elapsed)} eta {duration(eta)}"


class JobProgress:
    """Turns a job's events into lines. Elapsed time is the sum of the epochs' own durations, so a stream
    that is replayed after a reconnect prints the same lines as the live one; the ETA is the mean epoch
    time times the epochs left (early stopping may end the run sooner)."""

    def __init__(self, display: Display, job_id: str) -> None:
        self.display = display
        self.job_id = job_id
        self.epoch_seconds = 0.0
        self.epochs_seen = 0

    def handle(self, kind: str, data: dict[str, Any]) -> None:
        if kind == "status":
            # The final status is part of the summary printed after the stream ends.
            if data.get("status") not in ("succeeded", "failed", "canceled"):
                self.display.line(status_line("job", self.job_id, data))
        elif kind == "epoch":
            self.epoch_seconds += float(data.get("seconds") or 0.0)
            self.epochs_seen += 1
            mean = self.epoch_seconds / self.epochs_seen
            left = max(0, int(data["total_epochs"]) - int(data["epoch"]))
            elapsed, eta = self.epoch_seconds, mean * left
            self.display.progress(
                epoch_line(data, elapsed, eta),
                short_epoch_line(data, elapsed, eta, bar_width=10),
                short_epoch_line(data, elapsed, eta),
            )


def progress_line(done: int, total: int, eta: float | None) -> str:
    percent = 100 * done // total if total > 0 else 0
    text = f"fits {done:>{len(str(total))}}/{total} {bar(done, total)} {percent:3d}%"
    if eta is not None:
        text += f"  eta {duration(eta)}"
    return text


class StudyProgress:
    """Turns a study's events into lines. A study may have thousands of fits: off a terminal, a line is
    printed only when the whole percentage changes (and for the last fit). Progress events carry no time,
    so the ETA is the rate of fits seen finishing while following, shown once it spans MEASURED_SECONDS
    (a replayed backlog arrives all at once and says nothing about the rate)."""

    MEASURED_SECONDS = 2.0

    def __init__(self, display: Display, study_id: str, clock: Callable[[], float] = time.monotonic) -> None:
        self.display = display
        self.study_id = study_id
        self.clock = clock
        self.first: tuple[float, int] | None = None
        self.printed_percent: int | None = None
        self.shown: tuple[int, int] | None = None

    def handle(self, kind: str, data: dict[str, Any]) -> None:
        if kind == "status":
            if data.get("status") not in ("succeeded", "failed", "canceled"):
                self.display.line(status_line("study", self.study_id, data))
        elif kind == "progress":
            done, total = int(data["done"]), int(data["total"])
            percent = 100 * done // total if total > 0 else 0
            if (done, total) == self.shown or (not self.display.tty and percent == self.printed_percent != 100):
                return
            self.printed_percent, self.shown = percent, (done, total)
            self.display.progress(progress_line(done, total, self.eta(done, total)))

    def eta(self, done: int, total: int) -> float | None:
        now = self.clock()
        if self.first is None:
            self.first = (now, done)
            return None
        since, done_then = self.first
        if now - since < self.MEASURED_SECONDS or done <= done_then or done >= total:
            return None
        return (now - since) / (done - done_then) * (total - done)
