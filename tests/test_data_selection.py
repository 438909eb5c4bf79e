"""Row filters, slicing modes, levels, extract_* and --data path handling, on real deeplake data."""

import os
import time

import deeplake
import numpy as np
import pytest

from conftest import error_line, run_module
from wavegan_dist.data import pipeline, schema
from wavegan_dist.data.extract import extract_audio, extract_metadata
from wavegan_dist.data.filters import RowFilter, select_rows
from wavegan_dist.data.source import load_source, resolve_path
from wavegan_dist.errors import UserError


@pytest.fixture(scope="module")
def train(builtin_root):
    ds = deeplake.open_read_only(os.path.join(builtin_root, "train"))
    meta = {
        c: np.asarray(ds[c][:])
        for c in ("pitch", "velocity", "instrument_source", "instrument_family")
    }
    return ds, meta


def test_filters_select_exactly_the_matching_rows(train):
    ds, meta = train
    f = RowFilter.from_options("gansynth")
    rows = select_rows(ds, f)
    expect = np.flatnonzero(
        (meta["instrument_source"] == 0) & (meta["pitch"] >= 24) & (meta["pitch"] <= 84)
    )
    np.testing.assert_array_equal(rows, expect)
    assert 0 < len(rows) < len(ds)
    f = RowFilter.from_options(instrument_family=[3, 5], velocity=[100, 127], num_samples=200)
    rows = select_rows(ds, f)
    head = {k: v[:200] for k, v in meta.items()}
    expect = np.flatnonzero(
        np.isin(head["instrument_family"], [3, 5]) & np.isin(head["velocity"], [100, 127])
    )
    np.testing.assert_array_equal(rows, expect)
    assert rows.max() < 200
    np.testing.assert_array_equal(select_rows(ds, RowFilter(num_samples=10)), np.arange(10))


def test_a_filter_that_leaves_nothing_is_named(train):
    ds, _ = train
    with pytest.raises(UserError, match=r"pass the filter pitch in \[200, None\]"):
        select_rows(ds, RowFilter.from_options(pitch_min=200), "train")
    with pytest.raises(UserError, match="--velocity=1 "):
        select_rows(ds, RowFilter.from_options(instrument_source=[0], velocity=[1]), "train")
    with pytest.raises(UserError, match="--subset=nope"):
        RowFilter.from_options("nope")


def test_random_offsets_and_peak_normalisation(builtin_root):
    source = load_source(builtin_root, "train", RowFilter(num_samples=64))
    plan = pipeline.BatchPlan(len(source.rows), 8, seed=1)
    kw = dict(source=source, plan=plan, per_replica=8, replicas=(0, 1), slice_len=1024, seed=1)
    rand = pipeline.ShardReader(**kw, slice_offset="random", normalize="peak")
    pcm, scale, _ = next(iter(rand()))
    rows, offsets = rand.rows_of_batch(0), rand.offsets_of_batch(0)
    assert len(set(offsets)) > 1 and offsets.max() <= 64000 - 1024
    notes = np.asarray(source.dataset["audio"][rows.tolist()])
    for i in range(8):
        np.testing.assert_array_equal(pcm[i], notes[i, offsets[i] : offsets[i] + 1024])
        assert scale[i] * np.abs(notes[i].astype(np.int32)).max() == pytest.approx(1.0)
    # The offsets are those of the global position: two pipelines see the same windows.
    halves = [
        pipeline.ShardReader(
            **{**kw, "per_replica": 4, "replicas": (p, p + 1)}, slice_offset="random"
        ).offsets_of_batch(0)
        for p in range(2)
    ]
    np.testing.assert_array_equal(np.concatenate(halves), offsets)


def test_extract_audio_and_metadata_read_in_batches(train):
    ds, meta = train
    audio = extract_audio(ds, range(10), slice_len=2000, offset=500, batch_rows=3)
    ref = np.asarray(ds["audio"][0:10])[:, 500:2500].astype(np.float32) / 32768
    np.testing.assert_array_equal(audio, ref)
    assert extract_audio(ds, [0], slice_len=70000).shape == (1, 70000)
    records = extract_metadata(ds, [5, 2, 5], batch_rows=2)
    assert [r["pitch"] for r in records] == [int(meta["pitch"][i]) for i in (5, 2, 5)]
    assert set(records[0]) == set(schema.COLUMNS) - {"audio"}
    assert len(records[0]["qualities"]) == 10 and isinstance(records[0]["note_str"], str)


