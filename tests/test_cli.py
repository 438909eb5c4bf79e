"""`python -m wavegan_dist.train` as a user runs it: subprocesses, real files read back."""

import functools
import os

import pytest
import tensorflow as tf
from tensorboard.backend.event_processing import event_accumulator

from conftest import TINY_TEST_FLAGS, error_line, run_module
from wavegan_dist.media import grid

pytestmark = pytest.mark.slow

EXPECTED_TAGS = {
    "loss/critic",
    "loss/generator",
    "loss/gradient_penalty",
    "loss/wasserstein",
    "perf/examples_per_sec",
    "audio/generated",
    "audio/real",
    "spectrogram/generated",
    "config",
}


_train = functools.partial(run_module, "train")


def _tiny_flags():
    return [f"--{k}={v}" for k, v in TINY_TEST_FLAGS.items()]


@pytest.fixture(scope="module")
def mirrored_run(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli_run")
    first = _train(
        "--strategy=mirrored",
        "--cpu_replicas=2",
        "--preset=tiny",
        "--train_steps=4",
        f"--model_dir={d}",
        *_tiny_flags(),
    )
    second = _train(
        "--strategy=mirrored",
        "--cpu_replicas=2",
        "--preset=tiny",
        "--train_steps=6",
        f"--model_dir={d}",
        *_tiny_flags(),
    )
    return d, first, second


def test_mirrored_run_reports_replicas_and_resumes(mirrored_run):
    d, first, second = mirrored_run
    assert first.returncode == 0, first.stderr
    assert "MirroredStrategy: 2 replica(s) in sync on CPU:0, CPU:1" in first.stdout
    assert (
        "done at step 4: 2 replica(s) in sync (max weight difference between replicas 0)"
        in first.stdout
    )
    assert second.returncode == 0, second.stderr
    assert "resumed from step 4" in second.stdout
    assert "step 6/6  critic" in second.stdout and "done at step 6" in second.stdout
    assert "step 5/6" in second.stdout and "step 4/" not in second.stdout
    assert sorted(f for f in os.listdir(d / "checkpoints") if f.endswith(".index")) == [
        "ckpt-2.index",
        "ckpt-4.index",
        "ckpt-6.index",
    ]
    assert len(os.listdir(d / "samples" / "step_0000006")) == 2


def test_event_files_hold_every_tag(mirrored_run):
    d, *_ = mirrored_run
    acc = event_accumulator.EventAccumulator(str(d), size_guidance={"tensors": 0})
    acc.Reload()
    tags = set(acc.Tags()["tensors"])
    assert EXPECTED_TAGS <= tags, EXPECTED_TAGS - tags
    steps = [e.step for e in acc.Tensors("loss/critic")]
    assert steps == [1, 2, 3, 4, 5, 6]  # log_every=1 over both runs, no step twice
    assert [e.step for e in acc.Tensors("perf/examples_per_sec")] == [2, 3, 4, 6]
    audio = acc.Tensors("audio/generated")[-1].tensor_proto
    assert audio.tensor_shape.dim[0].size == 2  # two clips, each an encoded WAV
    wav = audio.string_val[0]
    assert wav[:4] == b"RIFF" and int.from_bytes(wav[24:28], "little") == 16000
    image = acc.Tensors("spectrogram/generated")[-1].tensor_proto
    assert image.string_val[2][:4] == b"\x89PNG"
    # The two clips as generate draws them: labelled panels of 256 x 200 pixels side by side.
    h, w = grid.cell_size()
    assert [int(v) for v in image.string_val[:2]] == [2 * w + grid.GAP, h]
    assert tf.io.decode_png(image.string_val[2]).shape == (h, 2 * w + grid.GAP, 3)
    text = acc.Tensors("config")[0].tensor_proto.string_val[0].decode()
    assert "| batch_size | 8 |" in text and "| strategy | mirrored |" in text


def test_tpu_without_a_tpu_is_one_line_error(tmp_path):
    env_tpu = os.environ.pop("TPU_NAME", None)
    try:
        line = error_line(_train("--strategy=tpu", "--preset=tiny", f"--model_dir={tmp_path}"))
    finally:
        if env_tpu is not None:
            os.environ["TPU_NAME"] = env_tpu
    assert "no TPU found" in line and "--tpu" in line
    assert not os.listdir(tmp_path)  # nothing written


def test_bad_input_is_one_line_error(tmp_path):
    assert "does not divide over 2 replicas" in error_line(
        _train(
            "--strategy=mirrored",
            "--cpu_replicas=2",
            "--preset=tiny",
            "--batch_size=7",
            f"--model_dir={tmp_path}",
        )
    )
    assert "no such file or folder" in error_line(
        _train("--preset=tiny", f"--data={tmp_path}/nope", f"--model_dir={tmp_path}")
    )
    assert "--model_dir is required" in error_line(_train("--preset=tiny"))
    assert "unexpected arguments" in error_line(_train("--preset=tiny", "stray"))
    assert "flag --pitch_min=abc" in error_line(
        _train("--pitch_min=abc", f"--model_dir={tmp_path}")
    )
    assert "Unknown command line flag 'nosuch'" in error_line(_train("--nosuch=1"))
    assert "--velocity takes comma-separated integers" in error_line(
        _train("--velocity=loud", f"--model_dir={tmp_path}")
    )
