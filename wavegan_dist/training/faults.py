"""What a run does when it is told to stop (SIGTERM) or its losses stop being finite.

A stop request is a flag set by a signal handler and acted on at the next step
boundary (the training loop checkpoints and returns normally), so a preempted VM's
SIGTERM costs at most one host call of steps. Divergence is an exception raised by
the loop before any checkpoint of the diverged weights could be written.
"""

from __future__ import annotations

import math
import signal
import threading

import numpy as np
import tensorflow as tf

# Multiplies the rollback count into a new noise seed (a prime, so successive seeds
# do not repeat the run's seed modulo 2^31 for any realistic count).
_SEED_STRIDE = 1_000_003


class StopRequest:
    """Turns SIGTERM into a flag that the training loop reads between host calls.

    Use as a context manager around the loop; the previous handler comes back on exit.
    Outside the main thread (where Python cannot install handlers) it does nothing.
    """

    def __init__(self, signals=(signal.SIGTERM,)):
        self.signals = signals
        self.requested = False
        self.signal_name = ""
        self._previous = {}
        self._vote = None

    def _handle(self, signum, frame):
        self.requested = True
        self.signal_name = signal.Signals(signum).name

    def __enter__(self) -> "StopRequest":
        if threading.current_thread() is threading.main_thread():
            for sig in self.signals:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def agreed(self, strategy: tf.distribute.Strategy) -> bool:
        """True if this process, or in a multi-worker run any worker, was asked to stop.

        Every worker must save the same checkpoint at the same step (saving is
        collective), so workers agree with one tiny all-reduce per host call.
        """
        if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
            return self.requested
        if self._vote is None:
            # Compiled once: eager collectives warn about their overhead on every call.
            @tf.function
            def vote(flag):
                votes = strategy.run(tf.identity, args=(flag,))
                return strategy.reduce(tf.distribute.ReduceOp.SUM, votes, axis=None)
            self._vote = vote
        return float(self._vote(tf.constant(1.0 if self.requested else 0.0))) > 0


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
    return ", ".join(f"{k} {v:+.4f}" if math.isfinite(v) else f"{k} {v}"
                     for k, v in metrics.items())