def test_data_paths_splits_and_schemes(builtin_root, tmp_path):
    assert resolve_path(builtin_root, "valid") == os.path.join(builtin_root, "valid")
    assert resolve_path(builtin_root + "/{split}", "test") == os.path.join(builtin_root, "test")
    assert resolve_path("file://" + builtin_root, "train") == os.path.join(builtin_root, "train")
    assert resolve_path("gs://b/nsynth/{split}", "valid") == "gcs://b/nsynth/valid"
    assert resolve_path("hub://activeloop/nsynth-train", "train") == "al://activeloop/nsynth-train"
    with pytest.raises(UserError, match="unknown scheme"):
        resolve_path("ftp://x/y", "train")
    v3 = tmp_path / "old"
    v3.mkdir()
    (v3 / "dataset_meta.json").write_text("{}")
    with pytest.raises(UserError, match="deeplake v3 dataset.*--format=deeplake-v3"):
        load_source(str(v3))


def test_hosted_paths_fail_fast_offline(monkeypatch):
    monkeypatch.delenv("ACTIVELOOP_TOKEN", raising=False)
    start = time.monotonic()
    with pytest.raises(UserError, match="need a token; set ACTIVELOOP_TOKEN"):
        load_source("hub://activeloop/nsynth-train")
    with pytest.raises(UserError, match="cannot open azure://"):
        load_source("azure://account/container/nsynth")
    assert time.monotonic() - start < 30


def test_extract_accepts_a_dataset_or_any_view_of_one(train):
    """The original notebook passed ds[:N]; views have no .schema, and ds[:N]["audio"]
    is the view's whole column."""
    ds, meta = train
    audio, records = extract_audio(ds, range(10)), extract_metadata(ds, range(10))
    np.testing.assert_array_equal(extract_audio(ds[:10]), audio)
    assert extract_metadata(ds[:10]) == records
    np.testing.assert_array_equal(extract_audio(ds[[1, 5]]), audio[[1, 5]])
    assert extract_metadata(ds[[1, 5]]) == [records[1], records[5]]
    # rows index into the view, in the order asked, repeats allowed
    np.testing.assert_array_equal(
        extract_audio(ds[[1, 5]], [1, 1, 0], slice_len=300, offset=7), audio[[5, 5, 1], 7:307]
    )
    np.testing.assert_array_equal(extract_audio(ds[3]), audio[3:4])
    assert extract_metadata(ds[3], columns=["pitch"]) == [{"pitch": int(meta["pitch"][3])}]
    high = ds.query("SELECT * WHERE pitch > 60")
    expect = np.flatnonzero(meta["pitch"] > 60)
    assert [r["pitch"] for r in extract_metadata(high)] == meta["pitch"][expect].tolist()
    np.testing.assert_array_equal(extract_audio(high[:4]), extract_audio(ds, expect[:4]))


def test_a_missing_split_is_named_with_the_splits_there_are(builtin_root, tmp_path):
    only_train = tmp_path / "nsynth"
    only_train.mkdir()
    (only_train / "train").symlink_to(os.path.join(builtin_root, "train"))
    assert resolve_path(str(only_train), "train") == str(only_train / "train")
    with pytest.raises(
        UserError,
        match=r"has no valid split \(.*nsynth/valid does not exist; "
        r"it has train\)",
    ):
        load_source(str(only_train), "valid")
    with pytest.raises(
        UserError,
        match=r"nsynth/\{split\}: no test split \(.*nsynth/test does "
        r"not exist; found: train\)",
    ):
        load_source(str(only_train / "{split}"), "test")


def test_audio_files_given_as_data_name_the_ingest_command(tmp_path):
    import wave

    folder = tmp_path / "my_wavs"
    (folder / "sub").mkdir(parents=True)
    with wave.open(str(folder / "sub" / "a.wav"), "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(16000)
        w.writeframes(np.zeros(160, np.int16).tobytes())
    command = (
        f"python -m wavegan_dist.ingest --format=audio-folder --source={folder} "
        f"--dest={tmp_path / 'my_wavs-deeplake'}, then pass "
        f"--data={tmp_path / 'my_wavs-deeplake'}"
    )
    with pytest.raises(
        UserError, match="is a folder of audio files, not a deeplake dataset.*" + command
    ):
        load_source(str(folder))
    with pytest.raises(
        UserError,
        match="is an audio file, not a deeplake dataset.*--source="
        f"{folder / 'sub'} --dest={folder / 'sub-deeplake'},",
    ):
        load_source(str(folder / "sub" / "a.wav"))


@pytest.mark.slow
@pytest.mark.parametrize("url", ["gs://bucket/nsynth/{split}", "s3://bucket/nsynth/{split}"])
def test_an_unreachable_cloud_dataset_fails_in_one_line_and_the_process_exits(
    url, tmp_path, monkeypatch
):
    """No network here (nor in CI). deeplake leaves native threads retrying the store, which
    its exit handlers join: without a hard exit after the error the process never ends."""
    monkeypatch.setenv("WAVEGAN_DIST_OPEN_TIMEOUT", "4")
    proc = run_module("train", f"--data={url}", f"--model_dir={tmp_path / 'run'}", timeout=150)
    line = error_line(proc)
    assert url.split("://")[1].replace("{split}", "train") in line
    assert "no answer within 4 s" in line or "network error" in line
    assert not (tmp_path / "run").exists()
