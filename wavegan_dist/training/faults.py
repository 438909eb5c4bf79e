"""What a run does when it is told to stop (SIGTERM, Ctrl-C) or its losses stop being finite.

A stop request is a flag set on a signal and acted on at the next step boundary (the
training loop checkpoints and returns normally), so a preempted VM's SIGTERM or a
Ctrl-C costs at most one host call of steps (a multi-worker run a few steps more: see
controller.Schedule). Divergence is an exception raised by the loop before any
checkpoint of the diverged weights could be written.
"""

from __future__ import annotations

import math
import os
import signal
import socket
import sys
import threading

import numpy as np

# Multiplies the rollback count into a new noise seed (a prime, so successive seeds
# do not repeat the run's seed modulo 2^31 for any realistic count).
_SEED_STRIDE = 1_000_003
# A multi-worker run votes on stopping after the host calls that reach a multiple of this
# many steps (see controller.Schedule).
STOP_VOTE_STEPS = 10


class StopRequest:
    """Turns SIGTERM and SIGINT (Ctrl-C) into a flag that the training loop reads between
    host calls, so a stop finishes the call in progress and saves the step reached.

    Where that wait would save nothing the run stops at once instead: on any of the
    signals while `graceful` is False (before the first host call has returned:
    loading data, building and compiling; and after the last one), and on a second
    Ctrl-C. With `exit_at_once` (command-line use) the process ends: Python runs
    signal handlers only when the main thread is back from TensorFlow, which can take
    minutes, so a watcher thread woken by the signal prints one line, calls
    `on_abort`, and exits with 128 + the signal number (130 for SIGINT). Files being
    written then are left as kill -9 leaves them (TensorFlow writes a checkpoint's
    index last, so a partial one is never loaded). Without it (a notebook, whose
    kernel must survive) such a Ctrl-C raises KeyboardInterrupt when the main thread
    next runs Python, and SIGTERM only ever requests a stop.

    Use as a context manager; the previous handlers come back on exit. Outside the
    main thread (where Python cannot install handlers) it does nothing.

    Args:
      signals: the signals handled.
      on_abort: called (from the watcher thread) just before an immediate exit.
      exit_at_once: end the process where a stop cannot wait (see above).
    """

    def __init__(
        self, signals=(signal.SIGTERM, signal.SIGINT), on_abort=None, exit_at_once: bool = False
    ):
        self.signals = tuple(signals)
        self.on_abort = on_abort
        self.exit_at_once = exit_at_once
        self.requested = False
        self.signal_name = ""
        self.graceful = False
        self._interrupts = 0
        self._previous: dict = {}
        self._previous_wakeup = -1
        self._sockets: tuple[socket.socket, socket.socket] | None = None
        self._watcher: threading.Thread | None = None

    def _handle(self, signum, frame):
        if self.exit_at_once:
            return  # the watcher thread, woken through the wakeup fd, does the work
        if self._received(signal.Signals(signum)) and signum == signal.SIGINT:
            raise KeyboardInterrupt

    def __enter__(self) -> "StopRequest":
        if threading.current_thread() is not threading.main_thread():
            return self
        if self.exit_at_once:  # the watcher first, so no signal goes unseen
            reader, writer = socket.socketpair()
            writer.setblocking(False)  # required of a wakeup fd
            self._sockets = (reader, writer)
            self._watcher = threading.Thread(
                target=self._watch, args=(reader,), name="stop-request", daemon=True
            )
            self._watcher.start()
            self._previous_wakeup = signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
        for sig in self.signals:
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()
        if self._sockets is None or self._watcher is None:  # both set together
            return
        signal.set_wakeup_fd(self._previous_wakeup)
        reader, writer = self._sockets
        writer.close()  # ends the watcher (its recv returns b"")
        self._watcher.join(timeout=10)
        reader.close()
        self._sockets = None

    def _watch(self, reader: socket.socket) -> None:
        while True:
            try:
                data = reader.recv(64)
            except OSError:
                return
            if not data:
                return
            for signum in data:  # one byte per signal received
                if signum in self.signals and self._received(signal.Signals(signum)):
                    self._exit(signal.Signals(signum))

    def _received(self, sig: signal.Signals) -> bool:
        """Records a stop request; True if it must not wait for the host call."""
        self.signal_name = self.signal_name or sig.name
        self.requested = True
        if sig == signal.SIGINT:
            self._interrupts += 1
        return not self.graceful or self._interrupts >= 2

    def request(self, reason: str) -> None:
        """Requests a stop at the next step boundary as SIGTERM does, from any thread (a
        preemption notice); `reason` names it in the stop line. Unlike a signal it never
        ends the process at once: the run stops after its first host call if it has not
        made one yet.

        Args:
          reason: what asked, e.g. 'a preemption notice (instance/preempted is TRUE)'.
        """
        self.signal_name = self.signal_name or reason
        self.requested = True

    def _exit(self, sig: signal.Signals) -> None:
        if sig == signal.SIGINT:
            message = "error: interrupted"
        else:
            message = f"error: stopped by {sig.name} with nothing new to save"
        sys.stdout.flush()
        print(message, file=sys.stderr, flush=True)
        if self.on_abort is not None:
            self.on_abort()
        os._exit(128 + int(sig))


class Diverged(Exception):
    """A loss was NaN or infinite at `step`; `metrics` are that step's scalars."""

    def __init__(self, step: int, metrics: dict):
        super().__init__(f"losses at step {step}: {metrics}")
        self.step = step
        self.metrics = metrics


def first_non_finite(values: dict) -> int | None:
    """Index of the first step whose scalars are not all finite, or None.

    Args:
      values: {metric: float array [n]} for n consecutive steps.
    """
    ok = np.all([np.isfinite(v) for v in values.values()], axis=0)
    bad = np.flatnonzero(~ok)
    return int(bad[0]) if len(bad) else None


def rollback_seed(seed: int, rollbacks: int) -> int:
    """The noise seed after the `rollbacks`-th rollback (rollbacks >= 1): new draws of
    latent vectors, interpolation weights and phase shifts from the restored step on."""
    return (seed + _SEED_STRIDE * rollbacks) % 2**31


def describe_metrics(metrics: dict) -> str:
    """'critic nan, generator +0.1234, ...' for messages."""
    return ", ".join(
        f"{k} {v:+.4f}" if math.isfinite(v) else f"{k} {v}" for k, v in metrics.items()
    )
