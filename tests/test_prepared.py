"""The prepared form of a dataset: `prepare`, its shards and manifest, and training on it
(TensorFlow-only input graph, same runs on 1 and 2 replicas, exact resume)."""

import os

import numpy as np
import pytest
import tensorflow as tf

from conftest import (
    TINY_TEST_FLAGS,
    checkpoint_weights,
    error_line,
    kill_when,
    max_diff,
    run_module,
)
from wavegan_dist import strategy as strategies
from wavegan_dist.config import make_config
from wavegan_dist.data import pipeline
from wavegan_dist.data.labels import attach_labels
from wavegan_dist.data.prepared import reader
from wavegan_dist.data.prepared.writer import prepare, write_order
from wavegan_dist.data.source import load_source
from wavegan_dist.errors import UserError
from wavegan_dist.training.loop import run_training

pytestmark = pytest.mark.slow

QUIET = dict(log=lambda _: None)
# 40 examples = 5 global batches of 8 per epoch: 4 steps at n_critic 2 cross an epoch.
SELECTION = dict(slice_len=1024, num_samples=40)


def _cfg(**kw):
    return make_config("tiny", **{**TINY_TEST_FLAGS, **SELECTION, **kw})


def _records(folder):
    """(pcm int16 [N, stored], scale [N], label [N]) of every record of every shard."""
    files = sorted(tf.io.gfile.glob(f"{folder}/shard-*.tfrecord"))
    raw = [r.numpy() for r in tf.data.TFRecordDataset(files)]
    values = np.stack([np.frombuffer(r, "<i2") for r in raw])
    trailer = values[:, -4:].copy()
    return (
        values[:, :-4],
        trailer[:, :2].copy().view("<f4")[:, 0],
        trailer[:, 2:].copy().view("<i4")[:, 0],
    )


def _expected(cfg):
    """The examples a deeplake-path run of cfg reads, in selection order."""
    source = load_source(cfg.data, cfg.split, cfg.row_filter(), **QUIET)
    source, labels = attach_labels(source, cfg.condition, **QUIET)
    notes = np.asarray(source.dataset["audio"][source.rows.tolist()])
    pcm, scale = pipeline.examples_from_notes(
        notes,
        np.zeros(len(notes), np.int64),
        notes.shape[1] if cfg.slice_offset == "random" else cfg.net.slice_len,
        cfg.normalize,
    )
    return pcm, scale, labels


@pytest.fixture(scope="module")
def prepared(tmp_path_factory, builtin_root):
    dest = tmp_path_factory.mktemp("prepared") / "p"
    prepare(_cfg(), str(dest), shards=4, **QUIET)
    return str(dest)


def _source(folder, **kw):
    return reader.open_prepared(folder, _cfg(**kw), **QUIET)


def _stream(
    source, batches, per_replica=8, num_pipelines=1, pipeline_id=0, seed=0, start=0, per_pipeline=8
):
    ds = source.pipeline_dataset(num_pipelines, pipeline_id, per_replica, per_pipeline, seed, start)
    return [(a.numpy(), label.numpy()) for a, label in ds.take(batches)]


def test_shards_hold_every_selected_example_once_in_the_seeded_order(prepared, builtin_root):
    pcm, scale, labels = _records(prepared)
    want_pcm, want_scale, _ = _expected(_cfg())
    order = write_order(40, 0)
    # Shard k holds positions k, k+4, ... of the seeded order.
    positions = np.concatenate([order[k::4] for k in range(4)])
    np.testing.assert_array_equal(pcm, want_pcm[positions])
    np.testing.assert_array_equal(scale, want_scale[positions])
    assert not labels.any()
    assert not np.array_equal(order, np.arange(40))


def _python_ops(make_dataset):
    """Op types that call back into Python in the graph of the dataset `make_dataset()`
    builds (traced in a tf.function) and its function library."""
    graph = tf.function(lambda: make_dataset().cardinality()).get_concrete_function().graph
    graph = graph.as_graph_def()
    ops = [n.op for n in graph.node]
    ops += [n.op for f in graph.library.function for n in f.node_def]
    return sorted({op for op in ops if op in ("PyFunc", "EagerPyFunc", "PyFuncStateless")})


