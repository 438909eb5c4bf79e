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

from wavegan_dist.data.names import SHUFFLES
from wavegan_dist.data import schema
from wavegan_dist.data.source import DataSource
from wavegan_dist.errors import UserError

PCM_SCALE = schema.PCM_SCALE
DENSE_SPAN = 2.5  # read a row range instead of a row list when it is at most this much larger
READS_IN_FLIGHT = 2
RUN_GAP = 16  # rows further apart than this start a new contiguous read


def examples_from_notes(
    notes: np.ndarray, offsets: np.ndarray, slice_len: int, normalize: str = "none"
) -> tuple[np.ndarray, np.ndarray]:
    """Cuts training examples out of stored notes, and says how to scale each.

    Args:
      notes: int16 [N, stored_len] PCM.
      offsets: int [N] first sample of each example.
      slice_len: samples per example; windows past the note's end are zero.
      normalize: "none" (PCM / 32768: the stored level, which carries velocity) or
        "peak" (PCM / the whole note's peak, so each note peaks at 1).
    Returns:
      (int16 [N, slice_len] PCM, float32 [N] scale); PCM * scale is in [-1, 1].
    """
    n, stored = notes.shape
    # Padding the notes once lets every window, at any offset, be a plain view.
    padded = np.pad(notes, [(0, 0), (0, max(0, int(offsets.max(initial=0)) + slice_len - stored))])
    if not offsets.any():
        pcm = padded[:, :slice_len]
    else:
        windows = np.lib.stride_tricks.sliding_window_view(padded, slice_len, axis=1)
        pcm = windows[np.arange(n), offsets]
    scale = np.full(n, PCM_SCALE, np.float32)
    if normalize == "peak":
        peak = np.abs(notes.astype(np.int32)).max(axis=1)
        scale = np.where(peak > 0, 1.0 / np.maximum(peak, 1), PCM_SCALE).astype(np.float32)
    return pcm, scale


