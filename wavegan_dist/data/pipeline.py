"""deeplake -> tf.data: the sharded, per-replica-batched input pipeline.

The order of examples is a pure function of (seed, global batch index): each
epoch is a seeded permutation of the selected rows, global batch b is the next
`global_batch` rows of it, and replica r's part of that batch is the r-th block
of `per_replica` rows. An input pipeline serving replicas [r0, r1) reads only
those replicas' rows (disjoint from every other pipeline), many rows per deeplake
call, with the next read issued before the current one is consumed. Because the
order does not depend on the number of pipelines or replicas, a run gives the
same global batches on 1 or N replicas, and a resumed run continues exactly where
the interrupted one stopped (it starts at batch `step * n_critic`).
"""

from __future__ import annotations

from typing import Callable, Iterator

import numpy as np
import tensorflow as tf

from wavegan_dist.data.source import DataSource
from wavegan_dist.errors import UserError

PCM_SCALE = 1.0 / 32768.0


class BatchPlan:
    """Which rows make up each global batch.

    Args:
      num_rows: number of selected rows.
      global_batch: examples per global batch; an epoch's last partial batch is dropped.
      seed: the run's seed; epoch e uses the permutation seeded by (seed, e).
      shuffle: False keeps dataset order in every epoch.
    """

    def __init__(self, num_rows: int, global_batch: int, seed: int, shuffle: bool = True):
        if num_rows < global_batch:
            raise UserError(f"the dataset has {num_rows} selected rows, fewer than one global "
                            f"batch (--batch_size={global_batch}); lower --batch_size or use more rows")
        self.num_rows = num_rows
        self.global_batch = global_batch
        self.seed = seed
        self.shuffle = shuffle
        self.batches_per_epoch = num_rows // global_batch
        self._epoch = -1
        self._perm = np.arange(num_rows)

    def _order(self, epoch: int) -> np.ndarray:
        if epoch != self._epoch:
            self._epoch = epoch
            self._perm = (np.random.default_rng([self.seed, epoch]).permutation(self.num_rows)
                          if self.shuffle else np.arange(self.num_rows))
        return self._perm

    def batch(self, index: int) -> np.ndarray:
        """Positions (into the selected rows) of global batch `index`: int64 [global_batch]."""
        epoch, within = divmod(index, self.batches_per_epoch)
        start = within * self.global_batch
        return self._order(epoch)[start:start + self.global_batch]


def replica_block(num_replicas: int, num_pipelines: int, pipeline_id: int) -> tuple[int, int]:
    """The replicas [first, last) that input pipeline `pipeline_id` feeds.

    tf.distribute hands a pipeline's consecutive batches to its local replicas in
    turn, and pipelines (workers/hosts) own consecutive replica ids.
    """
    if num_replicas % num_pipelines:
        raise UserError(f"{num_replicas} replicas cannot be split evenly over "
                        f"{num_pipelines} input pipelines")
    per_pipeline = num_replicas // num_pipelines
    return pipeline_id * per_pipeline, (pipeline_id + 1) * per_pipeline


class ShardReader:
    """Yields one input pipeline's per-replica batches of int16 audio, in order.

    Each yielded array is int16 [per_replica, slice_len]: for every global batch,
    the batches of replicas first..last-1, in replica order.
    """

    def __init__(self, source: DataSource, plan: BatchPlan, per_replica: int,
                 replicas: tuple[int, int], slice_len: int, start_batch: int = 0,
                 read_rows: int = 256):
        self.source = source
        self.plan = plan
        self.per_replica = per_replica
        self.first, self.last = replicas
        self.slice_len = slice_len
        self.start_batch = start_batch
        rows_per_batch = per_replica * (self.last - self.first)
        self.batches_per_read = max(1, read_rows // rows_per_batch)

    def rows_of_batch(self, index: int) -> np.ndarray:
        """Dataset row ids this pipeline reads for global batch `index`: [replicas * per_replica]."""
        positions = self.plan.batch(index)
        lo, hi = self.first * self.per_replica, self.last * self.per_replica
        return self.source.rows[positions[lo:hi]]

    def _request(self, first_batch: int):
        ids = np.concatenate([self.rows_of_batch(first_batch + i)
                              for i in range(self.batches_per_read)])
        unique, inverse = np.unique(ids, return_inverse=True)
        # Sorted ids make deeplake read each chunk once; `inverse` restores plan order.
        return self.source.dataset["audio"].get_async(unique.tolist()), inverse

    def _fit(self, audio: np.ndarray) -> np.ndarray:
        if audio.shape[1] >= self.slice_len:
            return audio[:, :self.slice_len]
        return np.pad(audio, [(0, 0), (0, self.slice_len - audio.shape[1])])

    def __call__(self) -> Iterator[np.ndarray]:
        batch = self.start_batch
        pending = self._request(batch)
        while True:
            future, inverse = pending
            pending = self._request(batch + self.batches_per_read)  # overlaps the next read
            audio = self._fit(np.asarray(future.result()))[inverse]
            for block in np.split(audio, len(audio) // self.per_replica):
                yield block
            batch += self.batches_per_read


def make_dataset_fn(source: DataSource, slice_len: int, global_batch: int, seed: int,
                    shuffle: bool = True, start_batch: int = 0,
                    read_rows: int = 256) -> Callable[[tf.distribute.InputContext], tf.data.Dataset]:
    """Returns the `dataset_fn` for strategy.distribute_datasets_from_function.

    Args:
      source: the opened dataset and its selected rows.
      slice_len: samples per example (the first slice of each note; zero-padded if short).
      global_batch: examples per step over all replicas.
      seed: permutation seed; shuffle: reshuffle every epoch.
      start_batch: global batch index to start at (resume).
      read_rows: rows fetched per deeplake call (rounded to whole batches).
    Returns:
      dataset_fn(input_context) -> tf.data.Dataset of float32 [per_replica, slice_len, 1]
      in [-1, 1), infinite.
    """
    def dataset_fn(ctx: tf.distribute.InputContext) -> tf.data.Dataset:
        per_replica = ctx.get_per_replica_batch_size(global_batch)
        replicas = replica_block(ctx.num_replicas_in_sync, ctx.num_input_pipelines,
                                 ctx.input_pipeline_id)
        reader = ShardReader(source, BatchPlan(len(source.rows), global_batch, seed, shuffle),
                             per_replica, replicas, slice_len, start_batch, read_rows)
        ds = tf.data.Dataset.from_generator(
            reader, output_signature=tf.TensorSpec([per_replica, slice_len], tf.int16))
        ds = ds.map(lambda pcm: tf.cast(pcm, tf.float32)[..., None] * PCM_SCALE,
                    num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        return ds.prefetch(tf.data.AUTOTUNE)

    return dataset_fn


def global_batch_size_check(global_batch: int, num_replicas: int) -> int:
    """Returns the per-replica batch, or raises UserError if it does not divide evenly."""
    if global_batch % num_replicas:
        raise UserError(f"--batch_size={global_batch} does not divide over {num_replicas} "
                        "replicas; use a multiple of the replica count")
    return global_batch // num_replicas
