"""`python -m wavegan_dist.generate` on real tiny runs: WAVs, the spectrogram grid, exports.

Two runs are trained once for the module (unconditional and pitch-conditioned); the
command runs as a subprocess, its files are read back, and exported SavedModels are
loaded in a Python process that never imports wavegan_dist.
"""

import concurrent.futures
import functools
import json
import os
import shutil
import subprocess
import sys
import wave

import numpy as np
import pytest
import tensorflow as tf

from conftest import TINY_TEST_FLAGS, error_line, run_module
from wavegan_dist.config import make_config
from wavegan_dist.errors import UserError
from wavegan_dist.media import grid
from wavegan_dist.media.labels import midi_hz, parse_labels
from wavegan_dist.training.loop import run_training

pytestmark = pytest.mark.slow

N = 5  # not a square: the grid then has an empty cell
SEED = 7
RANGE = list(range(36, 85, 4))  # --pitch=36:84:4, stop included: 13 pitches


_generate = functools.partial(run_module, "generate")


def _ok(proc):
    assert proc.returncode == 0, (proc.stdout, proc.stderr)
    return proc.stdout.splitlines()


def _read_wav(path):
    """(samples int16 [T], channels, sample width, rate) of a WAV file."""
    with wave.open(str(path), "rb") as f:
        frames = f.readframes(f.getnframes())
        return (np.frombuffer(frames, "<i2"), f.getnchannels(), f.getsampwidth(), f.getframerate())


def _wavs(folder):
    return sorted(p for p in os.listdir(folder) if p.endswith(".wav"))


def _snapshot(folder):
    return {name: (folder / name).read_bytes() for name in sorted(os.listdir(folder))}


def _png(path):
    return tf.io.decode_png(tf.io.read_file(str(path))).numpy()


def _cell(image, row, col):
    """The pixels of the panel (with its margins) at grid position (row, col)."""
    h, w = grid.cell_size()
    top, left = row * (h + grid.GAP), col * (w + grid.GAP)
    return image[top : top + h, left : left + w]


def _marked(cell, pitch):
    """True if the panel's pitch mark (the triangle right of the panel) is at `pitch`'s f0."""
    y = grid.TOP + grid.freq_row(midi_hz(pitch), 16000)
    return (cell[y, grid.LEFT + grid.PANEL_W + 1 : grid.LEFT + grid.PANEL_W + 6] == grid.MARK).all()


@pytest.fixture(scope="module")
def runs(tmp_path_factory, cache_dir):
    """{"none": folder, "pitch": folder}: tiny runs trained for 2 steps."""
    folders = {}
    for condition in ("none", "pitch"):
        d = tmp_path_factory.mktemp(f"run_{condition}")
        cfg = make_config(
            "tiny",
            **{
                **TINY_TEST_FLAGS,
                "train_steps": 2,
                "num_wavs": 0,
                "condition": condition,
                "model_dir": str(d),
            },
        )
        run_training(cfg, tf.distribute.OneDeviceStrategy("/cpu:0"), log=lambda _: None)
        folders[condition] = d
    return folders


@pytest.fixture(scope="module")
def outputs(runs, tmp_path_factory):
    """The successful command runs, two at a time (each is mostly process start-up)."""
    d = tmp_path_factory.mktemp("outputs")
    (d / "empty_out").mkdir()  # an existing empty folder is accepted
    (d / "empty_export").mkdir()
    jobs = {
        "none": (
            f"--model_dir={runs['none']}",
            f"--n={N}",
            f"--seed={SEED}",
            f"--out={d / 'none'}",
            f"--export={d / 'none_export'}",
        ),
        "none_again": (
            f"--model_dir={runs['none']}",
            f"--n={N}",
            f"--seed={SEED}",
            f"--out={d / 'empty_out'}",
        ),
        "pitch40": (
            f"--model_dir={runs['pitch']}",
            "--n=3",
            "--pitch=40",
            f"--seed={SEED}",
            f"--out={d / 'pitch40'}",
            f"--export={d / 'empty_export'}",
        ),
        "pitch80": (
            f"--model_dir={runs['pitch']}",
            "--n=3",
            "--pitch=80",
            f"--seed={SEED}",
            f"--out={d / 'pitch80'}",
        ),
        "range": (
            f"--model_dir={runs['pitch']}",
            "--n=3",
            "--pitch=36:84:4",
            f"--seed={SEED}",
            f"--out={d / 'range'}",
        ),
    }
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        procs = dict(zip(jobs, pool.map(lambda flags: _generate(*flags), jobs.values())))
    folders = {
        "none": d / "none",
        "none_again": d / "empty_out",
        "pitch40": d / "pitch40",
        "pitch80": d / "pitch80",
        "range": d / "range",
        "none_export": d / "none_export",
        "pitch_export": d / "empty_export",
    }
    return procs, folders


