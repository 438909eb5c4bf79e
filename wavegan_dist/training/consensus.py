"""Decisions the workers of a multi-worker run must take together, from one all-reduce.

MultiWorkerMirroredStrategy needs every worker to issue the same collectives in the same
order: a save (collective once variables are synchronised on read, as batch-norm
statistics are) or a step that one worker runs and another skips leaves collectives
unmatched, and the run hangs or fails. So a host-side decision (stop now, keep this
checkpoint as the best) is shared by an all-reduce of a few numbers, and so is the state
every worker restored.
"""

from __future__ import annotations

import os
import re
import zlib
from typing import Callable

import numpy as np
import tensorflow as tf

from wavegan_dist.errors import UserError


_SAME_MODEL_DIR = (
    "every worker must see the chief's checkpoints in the same --model_dir "
    "(this worker's is {model_dir}): use one shared path (for example gs://...) "
    "on every host"
)


def _workers(strategy: tf.distribute.Strategy) -> tuple[list[str], int]:
    """(the cluster's task names, this worker's rank): the chief (or worker 0 when there
    is no chief job) is rank 0, then the workers in order."""
    spec = strategy.cluster_resolver.cluster_spec().as_dict()
    names = ["chief"] * len(spec.get("chief", ())) + [
        f"worker {i}" for i in range(len(spec.get("worker", ())))
    ]
    resolver = strategy.cluster_resolver
    chiefs = len(names) - len(spec.get("worker", ()))
    rank = resolver.task_id if resolver.task_type == "chief" else chiefs + resolver.task_id
    return names, rank


class Workers:
    """The workers of `strategy`'s run, for host values they must agree on.

    With any strategy but MultiWorkerMirroredStrategy there is one worker and nothing is
    exchanged.

    Args:
      strategy: the run's strategy.
    """

    def __init__(self, strategy: tf.distribute.Strategy):
        self.strategy = strategy
        self.multi = isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)
        self.names, self.rank = _workers(strategy) if self.multi else (["this worker"], 0)
        self.count = len(self.names)
        # Every local replica adds this worker's values once more.
        self._local_replicas = strategy.num_replicas_in_sync // self.count
        self._sum: Callable[[tf.Tensor], tf.Tensor] | None = None

    def gather(self, values) -> np.ndarray:
        """Every worker's `values`, from one all-reduce (a collective: every worker must
        call it at the same point with as many values).

        Args:
          values: k numbers; integers below 2**53 come back exactly.
        Returns:
          float64 [workers, k], row r holding rank r's values (rank 0 is the chief).
        """
        values = np.asarray(values, np.float64).reshape(-1)
        if not self.multi:
            return values[None]
        if self._sum is None:
            # Compiled: eager collectives warn about their overhead on every call.
            @tf.function
            def total(slots):
                per_replica = self.strategy.run(tf.identity, args=(slots,))
                return self.strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)

            self._sum = total
        slots = np.zeros([self.count, values.size], np.float64)
        slots[self.rank] = values
        summed = self._sum(tf.constant(slots)).numpy()
        return summed / self._local_replicas

    def any(self, flag: bool) -> bool:
        """True if `flag` is true on any worker (a collective)."""
        return bool(self.gather([float(flag)]).max() > 0)

    def chief_says(self, flag: bool) -> bool:
        """The chief's `flag`, on every worker (a collective; other workers' flags are
        ignored)."""
        return bool(self.gather([float(flag)])[0, 0] > 0)

    def check_same_checkpoint(self, path: str | None, model_dir: str) -> None:
        """Stops the run unless every worker is about to restore the same checkpoint.

        Checked before restoring, because restoring is collective for variables
        synchronised on read (batch-norm statistics): a worker with nothing to restore
        would leave its peers' restore collectives unmatched. A worker that cannot read
        the chief's checkpoints (a local --model_dir on each host, a different bucket)
        is what this catches.

        Args:
          path: this worker's checkpoint to restore (a `ckpt-N` path prefix), or None.
          model_dir: the run's --model_dir on this worker (named in the message).
        Raises:
          UserError naming each worker's checkpoint when they differ.
        """
        if not self.multi:
            return
        name = os.path.basename(path) if path else ""
        number = int(name[5:]) if re.fullmatch(r"ckpt-\d+", name) else (-2 if path else -1)
        rows = self.gather([number])[:, 0]
        if np.all(rows == rows[0]):
            return
        found = {-1: "no checkpoint", -2: "a checkpoint not named ckpt-N"}
        states = ", ".join(
            f"{who} {found.get(int(n), f'ckpt-{int(n)}')}" for who, n in zip(self.names, rows)
        )
        raise UserError(
            f"the workers would resume from different checkpoints ({states}); "
            + _SAME_MODEL_DIR.format(model_dir=model_dir)
        )

    def check_same_state(self, step: int, variables, model_dir: str) -> None:
        """Stops the run unless every worker holds the same step and weights.

        Run after check_same_checkpoint and the restore: workers that restored checkpoints
        of the same number from different runs (a different bucket) would silently train
        different models, and loops of different lengths would hang. Compares the step
        and a CRC32 of the variables' bytes, in one all-reduce (reading variables
        synchronised on read is itself collective, in the same order on every worker).

        Args:
          step: the step this worker restored (0 if it found no checkpoint).
          variables: the trained state (models, optimizers, EMA), in the same order on
            every worker.
          model_dir: the run's --model_dir on this worker (named in the message).
        Raises:
          UserError naming each worker's step and checksum when they differ.
        """
        if not self.multi:
            return
        crc = 0
        for var in variables:
            crc = zlib.crc32(np.ascontiguousarray(var.numpy()).tobytes(), crc)
        rows = self.gather([step, crc])
        if np.all(rows == rows[0]):
            return
        states = ", ".join(
            f"{name} step {int(s)} (weights crc32 {int(c):08x})"
            for name, (s, c) in zip(self.names, rows)
        )
        what = "step" if np.any(rows[:, 0] != rows[0, 0]) else "weights"
        raise UserError(
            f"the workers restored different states ({what} differs: {states}); "
            + _SAME_MODEL_DIR.format(model_dir=model_dir)
        )
