"""`python -m wavegan_dist.ingest` on real files in NSynth's layouts, real deeplake, real tfio.

Fixtures write NSynth json/wav folders, TFRecord files, audio folders and
deeplake datasets into tmp_path; nothing is mocked. The kill test kills the CLI
with a real SIGKILL once a chunk is committed and checks the re-run.
"""

import functools
import io
import json
import os
import time
import wave

import deeplake
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_io as tfio

from conftest import TINY_TEST_FLAGS, kill_when, run_module
from wavegan_dist.config import make_config
from wavegan_dist.data import schema
from wavegan_dist.data.ingest import ingest, ingest_splits, make_reader
from wavegan_dist.data.ingest.deeplake_v3 import ACTIVELOOP_HOST, reachable
from wavegan_dist.data.ingest.dest import open_dest
from wavegan_dist.data.ingest.filenames import metadata_from_name
from wavegan_dist.data.ingest.progress import ProgressDisplay
from wavegan_dist.data.ingest.runner import source_digest
from wavegan_dist.errors import UserError
from wavegan_dist.training.loop import run_training

QUIET = dict(log=lambda _: None, progress_stream=io.StringIO())
META_COLUMNS = [c for c in schema.COLUMNS if c != "audio"]


# ---------------------------------------------------------------- fixtures ---


def make_notes(n, num_samples, seed=0):
    """n NSynth-like notes: metadata dicts as in examples.json, plus int16 PCM."""
    rng = np.random.default_rng(seed)
    notes = []
    for i in range(n):
        family, source = i % len(schema.FAMILIES), i % len(schema.SOURCES)
        inst_str = f"{schema.FAMILIES[family]}_{schema.SOURCES[source]}_{i:03d}"
        pitch, velocity = 21 + (7 * i) % 88, schema.VELOCITIES[i % 5]
        note_str = f"{inst_str}-{pitch:03d}-{velocity:03d}"
        qualities = [int(b) for b in rng.integers(0, 2, len(schema.QUALITIES))]
        notes.append(
            dict(
                note=i,
                note_str=note_str,
                instrument=500 + i,
                instrument_str=inst_str,
                pitch=pitch,
                velocity=velocity,
                sample_rate=16000,
                qualities=qualities,
                qualities_str=[q for q, b in zip(schema.QUALITIES, qualities) if b],
                instrument_family=family,
                instrument_family_str=schema.FAMILIES[family],
                instrument_source=source,
                instrument_source_str=schema.SOURCES[source],
                pcm=rng.integers(-30000, 30000, num_samples).astype(np.int16),
            )
        )
    return notes


def write_wav(path, pcm, rate=16000):
    pcm = np.asarray(pcm, np.int16)
    channels = 1 if pcm.ndim == 1 else pcm.shape[1]
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.astype("<i2").tobytes())


def write_jsonwav(root, notes, corrupt=()):
    """NSynth's json/wav layout; notes named in `corrupt` get a garbage WAV."""
    os.makedirs(root / "audio")
    index = {n["note_str"]: {k: v for k, v in n.items() if k != "pcm"} for n in notes}
    (root / "examples.json").write_text(json.dumps(index))
    for n in notes:
        path = root / "audio" / f"{n['note_str']}.wav"
        if n["note_str"] in corrupt:
            path.write_bytes(b"RIFF\x10\x00\x00\x00WAVEjunk" + bytes(range(200)))
        else:
            write_wav(path, n["pcm"])
    return root


def example_bytes(n, audio):
    ints = lambda v: tf.train.Feature(int64_list=tf.train.Int64List(value=v))  # noqa: E731
    strs = lambda v: tf.train.Feature(
        bytes_list=tf.train.BytesList(  # noqa: E731
            value=[s.encode() for s in v]
        )
    )
    feature = {
        k: ints([n[k]])
        for k in (
            "note",
            "instrument",
            "pitch",
            "velocity",
            "sample_rate",
            "instrument_family",
            "instrument_source",
        )
    }
    feature.update(
        {
            k: strs([n[k]])
            for k in (
                "note_str",
                "instrument_str",
                "instrument_family_str",
                "instrument_source_str",
            )
        }
    )
    feature["qualities"] = ints(n["qualities"])
    feature["qualities_str"] = strs(n["qualities_str"])
    feature["audio"] = tf.train.Feature(float_list=tf.train.FloatList(value=audio))
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def append_rows(ds, rows):
    """Appends rows (dicts as read_rows returns them) straight to a dataset, as a killed
    ingest could have left them."""
    ds.append(
        {
            c: [r[c] for r in rows]
            if schema.COLUMNS[c] == "text"
            else np.stack([r[c] for r in rows])
            for c in schema.COLUMNS
        }
    )


def float_to_int16(x):
    """The documented conversion, written out independently of the library."""
    return np.clip(np.rint(np.asarray(x, np.float64) * 32768.0), -32768, 32767).astype(np.int16)


def read_rows(path):
    """(dataset, rows as dicts). deeplake 4.7.4 reads an empty Text value back as None;
    it is turned back into the "" that was stored."""
    ds = deeplake.open_read_only(str(path))
    rows = {c: ds[c][:] for c in schema.COLUMNS}
    text = [c for c, t in schema.COLUMNS.items() if t == "text"]
    return ds, [
        {c: (rows[c][i] or "") if c in text else rows[c][i] for c in schema.COLUMNS}
        for i in range(len(ds))
    ]