def test_writes_wavs_grid_and_summary(runs, outputs):
    procs, folders = outputs
    lines = _ok(procs["none"])
    out = folders["none"]
    names = _wavs(out)
    assert len(names) == N and all(name.startswith("generated_") for name in names)
    for name in names:
        samples, channels, width, rate = _read_wav(out / name)
        assert (channels, width, rate, len(samples)) == (1, 2, 16000, 1024)
        assert np.abs(samples).max() > 0
    # One line per set of WAVs, one for the PNG, one for the SavedModel, then the summary.
    wrote = [line for line in lines if line.startswith("wrote ")]
    assert len(wrote) == 3 and wrote[0].startswith(f"wrote {N} WAV files: ")
    assert "spectrograms.png (2 x 3 spectrograms of 256 x 200 pixels" in wrote[1]
    assert lines[-1].startswith("done: ") and f"{N} WAV files" in lines[-1]
    assert "1 SavedModel" in lines[-1]

    image = _png(out / "spectrograms.png")
    rows, cols = 2, 3  # near-square grid of 5 panels
    h, w = grid.cell_size()
    assert image.shape == (rows * h + grid.GAP * (rows - 1), cols * w + grid.GAP * (cols - 1), 3)
    assert image.dtype == np.uint8
    # A 1024-sample clip is 8 STFT frames, yet its panel is drawn 256 pixels wide.
    assert grid.PANEL_W >= 200 and image.shape[1] / cols >= 200
    assert (image[h : h + grid.GAP] == 255).all()  # the gap between the rows
    assert (image[h + grid.GAP :, 2 * (w + grid.GAP) :] == 255).all()  # the empty sixth cell
    panel = _cell(image, 0, 0)[
        grid.TOP : grid.TOP + grid.PANEL_H, grid.LEFT : grid.LEFT + grid.PANEL_W
    ]
    assert panel.std() > 0  # a real spectrogram, not a flat fill
    # Axis labels: ink in the left margin (Hz) and below the panel (seconds).
    assert (_cell(image, 0, 0)[grid.TOP : grid.TOP + grid.PANEL_H, : grid.LEFT - 4] == 0).any()
    assert (_cell(image, 0, 0)[grid.TOP + grid.PANEL_H + 4 :, grid.LEFT :] == 0).any()
    assert not (image == grid.MARK).all(axis=-1).any()  # no pitch mark without a pitch


def test_same_seed_gives_same_files_and_seed_is_used(runs, outputs):
    procs, folders = outputs
    _ok(procs["none_again"])
    first, again = folders["none"], folders["none_again"]
    assert _wavs(first) == _wavs(again)
    for name in _wavs(first) + ["spectrograms.png"]:
        assert (first / name).read_bytes() == (again / name).read_bytes(), name
    # The clips are the generator's output for z drawn with the given seed.
    from wavegan_dist.inference import restore

    generator, *_ = restore.load_generator(str(runs["none"]))
    expected = restore.generate_waves(generator, restore.latent_vectors(N, 100, SEED))[..., 0]
    written = np.stack([_read_wav(first / name)[0] for name in _wavs(first)]) / 32768.0
    assert np.abs(written - expected).max() < 2.0 / 32768