def test_prepared_input_graph_holds_no_python_and_the_deeplake_one_does(prepared, builtin_root):
    ctx = tf.distribute.InputContext(
        num_input_pipelines=1, input_pipeline_id=0, num_replicas_in_sync=2
    )
    native = _source(prepared).make_dataset_fn(8, seed=0, start_batch=3)
    assert _python_ops(lambda: native(ctx)) == []
    source = load_source("builtin", "train", _cfg().row_filter(), **QUIET)
    deeplake_fn = pipeline.make_dataset_fn(source, 1024, 8, seed=0)
    assert (
        _python_ops(lambda: deeplake_fn(ctx)) != []
    )  # the audit does see a PyFunc when there is one


def test_stream_is_per_replica_batches_of_one_sequence_epochs_and_resume(prepared):
    source = _source(prepared)
    whole = _stream(source, 12)  # 12 batches: epochs 0, 1 (5 each) and part of 2
    # Two replicas on one pipeline: their batches concatenate to the same global batches.
    halves = _stream(source, 24, per_replica=4)
    for b, (audio, labels) in enumerate(whole):
        np.testing.assert_array_equal(
            audio, np.concatenate([halves[2 * b][0], halves[2 * b + 1][0]])
        )
    # Each epoch is every example once, in a new order.
    epochs = [np.concatenate([a for a, _ in whole[e * 5 : (e + 1) * 5]]) for e in (0, 1)]
    keys = [sorted(x.tobytes() for x in ep) for ep in epochs]
    assert keys[0] == keys[1] and len(set(keys[0])) == 40
    assert not np.array_equal(epochs[0], epochs[1])
    # Starting at batch 7 (epoch 1, 2 in) continues the same sequence.
    for (a, _), (b, _) in zip(whole[7:], _stream(source, 5, start=7)):
        np.testing.assert_array_equal(a, b)
    # Another seed, another order.
    assert not np.array_equal(whole[0][0], _stream(source, 1, seed=1)[0][0])


def test_two_pipelines_read_disjoint_shards(prepared):
    source = _source(prepared)
    parts = [
        np.concatenate(
            [
                a
                for a, _ in _stream(
                    source, 5, per_replica=4, num_pipelines=2, pipeline_id=p, per_pipeline=4
                )
            ]
        )
        for p in (0, 1)
    ]
    seen = [{x.tobytes() for x in part} for part in parts]
    assert len(seen[0]) == len(seen[1]) == 20 and not seen[0] & seen[1]
    with pytest.raises(UserError, match="fewer than the 8 input pipelines"):
        source.batches_per_epoch(8, 1)


def test_positions_name_each_examples_source_row_without_changing_the_stream(prepared):
    source = _source(prepared)
    want_pcm, want_scale, _ = _expected(_cfg())
    order = write_order(40, 0)
    for pipeline_id in (0, 1):
        plain = source.pipeline_dataset(2, pipeline_id, 4, 4, seed=0)
        named = source.pipeline_dataset(2, pipeline_id, 4, 4, seed=0, with_positions=True)
        for (audio, labels), (audio2, labels2, positions) in zip(plain.take(7), named.take(7)):
            np.testing.assert_array_equal(audio, audio2)
            np.testing.assert_array_equal(labels, labels2)
            rows = order[positions.numpy()]
            np.testing.assert_array_equal(audio[..., 0], want_pcm[rows] * want_scale[rows, None])
            # Pipeline p reads shards p, p + 2 of 4: positions p, p + 2 (mod 4).
            assert set(positions.numpy() % 4) <= {pipeline_id, pipeline_id + 2}