def assert_row_matches_note(row, note, audio):
    for c in META_COLUMNS:
        if c == "qualities":
            np.testing.assert_array_equal(row[c], note[c])
        else:
            assert row[c] == note[c], (c, row[c], note[c])
    np.testing.assert_array_equal(row["audio"], audio)


run_cli = functools.partial(run_module, "ingest", timeout=120)


# ---------------------------------------------------------------- json/wav ---


def test_jsonwav_cli_skips_the_corrupt_wav_and_copies_every_other_note(tmp_path):
    notes = make_notes(12, 64000)
    bad = notes[5]["note_str"]
    src = write_jsonwav(tmp_path / "nsynth", notes, corrupt={bad})
    dest = tmp_path / "ds"
    t0 = time.monotonic()
    out = run_cli("--format=nsynth-jsonwav", f"--source={src}", f"--dest={dest}", "--chunk_rows=4")
    seconds = time.monotonic() - t0
    assert out.returncode == 0, out.stderr
    assert "done: wrote 11 rows" in out.stdout
    assert f"skipped 1 item(s):\n  audio/{bad}.wav: " in out.stdout
    assert "files/s" in out.stderr and "ETA" in out.stderr  # the progress display
    ds, rows = read_rows(dest)
    schema.check_schema(ds, str(dest))
    expected = sorted((n for n in notes if n["note_str"] != bad), key=lambda n: n["note_str"])
    assert len(rows) == 11
    for row, note in zip(rows, expected):
        assert_row_matches_note(row, note, note["pcm"])
    assert seconds < 60

    again = run_cli("--format=nsynth-jsonwav", f"--source={src}", f"--dest={dest}")
    assert again.returncode == 0, again.stderr
    assert "already complete" in again.stdout and f"audio/{bad}.wav" in again.stdout
    assert len(deeplake.open_read_only(str(dest))) == 11


def test_jsonwav_short_long_and_resampled_notes(tmp_path):
    notes = make_notes(3, 1000)
    src = write_jsonwav(tmp_path / "nsynth", notes)
    report = ingest(str(src), "nsynth-jsonwav", str(tmp_path / "ds"), num_samples=1500, **QUIET)
    assert report.rows_written == 3 and not report.skipped
    _, rows = read_rows(tmp_path / "ds")
    for row, note in zip(rows, sorted(notes, key=lambda n: n["note_str"])):
        assert_row_matches_note(row, note, np.concatenate([note["pcm"], np.zeros(500, np.int16)]))
    ingest(str(src), "nsynth-jsonwav", str(tmp_path / "cut"), num_samples=600, **QUIET)
    _, rows = read_rows(tmp_path / "cut")
    np.testing.assert_array_equal(
        rows[0]["audio"], sorted(notes, key=lambda n: n["note_str"])[0]["pcm"][:600]
    )
    ingest(
        str(src), "nsynth-jsonwav", str(tmp_path / "8k"), sample_rate=8000, num_samples=500, **QUIET
    )
    _, rows = read_rows(tmp_path / "8k")
    assert all(r["sample_rate"] == 8000 for r in rows)
    assert all(np.abs(r["audio"]).max() > 1000 for r in rows)  # resampled, not silence


# -------------------------------------------------------------- tfrecord ---


def test_tfrecord_skips_a_corrupt_record_and_a_truncated_tail(tmp_path):
    notes = make_notes(12, 64000, seed=1)
    rng = np.random.default_rng(2)
    audios = [(n["pcm"] / 32768.0).astype(np.float32) for n in notes]  # as NSynth stores them
    audios[3] = rng.uniform(-1, 1, 64000).astype(np.float32)  # not int16 / 32768
    folder = tmp_path / "tfr"
    folder.mkdir()
    for name, part in (("nsynth-a.tfrecord", range(0, 6)), ("nsynth-b.tfrecord", range(6, 12))):
        with tf.io.TFRecordWriter(str(folder / name)) as w:
            for i in part:
                w.write(example_bytes(notes[i], audios[i]))
    # Flip a byte in the data of a's record 2: its CRC no longer matches.
    data = bytearray((folder / "nsynth-a.tfrecord").read_bytes())
    record_len = len(data) // 6
    data[2 * record_len + 12 + 100] ^= 0xFF
    (folder / "nsynth-a.tfrecord").write_bytes(bytes(data))
    # Cut b inside its last record.
    data = (folder / "nsynth-b.tfrecord").read_bytes()
    (folder / "nsynth-b.tfrecord").write_bytes(data[: len(data) - 1000])

    report = ingest(str(folder), "nsynth-tfrecord", str(tmp_path / "ds"), chunk_rows=3, **QUIET)
    assert report.rows_written == 10 and report.items_total == 12
    names = [name for name, _ in report.skipped]
    assert names == ["nsynth-a.tfrecord#2", "nsynth-b.tfrecord#5"], report.skipped
    assert "truncated" in report.skipped[1][1]
    _, rows = read_rows(tmp_path / "ds")
    kept = [i for i in range(12) if i not in (2, 11)]
    assert len(rows) == len(kept)
    for row, i in zip(rows, kept):
        assert_row_matches_note(row, notes[i], float_to_int16(audios[i]))
    np.testing.assert_array_equal(rows[kept.index(0)]["audio"], notes[0]["pcm"])  # exact


