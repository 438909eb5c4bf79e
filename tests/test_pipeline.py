"""The deeplake -> tf.data pipeline on a real built-in dataset on disk."""

import numpy as np
import pytest
import tensorflow as tf

from wavegan_dist import strategy as strategies
from wavegan_dist.data import pipeline
from wavegan_dist.data.source import load_source
from wavegan_dist.errors import UserError

SLICE = 1024


@pytest.fixture(scope="module")
def source(builtin_root):
    return load_source(builtin_root, "train")


def _take(
    source,
    global_batch,
    num_replicas,
    num_pipelines,
    pipeline_id,
    n,
    start_batch=0,
    read_rows=64,
    labels=None,
    with_labels=False,
):
    """First n elements of one input pipeline, as an int16 numpy array [n, P, SLICE]
    (and their labels [n, P] if with_labels)."""
    ctx = tf.distribute.InputContext(num_pipelines, pipeline_id, num_replicas)
    ds = pipeline.make_dataset_fn(
        source,
        SLICE,
        global_batch,
        seed=3,
        start_batch=start_batch,
        read_rows=read_rows,
        labels=labels,
    )(ctx)
    elements = list(ds.take(n))
    out = np.stack([audio.numpy() for audio, _ in elements])
    assert out.dtype == np.float32 and out.shape[-1] == 1
    pcm = np.round(out[..., 0] * 32768).astype(np.int16)
    if with_labels:
        return pcm, np.stack([label.numpy() for _, label in elements])
    return pcm


def test_elements_are_the_planned_rows_first_slice(source):
    plan = pipeline.BatchPlan(len(source.rows), 8, seed=3)
    got = _take(source, 8, 1, 1, 0, 3)
    audio = source.dataset["audio"]
    for b in range(3):
        rows = source.rows[plan.batch(b)].tolist()
        np.testing.assert_array_equal(got[b], np.asarray(audio[rows])[:, :SLICE])


def test_two_pipelines_read_disjoint_rows_that_make_up_the_global_batch(source):
    global_batch, steps = 8, 40  # 40 batches of 8 = one full epoch of 320 rows
    plan = pipeline.BatchPlan(len(source.rows), global_batch, seed=3)
    readers = [
        pipeline.ShardReader(source, plan, 4, pipeline.replica_block(2, 2, p), SLICE)
        for p in range(2)
    ]
    rows = [np.concatenate([r.rows_of_batch(b) for b in range(steps)]) for r in readers]
    assert not set(rows[0]) & set(rows[1])
    assert len(set(rows[0])) == len(rows[0]) == 160  # no row twice within the epoch
    # Element-wise, pipeline p's batches are exactly replica p's part of each global batch.
    single = _take(source, global_batch, 1, 1, 0, 5)
    halves = [_take(source, global_batch, 2, 2, p, 5) for p in range(2)]
    np.testing.assert_array_equal(np.concatenate(halves, axis=1), single)


def test_labels_travel_with_their_rows(source):
    pitch = np.asarray(source.dataset["pitch"][:]).reshape(-1)[source.rows].astype(np.int32)
    plan = pipeline.BatchPlan(len(source.rows), 8, seed=3)
    _, single = _take(source, 8, 1, 1, 0, 3, labels=pitch, with_labels=True)
    for b in range(3):
        np.testing.assert_array_equal(single[b], pitch[plan.batch(b)])
    halves = [_take(source, 8, 2, 2, p, 3, labels=pitch, with_labels=True)[1] for p in range(2)]
    np.testing.assert_array_equal(np.concatenate(halves, axis=1), single)
    _, none = _take(source, 8, 1, 1, 0, 1, with_labels=True)
    assert none.dtype == np.int32 and not none.any()  # unconditional: zeros


def test_one_pipeline_for_two_local_replicas_interleaves_them(source):
    single = _take(source, 8, 1, 1, 0, 3)
    local = _take(source, 8, 2, 1, 0, 6)  # replica 0, replica 1, replica 0, ...
    np.testing.assert_array_equal(local.reshape(3, 8, SLICE), single)


