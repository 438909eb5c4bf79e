"""`python -m wavegan_dist.evaluate` on the built-in dataset and a real (tiny) run."""

import json
import os
import subprocess
import sys

import pytest
import tensorflow as tf

from conftest import TINY_TEST_FLAGS, error_line
from wavegan_dist.config import make_config
from wavegan_dist.training.loop import run_training


def _evaluate(*flags, timeout=300):
    return subprocess.run([sys.executable, "-m", "wavegan_dist.evaluate", *flags],
                          capture_output=True, text=True, timeout=timeout, env=os.environ)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, builtin_root):
    """A pitch classifier (few epochs) and a tiny conditional run, made once."""
    root = tmp_path_factory.mktemp("eval")
    proc = _evaluate("train-classifier", f"--out={root / 'cls'}", "--slice_len=2048",
                     "--epochs=3")
    assert proc.returncode == 0, proc.stderr
    run = root / "run"
    run_training(make_config("tiny", **{**TINY_TEST_FLAGS, "slice_len": 1024, "train_steps": 2,
                                        "condition": "pitch", "num_wavs": 0,
                                        "model_dir": str(run)}),
                 tf.distribute.OneDeviceStrategy("/cpu:0"), log=lambda _: None)
    return root, proc.stdout


def test_train_classifier_reports_held_out_accuracy_and_saves(trained):
    root, out = trained
    line = [x for x in out.splitlines() if x.startswith("held-out accuracy (valid): ")]
    assert len(line) == 1 and "over 128 pitch classes" in line[0]
    info = json.loads((root / "cls" / "classifier.json").read_text())
    assert info["target"] == "pitch" and info["slice_len"] == 2048 and info["sample_rate"] == 16000
    assert 0.0 <= info["heldout_accuracy"] <= 1.0
    # Nothing is overwritten.
    assert "already holds a classifier" in error_line(_evaluate(
        "train-classifier", f"--out={root / 'cls'}", "--epochs=1"))


def test_evaluate_prints_a_table_and_writes_json(trained):
    root, _ = trained
    report = root / "report.json"
    proc = _evaluate(f"--model_dir={root / 'run'}", f"--classifier={root / 'cls'}", "--n=24",
                     "--k=10", f"--json={report}")
    assert proc.returncode == 0, proc.stderr
    assert "metric" in proc.stdout and "real held-out" in proc.stdout
    result = json.loads(report.read_text())
    assert result["n_generated"] == 24 and result["n_heldout"] == 48 and result["k"] == 10
    for row in ("generated", "real_heldout"):
        values = result[row]
        assert 1.0 <= values["inception_score"] <= 128
        assert values["frechet_distance"] >= 0 and 0 <= values["ndb"] <= 10
        assert 0.0 <= values["pitch_accuracy"] <= 1.0  # conditional on pitch: scored
        assert values["nearest_train_distance"] >= 0


def test_evaluate_bad_input_is_one_line(trained, tmp_path):
    root, _ = trained
    assert "pass --model_dir=RUN and --classifier" in error_line(_evaluate())
    assert "is not a classifier folder" in error_line(_evaluate(
        f"--model_dir={root / 'run'}", f"--classifier={tmp_path}"))
    assert "unknown subcommand" in error_line(_evaluate("judge"))