# ---------------------------------------------------------- kill + resume ---


def test_sigkill_then_rerun_gives_every_row_once(tmp_path):
    notes = make_notes(300, 800, seed=3)
    src = write_jsonwav(tmp_path / "nsynth", notes)
    dest = tmp_path / "ds"
    flags = (
        "--format=nsynth-jsonwav",
        f"--source={src}",
        f"--dest={dest}",
        "--num_samples=800",
        "--chunk_rows=2",
    )

    def two_rows_committed():
        if not os.path.isdir(dest / "_deeplake_log"):
            return False
        try:
            return len(deeplake.open_read_only(str(dest))) >= 2
        except Exception:  # mid-creation: not yet a dataset
            return False

    kill_when("ingest", flags, two_rows_committed, timeout=60)
    partial = len(deeplake.open_read_only(str(dest)))
    assert 2 <= partial < 300

    out = run_cli(*flags)
    assert out.returncode == 0, out.stderr
    assert "resuming" in out.stdout
    _, rows = read_rows(dest)
    expected = sorted(notes, key=lambda n: n["note_str"])
    assert [r["note_str"] for r in rows] == [n["note_str"] for n in expected]
    for row, note in zip(rows, expected):
        assert_row_matches_note(row, note, note["pcm"])


def test_rows_committed_without_their_progress_are_not_written_twice(tmp_path):
    """A kill between a chunk's row commit and its progress commit."""
    notes = make_notes(9, 400, seed=4)
    src = write_jsonwav(tmp_path / "nsynth", notes, corrupt={notes[1]["note_str"]})
    full = tmp_path / "full"
    ingest(str(src), "nsynth-jsonwav", str(full), num_samples=400, chunk_rows=2, **QUIET)
    _, expected = read_rows(full)

    dest = tmp_path / "ds"
    identity = {
        "source": os.path.realpath(src),
        "format": "nsynth-jsonwav",
        "metadata": "",
        "sample_rate": 16000,
        "num_samples": 400,
    }
    ds, _, lock = open_dest(str(dest), identity)
    append_rows(ds, expected[:3])
    ds.commit("rows whose progress commit never happened")
    lock.release()
    del ds

    report = ingest(str(src), "nsynth-jsonwav", str(dest), num_samples=400, chunk_rows=2, **QUIET)
    assert report.rows_written == 5  # 8 readable, 3 already there
    assert [n for n, _ in report.skipped] == [f"audio/{notes[1]['note_str']}.wav"]
    _, rows = read_rows(dest)
    assert len(rows) == len(expected) == 8
    for got, want in zip(rows, expected):
        for c in schema.COLUMNS:
            np.testing.assert_array_equal(got[c], want[c])


def test_a_source_changed_between_runs_is_refused(tmp_path):
    notes = make_notes(6, 200, seed=10)
    src = write_jsonwav(tmp_path / "nsynth", notes)
    ingest(str(src), "nsynth-jsonwav", str(tmp_path / "full"), num_samples=200, **QUIET)
    _, expected = read_rows(tmp_path / "full")
    # A dest as a run leaves it when killed after its first chunk of 2 notes.
    dest = tmp_path / "ds"
    identity = {
        "source": os.path.realpath(src),
        "format": "nsynth-jsonwav",
        "metadata": "",
        "sample_rate": 16000,
        "num_samples": 200,
    }
    ds, state, lock = open_dest(str(dest), identity)
    append_rows(ds, expected[:2])
    state.advance(items_done=2, rows=2, complete=False, items_total=6)
    state.digest = source_digest(make_reader("nsynth-jsonwav", str(src), 16000, 200))
    state.store(ds, [])
    ds.commit()
    lock.release()
    del ds

    index = json.loads((src / "examples.json").read_text())
    del index[sorted(index)[0]]  # a note the first chunk took disappears
    (src / "examples.json").write_text(json.dumps(index))
    out = run_cli(
        "--format=nsynth-jsonwav", f"--source={src}", f"--dest={dest}", "--num_samples=200"
    )
    assert out.returncode == 2 and "list of items has changed" in out.stderr, out.stderr
    assert len(deeplake.open_read_only(str(dest))) == 2


