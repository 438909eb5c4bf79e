"""Prepared folder -> the input of a training run, in TensorFlow ops only.

The per-pipeline dataset holds no Python function (no PyFunc), so tf.data can run
it on any host of a multi-host TPU slice or under tf.data service. Input pipeline
p of P reads shards p, p+P, ... (disjoint files). The stream, per epoch e:
its shards in a (seed, e, p)-seeded order, read round-robin (deterministic
parallel interleave) -> a shuffle buffer seeded by (seed, e, p) -> the first
`batches_per_epoch * per_pipeline` records (the same count on every pipeline) ->
per-replica batches -> [with --slice_offset=random, a window at an offset drawn
per position in the epoch, seeded by (seed, e, p)] -> decoded, scaled float32
audio and int32 labels.

Batch b of the run is batch b % batches_per_epoch of epoch b // batches_per_epoch,
so a resumed run rebuilds the input from its step: it starts at that epoch and
skips the records before that batch (read and shuffled, not decoded).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow as tf

from wavegan_dist.data import pipeline
from wavegan_dist.data.prepared import manifest as mf
from wavegan_dist.errors import UserError

SHUFFLE_BYTES = 128 << 20  # per-pipeline shuffle buffer: about this many bytes of records
MIN_SHUFFLE = 1024  # ... but at least this many records (when the pipeline holds more)
CYCLE = 16  # shards read at once by one pipeline
READ_BUFFER = 1 << 20  # bytes of read-ahead per open shard
MAX_EPOCHS = 2**62


@dataclasses.dataclass(frozen=True)
class PreparedSource:
    """A complete prepared folder that a run trains on.

    Attributes:
      path: the folder (local path or gs:// URL).
      manifest: its manifest (dict; see manifest.py).
      sample_rate: Hz.
      label_counts: int64 [classes] examples per class, or None without --condition.
    """

    path: str
    manifest: dict
    sample_rate: int
    label_counts: np.ndarray | None

    @property
    def examples(self) -> int:
        """Examples in the folder."""
        return int(self.manifest["examples"])

    def files(self) -> list[str]:
        """Paths of all shards, in shard order."""
        return [mf.join(self.path, s["file"]) for s in self.manifest["shards"]]

    def head(self, count: int) -> tuple[np.ndarray, np.ndarray]:
        """The first `count` examples of shard 0 (the first slice of each, as the critic
        would see them at offset 0): (float32 [K, slice_len, 1], int32 [K] labels)."""
        ds = tf.data.TFRecordDataset(self.files()[0]).take(count).batch(count)
        audio, labels = decode(
            next(iter(ds)), self.manifest["stored_len"], self.manifest["slice_len"]
        )
        return audio.numpy(), labels.numpy()

    def make_dataset_fn(self, global_batch: int, seed: int, start_batch: int = 0):
        """The `dataset_fn` for strategy.distribute_datasets_from_function.

        Args:
          global_batch: examples per step over all replicas.
          seed: the run's seed (epoch shuffles and random offsets).
          start_batch: global batch index to start at (resume).
        Returns:
          dataset_fn(input_context) -> infinite tf.data.Dataset of pairs (audio
          float32 [per_replica, slice_len, 1] in [-1, 1], label int32 [per_replica]).
        """

        def dataset_fn(ctx: tf.distribute.InputContext) -> tf.data.Dataset:
            per_replica = ctx.get_per_replica_batch_size(global_batch)
            first, last = pipeline.replica_block(
                ctx.num_replicas_in_sync, ctx.num_input_pipelines, ctx.input_pipeline_id
            )
            return self.pipeline_dataset(
                ctx.num_input_pipelines,
                ctx.input_pipeline_id,
                per_replica,
                (last - first) * per_replica,
                seed,
                start_batch,
            )

        return dataset_fn

    def batches_per_epoch(self, num_pipelines: int, per_pipeline: int) -> int:
        """Global batches per epoch: what the pipeline with the fewest examples can fill."""
        shards = self.manifest["shards"]
        if len(shards) < num_pipelines:
            raise UserError(
                f"--data={self.path} has {len(shards)} shards, fewer than the "
                f"{num_pipelines} input pipelines of this run; prepare it again "
                f"with --shards={num_pipelines} or a multiple of it"
            )
        fewest = min(
            sum(s["examples"] for s in shards[p::num_pipelines]) for p in range(num_pipelines)
        )
        batches = fewest // per_pipeline
        if batches < 1:
            raise UserError(
                f"--data={self.path}: an input pipeline holds {fewest} examples, "
                f"fewer than its {per_pipeline} per batch; lower --batch_size"
            )
        return batches

    def pipeline_dataset(
        self,
        num_pipelines: int,
        pipeline_id: int,
        per_replica: int,
        per_pipeline: int,
        seed: int,
        start_batch: int = 0,
        with_positions: bool = False,
    ) -> tf.data.Dataset:
        """Input pipeline `pipeline_id`'s infinite stream of per-replica batches.

        Args:
          num_pipelines, pipeline_id: from the InputContext.
          per_replica: examples per replica batch.
          per_pipeline: examples per global batch that this pipeline supplies.
          seed: the run's seed.
          start_batch: global batch index to start at.
          with_positions: also yield each example's position in the write order
            (writer.write_order's index, which names its source row), read alongside
            the records: the same stream, for measuring what batches hold.
        Returns:
          tf.data.Dataset of (float32 [per_replica, slice_len, 1], int32 [per_replica]),
          and int64 [per_replica] positions with with_positions.
        """
        stored, slice_len = self.manifest["stored_len"], self.manifest["slice_len"]
        batches = self.batches_per_epoch(num_pipelines, per_pipeline)
        num_shards = len(self.manifest["shards"])
        mine_files = self.files()[pipeline_id::num_pipelines]
        files = tf.constant(mine_files)
        shard_ids = tf.range(pipeline_id, num_shards, num_pipelines, dtype=tf.int64)

        def read(k):
            records = tf.data.TFRecordDataset(tf.gather(files, k), buffer_size=READ_BUFFER)
            if not with_positions:
                return records
            # Shard s holds write positions s, s + S, s + 2S, ... (writer.py).
            return records.enumerate().map(
                lambda n, r: (n * num_shards + tf.gather(shard_ids, k), r)
            )

        mine = sum(s["examples"] for s in self.manifest["shards"][pipeline_id::num_pipelines])
        buffer = min(mine, max(MIN_SHUFFLE, SHUFFLE_BYTES // self.manifest["record_bytes"]))
        start_epoch, within = divmod(start_batch, batches)
        per_epoch = batches * per_pipeline
        room = stored - slice_len

        def epoch(e):
            key = tf.stack([tf.constant(seed, tf.int64), e])
            key = tf.random.experimental.stateless_fold_in(key, pipeline_id)
            order = tf.random.experimental.stateless_shuffle(
                tf.range(len(mine_files)), _sub(key, 1)
            )
            records = tf.data.Dataset.from_tensor_slices(order).interleave(
                read,
                cycle_length=min(CYCLE, len(mine_files)),
                num_parallel_calls=tf.data.AUTOTUNE,
                deterministic=True,
            )
            shuffle_seed = tf.random.stateless_uniform([], _sub(key, 2), 0, 2**62, tf.int64)
            records = records.shuffle(buffer, seed=shuffle_seed).take(per_epoch)
            skip = tf.where(
                e == start_epoch,
                tf.constant(within * per_pipeline, tf.int64),
                tf.constant(0, tf.int64),
            )
            if room == 0:  # every window starts at 0: no per-position offsets to carry
                return records.skip(skip).batch(per_replica, drop_remainder=True)
            # Offsets belong to positions in the epoch, whatever the batch size.
            offsets = tf.random.stateless_uniform([per_epoch], _sub(key, 3), 0, room + 1, tf.int64)
            return (
                records.enumerate()
                .skip(skip)
                .batch(per_replica, drop_remainder=True)
                .map(lambda i, r: (r, tf.gather(offsets, i)))
            )

        def decoded(*element):
            # element: records [+ offsets when room > 0]; records are (positions, bytes)
            # with_positions.
            if room == 0:
                r, o = (element if with_positions else element[0]), None
            else:
                r, o = element
            if with_positions:
                return (*decode(r[1], stored, slice_len, o), r[0])
            return decode(r, stored, slice_len, o)

        ds = tf.data.Dataset.range(start_epoch, MAX_EPOCHS).flat_map(epoch)
        ds = ds.map(decoded, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        return ds.prefetch(tf.data.AUTOTUNE)


def _sub(key, stream: int):
    """A seed for one use of an epoch's key: int64 [2]."""
    return tf.random.experimental.stateless_fold_in(key, stream)


def decode(records, stored_len: int, slice_len: int, offsets=None):
    """Raw records -> examples.

    Args:
      records: string [B] records (layout: manifest.py).
      stored_len: int16 samples per record.
      slice_len: samples per example.
      offsets: int64 [B] first sample of each example's window, or None (0).
    Returns:
      (float32 [B, slice_len, 1] audio in [-1, 1], int32 [B] labels).
    """
    # fixed_length decodes just the PCM (or the window's note) in one copy; the
    # trailer is decoded apart, as int32 so no float op ever touches the label's bits.
    pcm = tf.io.decode_raw(records, tf.int16, fixed_length=2 * stored_len)
    if stored_len != slice_len:
        starts = tf.zeros_like(pcm[:, 0], tf.int64) if offsets is None else offsets
        pcm = tf.gather(pcm, starts[:, None] + tf.range(slice_len, dtype=tf.int64), batch_dims=1)
    trailer = tf.io.decode_raw(
        tf.strings.substr(records, 2 * stored_len, mf.TRAILER_BYTES), tf.int32
    )
    scale = tf.bitcast(trailer[:, 0], tf.float32)
    return (tf.cast(pcm, tf.float32) * scale[:, None])[..., None], trailer[:, 1]


def open_prepared(data: str, cfg, log=print) -> PreparedSource:
    """Opens the prepared folder `data` for a run configured by `cfg`.

    Raises UserError (one line) if it is unfinished, of another version, or was
    prepared with other selection flags (manifest.SELECTION) than cfg's.
    """
    manifest = mf.load_manifest(data)
    mf.check_selection(data, manifest, cfg)
    if cfg.eval_every:
        raise UserError(
            "--eval_every scores against a deeplake held-out split, which prepared "
            "--data does not carry; drop it and score checkpoints with "
            "`python -m wavegan_dist.evaluate`"
        )
    counts = manifest.get("label_counts")
    source = PreparedSource(
        data[len("file://") :] if data.startswith("file://") else data,
        manifest,
        int(manifest["sample_rate"]),
        None if counts is None else np.asarray(counts, np.int64),
    )
    classes = "" if counts is None else f", {sum(c > 0 for c in counts)} {cfg.condition} classes"
    log(
        f"data {data} (prepared from {manifest['source']}): {source.examples} examples in "
        f"{len(manifest['shards'])} shards, {source.sample_rate} Hz, slice "
        f"{manifest['slice_len']} samples{classes}"
    )
    return source