def test_pitch_label_changes_audio(outputs):
    procs, folders = outputs
    lines = _ok(procs["pitch40"])
    _ok(procs["pitch80"])
    assert "pitch 40" in lines[-1]
    assert _wavs(folders["pitch40"]) == [f"generated_pitch040_0{i}.wav" for i in range(3)]
    low, high = (
        np.stack([_read_wav(folders[k] / n)[0] for n in _wavs(folders[k])])
        for k in ("pitch40", "pitch80")
    )
    assert low.shape == high.shape == (3, 1024)
    assert np.abs(low.astype(np.int32) - high).max() > 100
    image = _png(folders["pitch40"] / "spectrograms.png")
    h, w = grid.cell_size()
    assert image.shape == (2 * h + grid.GAP, 2 * w + grid.GAP, 3)  # 3 clips: 2 x 2 grid
    assert _marked(_cell(image, 0, 0), 40) and not _marked(_cell(image, 0, 0), 80)


def test_pitch_range_is_one_process_writing_n_wavs_per_pitch_and_one_row_each(outputs):
    procs, folders = outputs
    lines = _ok(procs["range"])
    out = folders["range"]
    # One restore for all 13 pitches, the stop (84) included.
    assert sum(line.startswith("restored generator") for line in lines) == 1
    assert _wavs(out) == [f"generated_pitch{p:03d}_{i:02d}.wav" for p in RANGE for i in range(3)]
    per_pitch = [line for line in lines if line.startswith("wrote 3 WAV files for pitch ")]
    assert [int(line.split()[6]) for line in per_pitch] == RANGE
    assert "wrote 3 WAV files for pitch 60 (C4, 261.6 Hz): " in "\n".join(per_pitch)
    assert lines[-1].endswith("pitch " + ", ".join(map(str, RANGE)) + ")")
    # Every pitch uses the same latent vectors: its clips are those of a one-pitch run.
    for pitch in (40, 80):
        for i in range(3):
            name = f"generated_pitch{pitch:03d}_{i:02d}.wav"
            assert (out / name).read_bytes() == (folders[f"pitch{pitch}"] / name).read_bytes()
    # 39 clips: a row per pitch, a column per clip, every panel still 256 x 200 pixels.
    image = _png(out / "spectrograms.png")
    h, w = grid.cell_size()
    rows, cols = len(RANGE), 3
    assert image.shape == (rows * h + grid.GAP * (rows - 1), cols * w + grid.GAP * (cols - 1), 3)
    assert (image.shape[1] + grid.GAP) / cols - grid.LEFT - grid.RIGHT - grid.GAP >= 200
    for row, pitch in enumerate(RANGE):
        others = [p for p in RANGE if abs(p - pitch) >= 4]
        for col in range(cols):
            cell = _cell(image, row, col)
            assert _marked(cell, pitch), (pitch, col)
            assert not any(_marked(cell, other) for other in others), (pitch, col)


def test_tensorboard_spectrograms_are_the_labelled_panels_with_pitch_marks(runs):
    from tensorboard.backend.event_processing import event_accumulator

    h, w = grid.cell_size()
    for condition, marked in (("none", False), ("pitch", True)):
        acc = event_accumulator.EventAccumulator(str(runs[condition]), size_guidance={"tensors": 0})
        acc.Reload()
        image = tf.io.decode_png(
            acc.Tensors("spectrogram/generated")[-1].tensor_proto.string_val[2]
        ).numpy()
        assert image.shape == (2 * h + grid.GAP, 2 * w + grid.GAP, 3)  # 4 clips: 2 x 2 panels
        for row in range(2):
            for col in range(2):
                margin = _cell(image, row, col)[
                    grid.TOP : grid.TOP + grid.PANEL_H, grid.LEFT + grid.PANEL_W + 1
                ]
                assert (margin == grid.MARK).all(axis=-1).any() == marked, (condition, row, col)


