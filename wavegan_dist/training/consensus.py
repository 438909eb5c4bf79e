"""Decisions the workers of a multi-worker run must take together, from one all-reduce.

MultiWorkerMirroredStrategy needs every worker to issue the same collectives in the same
order: a save (collective once variables are synchronised on read, as batch-norm
statistics are) or a step that one worker runs and another skips leaves collectives
unmatched, and the run hangs or fails. So a host-side decision (stop now, keep this
checkpoint as the best) is shared by an all-reduce of a few numbers, and so is the state
every worker restored.
"""

from __future__ import annotations

import zlib

import numpy as np
import tensorflow as tf

from wavegan_dist.errors import UserError


def _workers(strategy: tf.distribute.Strategy) -> tuple[list[str], int]:
    """(the cluster's task names, this worker's rank): the chief (or worker 0 when there
    is no chief job) is rank 0, then the workers in order."""
    spec = strategy.cluster_resolver.cluster_spec().as_dict()
    names = (["chief"] * len(spec.get("chief", ()))
             + [f"worker {i}" for i in range(len(spec.get("worker", ())))])
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
        self._sum = None

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

    def check_same_state(self, step: int, variables, model_dir: str) -> None:
        """Stops the run unless every worker holds the same step and weights.

        A worker that cannot read the chief's checkpoints (a local --model_dir on each
        host, a different bucket) would start from another step or other weights: the
        loops then differ in length (a hang) or the replicas silently train different
        models. Compares the step and a CRC32 of the variables' bytes, in one all-reduce.

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
        states = ", ".join(f"{name} step {int(s)} (weights crc32 {int(c):08x})"
                           for name, (s, c) in zip(self.names, rows))
        what = "step" if np.any(rows[:, 0] != rows[0, 0]) else "weights"
        raise UserError(
            f"the workers restored different states ({what} differs: {states}); every worker "
            f"must see the chief's checkpoints in the same --model_dir (this worker's is "
            f"{model_dir}): use one shared path (for example gs://...) on every host")