def test_a_progress_record_whose_rows_never_landed_is_rolled_back(tmp_path):
    """deeplake writes a commit's metadata before its rows: a kill in between leaves a
    record counting a chunk that is not there."""
    notes = make_notes(5, 400, seed=8)
    bad = notes[3]["note_str"]
    src = write_jsonwav(tmp_path / "nsynth", notes, corrupt={bad})
    dest = tmp_path / "ds"
    identity = {
        "source": os.path.realpath(src),
        "format": "nsynth-jsonwav",
        "metadata": "",
        "sample_rate": 16000,
        "num_samples": 400,
    }
    ds, state, lock = open_dest(str(dest), identity)
    state.advance(items_done=3, rows=2, complete=False, items_total=5)
    state.store(ds, [["audio/phantom.wav", "recorded by the lost chunk"]])
    ds.commit()  # the record, without the two rows it counts
    lock.release()
    del ds

    report = ingest(str(src), "nsynth-jsonwav", str(dest), num_samples=400, chunk_rows=2, **QUIET)
    assert report.resumed_from == 0 and report.rows_written == 4
    assert [n for n, _ in report.skipped] == [f"audio/{bad}.wav"]
    _, rows = read_rows(dest)
    expected = sorted((n for n in notes if n["note_str"] != bad), key=lambda n: n["note_str"])
    assert [r["note_str"] for r in rows] == [n["note_str"] for n in expected]


# ----------------------------------------------------------- audio folder ---


def _tone(freq, rate, seconds, amp=0.5):
    t = np.arange(int(rate * seconds)) / rate
    return amp * np.sin(2 * np.pi * freq * t)


def _peak_hz(pcm, rate):
    spectrum = np.abs(np.fft.rfft(pcm.astype(np.float64)))
    return np.argmax(spectrum) * rate / len(pcm)


def test_audio_folder_decodes_resamples_and_applies_metadata_rules(tmp_path):
    src = tmp_path / "samples"
    (src / "sub").mkdir(parents=True)
    stereo = np.stack([_tone(440, 44100, 1.0), _tone(440, 44100, 1.0, 0.25)], 1)
    write_wav(src / "stereo44k.wav", float_to_int16(stereo), 44100)
    flac = tfio.audio.encode_flac(
        tf.constant(float_to_int16(_tone(1000, 22050, 0.5))[:, None]), rate=22050
    )
    (src / "sub" / "tone.flac").write_bytes(flac.numpy())
    # libvorbis here refuses mono below 32 kHz, so the OGG is 32 kHz mono.
    ogg = tfio.audio.encode_vorbis(
        tf.constant(_tone(300, 32000, 0.5)[:, None], tf.float32), rate=32000
    )
    (src / "loop.ogg").write_bytes(ogg.numpy())
    rng = np.random.default_rng(5)
    noise = rng.integers(-9000, 9000, 12000).astype(np.int16)
    write_wav(src / "noise.wav", noise)
    write_wav(src / "guitar_acoustic_010-060-100.wav", noise[:4000])
    write_wav(src / "piano_72.wav", noise[:4000])
    write_wav(src / "sub" / "vox A#3 take.wav", noise[:4000])
    write_wav(src / "kick.wav", noise[:4000])
    (src / "broken.wav").write_bytes(b"this is not audio")
    (src / "fake.mp3").write_bytes(b"ID3" + bytes(500))
    (src / "notes.csv").write_text(
        "file,pitch,velocity,instrument_family,instrument_str,qualities\n"
        "kick.wav,36,127,mallet,drum kit,0000000100\n"
        "piano_72,,50,,,\n"
    )

    report = ingest(
        str(src),
        "audio-folder",
        str(tmp_path / "ds"),
        num_samples=32000,
        metadata=str(src / "notes.csv"),
        **QUIET,
    )
    assert sorted(n for n, _ in report.skipped) == ["broken.wav", "fake.mp3"]
    assert report.rows_written == 8
    ds, rows = read_rows(tmp_path / "ds")
    by_name = {r["note_str"]: r for r in rows}
    assert set(by_name) == {
        "stereo44k",
        "sub/tone",
        "loop",
        "noise",
        "guitar_acoustic_010-060-100",
        "piano_72",
        "sub/vox A#3 take",
        "kick",
    }
    assert all(r["sample_rate"] == 16000 for r in rows)

    st = by_name["stereo44k"]["audio"]
    assert np.abs(st[:15900]).max() > 8000 and not st[16001:].any()  # 1 s at 16 kHz, padded
    assert abs(_peak_hz(st[:16000], 16000) - 440) < 3
    assert abs(np.abs(st[1000:15000]).max() / 32768 - 0.375) < 0.02  # mean of 0.5 and 0.25
    tone = by_name["sub/tone"]["audio"]
    assert abs(_peak_hz(tone[:8000], 16000) - 1000) < 5 and not tone[8001:].any()
    assert abs(_peak_hz(by_name["loop"]["audio"][:8000], 16000) - 300) < 5
    np.testing.assert_array_equal(by_name["noise"]["audio"][:12000], noise)  # exact, no resample

    unknown_q = [schema.UNKNOWN] * 10
    g = by_name["guitar_acoustic_010-060-100"]
    assert (
        g["pitch"],
        g["velocity"],
        g["instrument_family"],
        g["instrument_source"],
        g["instrument_str"],
        g["instrument"],
    ) == (60, 100, 3, 0, "guitar_acoustic_010", schema.UNKNOWN)
    p = by_name["piano_72"]
    assert (p["pitch"], p["velocity"], p["instrument_family"]) == (72, 50, schema.UNKNOWN)
    assert by_name["sub/vox A#3 take"]["pitch"] == 58
    k = by_name["kick"]
    assert (k["pitch"], k["velocity"], k["instrument_family"], k["instrument_str"]) == (
        36,
        127,
        schema.FAMILIES.index("mallet"),
        "drum kit",
    )
    np.testing.assert_array_equal(k["qualities"], [0, 0, 0, 0, 0, 0, 0, 1, 0, 0])
    n = by_name["noise"]
    assert [
        n[c] for c in ("pitch", "velocity", "instrument", "instrument_family", "instrument_source")
    ] == [schema.UNKNOWN] * 5
    assert n["instrument_str"] == "" and list(n["qualities"]) == unknown_q