def test_parse_labels_reads_numbers_lists_and_inclusive_ranges():
    assert parse_labels("pitch", "60", 0, 127) == [60]
    assert parse_labels("pitch", " 48, 60,72 ", 0, 127) == [48, 60, 72]
    assert parse_labels("pitch", "36:84:6", 0, 127) == list(range(36, 85, 6))
    assert parse_labels("pitch", "36:40", 0, 127) == [36, 37, 38, 39, 40]
    assert parse_labels("pitch", "84:60:-12", 0, 127) == [84, 72, 60]
    assert parse_labels("pitch", "36:84:10", 0, 127) == [36, 46, 56, 66, 76]  # 84 not on a step
    with pytest.raises(UserError, match="not a MIDI pitch number"):
        parse_labels("pitch", "C4", 0, 127)


CLEAN_LOAD = r"""
import json, sys
import numpy as np
import tensorflow as tf
results = []
for job in json.loads(sys.argv[1]):
    loaded = tf.saved_model.load(job["path"])
    serve = loaded.signatures["serving_default"]
    inputs = {"z": tf.constant(np.load(job["z"]))}
    if job["labels"]:
        inputs["label"] = tf.constant(np.load(job["labels"]))
    np.save(job["audio"], serve(**inputs)["audio"].numpy())
    results.append({
        "inputs": {k: [s.shape.as_list(), s.dtype.name]
                   for k, s in serve.structured_input_signature[1].items()},
        "outputs": {k: [s.shape.as_list(), s.dtype.name]
                    for k, s in serve.structured_outputs.items()},
        "meta": [int(loaded.sample_rate.numpy()), int(loaded.slice_len.numpy()),
                 int(loaded.latent_dim.numpy()), int(loaded.num_classes.numpy()),
                 loaded.condition.numpy().decode()]})
assert "wavegan_dist" not in sys.modules, "loading the export imported wavegan_dist"
print(json.dumps(results))
"""