def test_start_batch_continues_the_same_sequence(source):
    straight = _take(source, 8, 1, 1, 0, 7, read_rows=24)
    resumed = _take(source, 8, 1, 1, 0, 3, start_batch=4, read_rows=24)
    np.testing.assert_array_equal(resumed, straight[4:])


@pytest.mark.parametrize("shuffle", ["blocks", "rows"])
def test_epochs_are_reshuffled_and_cover_every_row(source, shuffle):
    plan = pipeline.BatchPlan(len(source.rows), 16, seed=3, shuffle=shuffle)
    epoch0 = np.concatenate([plan.batch(b) for b in range(plan.batches_per_epoch)])
    epoch1 = np.concatenate(
        [plan.batch(b + plan.batches_per_epoch) for b in range(plan.batches_per_epoch)]
    )
    assert sorted(epoch0) == sorted(epoch1) == list(range(320))
    assert not np.array_equal(epoch0, epoch1)
    assert np.array_equal(
        pipeline.BatchPlan(320, 16, 3, shuffle="none").batch(1), np.arange(16, 32)
    )


def test_block_shuffle_keeps_windows_of_whole_blocks():
    plan = pipeline.BatchPlan(1000, 10, seed=0, shuffle="blocks", block_rows=50, window_rows=200)
    order = plan.order(0)
    assert sorted(order) == list(range(1000))
    for w in range(0, 1000, 200):
        window = order[w : w + 200]
        blocks = set(window // 50)
        assert len(blocks) == 4 and sorted(window) == sorted(
            np.concatenate([np.arange(b * 50, b * 50 + 50) for b in blocks])
        )
        assert not np.array_equal(window, np.sort(window))  # shuffled inside the window
    assert not np.array_equal(plan.order(0) // 50, plan.order(1) // 50)


def test_reads_of_runs_and_scattered_rows_return_the_rows_asked_for(source):
    column = source.dataset["audio"]
    rows = np.array([0, 1, 2, 3, 5, 9, 40, 41, 200, 319])
    got = pipeline.read_column_rows(column, rows).result()
    np.testing.assert_array_equal(got, np.asarray(column[rows.tolist()]))


@pytest.mark.slow
def test_distributed_dataset_feeds_each_replica_its_part(source):
    strategy = strategies.mirrored(["/cpu:0", "/cpu:1"])
    dist = strategy.distribute_datasets_from_function(
        pipeline.make_dataset_fn(source, SLICE, 8, seed=3)
    )
    first = next(iter(dist))
    parts = [t.numpy() for t in strategy.experimental_local_results(first[0])]
    single = _take(source, 8, 1, 1, 0, 1)[0]
    got = np.round(np.concatenate(parts)[..., 0] * 32768).astype(np.int16)
    np.testing.assert_array_equal(got, single)


def test_short_audio_is_zero_padded_and_bad_batches_are_refused(source):
    reader = pipeline.ShardReader(source, pipeline.BatchPlan(320, 8, 0), 8, (0, 1), 70000)
    block, scale, _ = next(iter(reader()))
    assert block.shape == (8, 70000) and not block[:, 64000:].any()
    np.testing.assert_array_equal(scale, np.full(8, 1 / 32768, np.float32))
    with pytest.raises(UserError, match="fewer than one global batch"):
        pipeline.BatchPlan(4, 8, 0)
    with pytest.raises(UserError, match="does not divide"):
        pipeline.global_batch_size_check(9, 2)


def test_wrong_schema_and_missing_dataset_are_user_errors(tmp_path):
    import deeplake

    ds = deeplake.create(str(tmp_path / "other"))
    ds.add_column("audios", deeplake.types.Array("float32", shape=[16]))
    ds.commit("not nsynth")
    with pytest.raises(UserError, match="not in the NSynth schema: missing column\\(s\\) audio, "):
        load_source(str(tmp_path / "other"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="cannot open deeplake dataset"):
        load_source(str(tmp_path / "empty"))
