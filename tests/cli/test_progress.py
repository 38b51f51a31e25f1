"""The progress lines of a followed run: on a terminal one line redrawn in place with a carriage return, off a
terminal one plain line per epoch without control characters; elapsed time and ETA from the epochs' own
durations; a study's lines thinned to whole percentages off a terminal."""

from __future__ import annotations

import io
from typing import Any

from cli.progress import (
    Display,
    JobProgress,
    StudyProgress,
    bar,
    duration,
    epoch_line,
    progress_line,
    short_epoch_line,
)


def epoch(number: int, total: int = 4, seconds: float = 2.0, **values: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "epoch": number,
        "total_epochs": total,
        "train_data_loss": 0.5 / number,
        "val_data_loss": 0.6 / number,
        "val_accuracy": 0.7 + number / 100,
        "val_r2": None,
        "seconds": seconds,
    }
    data.update(values)
    return data


def test_durations_and_bars_read_as_people_write_them() -> None:
    assert [duration(s) for s in (0, 7.4, 59.6, 750, 3723)] == ["0:00", "0:07", "1:00", "12:30", "1:02:03"]
    assert bar(0, 4, width=8) == "[........]"
    assert bar(1, 4, width=8) == "[##......]"
    assert bar(4, 4, width=8) == "[########]"


def test_an_epoch_line_shows_the_losses_and_whichever_validation_metric_there_is() -> None:
    assert epoch_line(epoch(2), elapsed=4, eta=4) == (
        "epoch 2/4 [##########..........]  train loss 0.25  val loss 0.3  val accuracy 0.7200  elapsed 0:04  eta 0:04"
    )
    regression = epoch(3, total=12, val_accuracy=None, val_r2=0.41234)
    assert epoch_line(regression, elapsed=6, eta=18) == (
        "epoch  3/12 [#####...............]  train loss 0.1667  val loss 0.2  val r2 0.4123  elapsed 0:06  eta 0:18"
    )
    no_validation = epoch(1, val_data_loss=None, val_accuracy=None)
    assert epoch_line(no_validation, elapsed=2, eta=6) == (
        "epoch 1/4 [#####...............]  train loss 0.5  elapsed 0:02  eta 0:06"
    )


def test_off_a_terminal_each_event_is_one_plain_line() -> None:
    out = io.StringIO()
    progress = JobProgress(Display(out, tty=False), "j1")
    progress.handle("status", {"status": "queued", "attempt": 0})
    progress.handle("status", {"status": "running", "attempt": 1})
    for number, seconds in ((1, 2.0), (2, 4.0)):
        progress.handle("epoch", epoch(number, seconds=seconds))
    progress.handle("status", {"status": "queued", "attempt": 1})
    progress.handle("status", {"status": "running", "attempt": 2})
    progress.handle("epoch", epoch(3, seconds=3.0))
    progress.handle("status", {"status": "succeeded", "attempt": 2})
    lines = out.getvalue().split("\n")
    assert lines == [
        "job j1 queued",
        "job j1 running",
        "epoch 1/4 [#####...............]  train loss 0.5  val loss 0.6  val accuracy 0.7100  elapsed 0:02  eta 0:06",
        "epoch 2/4 [##########..........]  train loss 0.25  val loss 0.3  val accuracy 0.7200  elapsed 0:06  eta 0:06",
        "job j1 queued again after attempt 1",
        "job j1 running (attempt 2)",
        "epoch 3/4 [###############.....]  train loss 0.1667  val loss 0.2  val accuracy 0.7300  elapsed 0:09  "
        "eta 0:03",
        "",  # the final status is left to the summary that follows
    ]
    assert not any(ord(character) < 32 and character != "\n" for character in out.getvalue())


def test_on_a_terminal_the_epoch_line_is_redrawn_in_place() -> None:
    out = io.StringIO()
    display = Display(out, tty=True, columns=lambda: 200)
    progress = JobProgress(display, "j1")
    progress.handle("status", {"status": "running", "attempt": 1})
    progress.handle("epoch", epoch(1, train_data_loss=12.5))
    progress.handle("epoch", epoch(2))
    display.finish()
    first = epoch_line(epoch(1, train_data_loss=12.5), 2, 6)
    second = epoch_line(epoch(2), 4, 4)
    # The shorter second line is padded over what the first left behind.
    assert out.getvalue() == f"job j1 running\n\r{first}\r{second.ljust(len(first))}\n"


def test_on_a_terminal_a_status_line_clears_the_progress_line_first() -> None:
    out = io.StringIO()
    display = Display(out, tty=True, columns=lambda: 200)
    progress = JobProgress(display, "j1")
    progress.handle("epoch", epoch(1))
    progress.handle("status", {"status": "queued", "attempt": 1})
    line = epoch_line(epoch(1), 2, 6)
    assert out.getvalue() == f"\r{line}\r{' ' * len(line)}\rjob j1 queued again after attempt 1\n"
    display.finish()
    assert out.getvalue().endswith("attempt 1\n"), "nothing is left to end"


def test_on_a_narrow_terminal_the_line_gets_shorter_so_that_it_never_wraps() -> None:
    data = epoch(3, total=20, seconds=1.0)
    full = epoch_line(data, 3, 17)
    shorter = "epoch 3/20 [#.........]  loss 0.1667/0.2  acc 0.7300  0:03 eta 0:17"
    shortest = "epoch 3/20  loss 0.1667/0.2  acc 0.7300  0:03 eta 0:17"
    assert short_epoch_line(data, 3, 17, bar_width=10) == shorter
    assert short_epoch_line(data, 3, 17) == shortest
    # A terminal of `columns` shows at most columns - 1 characters: the cursor must not wrap.
    for columns, drawn in ((200, full), (80, shorter), (60, shortest), (21, shortest[:20])):
        out = io.StringIO()
        progress = JobProgress(Display(out, tty=True, columns=lambda columns=columns: columns), "j1")
        for number in (1, 2, 3):
            progress.handle("epoch", epoch(number, total=20, seconds=1.0))
        assert out.getvalue().split("\r")[-1].rstrip() == drawn


def test_off_a_terminal_a_studys_progress_is_a_line_per_whole_percent() -> None:
    out = io.StringIO()
    progress = StudyProgress(Display(out, tty=False), "s1", clock=lambda: 0.0)
    progress.handle("status", {"status": "running", "attempt": 1})
    for done in range(0, 1001):
        progress.handle("progress", {"done": done, "total": 1000})
    progress.handle("progress", {"done": 1000, "total": 1000})
    lines = out.getvalue().splitlines()
    assert lines[0] == "study s1 running"
    assert len(lines) == 1 + 101, "0% to 100%, each once"
    assert lines[1] == "fits    0/1000 [....................]   0%"
    assert lines[2] == "fits   10/1000 [....................]   1%"
    assert lines[-1] == "fits 1000/1000 [####################] 100%"


def test_a_studys_eta_comes_from_the_fits_seen_finishing_while_following() -> None:
    now = [100.0]
    out = io.StringIO()
    progress = StudyProgress(Display(out, tty=False), "s1", clock=lambda: now[0])
    # A replayed backlog arrives at once: no rate to tell from it.
    progress.handle("progress", {"done": 10, "total": 40})
    progress.handle("progress", {"done": 20, "total": 40})
    now[0] = 110.0
    progress.handle("progress", {"done": 30, "total": 40})
    assert out.getvalue().splitlines() == [
        progress_line(10, 40, None),
        progress_line(20, 40, None),
        "fits 30/40 [###############.....]  75%  eta 0:05",
    ]