def test_exports_load_without_wavegan_dist_and_match(runs, outputs, tmp_path):
    procs, folders = outputs
    _ok(procs["none"])
    _ok(procs["pitch40"])
    z = np.random.default_rng(0).uniform(-1, 1, (4, 100)).astype(np.float32)
    labels = np.array([0, 40, 80, 127], np.int32)
    np.save(tmp_path / "z.npy", z)
    np.save(tmp_path / "labels.npy", labels)
    jobs = [
        {
            "path": str(folders["none_export"]),
            "z": str(tmp_path / "z.npy"),
            "labels": "",
            "audio": str(tmp_path / "none.npy"),
        },
        {
            "path": str(folders["pitch_export"]),
            "z": str(tmp_path / "z.npy"),
            "labels": str(tmp_path / "labels.npy"),
            "audio": str(tmp_path / "pitch.npy"),
        },
    ]
    proc = subprocess.run(
        [sys.executable, "-c", CLEAN_LOAD, json.dumps(jobs)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env=os.environ,
    )
    assert proc.returncode == 0, proc.stderr
    none, pitch = json.loads(proc.stdout.splitlines()[-1])
    assert none["inputs"] == {"z": [[None, 100], "float32"]}
    assert pitch["inputs"] == {"z": [[None, 100], "float32"], "label": [[None], "int32"]}
    assert none["outputs"] == pitch["outputs"] == {"audio": [[None, 1024], "float32"]}
    assert none["meta"] == [16000, 1024, 100, 0, "none"]
    assert pitch["meta"] == [16000, 1024, 100, 128, "pitch"]

    from wavegan_dist.inference import restore

    for condition, job, job_labels in (("none", jobs[0], None), ("pitch", jobs[1], labels)):
        generator, *_ = restore.load_generator(str(runs[condition]))
        expected = generator(
            tf.constant(z), None if job_labels is None else tf.constant(job_labels), training=False
        ).numpy()[..., 0]
        assert np.abs(np.load(job["audio"]) - expected).max() < 1e-5, condition


def _error_cases(runs, tmp):
    """{name: (flags, text the error line must hold)} for bad input."""
    (tmp / "not_a_run").mkdir()
    (tmp / "no_checkpoint").mkdir()
    shutil.copy(runs["none"] / "config.json", tmp / "no_checkpoint" / "config.json")
    # A run recorded before the trained labels were, filtered to pitches 60-72.
    (tmp / "filtered").mkdir()
    values = json.loads((runs["pitch"] / "config.json").read_text())
    del values["trained_labels"]
    (tmp / "filtered" / "config.json").write_text(
        json.dumps({**values, "pitch_min": 60, "pitch_max": 72})
    )
    none, pitch, out = (
        f"--model_dir={runs['none']}",
        f"--model_dir={runs['pitch']}",
        f"--out={tmp / 'o'}",
    )
    return {
        "model_dir_missing": ((f"--model_dir={tmp / 'nowhere'}", out), "does not exist"),
        "no_config": ((f"--model_dir={tmp / 'not_a_run'}", out), "has no config.json"),
        "no_checkpoint": ((f"--model_dir={tmp / 'no_checkpoint'}", out), "has no checkpoint"),
        "wrong_checkpoint": (
            (none, out, f"--checkpoint={runs['pitch'] / 'checkpoints' / 'ckpt-2'}"),
            "cannot restore the generator",
        ),
        "n_below_1": ((none, out, "--n=0"), "--n must be >= 1"),
        "nothing_to_do": ((none,), "nothing to do"),
        "pitch_missing": ((pitch, out), "conditioned on pitch: pass --pitch="),
        "pitch_out_of_range": ((pitch, out, "--pitch=128"), "--pitch=128 is out of range"),
        "family_out_of_range": ((pitch, out, "--instrument_family=11"), "0-10"),
        "label_not_matching": ((pitch, out, "--instrument_family=3"), "not instrument_family"),
        "label_on_unconditional": ((none, out, "--pitch=60"), "unconditional"),
        "range_on_unconditional": ((none, out, "--pitch=36:84:6"), "unconditional"),
        "pitch_not_a_number": ((pitch, out, "--pitch=C4"), "'C4' is not a MIDI pitch number"),
        "list_with_a_hole": ((pitch, out, "--pitch=48,,60"), "an empty value"),
        "range_step_0": ((pitch, out, "--pitch=36:84:0"), "the step must not be 0"),
        "range_empty": ((pitch, out, "--pitch=84:36:6"), "is an empty range"),
        "range_not_numbers": ((pitch, out, "--pitch=36:x"), "'x' is not a MIDI pitch number"),
        "range_four_parts": ((pitch, out, "--pitch=36:84:6:1"), "is not a range"),
        "range_out_of_range": ((pitch, out, "--pitch=120:130:5"), "--pitch=130 is out of range"),
        "pitch_twice": ((pitch, out, "--pitch=60,72,60"), "names 60 more than once"),
        "family_range_step_0": ((pitch, out, "--instrument_family=0:10:0"), "must not be 0"),
        "outside_trained": (
            (pitch, out, "--pitch=12:36:12"),
            "--pitch=12 is outside the MIDI pitch range the run in",
        ),
        "outside_filtered": (
            (f"--model_dir={tmp / 'filtered'}", out, "--pitch=48,84"),
            "--pitch=48,84 is outside the MIDI pitch range the run in",
        ),
    }


def test_bad_input_is_one_line_error_and_writes_nothing(runs, tmp_path):
    for name, (flags, text) in _error_cases(runs, tmp_path).items():
        line = error_line(_generate(*flags))
        assert text in line, (name, line)
        assert not (tmp_path / "o").exists(), name


def test_existing_outputs_are_never_overwritten(runs, tmp_path):
    out, export = tmp_path / "out", tmp_path / "export"
    out.mkdir()
    export.mkdir()
    (out / "generated_00.wav").write_bytes(b"the user's own file")
    (out / "notes.txt").write_text("kept")
    (export / "saved_model.pb").write_bytes(b"an earlier export")
    before_out, before_export = _snapshot(out), _snapshot(export)
    line = error_line(_generate(f"--model_dir={runs['none']}", f"--out={out}"))
    assert "already holds generated_00.wav" in line
    fresh = tmp_path / "fresh"
    line = error_line(
        _generate(f"--model_dir={runs['none']}", f"--out={fresh}", f"--export={export}")
    )
    assert "is not empty" in line
    assert _snapshot(out) == before_out and _snapshot(export) == before_export
    assert not fresh.exists()  # refused before anything was written


def test_run_without_recorded_sample_rate_uses_16000_and_says_so(runs, tmp_path):
    from wavegan_dist.inference.restore import read_run_config

    values = json.loads((runs["none"] / "config.json").read_text())
    assert values["sample_rate"] == 16000  # what training records
    del values["sample_rate"]
    (tmp_path / "config.json").write_text(json.dumps(values))
    cfg, rate, notes = read_run_config(str(tmp_path))
    assert (cfg.net.slice_len, cfg.condition, rate) == (1024, "none", 16000)
    assert len(notes) == 1 and "no sample_rate" in notes[0] and "16000 Hz" in notes[0]


def test_damaged_checkpoints_are_one_line_errors_and_training_refuses_them(runs, tmp_path):
    """A truncated .data file, and a lost `checkpoint` state file next to ckpt-N files:
    generate says so in one line, and a resumed training run stops instead of
    restarting from step 0 beside the user's checkpoints."""
    truncated, stateless = tmp_path / "truncated", tmp_path / "stateless"
    for d in (truncated, stateless):
        shutil.copytree(runs["none"], d)
    data = sorted((truncated / "checkpoints").glob("ckpt-2.data-*"))[0]
    data.write_bytes(data.read_bytes()[:1000])
    (stateless / "checkpoints" / "checkpoint").unlink()
    line = error_line(_generate(f"--model_dir={truncated}", f"--out={tmp_path / 'o'}"))
    assert "cannot restore the generator from" in line and "ckpt-2" in line, line
    line = error_line(_generate(f"--model_dir={stateless}", f"--out={tmp_path / 'o'}"))
    assert "checkpoint is missing or unreadable" in line and "newest ckpt-2" in line, line
    assert "--checkpoint=" in line
    assert not (tmp_path / "o").exists()
    before = _snapshot(stateless / "checkpoints")
    cfg = make_config(
        "tiny", **{**TINY_TEST_FLAGS, "train_steps": 4, "num_wavs": 0, "model_dir": str(stateless)}
    )
    with pytest.raises(UserError, match="missing or unreadable"):
        run_training(cfg, tf.distribute.OneDeviceStrategy("/cpu:0"), log=lambda _: None)
    assert _snapshot(stateless / "checkpoints") == before
    # An empty state file (what a full disk leaves) made TF raise a bare ValueError.
    empty = tmp_path / "empty"
    shutil.copytree(runs["none"], empty)
    (empty / "checkpoints" / "checkpoint").write_bytes(b"")
    line = error_line(_generate(f"--model_dir={empty}", f"--out={tmp_path / 'o'}"))
    assert "checkpoint is missing or unreadable" in line and "newest ckpt-2" in line, line
    line = error_line(
        _generate(
            f"--model_dir={empty}",
            f"--checkpoint={empty / 'checkpoints'}",
            f"--out={tmp_path / 'o'}",
        )
    )
    assert "checkpoint is missing or unreadable" in line, line
    before = _snapshot(empty / "checkpoints")
    cfg = make_config(
        "tiny", **{**TINY_TEST_FLAGS, "train_steps": 4, "num_wavs": 0, "model_dir": str(empty)}
    )
    with pytest.raises(UserError, match="missing or unreadable"):
        run_training(cfg, tf.distribute.OneDeviceStrategy("/cpu:0"), log=lambda _: None)
    assert _snapshot(empty / "checkpoints") == before