class BatchPlan:
    """Which rows make up each global batch.

    Each epoch is one ordering of all selected rows, seeded by (seed, epoch), cut
    into consecutive global batches (an epoch's last partial batch is dropped).

    Args:
      num_rows: number of selected rows.
      global_batch: examples per global batch.
      seed: the run's seed.
      shuffle: "rows": a full per-row permutation (scattered reads). "blocks": blocks
        of `block_rows` consecutive rows in random order, then rows shuffled within
        each window of `window_rows`; reads then cover contiguous runs, which deeplake
        serves 2-3x faster than scattered rows from a dataset larger than its chunk
        cache, at the cost of batches drawn from fewer places. "none": dataset order.
      block_rows: rows per block ("blocks" only).
      window_rows: rows per shuffle window ("blocks" only), rounded to whole batches.
    """

    def __init__(
        self,
        num_rows: int,
        global_batch: int,
        seed: int,
        shuffle: str = "rows",
        block_rows: int = 64,
        window_rows: int = 1024,
    ):
        if num_rows < global_batch:
            raise UserError(
                f"the dataset has {num_rows} selected rows, fewer than one global "
                f"batch (--batch_size={global_batch}); lower --batch_size or use more rows"
            )
        if shuffle not in SHUFFLES:
            raise UserError(f"--shuffle={shuffle} is not one of {', '.join(SHUFFLES)}")
        self.num_rows = num_rows
        self.global_batch = global_batch
        self.seed = seed
        self.shuffle = shuffle
        self.block_rows = max(1, block_rows)
        self.window_rows = max(1, window_rows // global_batch) * global_batch
        self.batches_per_epoch = num_rows // global_batch
        self._epoch = -1
        self._perm = np.arange(num_rows)

    def order(self, epoch: int) -> np.ndarray:
        """The positions of all selected rows in epoch `epoch`'s order: int64 [num_rows]."""
        if epoch == self._epoch:
            return self._perm
        rng = np.random.default_rng([self.seed, epoch])
        n = self.num_rows
        if self.shuffle == "rows":
            perm = rng.permutation(n)
        elif self.shuffle == "blocks":
            starts = rng.permutation(-(-n // self.block_rows)) * self.block_rows
            perm = np.concatenate([np.arange(b, min(b + self.block_rows, n)) for b in starts])
            for w in range(0, n, self.window_rows):
                perm[w : w + self.window_rows] = rng.permutation(perm[w : w + self.window_rows])
        else:
            perm = np.arange(n)
        self._epoch, self._perm = epoch, perm
        return perm

    def batch(self, index: int) -> np.ndarray:
        """Positions (into the selected rows) of global batch `index`: int64 [global_batch]."""
        epoch, within = divmod(index, self.batches_per_epoch)
        start = within * self.global_batch
        return self.order(epoch)[start : start + self.global_batch]


def replica_block(num_replicas: int, num_pipelines: int, pipeline_id: int) -> tuple[int, int]:
    """The replicas [first, last) that input pipeline `pipeline_id` feeds.

    tf.distribute hands a pipeline's consecutive batches to its local replicas in
    turn, and pipelines (workers/hosts) own consecutive replica ids.
    """
    if num_replicas % num_pipelines:
        raise UserError(
            f"{num_replicas} replicas cannot be split evenly over {num_pipelines} input pipelines"
        )
    per_pipeline = num_replicas // num_pipelines
    return pipeline_id * per_pipeline, (pipeline_id + 1) * per_pipeline


class ShardReader:
    """Yields one input pipeline's per-replica batches, in order.

    Each yielded triple is (int16 [per_replica, slice_len] PCM, float32 [per_replica]
    scale, int32 [per_replica] label): for every global batch, the batches of
    replicas first..last-1, in replica order. PCM * scale is the example in [-1, 1].

    Args:
      source: the opened dataset and its selected rows.
      plan: the BatchPlan shared by all pipelines.
      per_replica: examples per replica batch.
      replicas: (first, last) replica ids this pipeline feeds.
      slice_len: samples per example; notes shorter than that are zero-padded.
      start_batch: global batch index to start at.
      read_rows: about how many rows one deeplake read fetches.
      slice_offset: "start" (first slice of each note) or "random" (a window at a
        random offset, drawn per global position from (seed, batch), so it is the
        same for any number of pipelines and on resume).
      normalize: "none" (stored level, which carries velocity) or "peak" (each note
        scaled so its peak over the whole stored note is 1).
      seed: the run's seed, for random offsets.
      labels: int [len(source.rows)], the conditioning label of each selected row
        (held in memory: metadata is small), or None to yield zeros.
    """

    def __init__(
        self,
        source: DataSource,
        plan: BatchPlan,
        per_replica: int,
        replicas: tuple[int, int],
        slice_len: int,
        start_batch: int = 0,
        read_rows: int = 1024,
        slice_offset: str = "start",
        normalize: str = "none",
        seed: int = 0,
        labels: np.ndarray | None = None,
    ):
        self.source = source
        self.plan = plan
        self.per_replica = per_replica
        self.first, self.last = replicas
        self.slice_len = slice_len
        self.start_batch = start_batch
        self.slice_offset = slice_offset
        self.normalize = normalize
        self.seed = seed
        self.labels = (
            np.zeros(len(source.rows), np.int32) if labels is None else np.asarray(labels, np.int32)
        )
        rows_per_batch = per_replica * (self.last - self.first)
        self.batches_per_read = max(1, read_rows // rows_per_batch)

    def _block(self, values: np.ndarray) -> np.ndarray:
        return values[self.first * self.per_replica : self.last * self.per_replica]

    def rows_of_batch(self, index: int) -> np.ndarray:
        """Dataset row ids this pipeline reads for global batch `index`: [replicas * per_replica]."""
        return self.source.rows[self._block(self.plan.batch(index))]

    def offsets_of_batch(self, index: int) -> np.ndarray:
        """First sample of each of this pipeline's examples of global batch `index`."""
        room = self.source.num_samples - self.slice_len
        if self.slice_offset == "start" or room <= 0:
            return np.zeros(self.per_replica * (self.last - self.first), np.int64)
        rng = np.random.default_rng([self.seed, 0x5EED, index])
        return self._block(rng.integers(0, room + 1, self.plan.global_batch))

    def labels_of_batch(self, index: int) -> np.ndarray:
        """Labels of this pipeline's examples of global batch `index`: int32 [replicas * per_replica]."""
        return self.labels[self._block(self.plan.batch(index))]

    def _request(self, first_batch: int):
        batches = range(first_batch, first_batch + self.batches_per_read)
        ids = np.concatenate([self.rows_of_batch(b) for b in batches])
        offsets = np.concatenate([self.offsets_of_batch(b) for b in batches])
        labels = np.concatenate([self.labels_of_batch(b) for b in batches])
        unique, inverse = np.unique(ids, return_inverse=True)
        return read_column_rows(self.source.dataset["audio"], unique), inverse, offsets, labels

    def __call__(self) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        step = self.batches_per_read
        # READS_IN_FLIGHT reads are always pending, so deeplake works while we slice
        # (so up to READS_IN_FLIGHT + 1 reads' rows are in memory at once).
        pending = [self._request(self.start_batch + i * step) for i in range(READS_IN_FLIGHT)]
        batch = self.start_batch + READS_IN_FLIGHT * step
        try:
            while True:
                future, pick, offsets, labels = pending.pop(0)
                pending.append(self._request(batch))
                batch += step
                pcm, scale = examples_from_notes(
                    np.asarray(future.result())[pick], offsets, self.slice_len, self.normalize
                )
                for start in range(0, len(pcm), self.per_replica):
                    end = start + self.per_replica
                    yield pcm[start:end], scale[start:end], labels[start:end]
        finally:
            # A deeplake read still in flight when the interpreter shuts down can hang
            # the process at exit (seen here), so a closed reader settles its reads.
            for read, *_ in pending:
                read.result()


class _Read:
    """Asynchronous reads of sorted rows; result() gives them stacked in that order."""

    def __init__(self, parts):
        self.parts = parts  # [(future, pick or None)]

    def result(self) -> np.ndarray:
        out = []
        for future, pick in self.parts:
            data = np.asarray(future.result())
            out.append(data if pick is None else data[pick])
        return out[0] if len(out) == 1 else np.concatenate(out)


def read_column_rows(column, rows: np.ndarray) -> _Read:
    """Starts reading sorted, unique `rows` of a column.

    Rows are split into runs at large gaps; a run that is dense in its span is read
    as one contiguous range (deeplake serves ranges about 3x faster per row than a
    row list) and the wanted rows picked from it; a sparse run is read as a list.

    Args:
      column: a deeplake column (for example dataset["audio"]).
      rows: sorted, unique row indices, int [n].
    Returns:
      The pending read; its result() is the rows' values, [n, ...].
    """
    gaps = np.flatnonzero(np.diff(rows) > RUN_GAP) + 1
    parts = []
    for run in np.split(rows, gaps):
        lo, hi = int(run[0]), int(run[-1]) + 1
        if hi - lo <= DENSE_SPAN * len(run):
            parts.append(
                (column.get_async(slice(lo, hi)), None if hi - lo == len(run) else run - lo)
            )
        else:
            parts.append((column.get_async(run.tolist()), None))
    return _Read(parts)


def make_dataset_fn(
    source: DataSource,
    slice_len: int,
    global_batch: int,
    seed: int,
    shuffle: str = "rows",
    start_batch: int = 0,
    read_rows: int = 1024,
    shuffle_window: int = 1024,
    slice_offset: str = "start",
    normalize: str = "none",
    labels: np.ndarray | None = None,
) -> Callable[[tf.distribute.InputContext], tf.data.Dataset]:
    """Returns the `dataset_fn` for strategy.distribute_datasets_from_function.

    Args:
      source: the opened dataset and its selected rows.
      slice_len: samples per example (zero-padded if the note is shorter).
      global_batch: examples per step over all replicas.
      seed: order seed; shuffle: see BatchPlan ("blocks", "rows" or "none").
      shuffle_window: BatchPlan's window_rows (part of the data order, unlike read_rows).
      start_batch: global batch index to start at (resume).
      read_rows: rows fetched per deeplake call (rounded to whole batches).
      slice_offset, normalize, labels: see ShardReader.
    Returns:
      dataset_fn(input_context) -> infinite tf.data.Dataset of pairs (audio float32
      [per_replica, slice_len, 1] in [-1, 1], label int32 [per_replica]).
    """

    def dataset_fn(ctx: tf.distribute.InputContext) -> tf.data.Dataset:
        per_replica = ctx.get_per_replica_batch_size(global_batch)
        replicas = replica_block(
            ctx.num_replicas_in_sync, ctx.num_input_pipelines, ctx.input_pipeline_id
        )
        plan = BatchPlan(len(source.rows), global_batch, seed, shuffle, window_rows=shuffle_window)
        reader = ShardReader(
            source,
            plan,
            per_replica,
            replicas,
            slice_len,
            start_batch,
            read_rows,
            slice_offset,
            normalize,
            seed,
            labels,
        )
        ds = tf.data.Dataset.from_generator(
            reader,
            output_signature=(
                tf.TensorSpec([per_replica, slice_len], tf.int16),
                tf.TensorSpec([per_replica], tf.float32),
                tf.TensorSpec([per_replica], tf.int32),
            ),
        )
        ds = ds.map(
            lambda pcm, scale, label: (
                (tf.cast(pcm, tf.float32) * scale[:, None])[..., None],
                label,
            ),
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=True,
        )
        return ds.prefetch(tf.data.AUTOTUNE)

    return dataset_fn


def global_batch_size_check(global_batch: int, num_replicas: int) -> int:
    """Returns the per-replica batch, or raises UserError if it does not divide evenly."""
    if global_batch % num_replicas:
        raise UserError(
            f"--batch_size={global_batch} does not divide over {num_replicas} "
            "replicas; use a multiple of the replica count"
        )
    return global_batch // num_replicas