def test_random_offsets_are_seeded_per_position_and_new_each_epoch(tmp_path, builtin_root):
    dest = str(tmp_path / "r")
    prepare(_cfg(slice_offset="random", condition="pitch"), dest, shards=2, **QUIET)
    pcm, _, labels = _records(dest)
    want_pcm, _, want_labels = _expected(_cfg(slice_offset="random", condition="pitch"))
    assert pcm.shape == want_pcm.shape == (40, 64000)  # whole notes; windows cut when read
    assert sorted(labels) == sorted(want_labels)
    source = _source(dest, slice_offset="random", condition="pitch")
    assert source.label_counts.sum() == 40
    whole = _stream(source, 10)
    halves = _stream(source, 20, per_replica=4)
    np.testing.assert_array_equal(whole[1][0], np.concatenate([halves[2][0], halves[3][0]]))
    np.testing.assert_array_equal(whole[1][1], np.concatenate([halves[2][1], halves[3][1]]))
    # Every window is a stretch of one stored note; each epoch cuts each note once, at
    # offsets that change from epoch to epoch.
    starts = [{}, {}]
    for b, (audio, _) in enumerate(whole):
        for clip in np.rint(audio[..., 0] * 32768).astype(np.int16):
            found = [(i, s) for i in range(40) if (s := _find(pcm[i], clip)) is not None]
            assert found, "a window that is no stretch of a stored note"
            if len(found) == 1:  # (a window of a note's silent tail matches several)
                starts[b // 5][found[0][0]] = found[0][1]
    both = set(starts[0]) & set(starts[1])
    assert len(both) > 30
    assert sum(starts[0][i] != starts[1][i] for i in both) > 0.9 * len(both)


def _find(note, clip):
    for start in np.flatnonzero(note == clip[0]):
        if start + len(clip) <= len(note) and np.array_equal(note[start : start + len(clip)], clip):
            return int(start)
    return None


def test_training_on_prepared_data_matches_on_one_and_two_replicas(prepared, tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    cfg = _cfg(data=prepared, train_steps=4)
    run_training(
        cfg.replace(model_dir=str(one)), tf.distribute.OneDeviceStrategy("/cpu:0"), **QUIET
    )
    result = run_training(
        cfg.replace(model_dir=str(two)), strategies.mirrored(["/cpu:0", "/cpu:1"]), **QUIET
    )
    assert result.num_replicas == 2 and result.replica_divergence == 0.0
    assert max_diff(checkpoint_weights(one), checkpoint_weights(two)) < 1e-5
    assert (
        max_diff(checkpoint_weights(one, "optimizers/"), checkpoint_weights(two, "optimizers/"))
        < 1e-5
    )

    # Resumed at step 3 (batch 6: epoch 1, 1 batch in): the same weights as unbroken.
    cpu = tf.distribute.OneDeviceStrategy("/cpu:0")
    resumed = tmp_path / "resumed"
    run_training(cfg.replace(model_dir=str(resumed), train_steps=3, ckpt_every=3), cpu, **QUIET)
    logs = []
    second = run_training(cfg.replace(model_dir=str(resumed)), cpu, log=logs.append)
    assert second.start_step == 3 and any(line.startswith("resumed from step 3") for line in logs)
    assert max_diff(checkpoint_weights(one), checkpoint_weights(resumed)) < 1e-6
    # And the check is sharp: another seed moves the weights far more than that.
    other = tmp_path / "other"
    run_training(cfg.replace(model_dir=str(other), seed=1), cpu, **QUIET)
    assert max_diff(checkpoint_weights(one), checkpoint_weights(other)) > 1e-3


def test_selection_flags_that_differ_from_the_manifest_are_refused(prepared, tmp_path):
    line = error_line(
        run_module(
            "train",
            f"--data={prepared}",
            "--preset=tiny",
            "--num_samples=40",
            f"--model_dir={tmp_path / 'm'}",
        )
    )
    assert line == (
        f"error: --data={prepared} was prepared with --slice_len=1024, but this "
        "run asks for --slice_len=4096; pass the prepared values, or prepare the "
        "data again with these"
    )
    with pytest.raises(
        UserError, match="prepared with --condition=none, but this run asks for --condition=pitch"
    ):
        run_training(
            _cfg(data=prepared, condition="pitch", model_dir=str(tmp_path / "c")),
            tf.distribute.OneDeviceStrategy("/cpu:0"),
            **QUIET,
        )
    with pytest.raises(UserError, match="--eval_every scores against a deeplake held-out"):
        run_training(
            _cfg(data=prepared, eval_every=2, eval_classifier="x", model_dir=str(tmp_path / "e")),
            tf.distribute.OneDeviceStrategy("/cpu:0"),
            **QUIET,
        )
    assert not any(os.path.exists(tmp_path / d) for d in "mce")


def test_rerun_is_complete_and_other_flags_into_the_same_dest_are_refused(prepared):
    logs = []
    prepare(_cfg(), prepared, shards=4, log=logs.append)
    assert logs[-1] == f"{prepared} is already complete: 40 examples in 4 shards"
    before = sorted(os.listdir(prepared))
    with pytest.raises(
        UserError,
        match="already holds data prepared differently "
        r"\(examples, rows_sha256, selection, shards differ\)",
    ):
        prepare(_cfg(num_samples=30), prepared, shards=4, **QUIET)
    with pytest.raises(UserError, match="is prepared data, which only training reads"):
        prepare(_cfg(data=prepared), prepared + "2", **QUIET)
    assert sorted(os.listdir(prepared)) == before


def test_prepare_killed_partway_then_rerun_gives_every_example_once(tmp_path, builtin_root):
    dest = tmp_path / "k"
    # Whole notes (random offsets) in one-example shards: slow enough to be caught midway.
    flags = ["--slice_len=1024", "--slice_offset=random", "--shards=320", f"--dest={dest}"]
    kill_when(
        "prepare",
        flags,
        lambda: dest.is_dir() and any(n.startswith("shard-") for n in os.listdir(dest)),
    )
    written = [n for n in os.listdir(dest) if n.startswith("shard-")]
    assert 1 <= len(written) < 320 and not (dest / "manifest.json").exists()
    line = error_line(run_module("train", f"--data={dest}", f"--model_dir={tmp_path / 'm'}"))
    assert "is an unfinished prepare" in line

    out = run_module("prepare", *flags)
    assert out.returncode == 0, out.stderr
    assert "resuming the prepare" in out.stdout
    assert "shard 1/320" not in out.stdout  # the complete shards were kept
    pcm, _, _ = _records(dest)
    want, _, _ = _expected(_cfg(slice_offset="random", num_samples=0))
    assert sorted(x.tobytes() for x in pcm) == sorted(x.tobytes() for x in want)
    assert not [n for n in os.listdir(dest) if ".tmp" in n]


def _train_cli(data, model_dir, *extra):
    flags = {**TINY_TEST_FLAGS, "batch_size": 4}
    return run_module(
        "train",
        f"--data={data}",
        "--strategy=mirrored",
        "--cpu_replicas=2",
        "--preset=tiny",
        "--train_steps=2",
        f"--model_dir={model_dir}",
        *[f"--{k}={v}" for k, v in flags.items()],
        *extra,
    )


def test_cli_prepares_the_builtin_set_and_trains_on_two_replicas(tmp_path, builtin_root):
    dest = tmp_path / "b"
    out = run_module(
        "prepare", "--preset=tiny", "--slice_len=1024", "--condition=pitch", f"--dest={dest}"
    )
    assert out.returncode == 0, out.stderr
    assert f"prepared 320 examples of {builtin_root}/train in 16 shards" in out.stdout
    line = error_line(run_module("prepare", "--dim=4", f"--dest={tmp_path / 'x'}"))
    assert line.startswith("error: --dim is not a prepare flag")
    out = _train_cli(dest, tmp_path / "m", "--condition=pitch")
    assert out.returncode == 0, out.stderr
    assert (
        "done at step 2: 2 replica(s) in sync (max weight difference between replicas 0)"
        in out.stdout
    )


def test_cli_prepares_an_ingested_dataset_and_trains_on_two_replicas(tmp_path):
    from test_ingest import make_notes, write_jsonwav
    from wavegan_dist.data.ingest import ingest

    src = write_jsonwav(tmp_path / "nsynth", make_notes(24, 4000))
    ingest(str(src), "nsynth-jsonwav", str(tmp_path / "ds"), num_samples=4000, **QUIET)
    dest = tmp_path / "p"
    out = run_module(
        "prepare",
        f"--data={tmp_path / 'ds'}",
        "--slice_len=1024",
        "--normalize=peak",
        "--shards=2",
        f"--dest={dest}",
    )
    assert out.returncode == 0, out.stderr
    assert f"prepared 24 examples of {tmp_path / 'ds'} in 2 shards" in out.stdout
    out = _train_cli(dest, tmp_path / "m", "--normalize=peak")
    assert out.returncode == 0, out.stderr
    assert f"data {dest} (prepared from {tmp_path / 'ds'}): 24 examples in 2 shards" in out.stdout
    assert (
        "done at step 2: 2 replica(s) in sync (max weight difference between replicas 0)"
        in out.stdout
    )
