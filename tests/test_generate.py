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
from wavegan_dist.training.loop import run_training

N = 5  # not a square: the grid then has an empty cell
SEED = 7
GAP = 2


_generate = functools.partial(run_module, "generate")


def _ok(proc):
    assert proc.returncode == 0, (proc.stdout, proc.stderr)
    return proc.stdout.splitlines()


def _read_wav(path):
    """(samples int16 [T], channels, sample width, rate) of a WAV file."""
    with wave.open(str(path), "rb") as f:
        frames = f.readframes(f.getnframes())
        return (np.frombuffer(frames, "<i2"), f.getnchannels(), f.getsampwidth(),
                f.getframerate())


def _wavs(folder):
    return sorted(p for p in os.listdir(folder) if p.endswith(".wav"))


def _snapshot(folder):
    return {name: (folder / name).read_bytes() for name in sorted(os.listdir(folder))}


@pytest.fixture(scope="module")
def runs(tmp_path_factory, cache_dir):
    """{"none": folder, "pitch": folder}: tiny runs trained for 2 steps."""
    folders = {}
    for condition in ("none", "pitch"):
        d = tmp_path_factory.mktemp(f"run_{condition}")
        cfg = make_config("tiny", **{**TINY_TEST_FLAGS, "train_steps": 2, "num_wavs": 0,
                                     "condition": condition, "model_dir": str(d)})
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
        "none": (f"--model_dir={runs['none']}", f"--n={N}", f"--seed={SEED}",
                 f"--out={d / 'none'}", f"--export={d / 'none_export'}"),
        "none_again": (f"--model_dir={runs['none']}", f"--n={N}", f"--seed={SEED}",
                       f"--out={d / 'empty_out'}"),
        "pitch40": (f"--model_dir={runs['pitch']}", "--n=3", "--pitch=40", f"--seed={SEED}",
                    f"--out={d / 'pitch40'}", f"--export={d / 'empty_export'}"),
        "pitch80": (f"--model_dir={runs['pitch']}", "--n=3", "--pitch=80", f"--seed={SEED}",
                    f"--out={d / 'pitch80'}"),
    }
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        procs = dict(zip(jobs, pool.map(lambda flags: _generate(*flags), jobs.values())))
    folders = {"none": d / "none", "none_again": d / "empty_out", "pitch40": d / "pitch40",
               "pitch80": d / "pitch80", "none_export": d / "none_export",
               "pitch_export": d / "empty_export"}
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
    # One line per thing written (N WAVs, the PNG, the SavedModel), then the summary.
    wrote = [line for line in lines if line.startswith("wrote ")]
    assert len(wrote) == N + 2 and sum(".wav" in line for line in wrote) == N
    assert any("spectrograms.png" in line for line in wrote)
    assert lines[-1].startswith("done: ") and f"{N} WAV files" in lines[-1]
    assert "1 SavedModel" in lines[-1]

    image = tf.io.decode_png(tf.io.read_file(str(out / "spectrograms.png"))).numpy()
    rows, cols = 2, 3  # near-square grid of 5 tiles
    # Each tile is one clip's spectrogram: 512-sample frames (257 bins) every 128 samples.
    tile_h, tile_w = 257, 1024 // 128
    assert image.shape == (rows * tile_h + GAP * (rows - 1), cols * tile_w + GAP * (cols - 1), 1)
    assert image.dtype == np.uint8
    assert (image[tile_h:tile_h + GAP] == 255).all()  # the separator between the rows
    assert (image[tile_h + GAP:, 2 * (tile_w + GAP):] == 255).all()  # the empty sixth cell
    assert image[:tile_h, :tile_w].std() > 0  # a real spectrogram, not a flat fill


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
    low, high = (np.stack([_read_wav(folders[k] / n)[0] for n in _wavs(folders[k])])
                 for k in ("pitch40", "pitch80"))
    assert low.shape == high.shape == (3, 1024)
    assert np.abs(low.astype(np.int32) - high).max() > 100


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
    jobs = [{"path": str(folders["none_export"]), "z": str(tmp_path / "z.npy"), "labels": "",
             "audio": str(tmp_path / "none.npy")},
            {"path": str(folders["pitch_export"]), "z": str(tmp_path / "z.npy"),
             "labels": str(tmp_path / "labels.npy"), "audio": str(tmp_path / "pitch.npy")}]
    proc = subprocess.run([sys.executable, "-c", CLEAN_LOAD, json.dumps(jobs)], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300, env=os.environ)
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
        expected = generator(tf.constant(z), None if job_labels is None
                             else tf.constant(job_labels), training=False).numpy()[..., 0]
        assert np.abs(np.load(job["audio"]) - expected).max() < 1e-5, condition