def test_file_name_rules():
    assert metadata_from_name("synth_lead_synthetic_004-108-025") == dict(
        note_str="synth_lead_synthetic_004-108-025",
        instrument_str="synth_lead_synthetic_004",
        instrument_family=9,
        instrument_source=2,
        pitch=108,
        velocity=25,
    )
    assert metadata_from_name("C4") == {"pitch": 60}
    assert metadata_from_name("bass Bb1 soft") == {"pitch": 34}
    assert metadata_from_name("A4-69") == {"pitch": 69}  # both tokens agree
    assert metadata_from_name("A4_70") == {}  # they disagree: unknown, not a guess
    assert metadata_from_name("take_01") == {}  # leading zero: a take number
    assert metadata_from_name("piano200") == {} and metadata_from_name("loop_300") == {}
    assert metadata_from_name("short_0.1s") == {} and metadata_from_name("kick_1") == {}
    assert metadata_from_name("pad_12") == {"pitch": 12} and metadata_from_name("x_121") == {}
    assert metadata_from_name("gong.40") == {"pitch": 40}  # a dot between words splits


def test_a_bad_sidecar_value_is_a_user_error(tmp_path):
    src = tmp_path / "s"
    src.mkdir()
    write_wav(src / "a.wav", np.zeros(100, np.int16))
    (tmp_path / "m.csv").write_text("file,pitch\na.wav,high\n")
    with pytest.raises(UserError, match="pitch='high'"):
        ingest(
            str(src),
            "audio-folder",
            str(tmp_path / "ds"),
            metadata=str(tmp_path / "m.csv"),
            **QUIET,
        )
    assert not os.path.exists(tmp_path / "ds")


@pytest.mark.slow
def test_a_non_utf8_file_name_is_ingested_with_escapes(tmp_path):
    src = tmp_path / "samples"
    src.mkdir()
    folder = os.fsencode(src)
    noise = np.random.default_rng(11).integers(-9000, 9000, 4000).astype(np.int16)
    write_wav(src / "good.wav", noise)
    write_wav(os.fsdecode(folder + b"/\xffbad.wav"), noise[::-1])  # 0xff: never UTF-8
    write_wav(os.fsdecode(folder + b"/caf\xe9 C4.wav"), noise[:2000])  # Latin-1 e-acute
    flac = tfio.audio.encode_flac(tf.constant(noise[:, None]), rate=16000)
    with open(folder + b"/\xfetone.flac", "wb") as f:  # decoded by tensorflow-io
        f.write(flac.numpy())
    dest = tmp_path / "ds"
    out = run_cli(
        "--format=audio-folder", f"--source={src}", f"--dest={dest}", "--num_samples=4000"
    )
    assert out.returncode == 0, out.stderr
    assert "done: wrote 4 rows" in out.stdout and "skipped 0 item(s)" in out.stdout
    _, rows = read_rows(dest)
    by_name = {r["note_str"]: r for r in rows}
    assert set(by_name) == {"good", "\\xffbad", "caf\\xe9 C4", "\\xfetone"}
    np.testing.assert_array_equal(by_name["\\xffbad"]["audio"], noise[::-1])
    np.testing.assert_array_equal(by_name["\\xfetone"]["audio"], noise)
    assert by_name["caf\\xe9 C4"]["pitch"] == 60
    again = run_cli(
        "--format=audio-folder", f"--source={src}", f"--dest={dest}", "--num_samples=4000"
    )
    assert again.returncode == 0 and "already complete: 4 rows" in again.stdout, again.stderr


def test_file_name_pitch_is_unknown_unless_it_names_a_note(tmp_path):
    src = tmp_path / "samples"
    src.mkdir()
    names = {
        "short_0.1s": schema.UNKNOWN,
        "pad_0": schema.UNKNOWN,
        "take_5": schema.UNKNOWN,
        "hit 44k": schema.UNKNOWN,
        "loop_300": schema.UNKNOWN,
        "v2": schema.UNKNOWN,
        "flute_127": schema.UNKNOWN,
        "lead 60.5": schema.UNKNOWN,
        "piano.72": 72,
        "bass_24": 24,
        "vox F#3": 54,
    }
    for name in names:
        write_wav(src / f"{name}.wav", np.full(800, 1000, np.int16))
    report = ingest(str(src), "audio-folder", str(tmp_path / "ds"), num_samples=800, **QUIET)
    assert report.rows_written == len(names)
    _, rows = read_rows(tmp_path / "ds")
    assert {r["note_str"]: r["pitch"] for r in rows} == names


