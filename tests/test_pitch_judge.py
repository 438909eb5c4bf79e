"""The independent pitch judge (pYIN) and the upsampling artifact measure."""

import os

import deeplake
import numpy as np
import pytest

from wavegan_dist.evaluation import pitch_judge

pytestmark = pytest.mark.slow


def _real_notes(instruments_root, n=40):
    ds = deeplake.open_read_only(os.path.join(instruments_root, "valid"))
    audio = np.asarray(ds["audio"][:n]).astype(np.float32) / 32768
    return audio[:, :16384], np.asarray(ds["pitch"][:n])


def test_noise_scores_about_zero(instruments_root):
    _, pitches = _real_notes(instruments_root)
    noise = np.random.default_rng(0).standard_normal((len(pitches), 16384)) * 0.3
    judged = pitch_judge.judge_set(noise, 16000, pitches)
    assert judged["judge_pitch_accuracy"] <= 0.05


def test_an_octave_error_is_octave_tolerant_but_not_strict():
    got = pitch_judge.pitch_accuracy(np.array([72.2, 60.0, np.nan, 61.0]), np.array([60] * 4))
    assert got == {"strict": 0.25, "octave": 0.5}


def test_a_62_5_hz_comb_has_more_artifact_power_than_real_notes(instruments_root):
    real, _ = _real_notes(instruments_root)
    comb = np.zeros_like(real)
    comb[:, ::256] = 1.0  # a click every 256 samples: lines at every multiple of 62.5 Hz
    comb += 0.1 * real
    real_power = pitch_judge.artifact_power(real, 16000)
    comb_power = pitch_judge.artifact_power(comb, 16000)
    assert comb_power[256] > 2 * real_power[256]
    assert comb_power[16] > 2 * real_power[16]
    assert 0 < real_power[256] < 0.5


def test_evaluate_judges_real_held_out_instrument_notes_near_one(instruments_root, tmp_path):
    """Through `python -m wavegan_dist.evaluate`: real held-out notes of known pitch."""
    import json

    import tensorflow as tf

    from conftest import TINY_TEST_FLAGS, run_module
    from wavegan_dist.config import make_config
    from wavegan_dist.training.loop import run_training

    proc = run_module(
        "evaluate",
        "train-classifier",
        "--data=builtin-instruments",
        f"--out={tmp_path / 'cls'}",
        "--slice_len=8192",
        "--epochs=1",
    )
    assert proc.returncode == 0, proc.stderr
    run_training(
        make_config(
            "tiny",
            **{
                **TINY_TEST_FLAGS,
                "train_steps": 1,
                "num_wavs": 0,
                "data": "builtin-instruments",
                "condition": "pitch",
                "model_dir": str(tmp_path / "run"),
            },
        ),
        tf.distribute.OneDeviceStrategy("/cpu:0"),
        log=lambda _: None,
    )
    report = tmp_path / "eval.json"
    proc = run_module(
        "evaluate",
        f"--model_dir={tmp_path / 'run'}",
        f"--classifier={tmp_path / 'cls'}",
        "--n=16",
        "--k=5",
        "--max_train=64",
        f"--json={report}",
    )
    assert proc.returncode == 0, proc.stderr
    table = {line.split()[0]: line.split()[1:] for line in proc.stdout.splitlines() if line}
    assert len(table["judge_pitch_accuracy"]) == 2  # generated, real held-out
    result = json.loads(report.read_text())
    real, generated = result["real_heldout"], result["generated"]
    assert result["n_heldout"] == 251
    assert real["judge_pitch_accuracy"] >= 0.95
    assert real["judge_pitch_accuracy_octave"] >= real["judge_pitch_accuracy"]
    # An untrained generator is not on pitch; its artifact lines are measured against real.
    assert 0 <= generated["judge_pitch_accuracy"] <= 0.5
    assert (
        generated["artifact_vs_real_sr_over_256"]
        == generated["artifact_power_sr_over_256"] / real["artifact_power_sr_over_256"]
    )