def _error_cases(runs, tmp):
    """{name: (flags, text the error line must hold)} for bad input."""
    (tmp / "not_a_run").mkdir()
    (tmp / "no_checkpoint").mkdir()
    shutil.copy(runs["none"] / "config.json", tmp / "no_checkpoint" / "config.json")
    none, pitch, out = f"--model_dir={runs['none']}", f"--model_dir={runs['pitch']}", f"--out={tmp / 'o'}"
    return {
        "model_dir_missing": ((f"--model_dir={tmp / 'nowhere'}", out), "does not exist"),
        "no_config": ((f"--model_dir={tmp / 'not_a_run'}", out), "has no config.json"),
        "no_checkpoint": ((f"--model_dir={tmp / 'no_checkpoint'}", out), "has no checkpoint"),
        "wrong_checkpoint": ((none, out, f"--checkpoint={runs['pitch'] / 'checkpoints' / 'ckpt-2'}"),
                             "cannot restore the generator"),
        "n_below_1": ((none, out, "--n=0"), "--n must be >= 1"),
        "nothing_to_do": ((none,), "nothing to do"),
        "pitch_missing": ((pitch, out), "conditioned on pitch: pass --pitch="),
        "pitch_out_of_range": ((pitch, out, "--pitch=128"), "--pitch=128 is out of range"),
        "family_out_of_range": ((pitch, out, "--instrument_family=11"), "0-10"),
        "label_not_matching": ((pitch, out, "--instrument_family=3"), "not instrument_family"),
        "label_on_unconditional": ((none, out, "--pitch=60"), "unconditional"),
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
    line = error_line(_generate(f"--model_dir={runs['none']}", f"--out={fresh}",
                                 f"--export={export}"))
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
    assert (cfg.slice_len, cfg.condition, rate) == (1024, "none", 16000)
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
    cfg = make_config("tiny", **{**TINY_TEST_FLAGS, "train_steps": 4, "num_wavs": 0,
                                 "model_dir": str(stateless)})
    with pytest.raises(UserError, match="missing or unreadable"):
        run_training(cfg, tf.distribute.OneDeviceStrategy("/cpu:0"), log=lambda _: None)
    assert _snapshot(stateless / "checkpoints") == before
    # An empty state file (what a full disk leaves) made TF raise a bare ValueError.
    empty = tmp_path / "empty"
    shutil.copytree(runs["none"], empty)
    (empty / "checkpoints" / "checkpoint").write_bytes(b"")
    line = error_line(_generate(f"--model_dir={empty}", f"--out={tmp_path / 'o'}"))
    assert "checkpoint is missing or unreadable" in line and "newest ckpt-2" in line, line
    line = error_line(_generate(f"--model_dir={empty}", f"--checkpoint={empty / 'checkpoints'}",
                                f"--out={tmp_path / 'o'}"))
    assert "checkpoint is missing or unreadable" in line, line
    before = _snapshot(empty / "checkpoints")
    cfg = make_config("tiny", **{**TINY_TEST_FLAGS, "train_steps": 4, "num_wavs": 0,
                                 "model_dir": str(empty)})
    with pytest.raises(UserError, match="missing or unreadable"):
        run_training(cfg, tf.distribute.OneDeviceStrategy("/cpu:0"), log=lambda _: None)
    assert _snapshot(empty / "checkpoints") == before