def _note_folder(root, n=12, instruments=None):
    """n real WAVs named by MIDI pitch (note_<pitch>_<i>.wav), 4,000 samples of noise each;
    with `instruments`, a sidecar CSV naming instrument i % instruments for file i."""
    root.mkdir()
    rng = np.random.default_rng(12)
    rows = ["file,instrument_str"]
    for i in range(n):
        write_wav(
            root / f"note_{36 + 3 * i}_{i}.wav", rng.integers(-9000, 9000, 4000).astype(np.int16)
        )
        rows.append(f"note_{36 + 3 * i}_{i}.wav,inst{i % (instruments or 1)}")
    if instruments:
        (root / "notes.csv").write_text("\n".join(rows) + "\n")
    return root


@pytest.mark.slow
def test_valid_fraction_gives_disjoint_splits_that_training_and_evaluate_read(tmp_path):
    src = _note_folder(tmp_path / "notes")
    dest = tmp_path / "ds"
    flags = (
        "--format=audio-folder",
        f"--source={src}",
        f"--dest={dest}",
        "--num_samples=4096",
        "--valid_fraction=0.25",
    )
    out = run_cli(*flags)
    assert out.returncode == 0, out.stderr
    assert (
        "held out by file: train 9 rows from 9 files, valid 3 rows from 3 files; "
        f"train with --data={dest}"
    ) in out.stdout
    _, train = read_rows(dest / "train")
    _, valid = read_rows(dest / "valid")
    names = [r["note_str"] for r in train], [r["note_str"] for r in valid]
    assert not set(names[0]) & set(names[1])
    assert sorted(names[0] + names[1]) == sorted(p.stem for p in src.glob("*.wav"))
    again = run_cli(*flags)
    assert again.returncode == 0, again.stderr
    assert f"train: {dest / 'train'} is already complete: 9 rows" in again.stdout
    assert f"valid: {dest / 'valid'} is already complete: 3 rows" in again.stdout

    proc = run_module(
        "evaluate",
        "train-classifier",
        f"--data={dest}",
        "--slice_len=1024",
        "--epochs=1",
        f"--out={tmp_path / 'cls'}",
    )
    assert proc.returncode == 0, proc.stderr
    assert "training a pitch classifier on 9 notes, holding out 3" in proc.stdout
    run_training(
        make_config(
            "tiny",
            **{
                **TINY_TEST_FLAGS,
                "train_steps": 1,
                "num_wavs": 0,
                "data": str(dest),
                "model_dir": str(tmp_path / "run"),
            },
        ),
        tf.distribute.OneDeviceStrategy("/cpu:0"),
        log=lambda _: None,
    )
    assert tf.train.latest_checkpoint(str(tmp_path / "run" / "checkpoints"))


def test_splits_hold_out_whole_instruments_when_the_metadata_names_them(tmp_path):
    src = _note_folder(tmp_path / "notes", instruments=4)
    report = ingest_splits(
        str(src),
        "audio-folder",
        str(tmp_path / "ds"),
        valid_fraction=0.25,
        test_fraction=0.25,
        num_samples=4000,
        metadata=str(src / "notes.csv"),
        **QUIET,
    )
    assert report.by == "instrument" and report.groups == {"train": 2, "valid": 1, "test": 1}
    assert [r.rows_total for r in report.reports.values()] == [6, 3, 3]
    seen = {}
    for split in ("train", "valid", "test"):
        _, rows = read_rows(tmp_path / "ds" / split)
        seen[split] = {r["instrument_str"] for r in rows}
    assert set.union(*seen.values()) == {"inst0", "inst1", "inst2", "inst3"}
    assert sum(len(v) for v in seen.values()) == 4  # no instrument on two sides
    # Too few instruments to hold out from is a one-line error, before anything is written.
    with pytest.raises(
        UserError, match="need at least 5 instruments or files to hold out from; the source has 4"
    ):
        ingest_splits(
            str(src),
            "audio-folder",
            str(tmp_path / "two"),
            valid_fraction=0.5,
            test_fraction=0.4,
            num_samples=4000,
            metadata=str(src / "notes.csv"),
            **QUIET,
        )
    assert not os.path.exists(tmp_path / "two")


# ------------------------------------------------------------ deeplake v3 ---


