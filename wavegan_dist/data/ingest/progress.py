"""The ingest progress display on stderr: items, rows, skips, files/s and ETA.

On a terminal the line is rewritten in place (carriage return) a few times a
second; otherwise (a log file, a pipe) a plain line is written every
`plain_every_s` seconds, so logs stay short.
"""

from __future__ import annotations

import sys
import time


def format_duration(seconds: float) -> str:
    """Seconds -> '42s', '3m05s' or '2h07m'."""
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


class ProgressDisplay:
    """Shows progress of one ingest run.

    Args:
      total: items in the source.
      start: items already done before this run (resume).
      stream: where to write (default sys.stderr).
      plain_every_s: seconds between lines when the stream is not a terminal.
    """

    def __init__(self, total: int, start: int = 0, stream=None, plain_every_s: float = 15.0):
        self.total = total
        self.start = start
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.every = 0.25 if self.tty else plain_every_s
        self.t0 = time.monotonic()
        self.last = self.t0
        self.width = 0

    def rate(self, done: int) -> float:
        """Items per second in this run so far."""
        elapsed = time.monotonic() - self.t0
        return (done - self.start) / elapsed if elapsed > 0 else 0.0

    def line(self, done: int, rows: int, skipped: int) -> str:
        """The status text for `done` items, `rows` rows in the dataset, `skipped` skips."""
        rate = self.rate(done)
        eta = format_duration((self.total - done) / rate) if rate > 0 else "?"
        pct = 100.0 * done / self.total if self.total else 100.0
        return (
            f"ingest: {done}/{self.total} items ({pct:.1f}%)  {rows} rows  {skipped} skipped"
            f"  {rate:.1f} files/s  ETA {eta}"
        )

    def due(self) -> bool:
        """True when the display should be redrawn (throttled by time)."""
        return time.monotonic() - self.last >= self.every

    def show(self, done: int, rows: int, skipped: int) -> None:
        """Redraws the line (terminal) or writes a new one (otherwise)."""
        self.last = time.monotonic()
        text = self.line(done, rows, skipped)
        if self.tty:
            self.stream.write("\r" + text.ljust(self.width))
            self.width = len(text)
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def close(self) -> None:
        """Ends the in-place line on a terminal."""
        if self.tty and self.width:
            self.stream.write("\n")
            self.stream.flush()