def test_local_dataset_with_v3_columns_is_mapped(tmp_path):
    t = deeplake.types
    src = deeplake.create(str(tmp_path / "v3"))
    src.add_column("audios", t.Array("float32", dimensions=2))
    for col in ("instrument", "pitch", "velocity", "sample_rate", "note"):
        src.add_column(col, t.Array("int64", shape=[1]))
    src.add_column("instrument_family", t.ClassLabel(t.Array("uint32", dimensions=1)))
    src.add_column("instrument_source", t.ClassLabel(t.Array("uint32", dimensions=1)))
    src.add_column("qualities", t.ClassLabel(t.Array("uint32", dimensions=1)))
    src["instrument_family"].metadata["class_names"] = list(schema.FAMILIES)
    src["qualities"].metadata["class_names"] = list(schema.QUALITIES)
    rng = np.random.default_rng(6)
    audio = [
        (rng.integers(-30000, 30000, (n, 1)) / 32768.0).astype(np.float32)
        for n in (64000, 70000, 100)
    ]
    src.append(
        {
            "audios": audio,
            "instrument": np.array([[7], [8], [9]]),
            "pitch": np.array([[60], [61], [62]]),
            "velocity": np.array([[25], [50], [75]]),
            "sample_rate": np.full((3, 1), 16000),
            "note": np.array([[1], [2], [3]]),
            "instrument_family": [np.array([f], np.uint32) for f in (0, 4, 10)],
            "instrument_source": [np.array([s], np.uint32) for s in (0, 1, 2)],
            "qualities": [np.array(q, np.uint32) for q in ([0, 3], [], [9])],
        }
    )
    src.commit()

    report = ingest(str(tmp_path / "v3"), "deeplake-v3", str(tmp_path / "ds"), **QUIET)
    assert report.rows_written == 3 and not report.skipped
    _, rows = read_rows(tmp_path / "ds")
    assert [r["pitch"] for r in rows] == [60, 61, 62]
    assert [r["instrument_family"] for r in rows] == [0, 4, 10]
    assert [r["instrument_source"] for r in rows] == [0, 1, 2]
    assert [r["instrument"] for r in rows] == [7, 8, 9]
    assert [r["note_str"] for r in rows] == ["", "", ""]  # v3 has no note_str: not invented
    np.testing.assert_array_equal(rows[0]["qualities"], [1, 0, 0, 1, 0, 0, 0, 0, 0, 0])
    np.testing.assert_array_equal(rows[1]["qualities"], np.zeros(10))
    np.testing.assert_array_equal(rows[0]["audio"], float_to_int16(audio[0][:, 0]))
    np.testing.assert_array_equal(rows[1]["audio"], float_to_int16(audio[1][:64000, 0]))
    np.testing.assert_array_equal(rows[2]["audio"][:100], float_to_int16(audio[2][:, 0]))
    assert not rows[2]["audio"][100:].any()


def test_hosted_v3_source_fails_fast_offline(tmp_path):
    if reachable(*ACTIVELOOP_HOST, 5.0) is None:
        pytest.skip("Activeloop is reachable from here; this test is about being offline")
    t0 = time.monotonic()
    out = run_cli(
        "--format=deeplake-v3",
        "--source=hub://activeloop/nsynth-train",
        f"--dest={tmp_path / 'ds'}",
        timeout=60,
    )
    assert time.monotonic() - t0 < 30
    assert out.returncode == 2, out.stdout + out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in out.stderr
    assert "hub://activeloop/nsynth-train" in lines[0]
    assert not os.path.exists(tmp_path / "ds")


# ------------------------------------------------- refusals and bad input ---


def test_other_source_on_an_existing_dest_is_refused_and_dest_unchanged(tmp_path):
    notes = make_notes(4, 300, seed=7)
    a = write_jsonwav(tmp_path / "a", notes)
    b = write_jsonwav(tmp_path / "b", notes[:2])
    dest = str(tmp_path / "ds")
    ingest(str(a), "nsynth-jsonwav", dest, num_samples=300, **QUIET)
    before = deeplake.open_read_only(dest)
    version, size = before.version, len(before)
    with pytest.raises(UserError, match="already holds an ingest of nsynth-jsonwav"):
        ingest(str(b), "nsynth-jsonwav", dest, num_samples=300, **QUIET)
    with pytest.raises(UserError, match="refusing"):
        ingest(str(a), "audio-folder", dest, num_samples=300, **QUIET)
    with pytest.raises(UserError, match="refusing"):
        ingest(str(a), "nsynth-jsonwav", dest, num_samples=400, **QUIET)
    after = deeplake.open_read_only(dest)
    assert (after.version, len(after)) == (version, size)
    assert ingest(str(a), "nsynth-jsonwav", dest, num_samples=300, **QUIET).already_complete

    # A dataset ingest did not make is never touched.
    other = schema.create_nsynth_dataset(str(tmp_path / "other"), 300)
    other.commit()
    with pytest.raises(UserError, match="that ingest did not make"):
        ingest(str(a), "nsynth-jsonwav", str(tmp_path / "other"), num_samples=300, **QUIET)
    # An empty shell (a run killed before its first commit) is rebuilt.
    deeplake.create(str(tmp_path / "shell"))
    report = ingest(str(a), "nsynth-jsonwav", str(tmp_path / "shell"), num_samples=300, **QUIET)
    assert report.rows_written == 4


def last_error_line(proc):
    """The `error: ...` line that ends stderr (after the progress display), exit 2."""
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    line = proc.stderr.strip().splitlines()[-1]
    assert line.startswith("error: "), proc.stderr
    return line


@pytest.mark.slow
def test_an_ingest_that_writes_no_row_fails_and_frees_the_dest(tmp_path):
    src = tmp_path / "bad"
    src.mkdir()
    (src / "broken.wav").write_bytes(b"this is not audio")
    (src / "empty.wav").write_bytes(b"")
    dest = tmp_path / "ds"
    line = last_error_line(run_cli("--format=audio-folder", f"--source={src}", f"--dest={dest}"))
    assert line.startswith(
        "error: no rows written: all 2 source item(s) were skipped "
        "(broken.wav: not a readable WAV file"
    ), line
    assert "empty.wav: not a readable WAV file (EOFError)" in line
    assert "--format=audio-folder reads a folder of wav" in line
    assert not os.path.exists(dest)

    # A WAV given as a TFRecord: the error says what the format reads; the corrected
    # command then writes to the same --dest.
    wavs = tmp_path / "wavs"
    wavs.mkdir()
    write_wav(wavs / "C4.wav", np.full(500, 1000, np.int16))
    line = last_error_line(
        run_cli("--format=nsynth-tfrecord", f"--source={wavs / 'C4.wav'}", f"--dest={dest}")
    )
    assert "all 1 source item(s) were skipped (C4.wav#0: corrupt record header at byte 0" in line
    assert "--format=nsynth-tfrecord reads TFRecord files of NSynth tf.train.Example" in line
    assert not os.path.exists(dest)
    out = run_cli("--format=audio-folder", f"--source={wavs}", f"--dest={dest}")
    assert out.returncode == 0 and "done: wrote 1 rows" in out.stdout, out.stderr


def test_an_ingest_left_without_rows_is_replaced_by_another_source(tmp_path):
    """What a run that failed (or was killed) before its first row leaves behind."""
    a = write_jsonwav(tmp_path / "a", make_notes(2, 100))
    dest = tmp_path / "ds"
    identity = {
        "source": os.path.realpath(a),
        "format": "nsynth-jsonwav",
        "metadata": "",
        "sample_rate": 16000,
        "num_samples": 100,
    }
    ds, _, lock = open_dest(str(dest), identity)
    lock.release()
    del ds
    wavs = tmp_path / "wavs"
    wavs.mkdir()
    write_wav(wavs / "C4.wav", np.full(500, 1000, np.int16))
    out = run_cli(
        "--format=audio-folder", f"--source={wavs}", f"--dest={dest}", "--num_samples=100"
    )
    assert out.returncode == 0, out.stderr
    assert f"note: --dest={dest} holds an ingest of nsynth-jsonwav" in out.stdout
    assert "with no rows; replacing it" in out.stdout and "done: wrote 1 rows" in out.stdout


def test_a_second_ingest_into_the_same_dest_is_refused_while_one_runs(tmp_path):
    src = write_jsonwav(tmp_path / "a", make_notes(2, 100))
    identity = {
        "source": os.path.realpath(src),
        "format": "nsynth-jsonwav",
        "metadata": "",
        "sample_rate": 16000,
        "num_samples": 100,
    }
    _, _, lock = open_dest(str(tmp_path / "ds"), identity)
    try:
        with pytest.raises(UserError, match="another ingest is writing"):
            ingest(str(src), "nsynth-jsonwav", str(tmp_path / "ds"), num_samples=100, **QUIET)
    finally:
        lock.release()
    assert (
        ingest(
            str(src), "nsynth-jsonwav", str(tmp_path / "ds"), num_samples=100, **QUIET
        ).rows_written
        == 2
    )


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--format=nsynth-jsonwav", "--dest=D"], "--source is required"),
        (["--format=flac-pile", "--source=S", "--dest=D"], "--format=flac-pile is not one of"),
        (["--format=nsynth-jsonwav", "--source=S", "--dest=D"], "has no examples.json"),
        (["--format=nsynth-jsonwav", "--source=OK", "--dest=FILE/ds"], "cannot create --dest="),
        (
            ["--format=nsynth-jsonwav", "--source=OK", "--dest=D", "--chunk_rows=0"],
            "--chunk_rows must be a positive integer",
        ),
        (
            ["--format=nsynth-jsonwav", "--source=OK", "--dest=D", "--valid_fraction=0.2"],
            "apply to --format=audio-folder only",
        ),
        (
            ["--format=audio-folder", "--source=S", "--dest=D", "--valid_fraction=1.5"],
            "--valid_fraction must be at least 0 and below 1",
        ),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, flags, message):
    (tmp_path / "S").mkdir()
    write_jsonwav(tmp_path / "OK", make_notes(1, 100))
    (tmp_path / "FILE").write_text("a file, not a folder")
    flags = [
        f.replace("=S", f"={tmp_path / 'S'}")
        .replace("=D", f"={tmp_path / 'D'}")
        .replace("=OK", f"={tmp_path / 'OK'}")
        .replace("=FILE", f"={tmp_path / 'FILE'}")
        for f in flags
    ]
    out = run_cli(*flags)
    assert out.returncode == 2, out.stdout + out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], out.stderr
    assert not os.path.exists(tmp_path / "D")


def test_progress_display_rewrites_one_line_on_a_terminal():
    class Tty(io.StringIO):
        def isatty(self):
            return True

    stream = Tty()
    display = ProgressDisplay(total=100, start=10, stream=stream)
    time.sleep(0.05)
    display.show(40, 38, 2)
    display.show(70, 66, 4)
    display.close()
    text = stream.getvalue()
    assert text.count("\r") == 2 and text.endswith("\n") and text.count("\n") == 1
    assert "70/100 items" in text and "files/s" in text and "ETA" in text

    plain = io.StringIO()
    display = ProgressDisplay(total=100, stream=plain)
    display.show(50, 50, 0)
    assert plain.getvalue().endswith("\n") and "\r" not in plain.getvalue()
